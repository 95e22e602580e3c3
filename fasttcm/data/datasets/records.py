"""The leaf of the text-dataset loaders: the record a GT file yields (:class:`TextInstance`) and the line/number
readers every format module uses (from :mod:`fasttcm.formats.common`, shared with the evaluators). It imports no
other loader module, so the format modules (``icdar2015``, ``totaltext``, ``ctw1500``) import it and :mod:`.text`
imports them without a cycle. Errors name ``file:line``.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...formats.common import parse_coordinates, parse_numbers, read_lines  # noqa: F401  (the readers' parsers)

__all__ = ["TextInstance", "DONT_CARE", "training_dont_care", "parse_numbers", "parse_coordinates", "read_text",
           "read_lines"]

#: the don't-care transcription of the ICDAR 2015 and polygon formats
DONT_CARE = "###"


@dataclass
class TextInstance:
    """One annotated text instance as read from a GT file, before validation.

    ``points``: (N, 2) float64, pixels. ``ignore``: don't care. ``line``: 1-based line (or row) in the GT file.
    """

    points: np.ndarray
    text: str
    ignore: bool
    line: int


def read_text(path: str) -> str:
    """A GT text file decoded (UTF-8 with or without BOM) with its line ends (CR/LF, LF or CR) turned into LF."""
    return "\n".join(read_lines(path))


def training_dont_care(text: str) -> bool:
    """Don't care for **training**: the transcription is ``###`` once white space around it is stripped.

    The one place where training reads ground truth more leniently than the official evaluation: the evaluator
    (:mod:`fasttcm.formats.text`) treats only the exact transcription ``###`` as don't care (after its own
    unquoting and, in the polygon format, stripping), so an ICDAR 2015 word ``### `` is a care word there. For
    training, a word nobody can read is not a word to teach, whatever the spaces. (Total-Text's ``.mat`` and text
    forms, read only for training, also take orientation ``#`` and transcription ``#`` as don't care:
    :func:`fasttcm.data.datasets.totaltext.is_dont_care`.)
    """
    return text.strip() == DONT_CARE
