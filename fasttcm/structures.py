"""Geometry of rotated boxes in Detectron2's convention, in numpy.

A rotated box is ``(cx, cy, w, h, angle)`` in pixels and degrees (``BoxMode.XYWHA_ABS``); the angle turns the box
counter-clockwise as seen on the image (y axis pointing down), as in ``detectron2.structures.RotatedBoxes``:
the width runs along ``(cos a, -sin a)`` and the height along ``(sin a, cos a)``.
"""
import numpy as np


def rotated_boxes_to_corners(boxes) -> np.ndarray:
    """(N, 5) rotated boxes -> (N, 4, 2) corners, clockwise as seen on the image (y down) starting top-left of
    the unrotated box."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    cx, cy, w, h, a = b.T
    t = np.deg2rad(a)
    c, s = np.cos(t), np.sin(t)
    out = np.empty((len(b), 4, 2), dtype=np.float64)
    for j, (sw, sh) in enumerate(((-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5))):
        out[:, j, 0] = cx + sw * w * c + sh * h * s
        out[:, j, 1] = cy - sw * w * s + sh * h * c
    return out
