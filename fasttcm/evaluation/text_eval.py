"""The scene-text metric: detection and end-to-end evaluation computed as the official Robust Reading Competition
(RRC) scripts compute it (rules: ``docs/PROTOCOLS.md`` §1-2). The files it reads and writes (layouts, readers,
image keys, submission writers) are :mod:`fasttcm.formats.text`, whose public names this module re-exports; the
command line is ``tools/evaluate_text.py``.

This module needs only numpy and shapely (>= 2): importing it loads neither torch nor detectron2.

Protocols
---------
``"icdar15"``
    ICDAR 2015 Incidental Scene Text (RRC Challenge 4), word-level quadrilaterals.
``"totaltext"`` and ``"ctw1500"``
    The polygon variant of the same script: identical matching, don't-care and counting rules, any number of
    vertices per polygon. The two names differ only in how they are reported (Total-Text is conventionally
    evaluated with ``word_spotting=True``, CTW1500 without; :func:`evaluate` never guesses: pass it).

File layouts, transcriptions and image ids: :mod:`fasttcm.formats.text`.

Rules (``docs/PROTOCOLS.md``)
-----------------------------
* GT transcription ``###`` (exactly, after reading as above) = don't care. In word-spotting mode a GT word is
  also don't care, *for end to end only*, unless it passes the dictionary rule (:func:`dictionary_word`); a word
  that passes is compared in its cleaned form. "Strip spaces" in the rule strips the space character only (other
  white space then fails the character test).
* **Areas.** Under ``"icdar15"`` the area of a word is the absolute shoelace sum of its ring as written (after the
  clockwise reordering), as the official script measures it; intersections are taken on the filled shapes. For a
  self-intersecting (bow-tie) quadrilateral the ring area is smaller than the region it covers (its lobes
  cancel): the union shrinks, the IoU grows, and a detection whose ring area is 0 is never don't care. Such words
  are counted (``warnings["gt_ring_area_differs"]`` / ``["det_ring_area_differs"]``) and the summary warns. Under
  the polygon protocol the area is that of the filled (repaired) shape.
* A detection is don't care when, for some don't-care GT region of its image, area(det ∩ region) / area(det)
  > 0.5 (a detection of zero area never is). Done with the end-to-end don't-care list and with the
  detection-only list (``###`` only).
* Greedy one-to-one matching in file order: for each GT (file order), the first detection (file order) still
  unmatched, not don't care, with IoU > 0.5 (strictly). IoU = area(∩) / (area(g) + area(d) - area(∩)), 0 when
  that union is not positive.
* End to end: a matched pair is correct when the upper-cased transcriptions are equal; outside word-spotting mode
  also when they are equal after removing one special character (:data:`SPECIAL_CHARACTERS`) from the start, the
  end, or both ends of the GT word (:func:`transcription_match`). Detection only: every match counts.
* Per image: no care GT -> recall 1, precision 1 if no care detection else 0; otherwise recall = matched / care GT,
  precision = matched / care detections (0 if none). Overall: recall = Σ matched / Σ care GT, precision =
  Σ matched / Σ care detections (0 when a denominator is 0); hmean = 2PR / (P + R) (0 when P + R = 0).

Geometry and precision
----------------------
ICDAR 2015 quadrilaterals are intersected in numpy (:mod:`fasttcm.structures.quads`: convex pieces clipped in
double precision), and the two 0.5 thresholds are decided exactly: a pair whose IoU or area ratio lies within
rounding of 0.5 is decided again in rational arithmetic, so an exact 0.5 is never counted. Polygons (Total-Text,
CTW1500, and in-memory ICDAR words with other than 4 points) are intersected by shapely (GEOS, double precision).
Only pairs whose bounding boxes allow an IoU or area ratio above 0.5 are intersected at all.

Where the official scripts crash or are undefined, fasttcm defines the result
-----------------------------------------------------------------------------
* **BOM**: stripped. **Empty file** (or only blank lines): an image with no words. GT: no care GT (per-image
  recall 1); detections: none.
* **Invalid polygons.** ICDAR 2015: the official script returns a number for a self-intersecting quadrilateral
  (the ring-area rule above), and so does fasttcm: its filled shape is its two lobes (counted in
  ``*_polygons_repaired``). The polygon protocol's official script refuses invalid polygons; fasttcm repairs
  them with ``shapely.make_valid``, keeping all of their polygonal part (a bow-tie becomes its two triangles, a
  MultiPolygon). Either protocol: when nothing polygonal is left (zero area, fewer than 3 points in memory,
  NaN/inf coordinates in memory), the word is **kept with an empty geometry**: it still counts (a care GT no
  detection can match, a care detection that matches nothing) and is never don't care. Nothing is dropped:
  dropping a GT would raise recall and dropping a detection would raise precision. Each repair is logged with
  ``file:line`` and counted in ``warnings`` (``gt_polygons_repaired``, ``gt_polygons_empty``,
  ``det_polygons_repaired``, ``det_polygons_empty``); the CLI prints the counts.
* **Zero union** (two empty geometries): IoU 0.
* **An image with a GT file and no detection file**: it has no detections (as the official script).
* **A detection file (or in-memory entry) for an image without GT** (the official script raises): ignored, with a
  warning, listed in ``warnings["unknown_det_images"]``. The image set is the ground truth's.
* **Files not in the layout** (``README.txt``, ``gt_1.txt`` in an ICDAR folder, sub-folders): ignored, listed in
  ``warnings["ignored_files"]``. Two files with the same image key (``gt_img_01.txt`` and ``gt_img_1.txt``):
  ``ValueError``.
* **Empty GT transcription** (the official script indexes its first character and raises): matches only an empty
  detection transcription.
* **A polygon line with a second ``,####``**: everything after the first one is the transcription.
* **In-memory polygons with a number of vertices other than 4 under ``"icdar15"``** (impossible from files):
  evaluated as polygons (ring area from their shoelace sum); the clockwise reordering applies to quadrilaterals
  only.

Result of :func:`evaluate` (all rates are fractions in [0, 1]; JSON-serializable)
---------------------------------------------------------------------------------
::

    {"protocol": "icdar15" | "totaltext" | "ctw1500", "word_spotting": bool, "num_images": int,
     "num_images_without_detections": int,
     "det_only": {"precision", "recall", "hmean", "care_gt", "care_det", "matched"},
     "e2e":      {"precision", "recall", "hmean", "care_gt", "care_det", "matched"},   # matched = correct pairs
     "per_sample": {key: {"det_only": {... same six keys, per-image rule ...}, "e2e": {...},
                          "num_gt": int, "num_det": int,
                          "det_only_pairs": [[gt_index, det_index], ...],          # 0-based, file order
                          "e2e_pairs": [[gt_index, det_index, correct(0|1)], ...]}},
     "warnings": {"gt_polygons_repaired", "gt_polygons_empty", "det_polygons_repaired", "det_polygons_empty",
                  "gt_ring_area_differs", "det_ring_area_differs",              # ICDAR 2015 only, else 0
                  "quads_reordered": int, "unknown_det_images": [key, ...],
                  "ignored_files": ["gt:<name>" | "det:<name>", ...],
                  "messages": [str, ...]  (the first 100 messages)},
     "sources": {"gt": str, "det": str}}
"""
from __future__ import annotations

import logging
import re
from collections import Counter
from fractions import Fraction
from typing import List, Optional, Tuple

import numpy as np
import shapely
from shapely.geometry import Polygon

from fasttcm.formats.text import (  # noqa: F401  (re-exported: the formats are part of this module's API)
    DONT_CARE,
    POLYGON_SEPARATOR,
    PROTOCOLS,
    TextFiles,
    TextItem,
    as_text_files,
    canonical_protocol,
    describe_protocol,
    format_submission_lines,
    image_key,
    load_text_files,
    parse_icdar15_lines,
    parse_lines,
    parse_polygon_lines,
    protocol_rules,
    submission_filename,
    to_quad,
    unquote_transcription,
    write_icdar15_submission,
    write_submission,
    write_submission_lines,
    write_totaltext_submission,
)
from fasttcm.structures.polygons import polygonal_union, signed_area, sort_clockwise_by_angle
from fasttcm.structures.quads import (
    BOWTIE,
    DEGENERATE,
    PreparedQuads,
    exact_pair_areas,
    intersection_areas,
    overlap_pairs,
    signed_areas,
)

logger = logging.getLogger(__name__)

__all__ = [
    "PROTOCOLS",
    "DONT_CARE",
    "SPECIAL_CHARACTERS",
    "TextItem",
    "TextFiles",
    "canonical_protocol",
    "image_key",
    "submission_filename",
    "parse_lines",
    "parse_icdar15_lines",
    "parse_polygon_lines",
    "unquote_transcription",
    "load_text_files",
    "order_quad_clockwise",
    "dictionary_word",
    "transcription_match",
    "evaluate",
    "format_table",
    "json_default",
    "warning_lines",
    "format_submission_lines",
    "write_submission",
    "write_submission_lines",
    "write_icdar15_submission",
    "write_totaltext_submission",
    "to_quad",
]

#: characters one of which may be removed from the start and/or the end of a GT word (end to end, no word spotting)
SPECIAL_CHARACTERS = "!?.:,*\"()·[]/'"
#: characters replaced by a space by the word-spotting dictionary rule (step 3)
_DICT_SPACE_CHARACTERS = "'!?.:,*\"()·[]/"
_DICT_FORBIDDEN = "×÷·"
_DICT_RANGES = ((ord("a"), ord("z")), (ord("A"), ord("Z")), (0xC0, 0x1BF), (0x1C4, 0x27F), (0x386, 0x3FF))
_DICT_TO_SPACE = str.maketrans({ch: " " for ch in _DICT_SPACE_CHARACTERS})
#: a word of the allowed characters: the ranges above and '-', none of the forbidden ones
_DICT_WORD = re.compile(
    "(?:(?![" + re.escape(_DICT_FORBIDDEN) + "])["
    + "".join(re.escape(chr(lo)) + "-" + re.escape(chr(hi)) for lo, hi in _DICT_RANGES) + r"\-])+"
)
IOU_THRESHOLD = 0.5
AREA_PRECISION_THRESHOLD = 0.5
#: at most this many warning messages are logged and kept in ``warnings["messages"]``; counts are always complete
MAX_MESSAGES = 100


# ------------------------------------------------------------------------------------------- geometry --
def order_quad_clockwise(points) -> np.ndarray:
    """The official reorder of an ICDAR 2015 quadrilateral: one that is not clockwise on the image (negative
    shoelace area, y down) is sorted clockwise by the angle of its vertices around their mean
    (:func:`~fasttcm.structures.polygons.sort_clockwise_by_angle`); a clockwise (or zero-area) one is unchanged.
    (DB's output ordering, clockwise from the top-left corner, is
    :func:`fasttcm.structures.polygons.order_quad_clockwise`.)"""
    pts = np.asarray(points, dtype=np.float64).reshape(4, 2)
    if signed_area(pts) >= 0:
        return pts
    return sort_clockwise_by_angle(pts[None])[0]


_EMPTY = Polygon()


_COUNT_KEYS = ("gt_polygons_repaired", "gt_polygons_empty", "det_polygons_repaired", "det_polygons_empty",
               "gt_ring_area_differs", "det_ring_area_differs", "quads_reordered")


class _Log:
    def __init__(self):
        self.counts: Counter = Counter()
        self.messages: List[str] = []
        self.unknown: List[str] = []
        self.ignored: List[str] = []

    def warn(self, kind: Optional[str], msg: str) -> None:
        if kind:
            self.counts[kind] += 1
        if len(self.messages) < MAX_MESSAGES:
            self.messages.append(msg)
            logger.warning(msg)
        elif len(self.messages) == MAX_MESSAGES:
            self.messages.append("... further warnings not shown (the counts are complete)")
            logger.warning("text evaluation: further warnings not shown (the counts are complete)")

    def report(self) -> dict:
        out = {k: int(self.counts[k]) for k in _COUNT_KEYS}
        out.update(unknown_det_images=list(self.unknown), ignored_files=list(self.ignored),
                   messages=list(self.messages))
        return out


def _text_repr(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _ragged(offs: np.ndarray, idx: np.ndarray):
    """For rings ``allp[offs[i]:offs[i + 1]]``, ``i`` in ``idx``: ``(seg, first, pos, nxt)`` per point: the ring's
    rank in ``idx``, its first point, the point, and the next point along the ring."""
    lens = offs[idx + 1] - offs[idx]
    seg = np.repeat(np.arange(len(idx)), lens)
    first = np.repeat(offs[idx], lens)
    pos = first + np.arange(int(lens.sum())) - np.repeat(np.cumsum(lens) - lens, lens)
    last = first + np.repeat(lens, lens) - 1
    return seg, first, pos, np.where(pos == last, first, pos + 1)


def _ring_areas(allp: np.ndarray, offs: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """|shoelace| of the rings ``allp[offs[i]:offs[i + 1]]`` for ``i`` in ``idx``, in coordinates relative to each
    ring's first point."""
    if len(idx) == 0:
        return np.zeros(0)
    seg, first, pos, nxt = _ragged(offs, idx)
    p, pn, o = allp[pos], allp[nxt], allp[first]
    cross = (p[:, 0] - o[:, 0]) * (pn[:, 1] - o[:, 1]) - (pn[:, 0] - o[:, 0]) * (p[:, 1] - o[:, 1])
    return 0.5 * np.abs(np.bincount(seg, weights=cross, minlength=len(idx)))


class _Side:
    """The words of one side (GT or detections) over all images, image-major then file order, with their
    geometry: ``empty`` (no usable geometry), ``filled`` (area of the repaired shape), ``ring`` (the area the
    protocol's union and don't-care ratio use: the ring's |shoelace| under ICDAR 2015, ``filled`` otherwise),
    ``bounds``, quads on the numpy path (``qidx`` into ``quads``) and shapely geometries for the others."""

    def __init__(self, per_image: List[List[TextItem]], sources: List[str], rules: str, role: str, log: _Log):
        self.items = [it for words in per_image for it in words]
        counts = np.fromiter((len(w) for w in per_image), dtype=np.int64, count=len(per_image))
        self.start = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        self.img = np.repeat(np.arange(len(per_image)), counts)
        self.sources = sources
        self.role = role
        n = len(self.items)
        npts = np.fromiter((len(it.points) for it in self.items), dtype=np.int64, count=n)
        offs = np.concatenate([[0], np.cumsum(npts)]).astype(np.int64)
        allp = np.concatenate([it.points for it in self.items]) if n and offs[-1] else np.zeros((0, 2))
        nz = np.nonzero(npts > 0)[0]
        finite = np.zeros(n, dtype=bool)
        if len(nz):
            bad = np.add.reduceat((~np.isfinite(allp).all(axis=1)).astype(np.int64), offs[nz])
            finite[nz] = bad == 0
        usable = finite & (npts >= 3)
        self.empty = ~usable
        self.allp, self.offs, self.npts = allp, offs, npts
        self.filled = np.zeros(n)
        self.ring = np.zeros(n)
        self.bounds = np.zeros((n, 4))
        self.qidx = np.full(n, -1, dtype=np.int64)
        self.quads: Optional[PreparedQuads] = None
        self.geoms = np.empty(n, dtype=object)
        for i in np.nonzero(~usable)[0].tolist():
            log.warn(f"{role}_polygons_empty",
                     f"{self.where(i)}: {role} polygon with {npts[i]} point(s) or non-finite coordinates "
                     f"{_text_repr(self.items[i].text)}: kept with an empty geometry (it can match nothing)")
        if len(nz):
            xs, ys = allp[:, 0], allp[:, 1]
            with np.errstate(invalid="ignore"):
                self.bounds[nz] = np.stack([np.minimum.reduceat(xs, offs[nz]), np.minimum.reduceat(ys, offs[nz]),
                                            np.maximum.reduceat(xs, offs[nz]), np.maximum.reduceat(ys, offs[nz])], 1)
        is_quad = usable & (npts == 4) & (rules == "icdar15")
        qi = np.nonzero(is_quad)[0]
        if len(qi):
            q = allp[offs[qi][:, None] + np.arange(4)]
            ccw = signed_areas(q) < 0  # not clockwise on the image: reordered by angle (the spotting kits' rule)
            if ccw.any():
                q[ccw] = sort_clockwise_by_angle(q[ccw])
                log.counts["quads_reordered"] += int(ccw.sum())
            self.quads = PreparedQuads(q)
            self.qidx[qi] = np.arange(len(qi))
            self.filled[qi] = self.quads.areas
            self.ring[qi] = self.quads.ring_areas
            kinds = self.quads.kinds
            for k in np.nonzero(kinds == BOWTIE)[0].tolist():
                i = int(qi[k])
                log.warn(f"{role}_polygons_repaired",
                         f"{self.where(i)}: invalid {role} polygon {_text_repr(self.items[i].text)} (a "
                         f"self-intersecting quadrilateral) read as its two lobes (area {self.filled[i]:.6g}; "
                         f"the ICDAR 2015 rule measures its ring, area {self.ring[i]:.6g})")
            for k in np.nonzero(kinds == DEGENERATE)[0].tolist():
                i = int(qi[k])
                self.empty[i] = True
                log.warn(f"{role}_polygons_empty",
                         f"{self.where(i)}: invalid {role} polygon {_text_repr(self.items[i].text)} (collinear or "
                         "coinciding corners) has no area: kept with an empty geometry (it can match nothing)")
        si = np.nonzero(usable & ~is_quad)[0]
        if len(si):
            self._shapely_geometries(si, allp, offs, npts, rules, log)
        if rules == "icdar15":
            differs = np.abs(self.ring - self.filled) > 1e-9 * np.maximum(self.ring, self.filled)
            log.counts[f"{role}_ring_area_differs"] += int(np.count_nonzero(differs & ~self.empty))
        else:
            self.ring = self.filled

    def where(self, i: int) -> str:
        k = int(self.img[i])
        it = self.items[i]
        return f"{self.sources[k]}:{it.line}" if it.line else f"{self.sources[k]}, word #{i - int(self.start[k])}"

    def _shapely_geometries(self, si, allp, offs, npts, rules, log):
        role = self.role
        seg, _, pos, _ = _ragged(offs, si)
        try:
            polys = shapely.polygons(shapely.linearrings(allp[pos], indices=seg))
        except (shapely.errors.GEOSException, ValueError):  # e.g. a ring of 3 points whose first and last agree
            polys = np.empty(len(si), dtype=object)
            for k, i in enumerate(si.tolist()):
                try:
                    polys[k] = Polygon(self.items[i].points)
                except (shapely.errors.GEOSException, ValueError):
                    polys[k] = _EMPTY
        polys = np.asarray(polys, dtype=object)
        for k in np.nonzero(~shapely.is_valid(polys))[0].tolist():
            i = int(si[k])
            text = _text_repr(self.items[i].text)
            reason = shapely.is_valid_reason(polys[k]) if not polys[k].is_empty else "empty"
            fixed = polygonal_union(shapely.make_valid(polys[k])) if not polys[k].is_empty else None
            if fixed is None:
                polys[k] = _EMPTY
                self.empty[i] = True
                log.warn(f"{role}_polygons_empty",
                         f"{self.where(i)}: invalid {role} polygon {text} ({reason}) has no area: kept with an "
                         "empty geometry (it can match nothing)")
            else:
                polys[k] = fixed
                log.warn(f"{role}_polygons_repaired",
                         f"{self.where(i)}: invalid {role} polygon {text} ({reason}) repaired with make_valid "
                         f"({fixed.geom_type}, area {fixed.area:.6g})")
        self.geoms[si] = polys
        self.filled[si] = shapely.area(polys)
        zero = si[self.filled[si] <= 0]
        for i in zero.tolist():
            if not self.empty[i]:
                self.empty[i] = True
                log.warn(f"{role}_polygons_empty",
                         f"{self.where(i)}: {role} polygon {_text_repr(self.items[i].text)} has no area: kept with "
                         "an empty geometry (it can match nothing)")
        if rules == "icdar15":
            self.ring[si] = _ring_areas(allp, offs, si)

    def geometry(self, idx: np.ndarray) -> np.ndarray:
        """Shapely geometries of words ``idx`` (quads on the numpy path get theirs on first use)."""
        for i in idx[[g is None for g in self.geoms[idx]]].tolist():
            q = self.quads.corners[self.qidx[i]]
            self.geoms[i] = polygonal_union(shapely.make_valid(Polygon(q))) or _EMPTY
        return self.geoms[idx]


def _near(value: np.ndarray, thr: float, ext2: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Where a float ratio may lie on the wrong side of ``thr`` (see fasttcm.structures.quads.iou_above)."""
    d = np.where(den > 0, den, np.inf)
    tol = 1e-10 * thr + 1e3 * np.finfo(np.float64).eps * ext2 / d
    return np.abs(value - thr) <= tol


def _pair_decisions(G: _Side, D: _Side, gt_dc: np.ndarray, gt_care: np.ndarray):
    """Candidate pairs ``(ia, ib)`` (sorted by GT, then detection) with ``hit`` (IoU > 0.5) and ``inside``
    (area(∩) / area(det) > 0.5), computed only where the bounding boxes allow either to be true."""
    empty = np.zeros(0, dtype=np.int64)
    gu, du = np.nonzero(~G.empty)[0], np.nonzero(~D.empty)[0]
    if len(gu) == 0 or len(du) == 0:
        return empty, empty, np.zeros(0, bool), np.zeros(0, bool)
    ia, ib = overlap_pairs(G.bounds[gu], G.img[gu], D.bounds[du], D.img[du])
    ia, ib = gu[ia], du[ib]
    a, b = G.bounds[ia], D.bounds[ib]
    lo, hi = np.maximum(a[:, :2], b[:, :2]), np.minimum(a[:, 2:], b[:, 2:])
    m = np.prod(np.clip(hi - lo, 0, None), axis=1)
    m = np.minimum(m, np.minimum(G.filled[ia], D.filled[ib]))  # an upper bound of the intersection's area
    ug, ud = G.ring[ia], D.ring[ib]
    slack = 1.0 + 1e-9
    need = (gt_care[ia] & (3.0 * m * slack > ug + ud)) | (gt_dc[ia] & (ud > 0) & (2.0 * m * slack > ud))
    ia, ib, ug, ud = ia[need], ib[need], ug[need], ud[need]
    inter = np.zeros(len(ia))
    qq = (G.qidx[ia] >= 0) & (D.qidx[ib] >= 0)
    if qq.any():
        inter[qq] = intersection_areas(G.quads, G.qidx[ia[qq]], D.quads, D.qidx[ib[qq]])
    rest = ~qq
    if rest.any():
        inter[rest] = shapely.area(shapely.intersection(G.geometry(ia[rest]), D.geometry(ib[rest])))
    union = ug + ud - inter
    iou = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    inside_ratio = np.where(ud > 0, inter / np.where(ud > 0, ud, 1.0), 0.0)
    hit = iou > IOU_THRESHOLD
    inside = inside_ratio > AREA_PRECISION_THRESHOLD
    if qq.any():  # quads: decide pairs within rounding of a threshold in exact arithmetic
        a, b = G.bounds[ia], D.bounds[ib]
        ext = np.max(np.maximum(a[:, 2:], b[:, 2:]) - np.minimum(a[:, :2], b[:, :2]), axis=1)
        ext2 = ext * ext
        near = qq & (_near(iou, IOU_THRESHOLD, ext2, np.maximum(ug, ud))
                     | _near(inside_ratio, AREA_PRECISION_THRESHOLD, ext2, ud))
        half = Fraction(1, 2)
        for k in np.nonzero(near)[0].tolist():
            inter_x, _, _, ring_g, ring_d = exact_pair_areas(G.quads.corners[G.qidx[ia[k]]],
                                                             D.quads.corners[D.qidx[ib[k]]])
            u = ring_g + ring_d - inter_x
            hit[k] = bool(u > 0 and inter_x / u > half)
            inside[k] = bool(ring_d > 0 and inter_x / ring_d > half)
    return ia, ib, hit, inside


def _greedy(ia, ib, hit, gt_dc, det_dc, n_gt: int, n_det: int) -> Tuple[np.ndarray, np.ndarray]:
    """For each GT in order, the first free, care detection (in order) with IoU > 0.5: matched (gt, det)."""
    sel = hit & ~gt_dc[ia] & ~det_dc[ib]
    g_used = bytearray(n_gt)
    d_used = bytearray(n_det)
    pg, pd = [], []
    for g, d in zip(ia[sel].tolist(), ib[sel].tolist()):
        if g_used[g] or d_used[d]:
            continue
        g_used[g] = d_used[d] = 1
        pg.append(g)
        pd.append(d)
    return np.asarray(pg, dtype=np.int64), np.asarray(pd, dtype=np.int64)


# ---------------------------------------------------------------------------------------- transcriptions --
def dictionary_word(text: str) -> Optional[str]:
    """The word-spotting dictionary rule (``docs/PROTOCOLS.md`` §1): the cleaned word when ``text`` passes, else None.

    On a working copy: drop a final ``'s``/``'S``; strip ``-`` at both ends; replace each of
    ``' ! ? . : , * " ( ) · [ ] /`` by a space and strip spaces at both ends. It passes when it then has no
    space, at least 3 characters, none of ``× ÷ ·``, and only a-z, A-Z, U+00C0-U+01BF, U+01C4-U+027F,
    U+0386-U+03FF or ``-``."""
    w = text
    if w.endswith("'s") or w.endswith("'S"):
        w = w[:-2]
    w = w.strip("-").translate(_DICT_TO_SPACE).strip(" ")
    if len(w) < 3 or _DICT_WORD.fullmatch(w) is None:  # (no space, none of × ÷ ·: not in the class)
        return None
    return w


def transcription_match(gt: str, det: str, word_spotting: bool = False) -> bool:
    """End-to-end comparison of a GT word (in word-spotting mode: its cleaned form) with a detection's text.

    Both are upper-cased. Word spotting: equal. Otherwise also equal after removing one
    :data:`SPECIAL_CHARACTERS` character from the start, the end, or both ends of the GT word (only)."""
    g, d = gt.upper(), det.upper()
    if g == d:
        return True
    if word_spotting or not g:
        return False
    first, last = g[0] in SPECIAL_CHARACTERS, g[-1] in SPECIAL_CHARACTERS
    return (first and g[1:] == d) or (last and g[:-1] == d) or (first and last and g[1:-1] == d)


def _natural(key: str):
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


# ---------------------------------------------------------------------------------------------- evaluate --
def _image_numbers(care_gt: int, care_det: int, matched: int) -> dict:
    if care_gt == 0:
        recall, precision = 1.0, (0.0 if care_det > 0 else 1.0)
    else:
        recall = matched / care_gt
        precision = matched / care_det if care_det > 0 else 0.0
    return _numbers(precision, recall, care_gt, care_det, matched)


def _numbers(precision: float, recall: float, care_gt: int, care_det: int, matched: int) -> dict:
    return {"precision": precision, "recall": recall, "hmean": _hmean(precision, recall), "care_gt": care_gt,
            "care_det": care_det, "matched": matched}


def _hmean(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r > 0 else 0.0


def evaluate(gt, det, protocol: str = "icdar15", word_spotting: bool = False) -> dict:
    """Evaluate detections (and their transcriptions) against ground truth (rules in the module docstring).

    Args:
        gt, det: a folder or a ``.zip`` in the official layout of ``protocol``, or a mapping
            ``image id -> [word, ...]`` where a word is a :class:`TextItem`, a ``(points, text)`` tuple, a dict
            with ``"points"`` (or ``"polygon"``) and ``"text"``, or bare points; points are (N, 2) or flat
            ``[x1, y1, ...]`` (numpy arrays, lists or CPU tensors), or a :class:`TextFiles` from
            :func:`load_text_files`. Image ids are normalised by
            :func:`image_key` (``"img_1"``, ``1`` and ``"1"`` are the same ICDAR image). GT don't care is the
            transcription ``"###"``. List order is file order (it matters: matching is greedy).
        protocol: ``"icdar15"``, ``"totaltext"`` or ``"ctw1500"`` (aliases accepted).
        word_spotting: apply the dictionary rule to GT words for end to end.

    Returns the dict described in the module docstring (rates in [0, 1]).
    """
    protocol = canonical_protocol(protocol)
    rules = protocol_rules(protocol)
    log = _Log()
    g = as_text_files(gt, protocol, "gt")
    d = as_text_files(det, protocol, "det")
    for name in g.ignored:
        log.ignored.append(f"gt:{name}")
        hint = " gt_img_<id>.txt" if protocol == "icdar15" else " <7-digit id>.txt"
        log.warn(None, f"gt: ignored {name} (not a {protocol} ground-truth file name:{hint})")
    for name in d.ignored:
        log.ignored.append(f"det:{name}")
        hint = " res_img_<id>.txt" if protocol == "icdar15" else " <7-digit id>.txt"
        log.warn(None, f"det: ignored {name} (not a {protocol} detection file name:{hint})")
    for key in sorted(set(d.items) - set(g.items), key=_natural):
        log.unknown.append(key)
        log.warn(None, f"{d.sources[key]}: detections for image {key!r}, which has no ground truth: ignored")
    if not g.items:
        log.warn(None, f"no ground-truth images in {g.description}")
    keys = sorted(g.items, key=_natural)
    G = _Side([g.items[k] for k in keys], [g.sources[k] for k in keys], rules, "gt", log)
    D = _Side([d.items.get(k, []) for k in keys], [d.sources.get(k, f"det image {k!r}") for k in keys], rules,
              "det", log)
    n_img, n_gt, n_det = len(keys), len(G.items), len(D.items)

    # don't care: '###' (both tasks); in word-spotting mode also, for end to end, GT words failing the dictionary
    dc = np.fromiter((it.text == DONT_CARE for it in G.items), dtype=bool, count=n_gt)
    cmp_text = [it.text for it in G.items]
    e2e_dc = dc
    if word_spotting:
        e2e_dc = dc.copy()
        for i, it in enumerate(G.items):
            w = None if dc[i] else dictionary_word(it.text)
            e2e_dc[i] = w is None
            if w is not None:
                cmp_text[i] = w
    ia, ib, hit, inside = _pair_decisions(G, D, dc | e2e_dc, ~dc | ~e2e_dc)

    def dont_care_dets(gdc):
        out = np.zeros(n_det, dtype=bool)
        out[ib[inside & gdc[ia]]] = True
        return out

    det_dc = dont_care_dets(dc)
    pg, pd = _greedy(ia, ib, hit, dc, det_dc, n_gt, n_det)
    if e2e_dc is dc:
        det_dc_e2e, eg, ed = det_dc, pg, pd
    else:
        det_dc_e2e = dont_care_dets(e2e_dc)
        eg, ed = _greedy(ia, ib, hit, e2e_dc, det_dc_e2e, n_gt, n_det)
    correct = np.fromiter((transcription_match(cmp_text[a], D.items[b].text, word_spotting)
                           for a, b in zip(eg.tolist(), ed.tolist())), dtype=bool, count=len(eg))

    def per_image(mask_gt, mask_det, pairs_gt, weights=None):
        return (np.bincount(G.img[mask_gt], minlength=n_img), np.bincount(D.img[mask_det], minlength=n_img),
                np.bincount(G.img[pairs_gt], weights=weights, minlength=n_img).astype(np.int64))

    tasks = {"det_only": per_image(~dc, ~det_dc, pg), "e2e": per_image(~e2e_dc, ~det_dc_e2e, eg, correct)}
    cut_do = np.searchsorted(pg, G.start)  # pairs are sorted by GT, hence by image
    cut_e2e = np.searchsorted(eg, G.start)
    per_sample = {}
    for k, key in enumerate(keys):
        g0, d0 = int(G.start[k]), int(D.start[k])
        res = {t: _image_numbers(int(c[0][k]), int(c[1][k]), int(c[2][k])) for t, c in tasks.items()}
        res["num_gt"] = int(G.start[k + 1]) - g0
        res["num_det"] = int(D.start[k + 1]) - d0
        s, e = cut_do[k], cut_do[k + 1]
        res["det_only_pairs"] = [[a - g0, b - d0] for a, b in zip(pg[s:e].tolist(), pd[s:e].tolist())]
        s, e = cut_e2e[k], cut_e2e[k + 1]
        res["e2e_pairs"] = [[a - g0, b - d0, int(c)]
                            for a, b, c in zip(eg[s:e].tolist(), ed[s:e].tolist(), correct[s:e].tolist())]
        per_sample[key] = res
    out = {"protocol": protocol, "word_spotting": bool(word_spotting), "num_images": n_img}
    for task, (care_gt, care_det, matched) in tasks.items():
        care_gt, care_det, matched = int(care_gt.sum()), int(care_det.sum()), int(matched.sum())
        recall = matched / care_gt if care_gt else 0.0
        precision = matched / care_det if care_det else 0.0
        out[task] = _numbers(precision, recall, care_gt, care_det, matched)
    out["num_images_without_detections"] = int(np.count_nonzero(np.diff(D.start) == 0))
    out["per_sample"] = per_sample
    out["warnings"] = log.report()
    out["sources"] = {"gt": g.description, "det": d.description}
    return out


def warning_lines(result: dict) -> List[str]:
    """The warnings of an :func:`evaluate` result as lines for a summary (empty when there is nothing to say)."""
    w = result.get("warnings", {})
    lines = []
    counts = [f"{k}={w[k]}" for k in ("gt_polygons_repaired", "gt_polygons_empty", "det_polygons_repaired",
                                       "det_polygons_empty") if w.get(k)]
    if w.get("unknown_det_images"):
        counts.append(f"detections for {len(w['unknown_det_images'])} unknown image(s) ignored")
    if w.get("ignored_files"):
        counts.append(f"{len(w['ignored_files'])} file(s) not in the layout ignored")
    if counts:
        lines.append("warnings: " + ", ".join(counts))
    rg, rd = w.get("gt_ring_area_differs", 0), w.get("det_ring_area_differs", 0)
    if rg or rd:
        lines.append(
            f"warning: {rg} ground-truth and {rd} detection polygon(s) cross themselves; the ICDAR 2015 rule takes "
            "their area from the ring as written (smaller than the region they cover), which can inflate IoU and "
            "keep a detection from being don't care (gt_ring_area_differs / det_ring_area_differs)")
    return lines


def format_table(result: dict) -> str:
    """A readable table of an :func:`evaluate` result: protocol, P/R/H (%) and counts, then the warnings."""
    p = result["protocol"]
    lines = [
        f"Text evaluation, protocol {p}: {describe_protocol(p)}, greedy one-to-one matching at IoU > 0.5, "
        f"word spotting {'on' if result['word_spotting'] else 'off'}",
    ]
    src = result.get("sources")
    if src:
        lines.append(f"  ground truth: {src['gt']}; detections: {src['det']}")
    lines.append(f"  images: {result['num_images']} ({result.get('num_images_without_detections', 0)} without "
                 "detections)")
    header = ("task", "precision %", "recall %", "hmean %", "care GT", "care det", "matched")
    rows = []
    for task, label in (("det_only", "detection only"), ("e2e", "end to end")):
        r = result[task]
        rows.append((label, f"{100 * r['precision']:.2f}", f"{100 * r['recall']:.2f}", f"{100 * r['hmean']:.2f}",
                     str(r["care_gt"]), str(r["care_det"]), str(r["matched"])))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]

    def fmt(row):
        cells = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
        return "| " + " | ".join(cells) + " |"

    lines += [fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|"] + [fmt(r) for r in rows]
    warn = warning_lines(result)
    lines += ["  " + x for x in warn] if warn else ["  warnings: none"]
    w = result.get("warnings", {})
    if w.get("quads_reordered"):
        lines.append(f"  {w['quads_reordered']} non-clockwise quadrilateral(s) reordered clockwise")
    return "\n".join(lines)


def json_default(o):
    """``json.dump(..., default=json_default)`` for :func:`evaluate` results: numpy numbers as Python numbers."""
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    raise TypeError(f"not JSON serializable: {type(o)}")
