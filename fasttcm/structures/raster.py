"""Polygons on the pixel grid: exact rasterisation, distances to borders, the minimum-area rectangle (numpy + cv2).

Coordinates are continuous pixels: pixel ``(i, j)`` (column ``i``, row ``j``) covers ``[i, i+1] x [j, j+1]``, and a
pixel belongs to a polygon when its **centre** ``(i + 0.5, j + 0.5)`` lies inside.
"""
from __future__ import annotations

import cv2
import numpy as np

__all__ = ["polygon_mask", "fill_polygon", "polygon_border_distance", "min_rect_short_side"]


def polygon_mask(polygon: np.ndarray, height: int, width: int):
    """Exact rasterization: which pixels of a ``height x width`` image have their centre inside ``polygon``.

    Even-odd scanline rule on pixel centres ``(i + 0.5, j + 0.5)``, half-open (a centre exactly on a left/top
    edge is inside, on a right/bottom edge outside), so polygons that tile the plane cover each pixel once.

    Returns ``(y0, x0, mask)``: a bool mask of the polygon's bounding box clipped to the image, whose top-left
    pixel is ``(x0, y0)``; ``mask`` is empty (size 0) when the polygon covers no pixel centre.
    """
    p = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    y0 = max(int(np.ceil(p[:, 1].min() - 0.5)), 0)
    y1 = min(int(np.ceil(p[:, 1].max() - 0.5)), height)  # exclusive
    x0 = max(int(np.ceil(p[:, 0].min() - 0.5)), 0)
    x1 = min(int(np.ceil(p[:, 0].max() - 0.5)), width)
    if y0 >= y1 or x0 >= x1 or len(p) < 3:
        return y0, x0, np.zeros((0, 0), dtype=bool)
    cy = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5  # (R, 1)
    a, b = p, np.roll(p, -1, axis=0)
    ay, by, ax, bx = a[:, 1][None], b[:, 1][None], a[:, 0][None], b[:, 0][None]
    crosses = (np.minimum(ay, by) <= cy) & (cy < np.maximum(ay, by))  # (R, E), horizontal edges never cross
    with np.errstate(divide="ignore", invalid="ignore"):
        xs = ax + (cy - ay) * (bx - ax) / (by - ay)
    xs = np.sort(np.where(crosses, xs, np.inf), axis=1)
    n = crosses.sum(axis=1)
    diff = np.zeros((y1 - y0, x1 - x0 + 1), dtype=np.int32)
    for k in range(0, xs.shape[1] - 1, 2):
        rows = np.flatnonzero(n > k + 1)
        if not len(rows):
            break
        # columns whose centre c + 0.5 lies in [xl, xr): c in [ceil(xl - 0.5), ceil(xr - 0.5))
        start = np.clip(np.ceil(xs[rows, k] - 0.5).astype(np.int64) - x0, 0, x1 - x0)
        stop = np.clip(np.ceil(xs[rows, k + 1] - 0.5).astype(np.int64) - x0, 0, x1 - x0)
        np.add.at(diff, (rows, start), 1)
        np.add.at(diff, (rows, stop), -1)
    mask = np.cumsum(diff, axis=1)[:, :-1] > 0
    return y0, x0, mask


def fill_polygon(canvas: np.ndarray, polygon: np.ndarray, value: float) -> None:
    """Set the ``canvas`` (H, W) pixels whose centres lie in ``polygon`` (see :func:`polygon_mask`) to ``value``."""
    y0, x0, mask = polygon_mask(polygon, canvas.shape[0], canvas.shape[1])
    if mask.size:
        canvas[y0:y0 + mask.shape[0], x0:x0 + mask.shape[1]][mask] = value


def polygon_border_distance(polygon: np.ndarray, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
    """Euclidean distance (pixels) from points ``(xs, ys)`` (same shape) to the polygon's border (closed ring)."""
    p = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    a, b = p, np.roll(p, -1, axis=0)
    best = np.full(xs.shape, np.inf)
    for (ax, ay), (bx, by) in zip(a, b):
        dx, dy = bx - ax, by - ay
        seg2 = dx * dx + dy * dy
        if seg2 > 0:
            t = np.clip(((xs - ax) * dx + (ys - ay) * dy) / seg2, 0.0, 1.0)
        else:
            t = 0.0
        d = np.hypot(xs - (ax + t * dx), ys - (ay + t * dy))
        np.minimum(best, d, out=best)
    return best


def min_rect_short_side(points: np.ndarray) -> float:
    """The shorter side (pixels) of the polygon's minimum-area enclosing rectangle (``cv2.minAreaRect``)."""
    (_, _), (w, h), _ = cv2.minAreaRect(np.asarray(points, dtype=np.float32).reshape(-1, 1, 2))
    return float(min(w, h))
