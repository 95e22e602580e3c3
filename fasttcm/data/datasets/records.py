"""The leaf of the text-dataset loaders: the record a GT file yields (:class:`TextInstance`) and the line/number
parsers every format module uses. It imports nothing else of fasttcm, so the format modules (``icdar2015``,
``totaltext``, ``ctw1500``) import it and :mod:`.text` imports them without a cycle.

Errors name ``file:line`` (``where``); a file that is not UTF-8 names the file and the line of the first bad byte.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, List

import numpy as np

__all__ = ["TextInstance", "parse_numbers", "parse_coordinates", "read_text", "read_text_lines"]


@dataclass
class TextInstance:
    """One annotated text instance as read from a GT file, before validation.

    ``points``: (N, 2) float64, pixels. ``ignore``: don't care. ``line``: 1-based line (or row) in the GT file.
    """

    points: np.ndarray
    text: str
    ignore: bool
    line: int


def parse_numbers(fields: Iterable[str], where: str) -> np.ndarray:
    """Strings -> 1-D float64 array; ``ValueError`` naming ``where`` (``file:line``) on a non-number or NaN/inf."""
    vals = []
    for f in fields:
        f = f.strip()
        try:
            v = float(f)
        except ValueError:
            raise ValueError(f"{where}: non-numeric coordinate {f!r}") from None
        if not np.isfinite(v):
            raise ValueError(f"{where}: non-finite coordinate {f!r}")
        vals.append(v)
    return np.asarray(vals, dtype=np.float64)


def parse_coordinates(fields: Iterable[str], where: str) -> np.ndarray:
    """Strings ``x1, y1, x2, y2, ...`` -> (N, 2) float64 array; ``ValueError`` naming ``where`` (``file:line``) on
    a non-number, NaN/inf or an odd count."""
    vals = parse_numbers(fields, where)
    if len(vals) % 2:
        raise ValueError(f"{where}: odd number of coordinates ({len(vals)})")
    return vals.reshape(-1, 2)


def read_text(path: str) -> str:
    """Decode a GT text file (UTF-8 with or without BOM) with its line ends (CR/LF, LF or CR) turned into LF."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path}: not UTF-8 ({e})") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def read_text_lines(path: str) -> List[str]:
    """:func:`read_text` split into lines (ends removed)."""
    return read_text(path).split("\n")
