"""DOTA's patch conventions as plain functions: the tiling of a large image into ``subsize`` patches with ``gap``
overlap, patch names ``<image>__<rate>__<left>___<up>``, and mapping patch detections back to the original image
with class-wise polygon NMS (``docs/PROTOCOLS.md`` §4). Used by the splitter (:mod:`fasttcm.data.dota.split`),
the DOTA evaluator, the merge tool and the tiled predictor. numpy only (plus :mod:`.quads`).

A detection on patch ``<image>__<rate>__<left>___<up>`` with corners ``p`` (patch pixels) lies at
``(p + (left, up)) / rate`` in the original image: the offsets are pixels of the image rescaled by ``rate`` (where
the patch was cut), so they are added before dividing by the rate. Merging then applies, independently for each
original image and class, greedy polygon NMS (:func:`~fasttcm.structures.quads.poly_nms`): a detection is kept
unless a better-scored kept one of the same image and class overlaps it with polygon IoU strictly above
``nms_thr`` (decided exactly). The threshold picks which DOTA_devkit merger is reproduced: ``0.1`` (the default)
is its multi-process merger ``ResultMerge_multi_process.py``, ``0.3`` its single-process ``ResultMerge.py``. Equal
scores keep their input order (stable sort). Scores are unchanged.
"""
from __future__ import annotations

import math
import os
import re
from typing import List, Sequence, Tuple, Union

import numpy as np

from .quads import as_quads, poly_nms

__all__ = ["Number", "rate_str", "parse_rate", "patch_name", "parse_patch_name", "patch_starts", "patch_origins",
           "scaled_size", "patch_to_image", "merge_detections"]

#: extensions :func:`parse_patch_name` strips from a patch file name
_NAME_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".txt")

Number = Union[int, float]


def rate_str(rate: Number) -> str:
    """The rate as Python prints the number given: ``1`` -> ``'1'``, ``0.5`` -> ``'0.5'``, ``1.0`` -> ``'1.0'``."""
    if isinstance(rate, bool) or not isinstance(rate, (int, float)):
        raise TypeError(f"rate must be an int or a float, got {rate!r}")
    return str(rate)


def parse_rate(text: str) -> Number:
    """A rate from the command line, keeping how it was written: ``'1'`` -> ``1`` (int), ``'1.0'`` -> ``1.0``."""
    t = text.strip()
    v: Number = int(t) if re.fullmatch(r"[+]?\d+", t) else float(t)
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"rate must be a positive number, got {text!r}")
    return v


_PATCH_RE = re.compile(r"^(?P<id>.+)__(?P<rate>[0-9][0-9.eE+-]*)__(?P<left>\d+)___(?P<up>\d+)$")


def patch_name(image_id: str, rate: Number, left: int, up: int) -> str:
    """``<image_id>__<rate>__<left>___<up>`` (see :func:`rate_str`)."""
    return f"{image_id}__{rate_str(rate)}__{int(left)}___{int(up)}"


def parse_patch_name(name: str) -> Tuple[str, float, int, int]:
    """``(image_id, rate, left, up)`` of a patch name (a path or an extension is tolerated); ``ValueError`` if
    ``name`` is not one."""
    base = os.path.basename(name)
    stem, ext = os.path.splitext(base)
    if ext.lower() in _NAME_EXTENSIONS:
        base = stem
    m = _PATCH_RE.match(base)
    if m is None:
        raise ValueError(f"{name!r} is not a patch name <image>__<rate>__<left>___<up>")
    try:
        rate = float(m.group("rate"))
    except ValueError:
        raise ValueError(f"{name!r}: bad rate {m.group('rate')!r}") from None
    if not (math.isfinite(rate) and rate > 0):
        raise ValueError(f"{name!r}: bad rate {m.group('rate')!r}")
    return m.group("id"), rate, int(m.group("left")), int(m.group("up"))


def patch_starts(length: int, subsize: int, gap: int) -> List[int]:
    """Origins of the patches along an axis of ``length`` pixels: ``0, s, 2s, ...`` (``s = subsize - gap``), the
    last shifted back to ``length - subsize``; ``[0]`` when ``length <= subsize``."""
    if subsize <= 0 or not (0 <= gap < subsize):
        raise ValueError(f"need subsize > 0 and 0 <= gap < subsize, got subsize={subsize}, gap={gap}")
    stride = subsize - gap
    starts, s = [], 0
    while True:
        if s + subsize >= length:
            starts.append(max(length - subsize, 0))
            break
        starts.append(s)
        s += stride
    return starts


def patch_origins(width: int, height: int, subsize: int, gap: int) -> List[Tuple[int, int]]:
    """``(left, up)`` of every patch of a ``width x height`` image, columns outer, rows inner."""
    return [(x, y) for x in patch_starts(width, subsize, gap) for y in patch_starts(height, subsize, gap)]


def scaled_size(width: int, height: int, rate: Number) -> Tuple[int, int]:
    """Size of the image rescaled by ``rate``: ``(round(W * rate), round(H * rate))``, at least 1."""
    if rate == 1:
        return int(width), int(height)
    return max(1, int(round(width * rate))), max(1, int(round(height * rate)))


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
