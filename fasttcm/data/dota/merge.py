"""Merging patch-level DOTA detections back onto the original images (``docs/PROTOCOLS.md`` §4).

A detection on patch ``<image>__<rate>__<left>___<up>`` with corners ``p`` (patch pixels) lies at
``(p + (left, up)) / rate`` in the original image: the offsets are pixels of the image rescaled by ``rate`` (where
the patch was cut), so they are added before dividing by the rate (equivalently: divide by the rate, then add
the offsets divided by the rate). Then, independently for each original image and class, greedy polygon NMS
(:func:`fasttcm.structures.quads.poly_nms`) keeps a detection unless a better-scored kept one of the same image
and class overlaps it with polygon IoU strictly above ``nms_thr`` (decided exactly,
:func:`fasttcm.structures.quads.iou_above`). The threshold picks which DOTA_devkit merger is reproduced:
``0.1`` (the default) is its multi-process merger ``ResultMerge_multi_process.py``, ``0.3`` its single-process
``ResultMerge.py``. Equal scores keep their input order (stable sort). Scores are unchanged.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ...structures.quads import as_quads, poly_nms
from .labels import Task1Detections, read_task1_dir, write_task1_dir
from .split import parse_patch_name

__all__ = ["patch_to_image", "merge_detections", "merge_task1", "merge_task1_dir"]


def patch_to_image(names: Sequence[str], quads) -> Tuple[np.ndarray, np.ndarray]:
    """Map quads from patch pixels to original-image pixels: returns ``(image_ids (N,) object array, quads
    (N, 4, 2))``. ``ValueError`` names the first entry that is not a patch name."""
    q = as_quads(quads)
    names = np.asarray(names, dtype=object).reshape(-1)
    if len(names) != len(q):
        raise ValueError(f"{len(names)} names for {len(q)} quads")
    if len(q) == 0:
        return np.zeros(0, dtype=object), q.copy()
    uniq, inv = np.unique(names.astype(str), return_inverse=True)
    ids = np.empty(len(uniq), dtype=object)
    params = np.empty((len(uniq), 3), dtype=np.float64)
    for k, nm in enumerate(uniq.tolist()):
        image_id, rate, left, up = parse_patch_name(nm)
        ids[k] = image_id
        params[k] = (rate, left, up)
    p = params[inv]
    out = (q + p[:, None, 1:]) / p[:, None, :1]
    return ids[inv], out


def merge_detections(
    names: Sequence[str], quads, scores, classes, nms_thr: float = 0.1
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Merge patch detections (patch ``names``, ``quads`` in patch pixels, ``scores``, integer ``classes``) into
    detections on the original images: ``(image_ids, quads, scores, classes)`` of the kept ones, sorted by class,
    then image id, then score descending (ties in input order)."""
    ids, q = patch_to_image(names, quads)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    c = np.asarray(classes, dtype=np.int64).reshape(-1)
    if not (len(s) == len(c) == len(q)):
        raise ValueError(f"merge_detections: {len(q)} quads, {len(s)} scores, {len(c)} classes")
    if len(q) == 0:
        return ids, q, s, c
    img_names, img_idx = np.unique(ids.astype(str), return_inverse=True)
    ncls = int(c.max()) + 1 if len(c) else 1
    keep = poly_nms(q, s, groups=img_idx * ncls + c, iou_thr=nms_thr)  # score descending, stable
    o = np.lexsort((np.arange(len(keep)), img_idx[keep], c[keep]))  # class, image, then visiting order
    keep = keep[o]
    return img_names[img_idx[keep]].astype(object), q[keep], s[keep], c[keep]


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
