"""ICDAR 2015 Incidental Scene Text (RRC Challenge 4) ground truth for training.

File ``gt_img_N.txt`` for image ``img_N.jpg``: lines ``x1,y1,...,x4,y4,transcription``, read by the official
reader the evaluator uses (:func:`fasttcm.formats.text.parse_icdar15_lines`: the transcription is everything after
the 8th comma, one pair of wrapping quotes removed; malformed lines raise ``ValueError`` naming ``file:line``).
Training then differs from evaluation in one place, :func:`fasttcm.data.datasets.records.training_dont_care`.
"""
from __future__ import annotations

from typing import List

from ...formats.text import parse_icdar15_lines
from .records import TextInstance, read_lines, training_dont_care

__all__ = ["load_icdar2015_gt"]


def load_icdar2015_gt(path: str) -> List[TextInstance]:
    """Parse one ICDAR 2015 GT file into :class:`TextInstance` s (points as written, file order)."""
    return [TextInstance(w.points, w.text, training_dont_care(w.text), w.line)
            for w in parse_icdar15_lines(read_lines(path), path)]
