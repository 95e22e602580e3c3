"""Training targets of the DB (Differentiable Binarization, Liao et al., AAAI 2020) head, in numpy / cv2 / shapely.

Conventions
-----------
Polygons are ``(N, 2)`` arrays of ``(x, y)`` in pixels of the (augmented) training image, continuous coordinates in
which pixel ``(i, j)`` covers ``[i, i+1] x [j, j+1]``: a pixel belongs to a polygon when its **centre**
``(i + 0.5, j + 0.5)`` lies inside (:func:`fill_polygon`). All maps are ``(H, W)`` float32 at full image resolution.

Targets (:func:`make_db_targets`)
---------------------------------
* ``prob`` -- shrunk probability map: 1 inside each text polygon shrunk inwards by ``D = A (1 - r^2) / L``
  (``A`` area, ``L`` perimeter, ``r`` the shrink ratio, 0.4), 0 elsewhere. The offset is a shapely ``buffer(-D)``
  with mitre joins: every edge moves inwards by exactly D (the polygon offset DB computes with pyclipper).
* ``prob_mask`` -- 1 where the probability/binary losses apply; 0 over don't-care polygons (``###``) and over
  degenerate ones: zero area, shrunk to nothing (or to no pixel centre), or a minimum-area rectangle whose
  shorter side is below ``min_text_size`` pixels.
* ``thresh`` -- threshold map: for each (non-ignored) polygon, ``1 - min(d / D, 1)`` with ``d`` the distance of
  the pixel centre to the polygon's border, max over polygons, then mapped linearly to ``[thresh_min,
  thresh_max]`` (0.3, 0.7): ``thresh_max`` on the border, ``thresh_min`` at distance ``>= D`` and outside text.
* ``thresh_mask`` -- 1 inside the polygons dilated by ``D`` (mitre joins), where the threshold loss applies.

Score-map target
----------------
The backbone's auxiliary loss uses the shrunk text mask ``prob`` and ``ignore = 1 - prob_mask`` (don't-care and
degenerate text), at full resolution; the model downsamples them to the score map's 1/32 grid
(:func:`fasttcm.modeling.text_detector.score_map_targets`).
"""
from __future__ import annotations

from typing import Dict, List, Sequence

import cv2
import numpy as np
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

__all__ = ["shrink_distance", "offset_polygon", "polygon_mask", "fill_polygon", "polygon_border_distance",
           "make_db_targets"]

#: shapely join style (mitre) and the mitre limit (ratio of mitre length to offset) beyond which corners bevel
MITRE = "mitre"
MITRE_LIMIT = 5.0


def shrink_distance(polygon: np.ndarray, ratio: float = 0.4) -> float:
    """DB's offset distance ``D = A (1 - ratio^2) / L`` in pixels (0 for a degenerate polygon)."""
    poly = Polygon(np.asarray(polygon, dtype=np.float64))
    if poly.length <= 0:
        return 0.0
    return float(abs(poly.area) * (1.0 - ratio * ratio) / poly.length)


def _parts(geom: BaseGeometry) -> List[np.ndarray]:
    if geom.is_empty:
        return []
    if isinstance(geom, Polygon):
        return [np.asarray(geom.exterior.coords, dtype=np.float64)[:-1]]
    out = []
    for g in getattr(geom, "geoms", []):
        out.extend(_parts(g))
    return out


def offset_polygon(polygon: np.ndarray, distance: float, join_style: str = MITRE,
                   mitre_limit: float = MITRE_LIMIT) -> List[np.ndarray]:
    """Offset a polygon outwards (``distance > 0``) or inwards (``< 0``) by ``|distance|`` pixels.

    Returns the exterior rings (``(N, 2)`` float64, open) of the resulting parts: empty when it shrinks to
    nothing, several when a narrow neck pinches off. Invalid input is made valid with ``buffer(0)`` first.
    """
    poly = Polygon(np.asarray(polygon, dtype=np.float64))
    if not poly.is_valid:
        poly = poly.buffer(0)
    return _parts(poly.buffer(distance, join_style=join_style, mitre_limit=mitre_limit))


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


def _short_side(polygon: np.ndarray) -> float:
    (_, _), (w, h), _ = cv2.minAreaRect(np.asarray(polygon, dtype=np.float32).reshape(-1, 1, 2))
    return float(min(w, h))


def _draw_threshold(canvas: np.ndarray, polygon: np.ndarray, distance: float) -> None:
    """Max ``1 - min(d / distance, 1)`` into ``canvas`` over the bounding box of the dilated polygon."""
    H, W = canvas.shape
    p = np.asarray(polygon, dtype=np.float64)
    x0 = max(int(np.floor(p[:, 0].min() - distance)), 0)
    x1 = min(int(np.ceil(p[:, 0].max() + distance)), W)
    y0 = max(int(np.floor(p[:, 1].min() - distance)), 0)
    y1 = min(int(np.ceil(p[:, 1].max() + distance)), H)
    if x0 >= x1 or y0 >= y1:
        return
    ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float64) + 0.5
    d = polygon_border_distance(p, xs, ys)
    val = 1.0 - np.minimum(d / distance, 1.0)
    np.maximum(canvas[y0:y1, x0:x1], val.astype(np.float32), out=canvas[y0:y1, x0:x1])


def make_db_targets(polygons: Sequence[np.ndarray], ignore, height: int, width: int, *,
                    shrink_ratio: float = 0.4, thresh_min: float = 0.3, thresh_max: float = 0.7,
                    min_text_size: float = 0.0) -> Dict[str, np.ndarray]:
    """DB targets for one image of ``height x width`` pixels.

    Args:
        polygons: list of ``(N_i, 2)`` arrays (pixels, continuous coordinates).
        ignore: (M,) bool, True for don't-care instances.
        shrink_ratio: ``r`` in ``D = A (1 - r^2) / L``.
        thresh_min, thresh_max: range of the threshold map.
        min_text_size: polygons whose minimum-area rectangle has a shorter side below this (pixels) are ignored.

    Returns:
        dict of (H, W) float32 arrays: ``prob``, ``prob_mask``, ``thresh``, ``thresh_mask`` (see module docstring).
    """
    ignore = np.zeros(len(polygons), dtype=bool) if ignore is None else np.asarray(ignore, dtype=bool)
    if len(ignore) != len(polygons):
        raise ValueError(f"{len(polygons)} polygons but {len(ignore)} ignore flags")
    prob = np.zeros((height, width), dtype=np.float32)
    prob_mask = np.ones((height, width), dtype=np.float32)
    border = np.zeros((height, width), dtype=np.float32)
    thresh_mask = np.zeros((height, width), dtype=np.float32)
    for poly, ign in zip(polygons, ignore):
        poly = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(poly) < 3:
            continue
        shape = Polygon(poly)
        if not shape.is_valid:  # self-intersecting: use its valid version's area, perimeter and offsets
            shape = shape.buffer(0)
        degenerate = shape.area < 1e-6 or _short_side(poly) < min_text_size
        if ign or degenerate:
            fill_polygon(prob_mask, poly, 0.0)
            continue
        distance = float(shape.area * (1.0 - shrink_ratio * shrink_ratio) / shape.length)
        shrunk = _parts(shape.buffer(-distance, join_style=MITRE, mitre_limit=MITRE_LIMIT))
        rasters = [polygon_mask(part, height, width) for part in shrunk]
        if not any(m.any() for _, _, m in rasters):  # shrunk to nothing, or to no pixel centre
            fill_polygon(prob_mask, poly, 0.0)
            continue
        for y0, x0, m in rasters:
            if m.size:
                prob[y0:y0 + m.shape[0], x0:x0 + m.shape[1]][m] = 1.0
        if distance > 0:
            for part in _parts(shape.buffer(distance, join_style=MITRE, mitre_limit=MITRE_LIMIT)):
                fill_polygon(thresh_mask, part, 1.0)
            _draw_threshold(border, poly, distance)
    thresh = (border * (thresh_max - thresh_min) + thresh_min).astype(np.float32)
    return {"prob": prob, "prob_mask": prob_mask, "thresh": thresh, "thresh_mask": thresh_mask}
