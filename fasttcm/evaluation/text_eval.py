"""Scene-text detection and end-to-end evaluation, computed as the official Robust Reading Competition (RRC)
scripts compute it (rules: ``PROTOCOLS.md`` §1-2), with a command line::

    python -m fasttcm.evaluation.text_eval --protocol icdar15 --gt gt.zip --det submit.zip [--word-spotting] \\
        [--json result.json]

This module needs only numpy and shapely (>= 2) and imports neither torch nor detectron2 itself (importing it
through the ``fasttcm`` package still runs that package's ``__init__``).

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

    The transcription is everything after the 8th comma (it may contain commas). A transcription wrapped in
    double quotes (first and last character ``"``) loses them, and inside it ``\\"`` and ``\\\\`` are unescaped
    (left to right, so ``\\\\"`` is a backslash then a quote). A line of 8 coordinates only has an empty
    transcription. Coordinates are integers in the official files; floats are accepted too. A quadrilateral whose
    shoelace area in image coordinates (y down) is negative, i.e. not clockwise on the image, is reordered clockwise
    by the angle of its vertices around their mean (counted in ``warnings["quads_reordered"]``, not a warning).
Total-Text / CTW1500
    ``<7-digit id>.txt`` on both sides (``0000001.txt``; every ``*.txt`` of the folder or zip is read, a numeric
    stem such as ``1.txt`` or ``img1.txt`` being the same image as ``0000001.txt``), one line per word::

        x1,y1,...,xn,yn,####transcription

    ``n >= 3``; integers or floats; either orientation. In ground truth ``,####`` is required, in detections it is
    optional (a line of coordinates only has an empty transcription). The transcription is everything after the
    first ``####``; ``###`` (the line ends in ``,#######``) is don't care.
Both
    UTF-8, with or without a BOM; LF, CR/LF or CR line ends; blank lines are skipped. A malformed line (too few
    coordinates, an odd count, a non-number, NaN/inf, fewer than 3 points, a GT line without ``####``) raises
    ``ValueError`` naming ``file:line``. A file that is not UTF-8 raises ``ValueError`` naming the file.

Image ids
---------
Every image is known by a *key* (:func:`image_key`): ICDAR 2015 ``"1"`` for ``gt_img_1.txt``, ``res_img_1.txt``,
an image id ``"img_1"`` or ``1``; Total-Text/CTW1500 the 7-digit ``"0000003"`` for ``0000003.txt``, ``"img3"``,
``"poly_gt_img3"`` or ``3``. Ids without a number are kept as they are (``res_img_<id>.txt`` / ``<id>.txt``).

Rules (exactly ``PROTOCOLS.md``)
-------------------------------
* GT transcription ``###`` (exactly, after unquoting; no stripping) = don't care. In word-spotting mode a GT
  word is also don't care, *for end to end only*, unless it passes the dictionary rule (:func:`dictionary_word`);
  a word that passes is compared in its cleaned form. "Strip spaces" in the rule strips the space character only
  (other white space then fails the character test).
* A detection is don't care when, for some don't-care GT region of its image, area(det ∩ region) / area(det)
  > 0.5 (a detection of zero area never is). Done with the end-to-end don't-care list and with the
  detection-only list (``###`` only).
* Greedy one-to-one matching in file order: for each GT (file order), the first detection (file order) still
  unmatched, not don't care, with IoU > 0.5 (strictly). IoU = area(∩) / (area(g) + area(d) - area(∩)).
* End to end: a matched pair is correct when the upper-cased transcriptions are equal; outside word-spotting mode
  also when they are equal after removing one special character (:data:`SPECIAL_CHARACTERS`) from the start, the
  end, or both ends of the GT word (:func:`transcription_match`). Detection only: every match counts.
* Per image: no care GT -> recall 1, precision 1 if no care detection else 0; otherwise recall = matched / care GT,
  precision = matched / care detections (0 if none). Overall: recall = Σ matched / Σ care GT, precision =
  Σ matched / Σ care detections (0 when a denominator is 0); hmean = 2PR / (P + R) (0 when P + R = 0).

Where the official scripts crash or are undefined, fasttcm defines the result
-----------------------------------------------------------------------------
* **BOM**: stripped. **Empty file** (or only blank lines): an image with no words. GT: no care GT (per-image
  recall 1); detections: none.
* **Invalid polygons** (self-intersecting such as a bow-tie, repeated vertices that make the ring invalid,
  collinear points), GT or detection, either protocol: repaired with ``shapely.make_valid``, keeping all of its
  polygonal part (a bow-tie becomes its two triangles, a MultiPolygon). When nothing polygonal is left (zero area,
  fewer than 3 points in memory, NaN/inf coordinates in memory), the word is **kept with an empty geometry**: it
  still counts (a care GT no detection can match, a care detection that matches nothing) and is never don't care.
  Nothing is dropped: dropping a GT would raise recall and dropping a detection would raise precision. Each repair
  is logged with ``file:line`` and counted in ``warnings`` (``gt_polygons_repaired``, ``gt_polygons_empty``,
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
* **In-memory polygons with a number of vertices other than 4 under ``"icdar15"``** (impossible from files):
  evaluated as polygons; the clockwise reordering applies to quadrilaterals only.

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
from dataclasses import dataclass
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import shapely
from shapely.geometry import Polygon

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
    "load_text_files",
    "order_quad_clockwise",
    "dictionary_word",
    "transcription_match",
    "evaluate",
    "format_table",
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
    vals = []
    for f in fields:
        try:
            v = float(f)
        except ValueError:
            raise ValueError(f"{where}: non-numeric coordinate {f.strip()!r} in {_short(line)}") from None
        if not math.isfinite(v):
            raise ValueError(f"{where}: non-finite coordinate {f.strip()!r} in {_short(line)}")
        vals.append(v)
    if len(vals) % 2:
        raise ValueError(f"{where}: odd number of coordinates ({len(vals)}) in {_short(line)}")
    return np.asarray(vals, dtype=np.float64).reshape(-1, 2)


_UNESCAPE = re.compile(r"\\([\\\"])")


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        return _UNESCAPE.sub(r"\1", text[1:-1])
    return text


def parse_icdar15_lines(lines: Iterable[str], where: str = "<memory>") -> List[TextItem]:
    """Parse ICDAR 2015 lines ``x1,y1,...,x4,y4[,transcription]`` (GT or detections; see the module docstring).

    Points are returned as written (the clockwise reordering happens at evaluation). ``ValueError`` naming
    ``where:line`` on a malformed line."""
    out = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split(",", 8)
        loc = f"{where}:{i}"
        if len(parts) < 8:
            raise ValueError(
                f"{loc}: expected 8 coordinates x1,y1,...,x4,y4 then ',transcription'; "
                f"got {len(parts)} field(s) in {_short(line)}"
            )
        pts = _coords(parts[:8], loc, line)
        text = _unquote(parts[8]) if len(parts) == 9 else ""
        out.append(TextItem(pts, text, i))
    return out


def parse_polygon_lines(lines: Iterable[str], where: str = "<memory>", require_text: bool = True) -> List[TextItem]:
    """Parse Total-Text/CTW1500 lines ``x1,y1,...,xn,yn,####transcription`` (n >= 3).

    ``require_text=False`` (detections) also accepts lines of coordinates only (empty transcription).
    ``ValueError`` naming ``where:line`` on a malformed line."""
    out = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        loc = f"{where}:{i}"
        if POLYGON_SEPARATOR in line:
            coords, text = line.split(POLYGON_SEPARATOR, 1)
        elif require_text:
            raise ValueError(f"{loc}: expected x1,y1,...,xn,yn,####transcription, got {_short(line)}")
        else:
            coords, text = line, ""
        c = coords.strip()
        if c.endswith(","):
            c = c[:-1]
        pts = _coords(c.split(","), loc, line)
        if len(pts) < 3:
            raise ValueError(f"{loc}: {len(pts)} point(s), a polygon needs at least 3, in {_short(line)}")
        out.append(TextItem(pts, text, i))
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
def _signed_area(pts: np.ndarray) -> float:
    """Shoelace area; positive = clockwise as seen on the image (y down)."""
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def order_quad_clockwise(points) -> np.ndarray:
    """A quadrilateral that is not clockwise on the image (negative shoelace area, y down) reordered clockwise by
    the angle of its vertices around their mean; a clockwise (or zero-area) one is returned unchanged."""
    pts = np.asarray(points, dtype=np.float64).reshape(4, 2)
    if _signed_area(pts) >= 0:
        return pts
    c = pts.mean(axis=0)
    order = np.argsort(np.arctan2(pts[:, 1] - c[1], pts[:, 0] - c[0]), kind="stable")
    return pts[order]


_EMPTY = Polygon()


def _polygonal_part(geom) -> Optional[shapely.Geometry]:
    parts = []
    stack = [geom]
    while stack:
        g = stack.pop()
        if isinstance(g, Polygon):
            if not g.is_empty and g.area > 0:
                parts.append(g)
        elif hasattr(g, "geoms"):
            stack.extend(g.geoms)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)


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
        return {
            "gt_polygons_repaired": self.counts["gt_polygons_repaired"],
            "gt_polygons_empty": self.counts["gt_polygons_empty"],
            "det_polygons_repaired": self.counts["det_polygons_repaired"],
            "det_polygons_empty": self.counts["det_polygons_empty"],
            "quads_reordered": self.counts["quads_reordered"],
            "unknown_det_images": list(self.unknown),
            "ignored_files": list(self.ignored),
            "messages": list(self.messages),
        }


def _geometries(items: List[TextItem], rules: str, role: str, where: str, log: _Log):
    """Shapely geometries (valid, possibly empty) and areas of ``items``, repairs logged and counted."""
    geoms = np.empty(len(items), dtype=object)
    for i, it in enumerate(items):
        pts = it.points
        if rules == "icdar15" and len(pts) == 4 and np.isfinite(pts).all() and _signed_area(pts) < 0:
            pts = order_quad_clockwise(pts)
            log.counts["quads_reordered"] += 1
        if len(pts) < 3 or not np.isfinite(pts).all():
            log.warn(
                f"{role}_polygons_empty",
                f"{_where(where, it, i)}: {role} polygon with {len(pts)} point(s) or non-finite coordinates "
                f"{_text_repr(it.text)}: kept with an empty geometry (it can match nothing)",
            )
            geoms[i] = _EMPTY
            continue
        geoms[i] = Polygon(pts)
    if len(items):
        bad = np.flatnonzero(~shapely.is_valid(geoms))
        for i in bad:
            reason = shapely.is_valid_reason(geoms[i])
            fixed = _polygonal_part(shapely.make_valid(geoms[i]))
            it = items[i]
            if fixed is None:
                geoms[i] = _EMPTY
                log.warn(
                    f"{role}_polygons_empty",
                    f"{_where(where, it, i)}: invalid {role} polygon {_text_repr(it.text)} ({reason}) has no area: "
                    "kept with an empty geometry (it can match nothing)",
                )
            else:
                geoms[i] = fixed
                log.warn(
                    f"{role}_polygons_repaired",
                    f"{_where(where, it, i)}: invalid {role} polygon {_text_repr(it.text)} ({reason}) repaired "
                    f"with make_valid ({fixed.geom_type}, area {fixed.area:.6g})",
                )
    areas = shapely.area(geoms) if len(items) else np.zeros(0)
    return geoms, np.asarray(areas, dtype=np.float64)


def _where(where: str, it: TextItem, index: int) -> str:
    return f"{where}:{it.line}" if it.line else f"{where}, word #{index}"


def _text_repr(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def _intersection_areas(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) areas of pairwise intersections; only pairs whose envelopes meet are clipped."""
    out = np.zeros((len(a), len(b)), dtype=np.float64)
    if len(a) == 0 or len(b) == 0:
        return out
    ia, ib = shapely.STRtree(b).query(a, predicate="intersects")
    if len(ia):
        out[ia, ib] = shapely.area(shapely.intersection(a[ia], b[ib]))
    return out


# ---------------------------------------------------------------------------------------- transcriptions --
def dictionary_word(text: str) -> Optional[str]:
    """The word-spotting dictionary rule (``PROTOCOLS.md`` §1): the cleaned word when ``text`` passes, else None.

    On a working copy: drop a final ``'s``/``'S``; strip ``-`` at both ends; replace each of
    ``' ! ? . : , * " ( ) · [ ] /`` by a space and strip spaces at both ends. It passes when it then has no
    space, at least 3 characters, none of ``× ÷ ·``, and only a-z, A-Z, U+00C0-U+01BF, U+01C4-U+027F,
    U+0386-U+03FF or ``-``."""
    w = text
    if w.endswith("'s") or w.endswith("'S"):
        w = w[:-2]
    w = w.strip("-")
    for ch in _DICT_SPACE_CHARACTERS:
        w = w.replace(ch, " ")
    w = w.strip(" ")
    if " " in w or len(w) < 3 or any(ch in _DICT_FORBIDDEN for ch in w):
        return None
    for ch in w:
        o = ord(ch)
        if ch != "-" and not any(lo <= o <= hi for lo, hi in _DICT_RANGES):
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


# ------------------------------------------------------------------------------------------- matching --
def _dont_care_dets(inter_gd: np.ndarray, det_area: np.ndarray, gt_dc: np.ndarray) -> np.ndarray:
    """Detections lying more than 0.5 (area precision, strictly) inside some don't-care GT region."""
    out = np.zeros(len(det_area), dtype=bool)
    if not gt_dc.any() or len(det_area) == 0:
        return out
    pos = det_area > 0
    ap = inter_gd[gt_dc][:, pos] / det_area[pos][None, :]
    out[pos] = (ap > AREA_PRECISION_THRESHOLD).any(axis=0)
    return out


def _greedy_match(iou: np.ndarray, gt_dc: np.ndarray, det_dc: np.ndarray) -> List[Tuple[int, int]]:
    """For each GT in order, the first free, care detection (in order) with IoU > 0.5."""
    free = ~det_dc.copy()
    pairs = []
    for g in range(iou.shape[0]):
        if gt_dc[g]:
            continue
        cand = np.flatnonzero(free & (iou[g] > IOU_THRESHOLD))
        if cand.size:
            d = int(cand[0])
            free[d] = False
            pairs.append((g, d))
    return pairs


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


def _evaluate_image(gt: List[TextItem], det: List[TextItem], rules: str, word_spotting: bool, src_gt: str,
                    src_det: str, log: _Log) -> dict:
    gt_geo, gt_area = _geometries(gt, rules, "gt", src_gt, log)
    det_geo, det_area = _geometries(det, rules, "det", src_det, log)
    inter = _intersection_areas(gt_geo, det_geo)
    union = gt_area[:, None] + det_area[None, :] - inter
    iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)

    dc = np.array([g.text == DONT_CARE for g in gt], dtype=bool)
    if word_spotting:
        cmp_text, e2e_dc = [], dc.copy()
        for i, g in enumerate(gt):
            w = None if dc[i] else dictionary_word(g.text)
            e2e_dc[i] = w is None
            cmp_text.append(w if w is not None else g.text)
    else:
        cmp_text, e2e_dc = [g.text for g in gt], dc
    det_dc = _dont_care_dets(inter, det_area, dc)
    pairs = _greedy_match(iou, dc, det_dc)
    if word_spotting and not np.array_equal(e2e_dc, dc):
        det_dc_e2e = _dont_care_dets(inter, det_area, e2e_dc)
        pairs_e2e = _greedy_match(iou, e2e_dc, det_dc_e2e)
    else:
        det_dc_e2e, pairs_e2e = det_dc, pairs
    correct = [int(transcription_match(cmp_text[g], det[d].text, word_spotting)) for g, d in pairs_e2e]
    return {
        "det_only": _image_numbers(int((~dc).sum()), int((~det_dc).sum()), len(pairs)),
        "e2e": _image_numbers(int((~e2e_dc).sum()), int((~det_dc_e2e).sum()), int(sum(correct))),
        "num_gt": len(gt),
        "num_det": len(det),
        "det_only_pairs": [[g, d] for g, d in pairs],
        "e2e_pairs": [[g, d, c] for (g, d), c in zip(pairs_e2e, correct)],
    }


# ---------------------------------------------------------------------------------------------- inputs --
def _as_points(p) -> np.ndarray:
    if hasattr(p, "detach"):  # torch tensor, without importing torch
        p = p.detach().cpu().numpy()
    a = np.asarray(p, dtype=np.float64)
    if a.ndim == 2 and a.shape[1] == 2:
        return a.copy()
    a = a.reshape(-1)
    if a.size % 2:
        raise ValueError(f"odd number of coordinates ({a.size})")
    return a.reshape(-1, 2)


def _as_item(x) -> TextItem:
    if isinstance(x, TextItem):
        return TextItem(_as_points(x.points), "" if x.text is None else str(x.text), x.line)
    if isinstance(x, Mapping):
        pts = x.get("points", x.get("polygon"))
        if pts is None:
            raise ValueError(f"in-memory word {x!r} has no 'points' (or 'polygon')")
        text = x.get("text", "")
        return TextItem(_as_points(pts), "" if text is None else str(text))
    if isinstance(x, tuple) and len(x) == 2 and (x[1] is None or isinstance(x[1], str)):
        return TextItem(_as_points(x[0]), x[1] or "")
    return TextItem(_as_points(x), "")


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
    per_sample = {}
    tot = {"det_only": np.zeros(3, dtype=np.int64), "e2e": np.zeros(3, dtype=np.int64)}
    for key in sorted(g.items, key=_natural):
        res = _evaluate_image(
            g.items[key], d.items.get(key, []), rules, word_spotting, g.sources[key],
            d.sources.get(key, f"det image {key!r}"), log,
        )
        per_sample[key] = res
        for task in tot:
            r = res[task]
            tot[task] += (r["care_gt"], r["care_det"], r["matched"])
    out = {"protocol": protocol, "word_spotting": bool(word_spotting), "num_images": len(per_sample)}
    for task, (care_gt, care_det, matched) in tot.items():
        recall = matched / care_gt if care_gt else 0.0
        precision = matched / care_det if care_det else 0.0
        out[task] = {
            "precision": precision,
            "recall": recall,
            "hmean": _hmean(precision, recall),
            "care_gt": int(care_gt),
            "care_det": int(care_det),
            "matched": int(matched),
        }
    out["num_images_without_detections"] = sum(1 for k in g.items if not d.items.get(k))
    out["per_sample"] = per_sample
    out["warnings"] = log.report()
    out["sources"] = {"gt": g.description, "det": d.description}
    return out


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
    w = result.get("warnings", {})
    counts = [f"{k}={w[k]}" for k in ("gt_polygons_repaired", "gt_polygons_empty", "det_polygons_repaired",
                                       "det_polygons_empty") if w.get(k)]
    if w.get("unknown_det_images"):
        counts.append(f"detections for {len(w['unknown_det_images'])} unknown image(s) ignored")
    if w.get("ignored_files"):
        counts.append(f"{len(w['ignored_files'])} file(s) not in the layout ignored")
    lines.append("  warnings: " + (", ".join(counts) if counts else "none"))
    if w.get("quads_reordered"):
        lines.append(f"  {w['quads_reordered']} non-clockwise quadrilateral(s) reordered clockwise")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------- writers --
def to_quad(points, rectangle: bool = False) -> np.ndarray:
    """(4, 2) quadrilateral of a polygon for the ICDAR 2015 format: the polygon itself when it has 4 points (and
    ``rectangle`` is False), otherwise the minimum-area rotated rectangle of its points (a degenerate polygon gives
    a zero-area quadrilateral)."""
    pts = _as_points(points)
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
            if _signed_area(q.astype(np.float64)) < 0:
                q = q[::-1]
            line = ",".join(str(int(v)) for v in q.reshape(-1))
            if text:
                if '"' in text or "\\" in text:
                    text = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
                line += "," + text
        else:
            if len(pts) < 3:
                raise ValueError(f"a polygon needs at least 3 points, got {len(pts)}")
            if _signed_area(pts) < 0:
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
            "  warnings: {gt/det_polygons_repaired/empty, quads_reordered, unknown_det_images,\n"
            "  ignored_files, messages}, sources}; rates are fractions in [0, 1].\n"
            "Invalid polygons are repaired (shapely make_valid) and counted; detections for images without\n"
            "ground truth are ignored and listed. Malformed lines stop with file:line (exit status 2)."
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
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_table(result))
    if args.json:
        d = os.path.dirname(os.path.abspath(args.json))
        os.makedirs(d, exist_ok=True)
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=1, ensure_ascii=False, default=_json_default)
        print(f"  result written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
