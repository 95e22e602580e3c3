"""Polygons as ``(N, 2)`` numpy arrays: conversions, orientation, ordering, validation and repair, shapely parts,
offsetting, enclosing boxes (numpy + shapely).

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

Offsetting (:func:`offset_polygon`) is shapely's ``buffer`` with mitre joins: every edge moves by exactly the
distance (what DB computes with pyclipper); :func:`shrink_distance` and :func:`unclip` are DB's two uses of it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
import shapely
from shapely import make_valid
from shapely.geometry import Polygon
from shapely.geometry.base import BaseGeometry

__all__ = [
    "RepairResult",
    "PolygonList",
    "MIN_AREA",
    "MITRE",
    "MITRE_LIMIT",
    "to_numpy",
    "as_points",
    "flatten",
    "signed_area",
    "is_clockwise",
    "sort_clockwise_by_angle",
    "order_quad_clockwise",
    "bbox_xywh",
    "polygons_to_boxes",
    "drop_repeated_vertices",
    "polygon_parts",
    "exterior",
    "largest_polygon",
    "polygonal_union",
    "repair_polygon",
    "offset_polygon",
    "shrink_distance",
    "unclip",
]

#: polygons with an area below this (pixels^2) after repair are dropped
MIN_AREA = 1e-6
#: shapely join style (mitre) and the mitre limit (ratio of mitre length to offset) beyond which corners bevel
MITRE = "mitre"
MITRE_LIMIT = 5.0


@dataclass(frozen=True)
class RepairResult:
    """Outcome of :func:`repair_polygon`.

    ``status`` is ``"ok"`` (``points`` is the input, repeated consecutive vertices removed), ``"repaired"``
    (``points`` is a corrected polygon, ``reason`` says what was wrong) or ``"dropped"`` (``points`` is ``None``).
    """

    points: Optional[np.ndarray]
    status: str
    reason: str = ""


class PolygonList(list):
    """A list of ``(N_i, 2)`` float32 polygons that ``Instances`` can index like a tensor field (``pred_polygons``).

    Indexing with an int gives one polygon; a slice, a bool / int tensor or array, or a list of ints gives a
    ``PolygonList`` (so ``instances[instances.scores > 0.5]`` works); ``cat`` keeps the type.
    """

    def __getitem__(self, item):
        if isinstance(item, (int, np.integer)):
            return list.__getitem__(self, int(item))
        if isinstance(item, slice):
            return PolygonList(list.__getitem__(self, item))
        idx = to_numpy(item)
        if idx.dtype == bool:
            if idx.shape != (len(self),):
                raise IndexError(f"boolean index of shape {idx.shape} for {len(self)} polygons")
            idx = np.flatnonzero(idx)
        return PolygonList(list.__getitem__(self, int(i)) for i in idx.reshape(-1))

    @staticmethod
    def cat(lists: Sequence["PolygonList"]) -> "PolygonList":
        return PolygonList(p for lst in lists for p in lst)


def to_numpy(x, dtype=None) -> np.ndarray:
    """A numpy array of a torch tensor (detached, on the CPU), of a Detectron2 ``Boxes``/``RotatedBoxes`` (its
    ``tensor``), or of anything ``np.asarray`` takes; torch is never imported here."""
    if hasattr(x, "tensor") and hasattr(x.tensor, "detach"):  # Boxes / RotatedBoxes
        x = x.tensor
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x) if dtype is None else np.asarray(x, dtype=dtype)


def as_points(poly) -> np.ndarray:
    """``[x1, y1, x2, y2, ...]``, ``[[x, y], ...]`` or a tensor of either -> ``(N, 2)`` float64 array (a copy;
    raises ``ValueError`` for an odd number of coordinates)."""
    a = to_numpy(poly, np.float64)
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


def sort_clockwise_by_angle(polygons: np.ndarray) -> np.ndarray:
    """``(N, k, 2)`` polygons with each one's vertices sorted by their angle around the vertices' mean, which with y
    down runs clockwise on the image (a stable sort: equal angles keep their order)."""
    q = np.asarray(polygons, dtype=np.float64)
    c = q.mean(axis=1, keepdims=True)
    order = np.argsort(np.arctan2(q[..., 1] - c[..., 1], q[..., 0] - c[..., 0]), axis=1, kind="stable")
    return np.take_along_axis(q, order[..., None], axis=1)


def order_quad_clockwise(points: np.ndarray) -> np.ndarray:
    """4 corners of a convex quadrilateral -> clockwise in image coordinates (y down), starting from the corner
    with the smallest ``x + y`` (ties: smallest x): the layout DB's quadrilateral output and ICDAR 2015 files use.
    Returns (4, 2) float32."""
    p = sort_clockwise_by_angle(np.asarray(points, dtype=np.float64).reshape(1, 4, 2))[0]
    key = np.round(p.sum(axis=1), 6) * 1e6 + p[:, 0]
    start = int(np.argmin(key))
    return np.roll(p, -start, axis=0).astype(np.float32)


def bbox_xywh(points: np.ndarray) -> list:
    """Axis-aligned box ``[x, y, w, h]`` (pixels, ``BoxMode.XYWH_ABS``) enclosing the polygon."""
    p = np.asarray(points, dtype=np.float64)
    x0, y0 = p.min(axis=0)
    x1, y1 = p.max(axis=0)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def polygons_to_boxes(polygons: Sequence[np.ndarray]) -> np.ndarray:
    """(N, 4) XYXY axis-aligned boxes enclosing each ``(n_i, 2)`` polygon (float32)."""
    if not len(polygons):
        return np.zeros((0, 4), dtype=np.float32)
    return np.array([[p[:, 0].min(), p[:, 1].min(), p[:, 0].max(), p[:, 1].max()] for p in polygons],
                    dtype=np.float32)


def drop_repeated_vertices(points: np.ndarray) -> np.ndarray:
    """Remove vertices equal to their predecessor (cyclically, so a repeated closing vertex goes too)."""
    p = np.asarray(points, dtype=np.float64)
    if len(p) < 2:
        return p
    keep = np.any(p != np.roll(p, 1, axis=0), axis=1)
    if not keep.any():  # all identical
        return p[:1]
    return p[keep]


def polygon_parts(geom: BaseGeometry, min_area: Optional[float] = None) -> List[Polygon]:
    """The non-empty polygons in a shapely result (a Polygon, MultiPolygon or GeometryCollection, nested in any
    depth), in order; with ``min_area`` only those whose area exceeds it. Lines and points are left out."""
    out: List[Polygon] = []

    def visit(g):
        if g.is_empty:
            return
        if isinstance(g, Polygon):
            if min_area is None or g.area > min_area:
                out.append(g)
        else:
            for sub in getattr(g, "geoms", ()):
                visit(sub)

    visit(geom)
    return out


def exterior(poly: Polygon) -> np.ndarray:
    """The exterior ring of a shapely polygon as an open ``(N, 2)`` float64 array, in its own vertex order."""
    return np.asarray(poly.exterior.coords, dtype=np.float64)[:-1]


def largest_polygon(geom: BaseGeometry, min_area: float = MIN_AREA) -> Optional[Polygon]:
    """The largest polygon of a shapely result with an area above ``min_area`` (the first on ties), or None."""
    parts = polygon_parts(geom, min_area)
    return max(parts, key=lambda p: p.area) if parts else None


def polygonal_union(geom: BaseGeometry) -> Optional[BaseGeometry]:
    """All polygonal parts of positive area of a shapely result as one geometry (a Polygon or MultiPolygon), or
    None when there are none (e.g. ``make_valid`` of a zero-area ring)."""
    parts = polygon_parts(geom, 0.0)
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else shapely.union_all(parts)


def _exterior_points(poly: Polygon) -> np.ndarray:
    """Exterior ring of a shapely polygon as an open, clockwise (image coordinates) ``(N, 2)`` array."""
    p = drop_repeated_vertices(exterior(poly))
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
    best = largest_polygon(make_valid(poly), MIN_AREA)
    if best is None or best.area <= min_area:
        return RepairResult(None, "dropped", "invalid polygon with no area left after make_valid")
    return RepairResult(
        _exterior_points(best),
        "repaired",
        f"invalid polygon (self-intersection) fixed by make_valid, kept largest part "
        f"({best.area:.1f} of {poly.convex_hull.area:.1f} px^2 hull)",
    )


def offset_polygon(polygon: np.ndarray, distance: float, join_style: str = MITRE,
                   mitre_limit: float = MITRE_LIMIT) -> List[np.ndarray]:
    """Offset a polygon outwards (``distance > 0``) or inwards (``< 0``) by ``|distance|`` pixels.

    Returns the exterior rings (``(N, 2)`` float64, open) of the resulting parts: empty when it shrinks to
    nothing, several when a narrow neck pinches off. Invalid input is made valid with ``buffer(0)`` first.
    """
    poly = Polygon(np.asarray(polygon, dtype=np.float64))
    if not poly.is_valid:
        poly = poly.buffer(0)
    return [exterior(p) for p in polygon_parts(poly.buffer(distance, join_style=join_style, mitre_limit=mitre_limit))]


def shrink_distance(polygon, ratio: float = 0.4) -> float:
    """DB's offset distance ``D = A (1 - ratio^2) / L`` in pixels (0 for a degenerate polygon). ``polygon``: an
    ``(N, 2)`` array or a (valid) shapely polygon, whose area and perimeter are then used as they are."""
    poly = polygon if isinstance(polygon, Polygon) else Polygon(np.asarray(polygon, dtype=np.float64))
    if poly.length <= 0:
        return 0.0
    return float(abs(poly.area) * (1.0 - ratio * ratio) / poly.length)


#: DB's unclip bevels corners beyond this mitre ratio
UNCLIP_MITRE_LIMIT = 2.0


def unclip(points: np.ndarray, ratio: float) -> np.ndarray:
    """DB's unclip: offset outwards by ``area x ratio / perimeter`` (of the polygon made valid), mitre joins up to
    :data:`UNCLIP_MITRE_LIMIT`; returns the largest part's exterior ((n, 2) float64, or empty (0, 2))."""
    poly = Polygon(points)
    if not poly.is_valid:
        poly = poly.buffer(0)
    if poly.is_empty or poly.length <= 0:
        return np.zeros((0, 2))
    grown = polygon_parts(poly.buffer(poly.area * ratio / poly.length, join_style=MITRE,
                                      mitre_limit=UNCLIP_MITRE_LIMIT))
    if not grown:
        return np.zeros((0, 2))
    return exterior(max(grown, key=lambda g: g.area))
