"""Polygon IoU of quads (fasttcm.structures.quads) against exact rational arithmetic: integer and 1/8-pixel
corners near the 0.5 threshold, exact halves, bow ties and concave quads, and the threshold decided exactly."""
from fractions import Fraction

import numpy as np
import pytest
import shapely

from fasttcm.structures import quads as geometry
from fasttcm.structures.quads import (
    BOWTIE,
    CONCAVE,
    CONVEX,
    DEGENERATE,
    PreparedQuads,
    indexed_ious,
    iou_above,
    poly_nms,
    quad_kinds,
    rboxes_to_quads,
)


# ------------------------------------------------------------- an independent exact reference (convex quads)
def _cross(o, a, b):
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _hull_area(points):
    """Area of the convex hull of exact points (monotone chain), 0 for fewer than 3 distinct points."""
    pts = sorted(set(points))
    if len(pts) < 3:
        return Fraction(0)
    lower, upper = [], []
    for p in pts:
        while len(lower) >= 2 and _cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    for p in reversed(pts):
        while len(upper) >= 2 and _cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    hull = lower[:-1] + upper[:-1]
    return abs(sum(hull[i][0] * hull[i - 1][1] - hull[i - 1][0] * hull[i][1] for i in range(len(hull)))) / 2


def _inside_convex(p, poly):
    signs = [_cross(poly[i], poly[(i + 1) % 4], p) for i in range(4)]
    return all(s >= 0 for s in signs) or all(s <= 0 for s in signs)


def _segment_crossings(a, b, c, d):
    den = (b[0] - a[0]) * (d[1] - c[1]) - (b[1] - a[1]) * (d[0] - c[0])
    if den == 0:
        return []
    t = ((c[0] - a[0]) * (d[1] - c[1]) - (c[1] - a[1]) * (d[0] - c[0])) / den
    s = ((c[0] - a[0]) * (b[1] - a[1]) - (c[1] - a[1]) * (b[0] - a[0])) / den
    if 0 <= t <= 1 and 0 <= s <= 1:
        return [(a[0] + t * (b[0] - a[0]), a[1] + t * (b[1] - a[1]))]
    return []


def exact_convex_iou(P, Q) -> Fraction:
    """IoU of two convex quads, exactly: their intersection is the hull of the corners of each inside the other
    and of the crossings of their edges (a different construction from fasttcm's clipping)."""
    p = [(Fraction(float(x)), Fraction(float(y))) for x, y in P]
    q = [(Fraction(float(x)), Fraction(float(y))) for x, y in Q]
    pts = [v for v in p if _inside_convex(v, q)] + [v for v in q if _inside_convex(v, p)]
    for i in range(4):
        for j in range(4):
            pts += _segment_crossings(p[i], p[(i + 1) % 4], q[j], q[(j + 1) % 4])
    inter = _hull_area(pts)
    union = _hull_area(p) + _hull_area(q) - inter
    return inter / union if union else Fraction(0)


def _near_threshold_pairs(seed, grid, n=500):
    """Convex quads on a grid (1 = integer corners, 8 = eighths) and partners moved so that many IoUs are near
    0.5: translations (which give exact halves) and corner jitter."""
    rng = np.random.default_rng(seed)
    P, Q = [], []
    for k in range(n):
        b = np.r_[rng.uniform(20, 60, 2), rng.uniform(6, 30), rng.uniform(4, 20), rng.uniform(-90, 90)]
        p = np.round(rboxes_to_quads(b[None])[0] * grid) / grid
        if k % 3 == 0:
            q = p + np.round(rng.normal(0, 0.25, (4, 2)) * grid) / grid
        else:
            q = p.copy()
        w = np.linalg.norm(p[1] - p[0])
        d = (p[1] - p[0]) / max(w, 1e-9) * w * rng.choice([1 / 3, 0.3, 0.35, 1 / 3 + 1e-3])
        q = q + np.round(d * grid) / grid
        P.append(p)
        Q.append(q)
    P, Q = np.array(P), np.array(Q)
    keep = (quad_kinds(P) == CONVEX) & (quad_kinds(Q) == CONVEX)
    return P[keep], Q[keep]


@pytest.mark.parametrize("grid", [1, 8])
def test_iou_matches_rational_arithmetic_near_the_threshold(grid):
    P, Q = _near_threshold_pairs(grid, grid)
    exact = [exact_convex_iou(p, q) for p, q in zip(P, Q)]
    near = [abs(e - Fraction(1, 2)) < Fraction(1, 20) for e in exact]
    assert sum(near) > 100  # most cases sit near the threshold
    halves = sum(e == Fraction(1, 2) for e in exact)
    assert halves >= 3  # and some exactly on it
    A, B = PreparedQuads(P), PreparedQuads(Q)
    idx = np.arange(len(P))
    iou = indexed_ious(A, idx, B, idx)
    ex = np.array([float(e) for e in exact])
    assert np.max(np.abs(iou - ex) / np.maximum(ex, 1e-300)) < 1e-12
    # the decision is the exact one, halves included: IoU 0.5 is not > 0.5
    assert iou_above(A, idx, B, idx, 0.5).tolist() == [e > Fraction(1, 2) for e in exact]


def test_exact_halves_are_rechecked_in_rational_arithmetic(monkeypatch):
    P, Q = _near_threshold_pairs(3, 1)
    exact = [exact_convex_iou(p, q) for p, q in zip(P, Q)]
    halves = [i for i, e in enumerate(exact) if e == Fraction(1, 2)]
    assert halves
    calls = []
    real = geometry.exact_pair_areas
    monkeypatch.setattr(geometry, "exact_pair_areas", lambda a, b: calls.append(1) or real(a, b))
    A, B = PreparedQuads(P[halves]), PreparedQuads(Q[halves])
    idx = np.arange(len(halves))
    assert not iou_above(A, idx, B, idx, 0.5).any()
    assert len(calls) == len(halves)  # each exact half went through the rational path
    # a float IoU nudged past 0.5 by rounding (as the devkit's C++ does for some such pairs) is not trusted
    nudged = np.nextafter(np.full(len(halves), 0.5), 1.0)
    assert not iou_above(A, idx, B, idx, 0.5, iou=nudged).any()


def test_exact_pair_areas_by_hand():
    sq = np.array([[0, 0], [10, 0], [10, 10], [0, 10]], float)
    bow = np.array([[0, 0], [10, 10], [10, 0], [0, 10]], float)  # crosses at (5, 5): lobes of 25 each
    inter, a, b, ring_a, ring_b = geometry.exact_pair_areas(sq, bow)
    assert (inter, a, b, ring_a, ring_b) == (50, 100, 50, 100, 0)
    eighth = sq / 8 + 0.125
    inter, a, b, _, _ = geometry.exact_pair_areas(eighth, eighth + [0.125, 0])
    assert (a, inter) == (Fraction(100, 64), Fraction(90, 64))


def test_kinds_and_regions_of_bow_ties_and_concave_quads():
    quads = np.array([
        [[0, 0], [10, 0], [10, 10], [0, 10]],  # convex
        [[0, 0], [10, 0], [3, 3], [0, 10]],  # concave (reflex corner at (3, 3))
        [[0, 0], [10, 10], [10, 0], [0, 10]],  # bow tie, edges 0 and 2 cross
        [[0, 0], [10, 0], [0, 10], [10, 10]],  # bow tie, edges 1 and 3 cross
        [[0, 0], [5, 5], [10, 10], [5, 5]],  # no area
    ], float)
    assert quad_kinds(quads).tolist() == [CONVEX, CONCAVE, BOWTIE, BOWTIE, DEGENERATE]
    prep = PreparedQuads(quads)
    region = shapely.area(shapely.make_valid(shapely.polygons(quads)))
    assert np.allclose(prep.areas, region)  # the region each ring encloses, as shapely.make_valid reads it
    assert prep.ring_areas.tolist() == [100, 30, 0, 0, 0]  # the ring's shoelace: lobes cancel
    # random quads of every kind against shapely (float), and a few against the rational path
    rng = np.random.default_rng(11)
    P, Q = rng.integers(0, 30, (400, 4, 2)).astype(float), rng.integers(0, 30, (400, 4, 2)).astype(float)
    A, B = PreparedQuads(P), PreparedQuads(Q)
    assert {CONVEX, CONCAVE, BOWTIE} <= set(A.kinds.tolist())
    idx = np.arange(len(P))
    iou = indexed_ious(A, idx, B, idx)
    gp, gq = shapely.make_valid(shapely.polygons(P)), shapely.make_valid(shapely.polygons(Q))
    inter = shapely.area(shapely.intersection(gp, gq))
    union = shapely.area(gp) + shapely.area(gq) - inter
    ref = np.where(union > 0, inter / np.where(union > 0, union, 1), 0)
    assert np.abs(iou - ref).max() < 1e-12
    for k in range(0, 400, 20):
        i, a, b, _, _ = geometry.exact_pair_areas(P[k], Q[k])
        u = a + b - i
        assert iou[k] == pytest.approx(float(i / u) if u else 0.0, rel=1e-12, abs=1e-15)


def test_nms_threshold_is_strict_and_exact():
    a = np.array([[0, 0], [3, 0], [3, 2], [0, 2]], float)
    b = a + [1, 0]  # IoU exactly 0.5 (4 / 8)
    assert poly_nms([a, b], [1.0, 0.9], iou_thr=0.5).tolist() == [0, 1]  # 0.5 does not suppress
    assert poly_nms([a, b], [1.0, 0.9], iou_thr=0.49).tolist() == [0]
