"""Total-Text ground truth, in both of its released forms (file ``poly_gt_imgN.mat`` or ``.txt`` for ``imgN.jpg``).

Legacy MATLAB form (``.mat``): ``scipy.io.loadmat(path)["polygt"]`` is an N x 6 object array, one row per word::

    ['x:', [[x1 x2 ... xn]], 'y:', [[y1 ... yn]], transcription, orientation]

Text form (``.txt``), one instance per record; a record may wrap over several lines (numbers continue on the next
line), so records are found by their ``x:`` key rather than by line::

    x: [[115 503 494 115]], y: [[322 346 426 404]], ornt: [u'm'], transcriptions: [u'nauGHTY']

Coordinates are pixels. Orientation is ``c`` (curved), ``h`` (horizontal), ``m`` (multi-oriented) or ``#``.
**Don't care** (``iscrowd=1``): orientation ``#``, or transcription ``#`` or ``###``. Errors name ``file:line``
(for ``.mat`` files the "line" is the 1-based row of ``polygt``).
"""
from __future__ import annotations

import ast
import os
import re
from typing import List

import numpy as np

from .records import TextInstance, parse_numbers, read_text

__all__ = ["load_totaltext_gt", "load_totaltext_mat", "load_totaltext_txt", "is_dont_care"]

_DONT_CARE_TEXT = ("#", "###")


def is_dont_care(text: str, orientation: str) -> bool:
    """Total-Text's don't-care rule: orientation ``#`` or transcription ``#``/``###``."""
    return orientation.strip() == "#" or text.strip() in _DONT_CARE_TEXT


def load_totaltext_gt(path: str) -> List[TextInstance]:
    """Parse a Total-Text GT file, ``.mat`` or ``.txt`` by its extension."""
    ext = os.path.splitext(path)[1].lower()
    if ext == ".mat":
        return load_totaltext_mat(path)
    if ext == ".txt":
        return load_totaltext_txt(path)
    raise ValueError(f"{path}: unknown Total-Text GT extension {ext!r} (expected .mat or .txt)")


# -------------------------------------------------------------------------------------------------- .mat --
def _mat_str(v) -> str:
    a = np.asarray(v)
    if a.size == 0:
        return ""
    return str(a.reshape(-1)[0])


def load_totaltext_mat(path: str) -> List[TextInstance]:
    """Parse a legacy ``poly_gt_imgN.mat`` (variable ``polygt``)."""
    import scipy.io

    try:
        mat = scipy.io.loadmat(path)
    except Exception as e:  # scipy raises several types for corrupt files
        raise ValueError(f"{path}: cannot read MATLAB file ({e})") from None
    if "polygt" not in mat:
        raise ValueError(f"{path}: no 'polygt' variable (found {sorted(k for k in mat if not k.startswith('__'))})")
    rows = mat["polygt"]
    if rows.size == 0:
        return []
    if rows.ndim != 2 or rows.shape[1] < 4:
        raise ValueError(f"{path}: 'polygt' has shape {rows.shape}, expected N x 6")
    out = []
    for i, row in enumerate(rows, start=1):
        where = f"{path}:{i}"
        xs = np.asarray(row[1], dtype=np.float64).reshape(-1)
        ys = np.asarray(row[3], dtype=np.float64).reshape(-1)
        if xs.size != ys.size:
            raise ValueError(f"{where}: {xs.size} x coordinates but {ys.size} y coordinates")
        if xs.size < 3:
            raise ValueError(f"{where}: polygon with {xs.size} point(s)")
        if not (np.all(np.isfinite(xs)) and np.all(np.isfinite(ys))):
            raise ValueError(f"{where}: non-finite coordinate")
        text = _mat_str(row[4]) if len(row) > 4 else ""
        ornt = _mat_str(row[5]) if len(row) > 5 else ""
        out.append(TextInstance(np.stack([xs, ys], axis=1), text, is_dont_care(text, ornt), i))
    return out


# --------------------------------------------------------------------------------------------------- .txt --
_RECORD_START = re.compile(r"^[ \t\ufeff]*x\s*:", re.MULTILINE)
_RECORD = re.compile(
    r"x\s*:\s*\[\[(?P<x>[^\]]*)\]\]\s*,\s*"
    r"y\s*:\s*\[\[(?P<y>[^\]]*)\]\]\s*,\s*"
    r"ornt\s*:\s*\[(?P<ornt>[^\]]*)\]\s*,\s*"
    r"transcriptions\s*:\s*\[\s*(?P<text>u?(?P<q>['\"]).*?(?P=q))\s*\]\s*$",
    re.DOTALL,
)


def _literal(s: str, where: str) -> str:
    s = s.strip()
    if not s:
        return ""
    try:
        v = ast.literal_eval(s)
    except (ValueError, SyntaxError):
        raise ValueError(f"{where}: cannot read string literal {s!r}") from None
    if not isinstance(v, str):
        raise ValueError(f"{where}: expected a string, got {s!r}")
    return v


def load_totaltext_txt(path: str) -> List[TextInstance]:
    """Parse the text form of Total-Text GT (records may wrap over lines; see module docstring)."""
    content = read_text(path)
    starts = [m.start() for m in _RECORD_START.finditer(content)]
    first = starts[0] if starts else len(content)
    if content[:first].strip():
        line = 1 + content[:first].count("\n") - content[:first].lstrip().count("\n")
        raise ValueError(f"{path}:{line}: expected a record starting with 'x:'")
    out = []
    for j, s in enumerate(starts):
        e = starts[j + 1] if j + 1 < len(starts) else len(content)
        rec = content[s:e].strip()
        line = 1 + content.count("\n", 0, s)
        where = f"{path}:{line}"
        m = _RECORD.match(rec)
        if m is None:
            raise ValueError(
                f"{where}: malformed record {rec[:80]!r} (expected x: [[...]], y: [[...]], ornt: [...], "
                f"transcriptions: [...])"
            )
        xs = parse_numbers(_split_numbers(m["x"]), where)
        ys = parse_numbers(_split_numbers(m["y"]), where)
        if xs.size != ys.size:
            raise ValueError(f"{where}: {xs.size} x coordinates but {ys.size} y coordinates")
        if xs.size < 3:
            raise ValueError(f"{where}: polygon with {xs.size} point(s)")
        ornt = _literal(m["ornt"], where)
        text = _literal(m["text"], where)
        out.append(TextInstance(np.stack([xs, ys], axis=1), text, is_dont_care(text, ornt), line))
    return out


def _split_numbers(s: str) -> List[str]:
    """Split the inside of ``[[...]]`` into number tokens (spaces, line breaks or commas separate them)."""
    return [t for t in re.split(r"[\s,]+", s.strip()) if t]
