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

from typing import Dict, Sequence

import numpy as np
from shapely.geometry import Polygon

from ..structures.polygons import offset_polygon, shrink_distance
from ..structures.raster import fill_polygon, min_rect_short_side, polygon_border_distance, polygon_mask

__all__ = ["make_db_targets"]

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
        degenerate = shape.area < 1e-6 or min_rect_short_side(poly) < min_text_size
        if ign or degenerate:
            fill_polygon(prob_mask, poly, 0.0)
            continue
        distance = shrink_distance(shape, shrink_ratio)
        shrunk = offset_polygon(poly, -distance)
        rasters = [polygon_mask(part, height, width) for part in shrunk]
        if not any(m.any() for _, _, m in rasters):  # shrunk to nothing, or to no pixel centre
            fill_polygon(prob_mask, poly, 0.0)
            continue
        for y0, x0, m in rasters:
            if m.size:
                prob[y0:y0 + m.shape[0], x0:x0 + m.shape[1]][m] = 1.0
        if distance > 0:
            for part in offset_polygon(poly, distance):
                fill_polygon(thresh_mask, part, 1.0)
            _draw_threshold(border, poly, distance)
    thresh = (border * (thresh_max - thresh_min) + thresh_min).astype(np.float32)
    return {"prob": prob, "prob_mask": prob_mask, "thresh": thresh, "thresh_mask": thresh_mask}
