"""Quad geometry of the DOTA tooling against independent references (shapely, detectron2, brute force)."""
import numpy as np
import pytest
import shapely
import torch
from detectron2.structures import RotatedBoxes

from fasttcm.structures.quads import (
    CONVEX,
    overlap_pairs,
    poly_nms,
    quad_iou_pairs,
    quad_kinds,
    quads_to_rboxes,
    rboxes_to_quads,
)


def _shapely_iou(P, Q):
    a = shapely.make_valid(shapely.polygons(np.asarray(P, dtype=float)))
    b = shapely.make_valid(shapely.polygons(np.asarray(Q, dtype=float)))
    inter = shapely.area(shapely.intersection(a, b))
    union = shapely.area(a) + shapely.area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def _random_rboxes(rng, n, spread=100.0):
    return np.c_[rng.uniform(0, spread, (n, 2)), rng.uniform(2, 40, (n, 2)), rng.uniform(-180, 180, n)]


def test_rboxes_to_quads_matches_detectron2_convention():
    # angle 90: the width turns counter-clockwise as seen (upwards), so a 10 x 2 box stands 10 tall
    q = rboxes_to_quads([[0, 0, 10, 2, 90]])[0]
    assert np.allclose(q.min(0), [-1, -5]) and np.allclose(q.max(0), [1, 5])
    # angle 30: the width direction is (cos 30, -sin 30) (up and to the right on screen)
    q = rboxes_to_quads([[0, 0, 10, 0, 30]])[0]
    assert np.allclose(q[1] - q[0], [10 * np.cos(np.pi / 6), -10 * np.sin(np.pi / 6)])
    # areas agree with detectron2's RotatedBoxes, and the first corner is the top-left for a = 0
    rng = np.random.default_rng(0)
    b = _random_rboxes(rng, 50)
    area = shapely.area(shapely.polygons(rboxes_to_quads(b)))
    assert np.allclose(area, RotatedBoxes(torch.tensor(b)).area().numpy(), rtol=1e-5)
    assert np.allclose(rboxes_to_quads([[5, 5, 4, 2, 0]])[0], [[3, 4], [7, 4], [7, 6], [3, 6]])


def test_quads_to_rboxes_canonical_and_exact():
    rng = np.random.default_rng(2)
    b = _random_rboxes(rng, 500)
    r = quads_to_rboxes(rboxes_to_quads(b))
    assert (r[:, 2] >= r[:, 3]).all()
    assert (r[:, 4] >= -90).all() and (r[:, 4] < 90).all()
    assert np.allclose(r[:, 2] * r[:, 3], b[:, 2] * b[:, 3])
    assert np.allclose(r[:, :2], b[:, :2])
    # same rectangle: polygon IoU 1
    assert np.allclose(quad_iou_pairs(rboxes_to_quads(r), rboxes_to_quads(b)), 1.0)
    # axis-aligned: wide -> angle 0; tall -> the long side is vertical, angle -90; square -> [-45, 45)
    wide, tall = [[0, 0], [10, 0], [10, 2], [0, 2]], [[0, 0], [2, 0], [2, 10], [0, 10]]
    assert np.allclose(quads_to_rboxes([wide])[0], [5, 1, 10, 2, 0])
    assert np.allclose(quads_to_rboxes([tall])[0], [1, 5, 10, 2, -90])
    sq = rboxes_to_quads([[0, 0, 4, 4, 80.0]])
    assert np.allclose(quads_to_rboxes(sq)[0], [0, 0, 4, 4, -10.0])


def test_quads_to_rboxes_encloses_irregular_quads():
    rng = np.random.default_rng(3)
    q = rng.uniform(0, 50, (300, 4, 2))
    r = quads_to_rboxes(q)
    rect = shapely.polygons(rboxes_to_quads(r))
    pts = shapely.multipoints(q)
    assert shapely.covers(shapely.buffer(rect, 1e-6), pts).all()
    # the minimum-area rectangle, as shapely computes it
    assert np.allclose(r[:, 2] * r[:, 3], shapely.area(shapely.oriented_envelope(pts)), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", ["rectangles", "convex", "general"])
def test_quad_iou_matches_shapely(kind):
    rng = np.random.default_rng(4)
    m = 3000
    if kind == "rectangles":
        b1 = _random_rboxes(rng, m)
        b2 = b1 + np.c_[rng.normal(0, 10, (m, 2)), rng.normal(0, 5, (m, 2)), rng.normal(0, 20, m)]
        b2[:, 2:4] = np.abs(b2[:, 2:4]) + 1
        P, Q = rboxes_to_quads(b1), rboxes_to_quads(b2)
    elif kind == "convex":

        def convex(sign):
            ang = np.sort(rng.uniform(0, 2 * np.pi, (m, 4)), axis=1)[:, ::sign]
            r = rng.uniform(5, 30, (m, 1))
            return np.stack([np.cos(ang) * r, np.sin(ang) * r], -1) + rng.uniform(0, 40, (m, 1, 2))

        P, Q = convex(1), convex(-1)  # both orientations
        assert (quad_kinds(P) == CONVEX).all() and (quad_kinds(Q) == CONVEX).all()
    else:
        P, Q = rng.uniform(0, 50, (m, 4, 2)), rng.uniform(0, 50, (m, 4, 2))
        assert not (quad_kinds(P) == CONVEX).all()  # bow ties and concave quads too
    iou = quad_iou_pairs(P, Q)
    assert np.abs(iou - _shapely_iou(P, Q)).max() < 1e-9
    assert ((iou > 0) & (iou < 1)).mean() > 0.2  # the cases are not all trivial


def test_quad_iou_special_cases():
    sq = np.array([[0, 0], [10, 0], [10, 10], [0, 10.0]])
    cases = [
        (sq, sq, 1.0),  # identical
        (sq, sq[::-1], 1.0),  # other orientation
        (sq, np.roll(sq, 1, axis=0), 1.0),  # other first corner
        (sq, [[0, 0], [10, 0], [10, 5], [0, 5]], 0.5),  # exactly one half: 50 / 100
        (sq, sq + [10, 0], 0.0),  # sharing an edge only
        (sq, sq + [10, 10], 0.0),  # sharing a corner only
        (sq, sq + [20, 0], 0.0),  # apart
        (sq, [[2, 2], [4, 2], [4, 4], [2, 4]], 0.04),  # contained
        (sq, [[0, 0], [0, 0], [0, 0], [0, 0]], 0.0),  # degenerate
    ]
    P = np.array([c[0] for c in cases], dtype=float)
    Q = np.array([c[1] for c in cases], dtype=float)
    iou = quad_iou_pairs(P, Q)
    assert iou.tolist() == [c[2] for c in cases]  # exact, also for 0.5
    # same-angle boxes shifted along their edges (collinear edges in float coordinates)
    b = _random_rboxes(np.random.default_rng(5), 200)
    b2 = b.copy()
    b2[:, 0] += 3 * np.cos(np.radians(b[:, 4]))
    b2[:, 1] -= 3 * np.sin(np.radians(b[:, 4]))
    P, Q = rboxes_to_quads(b), rboxes_to_quads(b2)
    assert np.abs(quad_iou_pairs(P, Q) - _shapely_iou(P, Q)).max() < 1e-9


def test_overlap_pairs_within_groups():
    rng = np.random.default_rng(6)
    A = rng.uniform(0, 100, (200, 2))
    A = np.c_[A, A + rng.uniform(1, 20, (200, 2))]
    g = rng.integers(0, 5, 200)
    ia, ib = overlap_pairs(A, g)
    brute = {
        (i, j)
        for i in range(200)
        for j in range(i + 1, 200)
        if g[i] == g[j] and A[i, 0] <= A[j, 2] and A[j, 0] <= A[i, 2] and A[i, 1] <= A[j, 3] and A[j, 1] <= A[i, 3]
    }
    assert set(zip(ia.tolist(), ib.tolist())) == brute


def _nms_reference(quads, scores, groups, thr):
    order = sorted(range(len(scores)), key=lambda i: -scores[i])  # Python's sort is stable
    keep = []
    for i in order:
        ok = all(
            groups[j] != groups[i] or _shapely_iou(quads[j][None], quads[i][None])[0] <= thr for j in keep
        )
        if ok:
            keep.append(i)
    return keep


@pytest.mark.parametrize("thr", [0.1, 0.5])
def test_poly_nms_matches_greedy_reference(thr):
    rng = np.random.default_rng(7)
    base = _random_rboxes(rng, 40, spread=60)
    b = np.concatenate([base, base + rng.normal(0, 2, base.shape), base + rng.normal(0, 5, base.shape)])
    b[:, 2:4] = np.abs(b[:, 2:4]) + 1
    q = rboxes_to_quads(b)
    scores = np.round(rng.uniform(0, 1, len(q)), 1)  # many ties: input order decides
    groups = rng.integers(0, 3, len(q))
    keep = poly_nms(q, scores, groups, thr)
    assert keep.tolist() == _nms_reference(q, scores, groups, thr)
    assert 0 < len(keep) < len(q)


def test_poly_nms_ties_keep_input_order():
    q = rboxes_to_quads([[10, 10, 10, 5, 0]] * 3)
    assert poly_nms(q, [1.0, 1.0, 1.0]).tolist() == [0]
    assert poly_nms(q, [0.5, 1.0, 1.0]).tolist() == [1]
    assert poly_nms(q[:0], []).tolist() == []


def test_poly_nms_with_bow_tie_quads():
    # a self-intersecting order of a square's corners: read as its two lobes (shapely.make_valid), half the
    # square; the shoelace area of that order is 0, which must not hide the overlap
    bow = np.array([[0, 0], [10, 10], [10, 0], [0, 10.0]])
    sq = np.array([[0, 0], [10, 0], [10, 10], [0, 10.0]])
    assert quad_iou_pairs([bow], [sq])[0] == pytest.approx(0.5)
    assert poly_nms([sq, bow], [1.0, 0.9], iou_thr=0.3).tolist() == [0]
