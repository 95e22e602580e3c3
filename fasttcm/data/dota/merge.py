"""Merging patch-level DOTA ``Task1_<class>.txt`` files back onto the original images (``docs/PROTOCOLS.md`` §4):
:func:`merge_task1_dir` reads them, merges each class with :func:`fasttcm.structures.patches.merge_detections`
and writes the merged files (``tools/dota_merge.py``).

"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence

import numpy as np

from ...formats.dota import Task1Detections, read_task1_dir, write_task1_dir
from ...structures.patches import merge_detections

__all__ = ["merge_task1", "merge_task1_dir"]


def merge_task1(dets: Dict[str, Task1Detections], nms_thr: float = 0.1) -> Dict[str, Task1Detections]:
    """Merge per-class patch-level detections (class name -> :class:`Task1Detections` on patch names) into
    per-class detections on the original images (each class alone)."""
    out: Dict[str, Task1Detections] = {}
    for name, d in dets.items():
        if len(d) == 0:
            out[name] = Task1Detections.empty()
            continue
        ids, q, s, _ = merge_detections(d.images, d.quads, d.scores, np.zeros(len(d), dtype=np.int64), nms_thr)
        out[name] = Task1Detections(ids, s, q)
    return out


def merge_task1_dir(
    src: str, dst: str, nms_thr: float = 0.1, classes: Optional[Sequence[str]] = None
) -> List[str]:
    """Read every ``src/Task1_<class>.txt`` (patch level), merge, and write ``dst/Task1_<class>.txt`` (original
    images; also an empty file for each class of ``classes`` without detections). Returns the written paths."""
    if not os.path.isdir(src):
        raise FileNotFoundError(f"{src} is not a folder")
    dets = read_task1_dir(src)
    if not dets and not classes:
        raise FileNotFoundError(f"no Task1_<class>.txt files in {src}")
    return write_task1_dir(dst, merge_task1(dets, nms_thr), classes)
