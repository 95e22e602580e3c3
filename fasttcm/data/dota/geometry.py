"""Geometry of DOTA quadrilaterals, vectorized with numpy (and shapely 2 where polygons are not convex).

Conventions (all coordinates in pixels, image axes: x to the right, y down):

* A **quad** is 4 corners ``(4, 2)``; arrays of quads are ``(N, 4, 2)`` float64 (``(N, 8)`` is accepted as
  ``x1 y1 x2 y2 x3 y3 x4 y4``). DOTA writes its corners clockwise as seen on the image; nothing here depends on
  the order or orientation of the corners.
* A **rotated box** is ``(cx, cy, w, h, a)``, Detectron2's ``BoxMode.XYWHA_ABS``: centre, width, height, and the
  angle ``a`` in degrees by which the box is turned **counter-clockwise as seen on the image**, as in
  ``detectron2.structures.RotatedBoxes``: the width runs along ``(cos a, -sin a)`` and the height along
  ``(sin a, cos a)``.

:func:`quads_to_rboxes` returns each quad's **minimum-area enclosing rectangle** in a canonical form: ``w >= h``
(``w`` is the long side) and ``a`` in ``[-90, 90)``; a square gets ``a`` in ``[-45, 45)``. For a quad that is
already a rectangle (what detectors output, what most DOTA labels are) this is the rectangle itself.

:func:`quad_iou_pairs` is the polygon IoU ``area(P ∩ Q) / area(P ∪ Q)`` of pairs of quads, exact up to float
rounding. Convex pairs (every rectangle, nearly every DOTA label) use a vectorized numpy path: the intersection of
two convex polygons is the convex hull of the corners of each lying inside the other and of the crossings of their
edges; its area is the shoelace sum of those points sorted by angle around their mean. Pairs with a non-convex or
self-intersecting quad go to shapely (a self-intersecting "bow tie" is first repaired by ``shapely.make_valid``,
i.e. read as the union of its two lobes). :func:`overlap_pairs` finds the pairs worth computing (axis-aligned
boxes overlapping, within the same group, e.g. same image and class) with a shapely ``STRtree``, and
:func:`poly_nms` is greedy polygon NMS built on both.

Why polygon NMS rather than rotated-box NMS (``fasttcm.layers.batched_nms_rotated``) for merging: merging and
evaluation work on 4-point polygons, and while a detector's quads are rectangles, Task1 files from elsewhere and
ground truth used as detections are not always; turning a non-rectangular quad into a rotated box would change
its IoU. The functions here are exact for any quad, need no torch, and are fast enough on a CPU (see
``tools/benchmark_dota.py``).
"""
from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

__all__ = [
    "as_quads",
    "signed_areas",
    "quad_areas",
    "is_convex",
    "quads_to_rboxes",
    "rboxes_to_quads",
    "quad_aabbs",
    "quad_iou_pairs",
    "PreparedQuads",
    "indexed_ious",
    "iou_upper_bounds",
    "overlap_pairs",
    "poly_nms",
]

#: a point counts as inside a polygon when it is at most this far outside (pixels, after moving the pair's origin
#: to one of its corners), so corners shared by two quads are found in both
_INSIDE_TOL = 1e-7
#: edges whose directions differ by less than this sine are treated as parallel (their crossing is not computed;
#: the corners that bound their overlap are found by the inside tests)
_PARALLEL_SIN = 1e-10
#: number of pairs processed at once by the numpy path (bounds memory: about 1.5 KB per pair)
_CHUNK = 16384


def as_quads(quads) -> np.ndarray:
    """``(N, 8)``, ``(N, 4, 2)``, ``(8,)`` or ``(4, 2)`` -> ``(N, 4, 2)`` float64 (a copy only when needed)."""
    q = np.asarray(quads, dtype=np.float64)
    if q.size == 0:
        return q.reshape(0, 4, 2)
    if q.shape[-2:] == (4, 2):
        return q.reshape(-1, 4, 2)
    if q.shape[-1] == 8:
        return q.reshape(-1, 4, 2)
    raise ValueError(f"expected quads of shape (N, 8) or (N, 4, 2), got {q.shape}")


def _cross(ax, ay, bx, by):
    return ax * by - ay * bx


def signed_areas(quads) -> np.ndarray:
    """Shoelace areas ``(N,)``: positive when the corners run clockwise as seen on the image (y down)."""
    q = as_quads(quads)
    x, y = q[..., 0], q[..., 1]
    x0, y0 = x[:, :1], y[:, :1]  # relative to the first corner: exact for integer corners, less cancellation
    x, y = x - x0, y - y0
    return 0.5 * np.sum(x * np.roll(y, -1, axis=1) - np.roll(x, -1, axis=1) * y, axis=1)


def quad_areas(quads) -> np.ndarray:
    """Absolute shoelace areas ``(N,)`` (pixels²). For a self-intersecting quad this is the difference of its two
    lobes; such quads are rare in DOTA and :func:`quad_iou_pairs` does not use this for them."""
    return np.abs(signed_areas(quads))


def is_convex(quads) -> np.ndarray:
    """``(N,)`` bool: the quad is convex and not self-intersecting (degenerate, collinear corners count as
    convex). Corners may run either way round."""
    q = as_quads(quads)
    e = np.roll(q, -1, axis=1) - q
    en = np.roll(e, -1, axis=1)
    c = _cross(e[..., 0], e[..., 1], en[..., 0], en[..., 1])
    scale = np.maximum(np.abs(e).max(axis=(1, 2)), 1e-300) ** 2
    tol = 1e-12 * scale[:, None]
    same_turn = np.all(c >= -tol, axis=1) | np.all(c <= tol, axis=1)
    # and the diagonals cross (each pair of opposite corners on both sides of the other diagonal): rules out
    # self-intersecting orders even in degenerate, nearly collinear cases where the turn signs are unreliable
    d1 = q[:, 2] - q[:, 0]
    d2 = q[:, 3] - q[:, 1]
    s1 = _cross(d1[:, 0], d1[:, 1], q[:, 1, 0] - q[:, 0, 0], q[:, 1, 1] - q[:, 0, 1])
    s3 = _cross(d1[:, 0], d1[:, 1], q[:, 3, 0] - q[:, 0, 0], q[:, 3, 1] - q[:, 0, 1])
    s0 = _cross(d2[:, 0], d2[:, 1], q[:, 0, 0] - q[:, 1, 0], q[:, 0, 1] - q[:, 1, 1])
    s2 = _cross(d2[:, 0], d2[:, 1], q[:, 2, 0] - q[:, 1, 0], q[:, 2, 1] - q[:, 1, 1])
    tol1 = 1e-12 * scale
    diagonals_cross = (s1 * s3 <= tol1 * tol1) & (s0 * s2 <= tol1 * tol1)
    return same_turn & diagonals_cross


# --------------------------------------------------------------------------------------------- rotated boxes
def quads_to_rboxes(quads) -> np.ndarray:
    """Minimum-area enclosing rectangle of each quad as ``(N, 5)`` rotated boxes ``(cx, cy, w, h, a)``.

    Canonical form: ``w >= h``, ``a`` in degrees in ``[-90, 90)``, counter-clockwise as seen on the image
    (Detectron2's ``XYWHA_ABS``); when ``w == h`` (to 1e-9 relative), ``a`` is in ``[-45, 45)``. The rectangle has
    one side along a line through two of the corners (an edge of their convex hull); the 6 lines through pairs of
    corners are tried. Quads whose corners all coincide give ``(x, y, 0, 0, 0)``.
    """
    q = as_quads(quads)
    n = len(q)
    if n == 0:
        return np.zeros((0, 5), dtype=np.float64)
    origin = q[:, :1, :]
    p = q - origin  # (N, 4, 2)
    pairs = ((0, 1), (1, 2), (2, 3), (3, 0), (0, 2), (1, 3))
    d = np.stack([p[:, j] - p[:, i] for i, j in pairs], axis=1)  # (N, 6, 2)
    length = np.hypot(d[..., 0], d[..., 1])
    ok = length > 0
    u = np.where(ok[..., None], d / np.where(ok, length, 1.0)[..., None], np.array([1.0, 0.0]))
    # projections of the 4 corners on each candidate direction and on its normal (-uy, ux)
    pu = np.einsum("nkc,npc->nkp", u, p)  # (N, 6, 4)
    pv = u[..., 0:1] * p[:, None, :, 1] - u[..., 1:2] * p[:, None, :, 0]
    ext_u = pu.max(-1) - pu.min(-1)
    ext_v = pv.max(-1) - pv.min(-1)
    area = np.where(ok, ext_u * ext_v, np.inf)
    k = np.argmin(area, axis=1)  # first of equal areas
    rows = np.arange(n)
    ub = u[rows, k]
    w = ext_u[rows, k]
    h = ext_v[rows, k]
    cu = 0.5 * (pu[rows, k].max(-1) + pu[rows, k].min(-1))
    cv = 0.5 * (pv[rows, k].max(-1) + pv[rows, k].min(-1))
    # centre back in image coordinates: cu * u + cv * (-uy, ux)
    cx = origin[:, 0, 0] + cu * ub[:, 0] - cv * ub[:, 1]
    cy = origin[:, 0, 1] + cu * ub[:, 1] + cv * ub[:, 0]
    # angle of u, counter-clockwise as seen (y down): u = (cos a, -sin a)
    a = np.degrees(np.arctan2(-ub[:, 1], ub[:, 0]))
    swap = h > w
    w, h = np.where(swap, h, w), np.where(swap, w, h)
    a = np.where(swap, a + 90.0, a)
    square = np.abs(w - h) <= 1e-9 * np.maximum(w, 1e-300)
    a = np.where(square, np.mod(a + 45.0, 90.0) - 45.0, np.mod(a + 90.0, 180.0) - 90.0)
    # mod can round up to the excluded end of the range
    a = np.where(square & (a >= 45.0), a - 90.0, a)
    a = np.where(~square & (a >= 90.0), a - 180.0, a)
    all_same = ~ok.any(axis=1)
    out = np.stack([cx, cy, w, h, a], axis=1)
    out[all_same, 2:] = 0.0
    return out


def rboxes_to_quads(boxes) -> np.ndarray:
    """``(N, 5)`` rotated boxes ``(cx, cy, w, h, a)`` (``XYWHA_ABS``) -> ``(N, 4, 2)`` corners.

    Corner order: the box's own top-left, top-right, bottom-right, bottom-left before rotation, i.e. clockwise as
    seen on the image (the order DOTA writes); for ``a = 0`` the first corner is the top-left one.
    """
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    cx, cy, w, h, a = b.T
    t = np.radians(a)
    c, s = np.cos(t), np.sin(t)
    out = np.empty((len(b), 4, 2), dtype=np.float64)
    for j, (su, sv) in enumerate(((-0.5, -0.5), (0.5, -0.5), (0.5, 0.5), (-0.5, 0.5))):
        du, dv = su * w, sv * h  # offsets along the width and height directions
        out[:, j, 0] = cx + du * c + dv * s
        out[:, j, 1] = cy - du * s + dv * c
    return out


def quad_aabbs(quads) -> np.ndarray:
    """``(N, 4)`` axis-aligned boxes ``x_min, y_min, x_max, y_max`` of the quads."""
    q = as_quads(quads)
    if len(q) == 0:
        return np.zeros((0, 4), dtype=np.float64)
    return np.concatenate([q.min(axis=1), q.max(axis=1)], axis=1)


# ----------------------------------------------------------------------------------------------- polygon IoU
_II = np.repeat(np.arange(4), 4)  # edge i of P for each of the 16 edge pairs
_JJ = np.tile(np.arange(4), 4)  # edge j of Q
_NEXT = np.array([1, 2, 3, 0])


def _convex_inter_areas(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    """Intersection areas of convex quads ``P[i]`` and ``Q[i]`` (both (M, 4, 2), counter-clockwise in the math
    sense, origin already moved near them)."""
    m = len(P)
    px, py = P[..., 0], P[..., 1]  # (M, 4)
    qx, qy = Q[..., 0], Q[..., 1]
    pex, pey = px[:, _NEXT] - px, py[:, _NEXT] - py  # edges
    qex, qey = qx[:, _NEXT] - qx, qy[:, _NEXT] - qy
    plen, qlen = np.hypot(pex, pey), np.hypot(qex, qey)
    scale = np.maximum(np.abs(P).max(axis=(1, 2)), np.abs(Q).max(axis=(1, 2)))
    tol = (_INSIDE_TOL * (1.0 + scale))[:, None]  # (M, 1)

    def inside(x, y, vx, vy, ex, ey, length):
        # points (x, y) (M, 4) left of (or within tol of) every edge of the convex polygon v (M, 4) with edges e
        ok = np.ones(x.shape, dtype=bool)
        for j in range(4):
            c = ex[:, j : j + 1] * (y - vy[:, j : j + 1]) - ey[:, j : j + 1] * (x - vx[:, j : j + 1])
            ok &= c >= -tol * length[:, j : j + 1]
        return ok

    # crossings of edge i of P with edge j of Q: p_i + t pe_i = q_j + s qe_j, all 16 pairs as (M, 16) arrays.
    # Parallel edges are skipped (the corners bounding their overlap are found by the inside tests); a crossing
    # within both edges is on the boundary of both polygons, so it needs no inside test.
    rx, ry, ax, ay = pex[:, _II], pey[:, _II], px[:, _II], py[:, _II]
    vx, vy = qex[:, _JJ], qey[:, _JJ]
    bax, bay = qx[:, _JJ] - ax, qy[:, _JJ] - ay
    denom = rx * vy - ry * vx
    ok = np.abs(denom) > _PARALLEL_SIN * plen[:, _II] * qlen[:, _JJ]
    denom[~ok] = 1.0
    t = (bax * vy - bay * vx) / denom
    s = (bax * ry - bay * rx) / denom
    eps = 1e-9
    ok &= (t >= -eps) & (t <= 1 + eps) & (s >= -eps) & (s <= 1 + eps)
    x = np.concatenate([px, qx, ax + t * rx], axis=1)  # (M, 24) candidate corners of the intersection
    y = np.concatenate([py, qy, ay + t * ry], axis=1)
    valid = np.concatenate(
        [inside(px, py, qx, qy, qex, qey, qlen), inside(qx, qy, px, py, pex, pey, plen), ok], axis=1
    )
    count = valid.sum(axis=1)
    w = valid.astype(np.float64)
    n = np.maximum(count, 1)[:, None]
    cx = (x * w).sum(axis=1, keepdims=True) / n
    cy = (y * w).sum(axis=1, keepdims=True) / n
    ang = np.arctan2(y - cy, x - cx)
    ang[~valid] = np.inf  # invalid points go last ...
    order = np.argsort(ang, axis=1)  # equal angles only for coinciding points: their order does not matter
    order += (np.arange(m) * 24)[:, None]
    sx, sy, sv = x.ravel()[order], y.ravel()[order], valid.ravel()[order]
    sx = np.where(sv, sx, sx[:, :1])  # ... as copies of the first point: zero-length closing edges
    sy = np.where(sv, sy, sy[:, :1])
    area = np.sum(sx[:, :-1] * sy[:, 1:] - sx[:, 1:] * sy[:, :-1], axis=1) + sx[:, -1] * sy[:, 0] - sx[:, 0] * sy[:, -1]
    area *= 0.5
    return np.where(count >= 3, np.abs(area), 0.0)


def _shapely_ious(P: np.ndarray, Q: np.ndarray) -> np.ndarray:
    import shapely

    gp = shapely.make_valid(shapely.polygons(P))
    gq = shapely.make_valid(shapely.polygons(Q))
    inter = shapely.area(shapely.intersection(gp, gq))
    union = shapely.area(gp) + shapely.area(gq) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


class PreparedQuads:
    """Quads with what every IoU needs computed once: corners made counter-clockwise in the math sense
    (``quads``), ``areas`` (shoelace; for non-convex quads the area of their ``shapely.make_valid`` polygon),
    ``convex`` flags and axis-aligned boxes ``aabbs``."""

    __slots__ = ("quads", "areas", "convex", "aabbs")

    def __init__(self, quads):
        q = as_quads(quads)
        sa = signed_areas(q)
        self.quads = np.where((sa < 0)[:, None, None], q[:, ::-1], q)
        self.areas = np.abs(sa)
        self.convex = is_convex(q)
        self.aabbs = quad_aabbs(q)
        nc = np.nonzero(~self.convex)[0]
        if len(nc):  # the area of what shapely reads (a bow tie's two lobes), as the IoU of such quads uses
            import shapely

            self.areas[nc] = shapely.area(shapely.make_valid(shapely.polygons(q[nc])))

    def __len__(self) -> int:
        return len(self.quads)


def iou_upper_bounds(A: PreparedQuads, ia: np.ndarray, B: PreparedQuads, ib: np.ndarray) -> np.ndarray:
    """Cheap upper bound of the polygon IoU of pairs ``(A[ia], B[ib])`` from their axis-aligned boxes and areas:
    with ``m = min(area of the boxes' intersection, area_a, area_b)``, ``IoU <= m / (area_a + area_b - m)``."""
    a, b = A.aabbs[ia], B.aabbs[ib]
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    aa, ab = A.areas[ia], B.areas[ib]
    m = np.minimum(np.clip(iw, 0, None) * np.clip(ih, 0, None), np.minimum(aa, ab))
    den = aa + ab - m
    return np.where(den > 0, m / np.where(den > 0, den, 1.0), 0.0)


def indexed_ious(A: PreparedQuads, ia, B: PreparedQuads, ib) -> np.ndarray:
    """Polygon IoU of the pairs ``(A.quads[ia[k]], B.quads[ib[k]])``: ``(len(ia),)`` float64."""
    ia = np.asarray(ia, dtype=np.int64)
    ib = np.asarray(ib, dtype=np.int64)
    out = np.zeros(len(ia), dtype=np.float64)
    if len(ia) == 0:
        return out
    convex = A.convex[ia] & B.convex[ib]
    idx = np.nonzero(convex)[0]
    for lo in range(0, len(idx), _CHUNK):
        sel = idx[lo : lo + _CHUNK]
        p, q = A.quads[ia[sel]], B.quads[ib[sel]]
        origin = p[:, :1, :]
        inter = _convex_inter_areas(p - origin, q - origin)  # moved origin: exact for integer corners
        area_p, area_q = A.areas[ia[sel]], B.areas[ib[sel]]
        inter = np.minimum(inter, np.minimum(area_p, area_q))
        union = area_p + area_q - inter
        out[sel] = np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)
    rest = np.nonzero(~convex)[0]
    if len(rest):
        out[rest] = _shapely_ious(A.quads[ia[rest]], B.quads[ib[rest]])
    return out


def quad_iou_pairs(P, Q) -> np.ndarray:
    """Polygon IoU of ``P[i]`` and ``Q[i]`` for each ``i``: ``(M,)`` float64 in ``[0, 1]``.

    ``P`` and ``Q`` are ``(M, 4, 2)`` (or ``(M, 8)``) quads, in any corner order or orientation. IoU is 0 when the
    union has zero area. Convex pairs: numpy (see the module docstring); others: shapely.
    """
    P, Q = as_quads(P), as_quads(Q)
    if P.shape != Q.shape:
        raise ValueError(f"quad_iou_pairs needs arrays of equal length, got {P.shape} and {Q.shape}")
    idx = np.arange(len(P))
    return indexed_ious(PreparedQuads(P), idx, PreparedQuads(Q), idx)


# ---------------------------------------------------------------------------------------- pairs and NMS
def overlap_pairs(
    boxes_a: np.ndarray,
    groups_a: Optional[np.ndarray] = None,
    boxes_b: Optional[np.ndarray] = None,
    groups_b: Optional[np.ndarray] = None,
) -> Tuple[np.ndarray, np.ndarray]:
    """Index pairs ``(i, j)`` whose axis-aligned boxes (``x_min, y_min, x_max, y_max``) overlap or touch and whose
    groups are equal (integer group ids, e.g. image * num_classes + class; ``None`` = one group).

    With ``boxes_b`` omitted, pairs within ``boxes_a`` with ``i < j``. Returned sorted by ``i`` then ``j``. Any
    pair of polygons with a positive-area intersection is among them.
    """
    import shapely

    A = np.asarray(boxes_a, dtype=np.float64).reshape(-1, 4)
    self_pairs = boxes_b is None
    B = A if self_pairs else np.asarray(boxes_b, dtype=np.float64).reshape(-1, 4)
    ga = np.zeros(len(A), dtype=np.int64) if groups_a is None else np.asarray(groups_a, dtype=np.int64)
    if self_pairs:
        gb = ga
    else:
        gb = np.zeros(len(B), dtype=np.int64) if groups_b is None else np.asarray(groups_b, dtype=np.int64)
    empty = (np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    if len(A) == 0 or len(B) == 0:
        return empty
    # move each group to its own strip along x so that boxes of different groups never overlap
    lo = min(A[:, 0].min(), B[:, 0].min())
    hi = max(A[:, 2].max(), B[:, 2].max())
    stride = (hi - lo) + 16.0
    gid, inv = np.unique(np.concatenate([ga, gb]), return_inverse=True)
    shift_a = (inv[: len(A)] * stride - lo).astype(np.float64)
    shift_b = (inv[len(A) :] * stride - lo).astype(np.float64)
    ba = shapely.box(A[:, 0] + shift_a, A[:, 1], A[:, 2] + shift_a, A[:, 3])
    bb = ba if self_pairs else shapely.box(B[:, 0] + shift_b, B[:, 1], B[:, 2] + shift_b, B[:, 3])
    tree = shapely.STRtree(bb)
    ia, ib = tree.query(ba, predicate="intersects")
    ia, ib = ia.astype(np.int64), ib.astype(np.int64)
    keep = ga[ia] == gb[ib]  # guards against the (theoretical) float overlap of neighbouring strips
    if self_pairs:
        keep &= ia < ib
    ia, ib = ia[keep], ib[keep]
    order = np.lexsort((ib, ia))
    return ia[order], ib[order]


def poly_nms(quads, scores, groups: Optional[np.ndarray] = None, iou_thr: float = 0.1) -> np.ndarray:
    """Greedy polygon NMS, independently within each group: indices of the kept quads.

    Quads are visited by score, highest first, **ties in input order** (stable sort); a visited quad that was not
    suppressed is kept and suppresses every later quad of its group whose polygon IoU with it is strictly greater
    than ``iou_thr``. Returns kept indices in visiting order (score descending, stable).
    """
    q = as_quads(quads)
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    n = len(q)
    if len(s) != n:
        raise ValueError(f"poly_nms: {n} quads but {len(s)} scores")
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(-s, kind="stable")
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(n)
    prep = PreparedQuads(q)
    ia, ib = overlap_pairs(prep.aabbs, groups)
    if len(ia):
        maybe = iou_upper_bounds(prep, ia, prep, ib) > iou_thr
        ia, ib = ia[maybe], ib[maybe]
        hit = indexed_ious(prep, ia, prep, ib) > iou_thr
        ia, ib = ia[hit], ib[hit]
    if len(ia) == 0:
        return order
    # direct each suppressing edge from the better-ranked quad to the worse one, in rank space
    ra, rb = rank[ia], rank[ib]
    hi_r, lo_r = np.minimum(ra, rb), np.maximum(ra, rb)
    srt = np.argsort(hi_r, kind="stable")
    hi_r, lo_r = hi_r[srt], lo_r[srt]
    starts = np.searchsorted(hi_r, np.arange(n + 1))
    suppressed = np.zeros(n, dtype=bool)
    involved = np.zeros(n, dtype=bool)
    involved[hi_r] = True
    for r in np.nonzero(involved)[0].tolist():
        if not suppressed[r]:
            suppressed[lo_r[starts[r] : starts[r + 1]]] = True
    return order[~suppressed]
