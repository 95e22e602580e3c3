"""ICDAR 2015 Incidental Scene Text (RRC Challenge 4) ground truth.

File ``gt_img_N.txt`` for image ``img_N.jpg``; UTF-8 with or without BOM; CR/LF or LF line ends; one word per line::

    x1,y1,x2,y2,x3,y3,x4,y4,transcription

Coordinates are pixels (integers in the official files; floats accepted), four corners clockwise from the top-left
of the word. Everything after the 8th comma is the transcription (it may contain commas). ``###`` marks a
don't-care region (``iscrowd=1``). A line with exactly 8 coordinates and no transcription is read with an empty
transcription. Blank lines are skipped.
"""
from __future__ import annotations

from typing import List

from .records import TextInstance, parse_coordinates, read_text_lines

__all__ = ["load_icdar2015_gt", "DONT_CARE"]

DONT_CARE = "###"


def load_icdar2015_gt(path: str) -> List[TextInstance]:
    """Parse one ICDAR 2015 GT file. Raises ``ValueError`` naming ``path:line`` on a malformed line."""
    out = []
    for i, line in enumerate(read_text_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split(",", 8)
        where = f"{path}:{i}"
        if len(parts) < 8:
            raise ValueError(f"{where}: expected 8 coordinates and a transcription, got {len(parts)} field(s)")
        pts = parse_coordinates(parts[:8], where)
        text = parts[8] if len(parts) == 9 else ""
        out.append(TextInstance(pts, text, text.strip() == DONT_CARE, i))
    return out
