"""Polygon validation and repair for text annotations (pure numpy + shapely, reusable by any module).

Conventions
-----------
* A polygon is an ``(N, 2)`` float64 array of ``(x, y)`` vertices in **pixels**, image coordinates (x to the right,
  y downwards), continuous coordinates in which pixel ``(i, j)`` covers ``[i, i+1] x [j, j+1]``. The closing vertex
  is not repeated. Flat lists ``[x1, y1, x2, y2, ...]`` (Detectron2's ``segmentation`` entries) convert with
  :func:`as_points` / :func:`flatten`.
* **Clockwise in image coordinates** (top-left -> top-right -> bottom-right -> bottom-left, the ICDAR 2015 and
  Total-Text order) means a **positive** shoelace area with y pointing down (:func:`signed_area`).

:func:`repair_polygon` is what the dataset loaders use: it returns the polygon unchanged when it is valid, a repaired
polygon (with the reason) when it is not, or ``None`` (with the reason) when nothing usable is left. Callers must
report repairs and drops; this module never logs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
from shapely import make_valid
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

__all__ = [
    "RepairResult",
    "as_points",
    "flatten",
    "signed_area",
    "is_clockwise",
    "bbox_xywh",
    "drop_repeated_vertices",
    "repair_polygon",
    "polygons_union_contains",
]

#: polygons with an area below this (pixels^2) after repair are dropped
MIN_AREA = 1e-6


@dataclass(frozen=True)
class RepairResult:
    """Outcome of :func:`repair_polygon`.

    ``status`` is ``"ok"`` (``points`` is the input, repeated consecutive vertices removed), ``"repaired"``
    (``points`` is a corrected polygon, ``reason`` says what was wrong) or ``"dropped"`` (``points`` is ``None``).
    """

    points: Optional[np.ndarray]
    status: str
    reason: str = ""


def as_points(poly) -> np.ndarray:
    """``[x1, y1, x2, y2, ...]`` or ``[[x, y], ...]`` -> ``(N, 2)`` float64 array (raises ``ValueError`` if odd)."""
    a = np.asarray(poly, dtype=np.float64)
    if a.ndim == 2 and a.shape[1] == 2:
        return a.copy()
    a = a.reshape(-1)
    if a.size % 2:
        raise ValueError(f"odd number of polygon coordinates ({a.size})")
    return a.reshape(-1, 2)


def flatten(points: np.ndarray) -> list:
    """``(N, 2)`` array -> flat Python float list ``[x1, y1, x2, y2, ...]`` (Detectron2 ``segmentation`` entry)."""
    return [float(v) for v in np.asarray(points, dtype=np.float64).reshape(-1)]


def signed_area(points: np.ndarray) -> float:
    """Shoelace area in pixels^2; positive when the vertices run clockwise in image coordinates (y down)."""
    p = np.asarray(points, dtype=np.float64)
    x, y = p[:, 0], p[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def is_clockwise(points: np.ndarray) -> bool:
    """True when the polygon runs clockwise in image coordinates (see module docstring)."""
    return signed_area(points) > 0


def bbox_xywh(points: np.ndarray) -> list:
    """Axis-aligned box ``[x, y, w, h]`` (pixels, ``BoxMode.XYWH_ABS``) enclosing the polygon."""
    p = np.asarray(points, dtype=np.float64)
    x0, y0 = p.min(axis=0)
    x1, y1 = p.max(axis=0)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def drop_repeated_vertices(points: np.ndarray) -> np.ndarray:
    """Remove vertices equal to their predecessor (cyclically, so a repeated closing vertex goes too)."""
    p = np.asarray(points, dtype=np.float64)
    if len(p) < 2:
        return p
    keep = np.any(p != np.roll(p, 1, axis=0), axis=1)
    if not keep.any():  # all identical
        return p[:1]
    return p[keep]


def _largest_polygon(geom: BaseGeometry) -> Optional[Polygon]:
    if isinstance(geom, Polygon):
        parts = [geom]
    elif hasattr(geom, "geoms"):
        parts = []
        for g in geom.geoms:
            if isinstance(g, Polygon):
                parts.append(g)
            elif isinstance(g, MultiPolygon):
                parts.extend(g.geoms)
    else:
        parts = []
    parts = [p for p in parts if not p.is_empty and p.area > MIN_AREA]
    return max(parts, key=lambda p: p.area) if parts else None


def _exterior_points(poly: Polygon) -> np.ndarray:
    """Exterior ring of a shapely polygon as an open, clockwise (image coordinates) ``(N, 2)`` array."""
    p = drop_repeated_vertices(np.asarray(poly.exterior.coords, dtype=np.float64)[:-1])
    return p if signed_area(p) > 0 else p[::-1].copy()


def repair_polygon(points, min_area: float = MIN_AREA) -> RepairResult:
    """Validate a text polygon and repair it if possible.

    Rules, in order:

    1. non-finite coordinates -> dropped (loaders reject NaN/inf earlier with a ``ValueError``);
    2. repeated consecutive vertices are removed silently (the shape is unchanged);
    3. fewer than 3 distinct vertices, or zero area (all collinear) -> dropped;
    4. a simple (valid) polygon -> ``"ok"``, vertex order kept (it carries reading direction);
    5. a self-intersecting quadrilateral whose convex hull has 4 vertices (vertices listed in the wrong order, the
       usual annotation slip) -> ``"repaired"`` as that hull, clockwise;
    6. anything else invalid -> ``shapely.make_valid``, keep the largest polygon's exterior, clockwise ->
       ``"repaired"``; nothing left with area > ``min_area`` -> dropped.
    """
    try:
        p = as_points(points)
    except ValueError as e:
        return RepairResult(None, "dropped", str(e))
    if not np.all(np.isfinite(p)):
        return RepairResult(None, "dropped", "non-finite coordinate")
    p = drop_repeated_vertices(p)
    n_distinct = len(np.unique(p, axis=0))
    if n_distinct < 3:
        return RepairResult(None, "dropped", f"only {n_distinct} distinct point(s)")
    poly = Polygon(p)
    if poly.convex_hull.area <= min_area:
        return RepairResult(None, "dropped", "zero area (collinear points)")
    if poly.is_valid and poly.area > min_area:
        return RepairResult(p, "ok")
    if len(p) == 4:
        hull = poly.convex_hull
        if isinstance(hull, Polygon) and len(hull.exterior.coords) - 1 == 4:
            return RepairResult(_exterior_points(hull), "repaired", "self-intersecting quadrilateral reordered")
    best = _largest_polygon(make_valid(poly))
    if best is None or best.area <= min_area:
        return RepairResult(None, "dropped", "invalid polygon with no area left after make_valid")
    return RepairResult(
        _exterior_points(best),
        "repaired",
        f"invalid polygon (self-intersection) fixed by make_valid, kept largest part "
        f"({best.area:.1f} of {poly.convex_hull.area:.1f} px^2 hull)",
    )


def polygons_union_contains(polys: Sequence[np.ndarray], xy: np.ndarray) -> np.ndarray:
    """Boolean mask: which of the points ``xy`` (M, 2) lie inside (or on) the union of ``polys``."""
    import shapely

    if not len(polys):
        return np.zeros(len(xy), dtype=bool)
    union = shapely.union_all([Polygon(p) for p in polys])
    return shapely.covers(union, shapely.points(np.asarray(xy, dtype=np.float64)))
