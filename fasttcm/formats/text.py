"""The official scene-text file formats: ICDAR 2015 and Total-Text / CTW1500 ground-truth and submission files,
read and written as the Robust Reading Competition (RRC) scripts read them (rules: ``docs/PROTOCOLS.md`` §1-2).

Training (:mod:`fasttcm.data.datasets`) and evaluation (:mod:`fasttcm.evaluation.text_eval`) read these files
through the same readers here; what training then does differently is listed in
:mod:`fasttcm.data.datasets.icdar2015` and :mod:`fasttcm.data.datasets.ctw1500`. numpy and shapely.

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

Writers (:func:`write_submission`, :func:`write_icdar15_submission`, :func:`write_totaltext_submission`) write
detections in the official submission layouts; :func:`format_submission_lines` gives the lines they write, so an
evaluation of the parsed lines equals the evaluation of the written files.
"""
from __future__ import annotations

import os
import re
import zipfile
from dataclasses import dataclass
from itertools import chain
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import shapely
from shapely.geometry import Polygon

from ..structures.polygons import as_points, signed_area
from .common import decode_lines, parse_coordinates, short_line

__all__ = [
    "PROTOCOLS",
    "DONT_CARE",
    "POLYGON_SEPARATOR",
    "TextItem",
    "TextFiles",
    "canonical_protocol",
    "protocol_rules",
    "describe_protocol",
    "image_key",
    "submission_filename",
    "parse_lines",
    "parse_icdar15_lines",
    "parse_polygon_lines",
    "unquote_transcription",
    "load_text_files",
    "as_text_files",
    "format_submission_lines",
    "write_submission",
    "write_submission_lines",
    "write_icdar15_submission",
    "write_totaltext_submission",
    "to_quad",
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


def protocol_rules(protocol: str) -> str:
    """``"icdar15"`` (quadrilateral files) or ``"polygon"`` (Total-Text / CTW1500 files) for a protocol name."""
    return "icdar15" if canonical_protocol(protocol) == "icdar15" else "polygon"


def describe_protocol(protocol: str) -> str:
    """One line naming the protocol and its geometry, for result tables."""
    return _DESCRIPTIONS[canonical_protocol(protocol)]


_IC15_ID = re.compile(r"(?:gt_|res_)?(?:img_)?(.+)")
_POLY_ID = re.compile(r"(?:poly_gt_|gt_|res_)?(?:img_?)?0*(\d+)")


def image_key(image_id, protocol: str) -> str:
    """The key that identifies an image under ``protocol`` (see the module docstring), from an image id (``int``,
    ``"img_1"``, ``"0000001"``...) or a file stem (``"gt_img_1"``, ``"res_img_1"``, ``"poly_gt_img3"``)."""
    rules = protocol_rules(protocol)
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
    if protocol_rules(protocol) == "icdar15":
        return f"{'gt' if role == 'gt' else 'res'}_img_{key}.txt"
    return f"{key}.txt"


def _file_key(name: str, protocol: str, role: str) -> Optional[str]:
    """Image key of a file name in the official layout, ``None`` when the name is not in it."""
    if protocol_rules(protocol) == "icdar15":
        prefix = "gt_img_" if role == "gt" else "res_img_"
        m = re.fullmatch(re.escape(prefix) + r"(.+)\.txt", name, flags=re.IGNORECASE)
        if not m or not name.startswith(prefix):
            return None
        return image_key(m.group(1), "icdar15")
    m = re.fullmatch(r"(.+)\.txt", name, flags=re.IGNORECASE)
    return image_key(m.group(1), protocol) if m else None


# -------------------------------------------------------------------------------------------- parsing --
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
            parse_coordinates(f, f"{where}:{i}", line)
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
                f"got {len(p)} field(s) in {short_line(line)}"
            )
        rows.append((i, line))
        parts.append(p)
    if not rows:
        return []
    pts = _points_of_rows([p[:8] for p in parts], where, rows).reshape(-1, 4, 2)
    return [TextItem(pts[k], _unquote_fast(p[8]) if len(p) == 9 else "", i)
            for k, ((i, _), p) in enumerate(zip(rows, parts))]


_POLY_SEP = "," + POLYGON_SEPARATOR


def parse_polygon_lines(lines: Iterable[str], where: str = "<memory>", require_text: bool = True,
                        first_line: int = 1) -> List[TextItem]:
    """Parse Total-Text/CTW1500 lines ``x1,y1,...,xn,yn,####transcription`` (n >= 3), as the official polygon
    reader does: the line is stripped, split at the first ``,####`` (a line without it but with ``####`` right
    after the last coordinate is read the same way), the transcription stripped and then unquoted
    (:func:`unquote_transcription`).

    ``require_text=False`` (detections) also accepts lines of coordinates only (empty transcription).
    ``ValueError`` naming ``where:line`` on a malformed line (``first_line``: the number of the first line given).
    """
    rows, fields, texts = [], [], []
    for i, raw in enumerate(lines, start=first_line):
        line = raw.strip()
        if not line:
            continue
        if _POLY_SEP in line:
            coords, text = line.split(_POLY_SEP, 1)
        elif POLYGON_SEPARATOR in line:
            coords, text = line.split(POLYGON_SEPARATOR, 1)
        elif require_text:
            raise ValueError(f"{where}:{i}: expected x1,y1,...,xn,yn,####transcription, got {short_line(raw)}")
        else:
            coords, text = line, ""
        c = coords.strip()
        if c.endswith(","):
            c = c[:-1]
        f = c.split(",")
        if len(f) % 2:
            parse_coordinates(f, f"{where}:{i}", raw)  # names a non-number first, else the odd count
        if len(f) < 6:
            parse_coordinates(f, f"{where}:{i}", raw)
            raise ValueError(f"{where}:{i}: {len(f) // 2} point(s), a polygon needs at least 3, in {short_line(raw)}")
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
    if protocol_rules(protocol) == "icdar15":
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
        items[key] = parse_lines(decode_lines(data, where), protocol, where, role)
        sources[key] = where
    return TextFiles(items, sources, ignored, f"{path} ({len(items)} files)")


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


def as_text_files(obj, protocol: str, role: str) -> TextFiles:
    """``obj`` as :class:`TextFiles`: itself, the files of a folder / ``.zip`` path (:func:`load_text_files`), or a
    mapping ``image id -> [word, ...]`` (a word: :class:`TextItem`, ``(points, text)``, a dict with ``"points"``
    or ``"polygon"`` and ``"text"``, or bare points), keys normalised by :func:`image_key`."""
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
    rules = protocol_rules(protocol)
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
