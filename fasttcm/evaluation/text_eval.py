"""Scene-text detection and end-to-end evaluation, computed as the official Robust Reading Competition (RRC)
scripts compute it (rules: ``docs/PROTOCOLS.md`` §1-2), with a command line (``tools/evaluate_text.py`` is the
same)::

    python -m fasttcm.evaluation.text_eval --protocol icdar15 --gt gt.zip --det submit.zip [--word-spotting] \\
        [--json result.json]

This module needs only numpy and shapely (>= 2): importing it loads neither torch nor detectron2 (``fasttcm``'s
``__init__`` is light).

Protocols
---------
``"icdar15"``
    ICDAR 2015 Incidental Scene Text (RRC Challenge 4), word-level quadrilaterals.
``"totaltext"`` and ``"ctw1500"``
    The polygon variant of the same script: identical matching, don't-care and counting rules, any number of
    vertices per polygon. The two names differ only in how they are reported (Total-Text is conventionally
    evaluated with ``word_spotting=True``, CTW1500 without; :func:`evaluate` never guesses: pass it).

File layouts (GT and detections: a folder, or a ``.zip`` with the files flat in it)
-----------------------------------------------------------------------------------
ICDAR 2015
    ``gt_img_<id>.txt`` / ``res_img_<id>.txt``, one line per word::

        x1,y1,x2,y2,x3,y3,x4,y4[,transcription]

    The transcription is everything after the 8th comma (it may contain commas), kept exactly as written (spaces
    included), except that a transcription wrapped in one pair of double quotes, white space allowed outside
    them, loses the quotes and that white space, and inside ``\\\\`` then ``\\"`` are replaced by ``\\`` and ``"``
    (:func:`unquote_transcription`, the RRC reader's two replacements in that order). A line of 8 coordinates
    only has an empty transcription. Coordinates are integers in the official files; floats are accepted too. A
    quadrilateral whose shoelace area in image coordinates (y down) is negative, i.e. not clockwise on the image,
    is reordered clockwise by the angle of its vertices around their mean (the spotting kits' rule; counted in
    ``warnings["quads_reordered"]``, not a warning).
Total-Text / CTW1500
    ``<7-digit id>.txt`` on both sides (``0000001.txt``; every ``*.txt`` of the folder or zip is read, a numeric
    stem such as ``1.txt`` or ``img1.txt`` being the same image as ``0000001.txt``), one line per word::

        x1,y1,...,xn,yn,####transcription

    ``n >= 3``; integers or floats; either orientation. As the official reader: the line is stripped, split at
    the first ``,####``, the transcription stripped, then unquoted as above (so `` word `` and ``"word"`` both
    read ``word``). In ground truth ``####`` is required, in detections it is optional (a line of coordinates
    only has an empty transcription). ``###`` (the line ends in ``,#######``) is don't care.
Both
    UTF-8, with or without a BOM; LF, CR/LF or CR line ends; blank lines are skipped. A malformed line (too few
    coordinates, an odd count, a non-number, NaN/inf, fewer than 3 points, a GT line without ``####``) raises
    ``ValueError`` naming ``file:line``. A file that is not UTF-8 raises ``ValueError`` naming the file.

Image ids
---------
Every image is known by a *key* (:func:`image_key`): ICDAR 2015 ``"1"`` for ``gt_img_1.txt``, ``res_img_1.txt``,
an image id ``"img_1"`` or ``1``; Total-Text/CTW1500 the 7-digit ``"0000003"`` for ``0000003.txt``, ``"img3"``,
``"poly_gt_img3"`` or ``3``. Ids without a number are kept as they are (``res_img_<id>.txt`` / ``<id>.txt``).

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

Writers (:func:`write_submission`, :func:`write_icdar15_submission`, :func:`write_totaltext_submission`) write
detections in the official submission layouts; :func:`format_submission_lines` gives the lines they write, so an
evaluation of the parsed lines equals the evaluation of the written files.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import sys
import zipfile
from collections import Counter
from itertools import chain
from dataclasses import dataclass
from fractions import Fraction
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import shapely
from shapely.geometry import Polygon

from fasttcm.structures.polygons import as_points, polygonal_union, signed_area, sort_clockwise_by_angle
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
    "warning_lines",
    "format_submission_lines",
    "write_submission",
    "write_submission_lines",
    "write_icdar15_submission",
    "write_totaltext_submission",
    "to_quad",
    "main",
]

#: canonical protocol names; "ctw1500" uses the Total-Text (polygon) rules
PROTOCOLS = ("icdar15", "totaltext", "ctw1500")
_ALIASES = {
    "icdar15": "icdar15",
    "icdar2015": "icdar15",
    "ic15": "icdar15",
    "totaltext": "totaltext",
    "total_text": "totaltext",
    "total-text": "totaltext",
    "tt": "totaltext",
    "ctw1500": "ctw1500",
    "ctw": "ctw1500",
}
_DESCRIPTIONS = {
    "icdar15": "ICDAR 2015 (RRC Challenge 4): quadrilaterals",
    "totaltext": "Total-Text (RRC script, polygon variant): polygons",
    "ctw1500": "CTW1500 (RRC script, polygon variant): polygons",
}
DONT_CARE = "###"
POLYGON_SEPARATOR = "####"
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


# --------------------------------------------------------------------------------------------- basics --
@dataclass
class TextItem:
    """One word: ``points`` (N, 2) float64 pixels in file order, ``text`` its transcription (``"###"`` = don't
    care in GT), ``line`` its 1-based line in its file (0 for in-memory input)."""

    points: np.ndarray
    text: str = ""
    line: int = 0


def canonical_protocol(protocol: str) -> str:
    """``"icdar15"`` | ``"totaltext"`` | ``"ctw1500"`` for a protocol name or alias (``icdar2015``, ``ic15``,
    ``total_text``, ``ctw``); ``ValueError`` otherwise."""
    key = _ALIASES.get(str(protocol).lower())
    if key is None:
        raise ValueError(f"unknown text evaluation protocol {protocol!r}; expected one of {PROTOCOLS}")
    return key


def _rules(protocol: str) -> str:
    return "icdar15" if canonical_protocol(protocol) == "icdar15" else "polygon"


_IC15_ID = re.compile(r"(?:gt_|res_)?(?:img_)?(.+)")
_POLY_ID = re.compile(r"(?:poly_gt_|gt_|res_)?(?:img_?)?0*(\d+)")


def image_key(image_id, protocol: str) -> str:
    """The key that identifies an image under ``protocol`` (see the module docstring), from an image id (``int``,
    ``"img_1"``, ``"0000001"``...) or a file stem (``"gt_img_1"``, ``"res_img_1"``, ``"poly_gt_img3"``)."""
    rules = _rules(protocol)
    if isinstance(image_id, (int, np.integer)) and not isinstance(image_id, bool):
        n = int(image_id)
        return str(n) if rules == "icdar15" else f"{n:07d}"
    s = str(image_id)
    if rules == "icdar15":
        rest = _IC15_ID.fullmatch(s).group(1)
        return str(int(rest)) if rest.isdigit() else rest
    m = _POLY_ID.fullmatch(s)
    return f"{int(m.group(1)):07d}" if m else s


def submission_filename(key: str, protocol: str, role: str = "det") -> str:
    """File name of image ``key`` (see :func:`image_key`) in the official layout: ``res_img_<key>.txt`` /
    ``gt_img_<key>.txt`` for ICDAR 2015, ``<key>.txt`` for Total-Text/CTW1500."""
    if _rules(protocol) == "icdar15":
        return f"{'gt' if role == 'gt' else 'res'}_img_{key}.txt"
    return f"{key}.txt"


def _file_key(name: str, protocol: str, role: str) -> Optional[str]:
    """Image key of a file name in the official layout, ``None`` when the name is not in it."""
    if _rules(protocol) == "icdar15":
        prefix = "gt_img_" if role == "gt" else "res_img_"
        m = re.fullmatch(re.escape(prefix) + r"(.+)\.txt", name, flags=re.IGNORECASE)
        if not m or not name.startswith(prefix):
            return None
        return image_key(m.group(1), "icdar15")
    m = re.fullmatch(r"(.+)\.txt", name, flags=re.IGNORECASE)
    return image_key(m.group(1), protocol) if m else None


# -------------------------------------------------------------------------------------------- parsing --
def _decode(data: bytes, where: str) -> List[str]:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: not UTF-8 ({e})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def _short(line: str) -> str:
    return repr(line if len(line) <= 80 else line[:77] + "...")


def _coords(fields: Sequence[str], where: str, line: str) -> np.ndarray:
    try:  # fast path; the loop below only runs to name what is wrong
        vals = list(map(float, fields))
        ok = all(map(math.isfinite, vals))
    except ValueError:
        ok = False
    if not ok:
        for f in fields:
            try:
                v = float(f)
            except ValueError:
                raise ValueError(f"{where}: non-numeric coordinate {f.strip()!r} in {_short(line)}") from None
            if not math.isfinite(v):
                raise ValueError(f"{where}: non-finite coordinate {f.strip()!r} in {_short(line)}")
    if len(vals) % 2:
        raise ValueError(f"{where}: odd number of coordinates ({len(vals)}) in {_short(line)}")
    return np.asarray(vals, dtype=np.float64).reshape(-1, 2)


#: a transcription wrapped in one pair of double quotes, white space allowed outside them (the RRC readers' rule)
_QUOTED = re.compile(r'^\s*"(.*)"\s*$')


def unquote_transcription(text: str) -> str:
    """A transcription as the official RRC readers read it: when it is wrapped in one pair of double quotes (white
    space allowed outside them), the quotes and that white space go, and inside ``\\\\`` then ``\\"`` are replaced
    by ``\\`` and ``"`` (two replacements in that order, as the readers do); otherwise it is kept as written."""
    m = _QUOTED.match(text)
    if m is None:
        return text
    return m.group(1).replace("\\\\", "\\").replace('\\"', '"')


def _unquote_fast(text: str) -> str:
    return unquote_transcription(text) if '"' in text else text


def _points_of_rows(fields: List[Sequence[str]], where: str, rows: List[Tuple[int, str]]) -> np.ndarray:
    """All coordinates of a file at once (the per-line check runs only to name a bad line)."""
    try:
        flat = np.fromiter(map(float, chain.from_iterable(fields)), dtype=np.float64)
        ok = bool(np.isfinite(flat).all())
    except ValueError:
        ok = False
    if not ok:
        for f, (i, line) in zip(fields, rows):
            _coords(f, f"{where}:{i}", line)
    return flat


def parse_icdar15_lines(lines: Iterable[str], where: str = "<memory>") -> List[TextItem]:
    """Parse ICDAR 2015 lines ``x1,y1,...,x4,y4[,transcription]`` (GT or detections; see the module docstring).

    The transcription is everything after the 8th comma, kept as written, except that one pair of wrapping
    double quotes is removed by :func:`unquote_transcription`. Points are returned as written (the clockwise
    reordering happens at evaluation). ``ValueError`` naming ``where:line`` on a malformed line."""
    rows, parts = [], []
    for i, line in enumerate(lines, start=1):
        if not line or line.isspace():
            continue
        p = line.split(",", 8)
        if len(p) < 8:
            raise ValueError(
                f"{where}:{i}: expected 8 coordinates x1,y1,...,x4,y4 then ',transcription'; "
                f"got {len(p)} field(s) in {_short(line)}"
            )
        rows.append((i, line))
        parts.append(p)
    if not rows:
        return []
    pts = _points_of_rows([p[:8] for p in parts], where, rows).reshape(-1, 4, 2)
    return [TextItem(pts[k], _unquote_fast(p[8]) if len(p) == 9 else "", i)
            for k, ((i, _), p) in enumerate(zip(rows, parts))]


_POLY_SEP = "," + POLYGON_SEPARATOR


def parse_polygon_lines(lines: Iterable[str], where: str = "<memory>", require_text: bool = True) -> List[TextItem]:
    """Parse Total-Text/CTW1500 lines ``x1,y1,...,xn,yn,####transcription`` (n >= 3), as the official polygon
    reader does: the line is stripped, split at the first ``,####`` (a line without it but with ``####`` right
    after the last coordinate is read the same way), the transcription stripped and then unquoted
    (:func:`unquote_transcription`).

    ``require_text=False`` (detections) also accepts lines of coordinates only (empty transcription).
    ``ValueError`` naming ``where:line`` on a malformed line."""
    rows, fields, texts = [], [], []
    for i, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line:
            continue
        if _POLY_SEP in line:
            coords, text = line.split(_POLY_SEP, 1)
        elif POLYGON_SEPARATOR in line:
            coords, text = line.split(POLYGON_SEPARATOR, 1)
        elif require_text:
            raise ValueError(f"{where}:{i}: expected x1,y1,...,xn,yn,####transcription, got {_short(raw)}")
        else:
            coords, text = line, ""
        c = coords.strip()
        if c.endswith(","):
            c = c[:-1]
        f = c.split(",")
        if len(f) % 2:
            _coords(f, f"{where}:{i}", raw)  # names a non-number first, else the odd count
        if len(f) < 6:
            _coords(f, f"{where}:{i}", raw)
            raise ValueError(f"{where}:{i}: {len(f) // 2} point(s), a polygon needs at least 3, in {_short(raw)}")
        rows.append((i, raw))
        fields.append(f)
        texts.append(_unquote_fast(text.strip()))
    if not rows:
        return []
    flat = _points_of_rows(fields, where, rows)
    out, o = [], 0
    for (i, _), f, t in zip(rows, fields, texts):
        n = len(f)
        out.append(TextItem(flat[o : o + n].reshape(-1, 2), t, i))
        o += n
    return out


def parse_lines(lines: Iterable[str], protocol: str, where: str = "<memory>", role: str = "det") -> List[TextItem]:
    """Parse the lines of one file of ``protocol`` (``role``: ``"gt"`` or ``"det"``)."""
    if _rules(protocol) == "icdar15":
        return parse_icdar15_lines(lines, where)
    return parse_polygon_lines(lines, where, require_text=(role == "gt"))


@dataclass
class TextFiles:
    """Words of a set of files (or an in-memory mapping): ``items`` (image key -> words in file order),
    ``sources`` (key -> file, for messages), ``ignored`` (file names not in the layout), ``description``."""

    items: Dict[str, List[TextItem]]
    sources: Dict[str, str]  # key -> "path[:member]" used in messages
    ignored: List[str]
    description: str


def load_text_files(path: Union[str, os.PathLike], protocol: str, role: str = "gt") -> TextFiles:
    """Read every file of a folder or a ``.zip`` in the official layout of ``protocol`` (``role``: ``"gt"`` or
    ``"det"``). Returns ``.items`` (key -> words in file order), ``.sources`` (key -> file), ``.ignored`` (names
    not in the layout). ``FileNotFoundError`` when ``path`` does not exist; ``ValueError`` on malformed files or
    two files of the same image."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{role} path not found: {path}")
    entries: List[Tuple[str, str, bytes]] = []  # (name, where, data)
    ignored: List[str] = []
    if os.path.isdir(path):
        for fn in sorted(os.listdir(path)):
            full = os.path.join(path, fn)
            if not os.path.isfile(full):
                ignored.append(fn + "/")
                continue
            with open(full, "rb") as f:
                entries.append((fn, full, f.read()))
    elif zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for info in sorted(z.infolist(), key=lambda i: i.filename):
                if info.is_dir():
                    continue
                if "/" in info.filename.strip("/"):  # the official layout is flat
                    ignored.append(info.filename)
                    continue
                entries.append((info.filename, f"{path}:{info.filename}", z.read(info)))
    else:
        raise ValueError(f"{role} path {path} is neither a folder nor a zip file")
    items: Dict[str, List[TextItem]] = {}
    sources: Dict[str, str] = {}
    for name, where, data in entries:
        key = _file_key(name, protocol, role)
        if key is None:
            ignored.append(name)
            continue
        if key in items:
            raise ValueError(f"{where} and {sources[key]} are both the {role} file of image {key!r}")
        items[key] = parse_lines(_decode(data, where), protocol, where, role)
        sources[key] = where
    return TextFiles(items, sources, ignored, f"{path} ({len(items)} files)")


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


# ---------------------------------------------------------------------------------------------- inputs --
def _as_item(x) -> TextItem:
    if isinstance(x, TextItem):
        return TextItem(as_points(x.points), "" if x.text is None else str(x.text), x.line)
    if isinstance(x, Mapping):
        pts = x.get("points", x.get("polygon"))
        if pts is None:
            raise ValueError(f"in-memory word {x!r} has no 'points' (or 'polygon')")
        text = x.get("text", "")
        return TextItem(as_points(pts), "" if text is None else str(text))
    if isinstance(x, tuple) and len(x) == 2 and (x[1] is None or isinstance(x[1], str)):
        return TextItem(as_points(x[0]), x[1] or "")
    return TextItem(as_points(x), "")


def _load(obj, protocol: str, role: str) -> TextFiles:
    if isinstance(obj, TextFiles):
        return obj
    if isinstance(obj, (str, os.PathLike)):
        return load_text_files(obj, protocol, role)
    if not isinstance(obj, Mapping):
        raise TypeError(f"{role} must be a path (folder or zip) or a mapping image id -> words, got {type(obj)}")
    items: Dict[str, List[TextItem]] = {}
    sources: Dict[str, str] = {}
    for k, words in obj.items():
        key = image_key(k, protocol)
        if key in items:
            raise ValueError(f"{role}: image ids {sources[key]!r} and {k!r} are the same image {key!r}")
        try:
            items[key] = [_as_item(w) for w in words]
        except ValueError as e:
            raise ValueError(f"{role} of image {k!r}: {e}") from None
        sources[key] = f"{role} image {k!r}"
    return TextFiles(items, sources, [], f"in memory ({len(items)} images)")


def _natural(key: str):
    return (0, int(key), "") if key.isdigit() else (1, 0, key)


# ---------------------------------------------------------------------------------------------- evaluate --
def _image_numbers(care_gt: int, care_det: int, matched: int) -> dict:
    if care_gt == 0:
        recall, precision = 1.0, (0.0 if care_det > 0 else 1.0)
    else:
        recall = matched / care_gt
        precision = matched / care_det if care_det > 0 else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "hmean": _hmean(precision, recall),
        "care_gt": care_gt,
        "care_det": care_det,
        "matched": matched,
    }


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
    rules = _rules(protocol)
    log = _Log()
    g = _load(gt, protocol, "gt")
    d = _load(det, protocol, "det")
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
        out[task] = {
            "precision": precision,
            "recall": recall,
            "hmean": _hmean(precision, recall),
            "care_gt": care_gt,
            "care_det": care_det,
            "matched": matched,
        }
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
        f"Text evaluation, protocol {p}: {_DESCRIPTIONS[p]}, greedy one-to-one matching at IoU > 0.5, "
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


# ----------------------------------------------------------------------------------------------- writers --
def to_quad(points, rectangle: bool = False) -> np.ndarray:
    """(4, 2) quadrilateral of a polygon for the ICDAR 2015 format: the polygon itself when it has 4 points (and
    ``rectangle`` is False), otherwise the minimum-area rotated rectangle of its points (a degenerate polygon gives
    a zero-area quadrilateral)."""
    pts = as_points(points)
    if len(pts) == 4 and not rectangle:
        return pts
    if len(pts) == 0:
        raise ValueError("empty polygon")
    rect = shapely.minimum_rotated_rectangle(shapely.MultiPoint(pts))
    if isinstance(rect, Polygon) and not rect.is_empty:
        return np.asarray(rect.exterior.coords, dtype=np.float64)[:4]
    c = np.asarray(shapely.get_coordinates(rect), dtype=np.float64).reshape(-1, 2)
    return np.stack([c[0], c[-1], c[-1], c[0]])


def _fmt_num(v: float) -> str:
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return "0" if s in ("-0", "") else s


def _clean_text(text: Optional[str]) -> str:
    if text is None:
        return ""
    return str(text).replace("\r", " ").replace("\n", " ")


def format_submission_lines(words: Iterable, protocol: str) -> List[str]:
    """The lines of one detection file in the official layout of ``protocol`` (words as :func:`evaluate` takes).

    ICDAR 2015: 4-point words only (see :func:`to_quad`), rounded to integers, written clockwise on the image;
    ``,transcription`` appended when the text is not empty (None = empty), wrapped in double quotes with ``\\``
    and ``"`` escaped when it contains either. Total-Text/CTW1500: coordinates with at most 2 decimals, written
    clockwise, then ``,####`` and the transcription (empty when None). Line breaks in texts become spaces."""
    rules = _rules(protocol)
    out = []
    for w in words:
        item = _as_item(w)
        pts, text = item.points, _clean_text(item.text)
        if rules == "icdar15":
            if len(pts) != 4:
                raise ValueError(f"ICDAR 2015 submissions need quadrilaterals, got {len(pts)} points (use to_quad)")
            q = np.rint(pts).astype(np.int64)
            if signed_area(q.astype(np.float64)) < 0:
                q = q[::-1]
            line = ",".join(str(int(v)) for v in q.reshape(-1))
            if text:
                if '"' in text or "\\" in text:
                    text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
                line += "," + text
        else:
            if len(pts) < 3:
                raise ValueError(f"a polygon needs at least 3 points, got {len(pts)}")
            if signed_area(pts) < 0:
                pts = pts[::-1]
            line = ",".join(_fmt_num(v) for v in pts.reshape(-1)) + "," + POLYGON_SEPARATOR + (text or "")
        out.append(line)
    return out


def write_submission_lines(lines: Mapping[str, Sequence[str]], out_dir: Union[str, os.PathLike], protocol: str,
                           zip_path: Optional[Union[str, os.PathLike]] = None) -> dict:
    """Write already formatted lines (image key -> lines, see :func:`format_submission_lines`) as one file per
    image in ``out_dir`` (UTF-8, LF; an empty list writes an empty file) and, when ``zip_path`` is given, the same
    files flat in that zip (written atomically). Files of an earlier submission in ``out_dir`` (names of the
    layout) are removed first, so no stale image survives.

    Returns ``{"dir": out_dir, "files": [names], "zip": zip_path or None}``."""
    protocol = canonical_protocol(protocol)
    out_dir = os.fspath(out_dir)
    contents: Dict[str, str] = {}
    for k, ls in lines.items():
        name = submission_filename(image_key(k, protocol), protocol)
        if name in contents:
            raise ValueError(f"two images map to the same file {name}")
        contents[name] = "".join(line + "\n" for line in ls)
    os.makedirs(out_dir, exist_ok=True)
    for fn in os.listdir(out_dir):
        full = os.path.join(out_dir, fn)
        if os.path.isfile(full) and _file_key(fn, protocol, "det") is not None:
            os.remove(full)
    for name in sorted(contents):
        with open(os.path.join(out_dir, name), "w", encoding="utf-8", newline="\n") as f:
            f.write(contents[name])
    if zip_path is not None:
        zip_path = os.fspath(zip_path)
        tmp = f"{zip_path}.tmp{os.getpid()}"
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as z:
            for name in sorted(contents):
                z.writestr(name, contents[name].encode("utf-8"))
        os.replace(tmp, zip_path)
    return {"dir": out_dir, "files": sorted(contents), "zip": zip_path}


def write_submission(dets: Mapping, out_dir: Union[str, os.PathLike], protocol: str,
                     zip_path: Optional[Union[str, os.PathLike]] = None) -> dict:
    """Write detections (image id -> words, as :func:`evaluate` takes them) in the official layout of
    ``protocol``: :func:`format_submission_lines` then :func:`write_submission_lines` (same return value)."""
    protocol = canonical_protocol(protocol)
    return write_submission_lines(
        {k: format_submission_lines(words, protocol) for k, words in dets.items()}, out_dir, protocol, zip_path
    )


def write_icdar15_submission(dets: Mapping, out_dir, zip_path=None) -> dict:
    """ICDAR 2015 submission: ``res_img_<id>.txt`` files in ``out_dir`` and zipped flat into ``zip_path``
    (default ``<out_dir>.zip``). Words must be quadrilaterals (:func:`to_quad`)."""
    out_dir = os.fspath(out_dir)
    if zip_path is None:
        zip_path = out_dir.rstrip("/\\") + ".zip"
    return write_submission(dets, out_dir, "icdar15", zip_path)


def write_totaltext_submission(dets: Mapping, out_dir, zip_path=None, protocol: str = "totaltext") -> dict:
    """Total-Text / CTW1500 submission: ``<7-digit id>.txt`` files in ``out_dir`` (and a flat zip if asked)."""
    return write_submission(dets, out_dir, protocol, zip_path)


# ------------------------------------------------------------------------------------------------- CLI --
def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    raise TypeError(f"not JSON serializable: {type(o)}")


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fasttcm.evaluation.text_eval",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Scene-text detection and end-to-end evaluation, as the official RRC scripts compute it.\n\n"
            "icdar15:   gt_img_<id>.txt / res_img_<id>.txt, lines x1,y1,...,x4,y4[,transcription]\n"
            "totaltext: <7-digit id>.txt on both sides, lines x1,y1,...,xn,yn,####transcription\n"
            "           (ctw1500: same files and rules; reported under its own name)\n"
            "GT and detections: a folder or a zip with the files flat in it. '###' marks don't care.\n"
            "Matching: greedy in file order, one-to-one, IoU > 0.5; detections more than 0.5 (area\n"
            "precision) inside a don't-care region are ignored. Prints precision/recall/hmean (%) for\n"
            "detection only and end to end, with the counts of care GT, care detections and matches."
        ),
        epilog=(
            "JSON (--json): {protocol, word_spotting, num_images, num_images_without_detections,\n"
            "  det_only: {precision, recall, hmean, care_gt, care_det, matched}, e2e: {same},\n"
            "  per_sample: {id: {det_only, e2e, num_gt, num_det, det_only_pairs, e2e_pairs}},\n"
            "  warnings: {gt/det_polygons_repaired/empty, gt/det_ring_area_differs, quads_reordered,\n"
            "  unknown_det_images, ignored_files, messages}, sources}; rates are fractions in [0, 1].\n"
            "icdar15 measures each word by its ring as written (the official rule); self-intersecting\n"
            "quadrilaterals, whose ring area is smaller than their shape, are counted and warned about.\n"
            "Polygons: invalid ones are repaired (shapely make_valid) and counted. Detections for images\n"
            "without ground truth are ignored and listed. Malformed lines stop with file:line (exit status 2).\n"
            "Rules and where fasttcm defines what the official scripts leave undefined: docs/PROTOCOLS.md."
        ),
    )
    parser.add_argument("--protocol", required=True, choices=PROTOCOLS, help="evaluation protocol")
    parser.add_argument("--gt", required=True, help="ground truth: folder or zip in the protocol's layout")
    parser.add_argument("--det", required=True, help="detections: folder or zip in the protocol's layout")
    parser.add_argument("--word-spotting", action="store_true",
                        help="word-spotting mode: GT words failing the dictionary rule are don't care for end to "
                             "end (conventional for Total-Text)")
    parser.add_argument("--json", metavar="OUT", help="write the full result (with per-image numbers) to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    try:
        result = evaluate(args.gt, args.det, args.protocol, args.word_spotting)
    except (ValueError, OSError) as e:  # bad files or paths: one line that names them
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(result))
    if args.json:
        try:
            d = os.path.dirname(os.path.abspath(args.json))
            os.makedirs(d, exist_ok=True)
            with open(args.json, "w", encoding="utf-8") as f:
                json.dump(result, f, indent=1, ensure_ascii=False, default=_json_default)
        except OSError as e:
            print(f"error: cannot write {args.json}: {e}", file=sys.stderr)
            return 2
        print(f"  result written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
