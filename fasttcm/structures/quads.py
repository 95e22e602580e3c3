"""Quadrilaterals and rotated boxes, vectorized with numpy (shapely 2 only to find overlapping boxes): rbox <-> quad
conversion, exact quad IoU, overlap search and polygon NMS (used by the DOTA tools, the rotated models, the
tiled predictor and both evaluators).

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

**Regions.** A quad stands for the region its ring encloses (even-odd, what ``shapely.make_valid`` keeps): a
convex or concave quad its interior; a self-intersecting "bow tie" the union of its two triangular lobes (so its
area is the sum of the lobes, not the shoelace sum of the ring, which is their difference); a quad without area
(collinear or coinciding corners) nothing. :func:`quad_kinds` tells which quads are which.

**IoU.** :func:`quad_iou_pairs` / :func:`indexed_ious` give ``area(P ∩ Q) / area(P ∪ Q)`` in double precision,
about 1e-13 relative: each quad is cut into at most two convex pieces (a concave quad along the diagonal from its
reflex corner, a bow tie at its crossing), and each pair of pieces is intersected by Sutherland-Hodgman clipping,
vectorized over pairs, in coordinates moved next to the pair and without any tolerance (no point outside a polygon
is counted as inside). :func:`iou_above` decides ``IoU > thr`` exactly: pairs within rounding of the threshold are
decided again in rational arithmetic (:func:`exact_pair_areas`, :class:`fractions.Fraction` on the corners' exact
binary values), so an IoU of exactly 0.5 never passes ``> 0.5``. DOTA's own C++ IoU rounds a few such pairs up;
that is not imitated. (The devkit reads a bow tie through signed shoelace sums, which has no geometric meaning;
the region above is fasttcm's definition, and the evaluator counts bow ties and warns.)

:func:`overlap_pairs` finds the pairs worth computing (axis-aligned boxes overlapping, within the same group, e.g.
same image and class) with a shapely ``STRtree``, and :func:`poly_nms` is greedy polygon NMS built on both.

Why polygon NMS rather than rotated-box NMS (``fasttcm.layers.batched_nms_rotated``) for merging: merging and
evaluation work on 4-point polygons, and while a detector's quads are rectangles, Task1 files from elsewhere and
ground truth used as detections are not always; turning a non-rectangular quad into a rotated box would change
its IoU. The functions here are exact for any quad, need no torch, and are fast enough on a CPU (see
``tools/benchmark_dota.py``).
"""
from __future__ import annotations

from fractions import Fraction
from typing import Optional, Tuple

import numpy as np

__all__ = [
    "as_quads",
    "signed_areas",
    "quads_to_rboxes",
    "rboxes_to_quads",
    "quad_aabbs",
    "QUAD_KINDS",
    "quad_kinds",
    "quad_iou_pairs",
    "PreparedQuads",
    "intersection_areas",
    "clip_areas",
    "indexed_ious",
    "iou_above",
    "iou_upper_bounds",
    "exact_pair_areas",
    "overlap_pairs",
    "poly_nms",
]

#: number of pairs clipped at once (bounds memory: about 2 KB per pair)
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
#: kinds of quadrilaterals (:func:`quad_kinds`), by the turns of their ring
CONVEX, CONCAVE, BOWTIE, DEGENERATE = 0, 1, 2, 3
QUAD_KINDS = ("convex", "concave", "bow-tie", "degenerate")


def _turns(q: np.ndarray) -> np.ndarray:
    """``(N, 4)``: ``c[:, k]`` = cross(edge k, edge k+1), the turn of the ring at corner ``k + 1``."""
    e = np.roll(q, -1, axis=1) - q
    en = np.roll(e, -1, axis=1)
    return e[..., 0] * en[..., 1] - e[..., 1] * en[..., 0]


def _classify(c: np.ndarray):
    """Kind of each quad from the signs of its 4 turns (before the zero-area test), and the masks used below."""
    pos = (c > 0).sum(axis=1)
    neg = (c < 0).sum(axis=1)
    bowtie = (pos == 2) & (neg == 2)  # a simple quad has at most one reflex corner, so 2:2 crosses itself
    concave = (np.minimum(pos, neg) == 1) & (np.maximum(pos, neg) >= 2)  # one reflex corner
    flat = (pos == 1) & (neg == 1)  # two spikes from one point (or all collinear): no area
    return pos, neg, bowtie, concave, flat


def _pieces(q: np.ndarray):
    """Split quads into at most two convex pieces with disjoint interiors whose union is the region the ring
    encloses (even-odd; what ``shapely.make_valid`` keeps): a convex quad is itself; a concave one is cut along
    the diagonal from its reflex corner; a bow tie is its two triangular lobes, which meet where its crossing
    edges cross. Triangles repeat their last corner. Every piece is oriented with a non-negative shoelace sum.

    Returns ``pieces (N, 2, 4, 2)``, ``npieces (N,)`` (1 or 2), ``piece_areas (N, 2)``, ``kind (N,)``."""
    n = len(q)
    c = _turns(q)
    pos, _, bowtie, concave, flat = _classify(c)
    pieces = np.repeat(q[:, None], 2, axis=1)
    npieces = np.ones(n, dtype=np.int64)
    kind = np.full(n, CONVEX, dtype=np.int64)
    idx = np.nonzero(concave)[0]
    if len(idx):
        cc = c[idx]
        minority = np.where((pos[idx] == 1)[:, None], cc > 0, cc < 0)
        r = (np.argmax(minority, axis=1) + 1) % 4  # the reflex corner
        rows = np.arange(len(idx))
        v = [q[idx][rows, (r + off) % 4] for off in range(4)]
        pieces[idx, 0] = np.stack([v[0], v[1], v[2], v[2]], axis=1)
        pieces[idx, 1] = np.stack([v[2], v[3], v[0], v[0]], axis=1)
        npieces[idx] = 2
        kind[idx] = CONCAVE
    idx = np.nonzero(bowtie)[0]
    if len(idx):
        qq, cc = q[idx], c[idx]
        v0, v1, v2, v3 = (qq[:, k] for k in range(4))
        # edges 0 and 2 cross when the turns at the two ends of edge 0 (corners 0 and 1) differ in sign
        e02 = (np.sign(cc[:, 3]) != np.sign(cc[:, 0]))[:, None]

        def cr(a, b):
            return a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]

        den_x, den_y = cr(v1 - v0, v3 - v2), cr(v2 - v1, v0 - v3)  # not 0 for the pair that crosses
        tx = cr(v2 - v0, v3 - v2) / np.where(den_x != 0, den_x, 1.0)  # X = v0 + tx (v1 - v0): edges 0 and 2
        ty = cr(v3 - v1, v0 - v3) / np.where(den_y != 0, den_y, 1.0)  # Y = v1 + ty (v2 - v1): edges 1 and 3
        x = v0 + tx[:, None] * (v1 - v0)
        y = v1 + ty[:, None] * (v2 - v1)
        a0 = np.where(e02, x, v0)
        pieces[idx, 0] = np.stack([a0, v1, np.where(e02, v2, y), np.where(e02, v2, y)], axis=1)
        b0 = np.where(e02, x, y)
        pieces[idx, 1] = np.stack([b0, np.where(e02, v3, v2), np.where(e02, v0, v3), np.where(e02, v0, v3)], axis=1)
        npieces[idx] = 2
        kind[idx] = BOWTIE
    sa = signed_areas(pieces.reshape(-1, 4, 2)).reshape(n, 2)
    pieces = np.where((sa < 0)[..., None, None], pieces[:, :, ::-1], pieces)
    areas = np.abs(sa)
    areas[npieces == 1, 1] = 0.0
    areas[flat] = 0.0
    kind[areas.sum(axis=1) <= 0] = DEGENERATE
    return pieces, npieces, areas, kind


def quad_kinds(quads) -> np.ndarray:
    """``(N,)`` kind of each quad, an index into :data:`QUAD_KINDS`: ``CONVEX`` (0), ``CONCAVE`` (1, one reflex
    corner), ``BOWTIE`` (2, its ring crosses itself) or ``DEGENERATE`` (3, no area: collinear or coinciding
    corners). Corners may run either way round."""
    return _pieces(as_quads(quads))[3]


def clip_areas(S: np.ndarray, C: np.ndarray, counts: Optional[np.ndarray] = None, signed: bool = False) -> np.ndarray:
    """Areas of ``S[i] ∩ C[i]``: Sutherland-Hodgman clipping of each subject polygon ``S[i]`` ((M, K, 2), the
    first ``counts[i]`` vertices, all K when ``counts`` is None) by the half-planes of the convex polygon ``C[i]``
    ((M, k, 2), a non-negative shoelace sum; repeated vertices allowed), vectorized over ``i``; coordinates should
    be moved next to the pair first. The subject need not be convex: the clipped ring keeps the subject's winding
    number inside ``C`` (the bridges it gains along ``C``'s edges enclose nothing), so its shoelace sum is the
    signed area of the intersection (``signed=True``; else its absolute value).

    No tolerance: a vertex is kept when it is on the inner side or on the line, and an edge is cut only where its
    ends lie strictly on opposite sides, so rounding moves a vertex by about one ulp of the coordinates."""
    m = len(S)
    k = S.shape[1]
    cnt = np.full(m, k, dtype=np.int64) if counts is None else np.asarray(counts, dtype=np.int64)
    X, Y = S[..., 0], S[..., 1]
    if counts is not None:  # slots past a ring's end hold copies of its first vertex (so "next" is a roll)
        pad = np.arange(k)[None, :] >= cnt[:, None]
        X, Y = np.where(pad, X[:, :1], X), np.where(pad, Y[:, :1], Y)
    rows = np.arange(m)[:, None]
    kc = C.shape[1]
    for j in range(kc):
        ax, ay = C[:, j, 0:1], C[:, j, 1:2]
        ex, ey = C[:, (j + 1) % kc, 0:1] - ax, C[:, (j + 1) % kc, 1:2] - ay
        k = X.shape[1]
        d = ex * (Y - ay) - ey * (X - ax)  # > 0: inner side
        xn, yn, dn = np.roll(X, -1, axis=1), np.roll(Y, -1, axis=1), np.roll(d, -1, axis=1)
        valid = np.arange(k)[None, :] < cnt[:, None]
        keep = valid & (d >= 0)
        cut = valid & (((d > 0) & (dn < 0)) | ((d < 0) & (dn > 0)))
        t = np.where(cut, d / np.where(cut, d - dn, 1.0), 0.0)
        # each vertex, then the cut on its edge; kept ones moved to the front of their row
        cand_x = np.stack([X, X + t * (xn - X)], axis=2).reshape(m, 2 * k)
        cand_y = np.stack([Y, Y + t * (yn - Y)], axis=2).reshape(m, 2 * k)
        mask = np.stack([keep, cut], axis=2).reshape(m, 2 * k)
        pos = np.cumsum(mask, axis=1) - 1
        cnt = pos[:, -1] + 1
        width = max(int(cnt.max()), 1)
        pos = np.where(mask, pos, width)  # the rest goes to a spare column
        X, Y = np.zeros((m, width + 1)), np.zeros((m, width + 1))
        X[rows, pos] = cand_x
        Y[rows, pos] = cand_y
        pad = np.arange(width)[None, :] >= cnt[:, None]
        X, Y = np.where(pad, X[:, :1], X[:, :width]), np.where(pad, Y[:, :1], Y[:, :width])
    area = 0.5 * np.sum(X * np.roll(Y, -1, axis=1) - np.roll(X, -1, axis=1) * Y, axis=1)
    area = np.where(cnt >= 3, area, 0.0)
    return area if signed else np.abs(area)


class PreparedQuads:
    """Quads with what every IoU needs computed once.

    ``corners`` (N, 4, 2) as given; ``pieces`` / ``npieces`` / ``piece_areas`` their convex pieces
    (:func:`_pieces`); ``areas`` (N,) the area of the region each ring encloses (the sum of its pieces: for a bow
    tie both lobes); ``ring_areas`` (N,) the absolute shoelace sum of the ring as written (for a bow tie the
    difference of its lobes); ``kinds`` (:func:`quad_kinds`); ``aabbs`` (N, 4) axis-aligned boxes."""

    __slots__ = ("corners", "pieces", "npieces", "piece_areas", "areas", "ring_areas", "kinds", "aabbs")

    def __init__(self, quads):
        q = as_quads(quads)
        self.corners = q
        self.pieces, self.npieces, self.piece_areas, self.kinds = _pieces(q)
        self.areas = self.piece_areas.sum(axis=1)
        self.ring_areas = np.abs(signed_areas(q))
        self.aabbs = quad_aabbs(q)

    def __len__(self) -> int:
        return len(self.corners)


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


def intersection_areas(A: PreparedQuads, ia, B: PreparedQuads, ib) -> np.ndarray:
    """Area of the intersection of the regions of ``A[ia[k]]`` and ``B[ib[k]]`` (``(len(ia),)`` float64), summed
    over their convex pieces. Accurate to a few ulps of the squared coordinates (see :func:`clip_areas`)."""
    ia = np.asarray(ia, dtype=np.int64)
    ib = np.asarray(ib, dtype=np.int64)
    out = np.zeros(len(ia), dtype=np.float64)
    for pa in (0, 1):
        for pb in (0, 1):
            sel = np.nonzero((A.piece_areas[ia, pa] > 0) & (B.piece_areas[ib, pb] > 0))[0]
            for lo in range(0, len(sel), _CHUNK):
                s = sel[lo : lo + _CHUNK]
                p, q = A.pieces[ia[s], pa], B.pieces[ib[s], pb]
                origin = p[:, :1, :]  # moved origin: exact differences for integer and 1/2^k corners
                out[s] += clip_areas(p - origin, q - origin)
    return out


def indexed_ious(A: PreparedQuads, ia, B: PreparedQuads, ib) -> np.ndarray:
    """Polygon IoU of the pairs ``(A[ia[k]], B[ib[k]])``: ``(len(ia),)`` float64 in [0, 1], about 1e-13 relative
    (0 when the union has no area)."""
    ia = np.asarray(ia, dtype=np.int64)
    ib = np.asarray(ib, dtype=np.int64)
    if len(ia) == 0:
        return np.zeros(0, dtype=np.float64)
    inter = intersection_areas(A, ia, B, ib)
    aa, ab = A.areas[ia], B.areas[ib]
    inter = np.minimum(inter, np.minimum(aa, ab))
    union = aa + ab - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def _ambiguous(value, thr, A, ia, B, ib, denom):
    """Pairs whose float ``value`` (a ratio with denominator ``denom``) may lie on the wrong side of ``thr``:
    within 1e-10 (relative) plus a bound of the rounding of the clipping, which grows with the squared extent of
    the pair over the denominator."""
    a, b = A.aabbs[ia], B.aabbs[ib]
    lo = np.minimum(a[:, :2], b[:, :2])
    hi = np.maximum(a[:, 2:], b[:, 2:])
    ext = np.max(hi - lo, axis=1)
    den = np.where(denom > 0, denom, np.inf)
    tol = 1e-10 * max(abs(thr), 1e-300) + 1e3 * np.finfo(np.float64).eps * ext * ext / den
    return np.nonzero(np.abs(value - thr) <= tol)[0]


def iou_above(A: PreparedQuads, ia, B: PreparedQuads, ib, thr: float, iou: Optional[np.ndarray] = None
              ) -> np.ndarray:
    """``(len(ia),)`` bool: polygon IoU of ``(A[ia[k]], B[ib[k]])`` strictly greater than ``thr``, decided
    exactly: in double precision, and for the pairs whose IoU lies within rounding of ``thr`` (an IoU of exactly
    0.5 between integer corners, say) again in rational arithmetic (:func:`exact_pair_areas`) on the corners'
    exact binary values (``thr`` too is taken at its binary value). So an exact 0.5 is never a match at
    ``thr = 0.5``. ``iou``: the pairs' :func:`indexed_ious`, when already computed."""
    ia = np.asarray(ia, dtype=np.int64)
    ib = np.asarray(ib, dtype=np.int64)
    if iou is None:
        iou = indexed_ious(A, ia, B, ib)
    out = iou > thr
    if len(ia):
        smallest_union = np.maximum(A.areas[ia], B.areas[ib])  # the union is at least this large
        for k in _ambiguous(iou, thr, A, ia, B, ib, smallest_union).tolist():
            inter, fa, fb, _, _ = exact_pair_areas(A.corners[ia[k]], B.corners[ib[k]])
            u = fa + fb - inter
            out[k] = bool(u > 0 and inter / u > Fraction(thr))
    return out


def quad_iou_pairs(P, Q) -> np.ndarray:
    """Polygon IoU of ``P[i]`` and ``Q[i]`` for each ``i``: ``(M,)`` float64 in ``[0, 1]``.

    ``P`` and ``Q`` are ``(M, 4, 2)`` (or ``(M, 8)``) quads, in any corner order or orientation; a bow tie is the
    region its ring encloses (both lobes). IoU is 0 when the union has zero area.
    """
    P, Q = as_quads(P), as_quads(Q)
    if P.shape != Q.shape:
        raise ValueError(f"quad_iou_pairs needs arrays of equal length, got {P.shape} and {Q.shape}")
    idx = np.arange(len(P))
    return indexed_ious(PreparedQuads(P), idx, PreparedQuads(Q), idx)


# ------------------------------------------------------------------------------------ exact (rational) path
def _fr_cross(ax, ay, bx, by):
    return ax * by - ay * bx


def _fr_signed_area(poly) -> Fraction:
    s = Fraction(0)
    for (x0, y0), (x1, y1) in zip(poly, poly[1:] + poly[:1]):
        s += x0 * y1 - x1 * y0
    return s / 2


def _fr_pieces(q):
    """The convex pieces of one quad (list of 4 ``(Fraction, Fraction)``), as :func:`_pieces` cuts them."""
    c = []
    for k in range(4):
        (x0, y0), (x1, y1), (x2, y2) = q[k], q[(k + 1) % 4], q[(k + 2) % 4]
        c.append(_fr_cross(x1 - x0, y1 - y0, x2 - x1, y2 - y1))
    pos = sum(v > 0 for v in c)
    neg = sum(v < 0 for v in c)
    if pos == 1 and neg == 1:
        return []
    if pos == 2 and neg == 2:
        v0, v1, v2, v3 = q
        if (c[3] > 0) != (c[0] > 0):  # edges 0 and 2 cross
            t = _fr_cross(v2[0] - v0[0], v2[1] - v0[1], v3[0] - v2[0], v3[1] - v2[1]) / _fr_cross(
                v1[0] - v0[0], v1[1] - v0[1], v3[0] - v2[0], v3[1] - v2[1])
            x = (v0[0] + t * (v1[0] - v0[0]), v0[1] + t * (v1[1] - v0[1]))
            pieces = [[x, v1, v2], [x, v3, v0]]
        else:  # edges 1 and 3 cross
            t = _fr_cross(v3[0] - v1[0], v3[1] - v1[1], v0[0] - v3[0], v0[1] - v3[1]) / _fr_cross(
                v2[0] - v1[0], v2[1] - v1[1], v0[0] - v3[0], v0[1] - v3[1])
            y = (v1[0] + t * (v2[0] - v1[0]), v1[1] + t * (v2[1] - v1[1]))
            pieces = [[v0, v1, y], [y, v2, v3]]
    elif min(pos, neg) == 1 and max(pos, neg) >= 2:
        k = next(i for i in range(4) if (c[i] > 0 if pos == 1 else c[i] < 0))
        r = (k + 1) % 4
        v = [q[(r + off) % 4] for off in range(4)]
        pieces = [[v[0], v[1], v[2]], [v[2], v[3], v[0]]]
    else:
        pieces = [list(q)]
    out = []
    for p in pieces:
        a = _fr_signed_area(p)
        if a != 0:
            out.append(p if a > 0 else p[::-1])
    return out


def _fr_clip(subject, clipper):
    """Sutherland-Hodgman in rational arithmetic: ``subject`` ∩ the convex, positively oriented ``clipper``."""
    poly = subject
    for j in range(len(clipper)):
        if not poly:
            break
        ax, ay = clipper[j]
        bx, by = clipper[(j + 1) % len(clipper)]
        ex, ey = bx - ax, by - ay
        if ex == 0 and ey == 0:
            continue
        out = []
        n = len(poly)
        d = [_fr_cross(ex, ey, px - ax, py - ay) for px, py in poly]
        for i in range(n):
            p, dp = poly[i], d[i]
            q, dq = poly[(i + 1) % n], d[(i + 1) % n]
            if dp >= 0:
                out.append(p)
            if (dp > 0 and dq < 0) or (dp < 0 and dq > 0):
                t = dp / (dp - dq)
                out.append((p[0] + t * (q[0] - p[0]), p[1] + t * (q[1] - p[1])))
        poly = out
    return poly


def exact_pair_areas(qa, qb) -> Tuple[Fraction, Fraction, Fraction, Fraction, Fraction]:
    """Exact ``(intersection, area_a, area_b, ring_area_a, ring_area_b)`` of two quads ((4, 2) floats, taken at
    their exact binary values) as :class:`fractions.Fraction`: areas of the enclosed regions (as
    :class:`PreparedQuads`), their intersection, and the absolute shoelace sums of the rings as written."""
    fa = [(Fraction(float(x)), Fraction(float(y))) for x, y in np.asarray(qa, dtype=np.float64).reshape(4, 2)]
    fb = [(Fraction(float(x)), Fraction(float(y))) for x, y in np.asarray(qb, dtype=np.float64).reshape(4, 2)]
    pa, pb = _fr_pieces(fa), _fr_pieces(fb)
    inter = Fraction(0)
    for s in pa:
        for c in pb:
            poly = _fr_clip(s, c)
            if len(poly) >= 3:
                inter += abs(_fr_signed_area(poly))
    area_a = sum((_fr_signed_area(p) for p in pa), Fraction(0))
    area_b = sum((_fr_signed_area(p) for p in pb), Fraction(0))
    return inter, area_a, area_b, abs(_fr_signed_area(fa)), abs(_fr_signed_area(fb))


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
    than ``iou_thr`` (decided exactly, :func:`iou_above`). Returns kept indices in visiting order (score descending, stable).
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
        hit = iou_above(prep, ia, prep, ib, iou_thr)
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
