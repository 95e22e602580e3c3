"""SCUT-CTW1500 ground truth (text lines, 14-point polygons) in its two text releases; also the generic
``x1,y1,...,xn,yn,####text`` polygon form (the synthetic set's GT uses it).

One file per image (``0001.txt`` for ``0001.jpg``), one text line per line, UTF-8 (BOM allowed), CR/LF or LF:

* **Original training labels**: 32 integers, ``xmin,ymin,xmax,ymax,dx1,dy1,...,dx14,dy14``; the 14 vertices are
  offsets relative to ``(xmin, ymin)``: ``x_i = xmin + dx_i``. No transcription (read as ``""``, not don't care).
* **Absolute labels** (test labels, later releases): ``x1,y1,...,xn,yn,####transcription``: absolute vertices
  (14 in CTW1500; any n >= 3 accepted), then ``####`` and the transcription (may contain commas). Transcription
  ``###`` (i.e. the line ends in ``,#######``) is don't care (``iscrowd=1``).
* A line without ``####`` and with an even number of fields other than 32 is read as absolute vertices with an
  empty transcription (exactly 32 fields always means the original relative form).

Coordinates are pixels. Errors name ``file:line``.
"""
from __future__ import annotations

from typing import List

from .text import TextInstance, parse_coordinates, parse_numbers, read_text_lines

__all__ = ["load_ctw1500_gt", "load_polygon_txt_gt", "SEPARATOR", "DONT_CARE"]

SEPARATOR = "####"
DONT_CARE = "###"


def _absolute(line: str, where: str, lineno: int) -> TextInstance:
    coords, text = line.split(SEPARATOR, 1)
    pts = parse_coordinates(coords.strip().rstrip(",").split(","), where)
    if len(pts) < 3:
        raise ValueError(f"{where}: {len(pts)} point(s), a polygon needs at least 3")
    return TextInstance(pts, text, text.strip() == DONT_CARE, lineno)


def load_polygon_txt_gt(path: str) -> List[TextInstance]:
    """Parse a generic polygon file: every line ``x1,y1,...,xn,yn,####text`` (n >= 3; ``###`` = don't care)."""
    out = []
    for i, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        if SEPARATOR not in line:
            raise ValueError(f"{path}:{i}: expected x1,y1,...,xn,yn,####transcription")
        out.append(_absolute(line, f"{path}:{i}", i))
    return out


def load_ctw1500_gt(path: str) -> List[TextInstance]:
    """Parse one CTW1500 label file (either form, decided per line)."""
    out = []
    for i, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        where = f"{path}:{i}"
        if SEPARATOR in line:
            out.append(_absolute(line, where, i))
            continue
        fields = [f for f in line.strip().rstrip(",").split(",")]
        vals = parse_numbers(fields, where)
        if len(vals) == 32:
            xmin, ymin = vals[0], vals[1]
            pts = vals[4:].reshape(-1, 2) + [xmin, ymin]
        elif len(vals) % 2 == 0 and len(vals) >= 6:
            pts = vals.reshape(-1, 2)
        else:
            raise ValueError(
                f"{where}: {len(vals)} numbers; expected 32 (xmin,ymin,xmax,ymax + 14 relative points) or "
                f"absolute x1,y1,...,xn,yn[,####text] with n >= 3"
            )
        out.append(TextInstance(pts, "", False, i))
    return out
