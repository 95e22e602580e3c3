"""What every annotation and submission reader shares: decoding a file's lines and reading numbers, with errors
that name ``file:line`` (and quote the line when it is given). numpy only.

* Text is UTF-8 with or without a BOM, with LF, CR/LF or CR line ends; anything else is a ``ValueError`` naming the
  file and the position of the first bad byte.
* A number is what ``float`` reads and must be finite: ``non-numeric coordinate 'x'`` / ``non-finite coordinate
  'nan'`` (``what`` names the field, e.g. ``coordinate 5`` or ``score``).
"""
from __future__ import annotations

import math
from typing import List, Optional, Sequence

import numpy as np

__all__ = ["decode_lines", "read_lines", "short_line", "parse_number", "parse_numbers", "parse_coordinates"]


def decode_lines(data: bytes, where: str) -> List[str]:
    """The lines of a file's bytes (line ends removed); ``ValueError`` naming ``where`` when not UTF-8."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: not UTF-8 ({e})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n").split("\n")


def read_lines(path: str) -> List[str]:
    """:func:`decode_lines` of the file at ``path``."""
    with open(path, "rb") as f:
        return decode_lines(f.read(), path)


def short_line(line: str) -> str:
    """A line quoted for an error message, cut at 80 characters."""
    return repr(line if len(line) <= 80 else line[:77] + "...")


def parse_number(token: str, where: str, what: str = "coordinate", line: Optional[str] = None) -> float:
    """``float(token)``, finite; ``ValueError`` naming ``where``, the field (``what``) and the token otherwise."""
    tail = f" in {short_line(line)}" if line is not None else ""
    try:
        v = float(token)
    except ValueError:
        raise ValueError(f"{where}: non-numeric {what} {token.strip()!r}{tail}") from None
    if not math.isfinite(v):
        raise ValueError(f"{where}: non-finite {what} {token.strip()!r}{tail}")
    return v


def parse_numbers(fields: Sequence[str], where: str, line: Optional[str] = None, what: str = "coordinate",
                  numbered: bool = False) -> np.ndarray:
    """Strings -> 1-D float64 array (fast path; the checks below run only to name what is wrong).
    ``numbered``: name a bad field by its 1-based position (``coordinate 5``)."""
    try:
        vals = list(map(float, fields))
        if all(map(math.isfinite, vals)):
            return np.asarray(vals, dtype=np.float64)
    except ValueError:
        pass
    for k, f in enumerate(fields, start=1):
        parse_number(f, where, f"{what} {k}" if numbered else what, line)
    raise AssertionError("unreachable")  # pragma: no cover


def parse_coordinates(fields: Sequence[str], where: str, line: Optional[str] = None) -> np.ndarray:
    """Strings ``x1, y1, x2, y2, ...`` -> (N, 2) float64; ``ValueError`` naming ``where`` for a non-number,
    NaN/inf or an odd count."""
    vals = parse_numbers(fields, where, line)
    if len(vals) % 2:
        tail = f" in {short_line(line)}" if line is not None else ""
        raise ValueError(f"{where}: odd number of coordinates ({len(vals)}){tail}")
    return vals.reshape(-1, 2)
