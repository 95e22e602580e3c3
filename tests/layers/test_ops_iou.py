"""Rotated IoU (fasttcm.layers.box_iou_rotated, i.e. detectron2._C.box_iou_rotated) against shapely polygons."""
import math

import numpy as np
import pytest
import shapely
import torch

from fasttcm.layers import _C, box_iou_rotated

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def corners(boxes):
    """(N, 5) rotated boxes -> (N, 4, 2) corners, detectron2's convention: the width axis is (cos a, -sin a) and the
    height axis (sin a, cos a) in image coordinates (y down), i.e. counter-clockwise on screen."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 5)
    t = np.deg2rad(b[:, 4])
    ew = np.stack([np.cos(t), -np.sin(t)], 1)
    eh = np.stack([np.sin(t), np.cos(t)], 1)
    out = [b[:, :2] + su * 0.5 * b[:, 2:3] * ew + sv * 0.5 * b[:, 3:4] * eh for su, sv in ((1, 1), (-1, 1), (-1, -1), (1, -1))]
    return np.stack(out, 1)


def shapely_iou(b1, b2):
    """Dense IoU matrix with shapely 2 (vectorized); 0 where a box has zero area."""
    p, q = shapely.polygons(corners(b1)), shapely.polygons(corners(b2))
    inter = shapely.area(shapely.intersection(p[:, None], q[None, :]))
    union = shapely.area(p)[:, None] + shapely.area(q)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.where(union > 0, inter / union, 0.0)
    a1 = np.asarray(b1, dtype=np.float64).reshape(-1, 5)
    a2 = np.asarray(b2, dtype=np.float64).reshape(-1, 5)
    degenerate = ((a1[:, 2] <= 0) | (a1[:, 3] <= 0))[:, None] | ((a2[:, 2] <= 0) | (a2[:, 3] <= 0))[None, :]
    return np.where(degenerate, 0.0, iou)


def random_boxes(rng, n, span=100.0, smin=2.0, smax=60.0):
    return np.c_[rng.uniform(0, span, (n, 2)), rng.uniform(smin, smax, (n, 2)), rng.uniform(-180, 180, n)]


def ours(b1, b2, dtype=torch.float64):
    return box_iou_rotated(torch.tensor(b1, dtype=dtype), torch.tensor(b2, dtype=dtype)).numpy()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_boxes_match_shapely(seed):
    rng = np.random.default_rng(seed)
    b1, b2 = random_boxes(rng, 150), random_boxes(rng, 170)
    ref = shapely_iou(b1, b2)
    got = ours(b1, b2)
    assert got.shape == (150, 170)
    assert (ref > 0).mean() > 0.2  # the test really exercises overlaps
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)
    # in fact far tighter than the required 1e-5
    assert np.abs(got - ref).max() < 1e-9


def test_dota_like_matches_shapely_and_is_sparse():
    rng = np.random.default_rng(3)
    b1 = np.c_[rng.uniform(0, 1000, (400, 2)), rng.uniform(5, 100, (400, 2)), rng.uniform(-180, 180, 400)]
    b2 = np.c_[rng.uniform(0, 1000, (300, 2)), rng.uniform(5, 100, (300, 2)), rng.uniform(-180, 180, 300)]
    ref = shapely_iou(b1, b2)
    got = ours(b1, b2, torch.float32)
    assert 0 < (ref > 0).sum() < ref.size // 10
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


def test_self_iou_is_symmetric_with_unit_diagonal():
    rng = np.random.default_rng(4)
    b = random_boxes(rng, 80)
    got = ours(b, b)
    np.testing.assert_allclose(np.diag(got), 1.0, atol=1e-12)
    np.testing.assert_allclose(got, got.T, atol=1e-12)


EDGE_CASES = {
    # name: (box1, box2, expected IoU or None to take shapely's)
    "identical": ([50, 50, 20, 10, 0], [50, 50, 20, 10, 0], 1.0),
    "identical_rotated": ([50, 50, 20, 10, 37], [50, 50, 20, 10, 37], 1.0),
    "same_region_w_h_swapped_90": ([50, 50, 20, 10, 0], [50, 50, 10, 20, 90], 1.0),
    "same_region_minus_90": ([50, 50, 20, 10, 0], [50, 50, 10, 20, -90], 1.0),
    "same_region_180": ([50, 50, 20, 10, 0], [50, 50, 20, 10, 180], 1.0),
    "same_region_minus_180": ([50, 50, 20, 10, 30], [50, 50, 20, 10, -150], 1.0),
    "touching_edge": ([50, 50, 20, 10, 0], [70, 50, 20, 10, 0], 0.0),
    "touching_edge_rotated": ([0, 0, 20, 10, 30], [20 * math.cos(math.radians(30)), -20 * math.sin(math.radians(30)), 20, 10, 30], 0.0),
    "touching_corner": ([50, 50, 20, 10, 0], [70, 60, 20, 10, 0], 0.0),
    "half_overlap": ([50, 50, 20, 10, 0], [60, 50, 20, 10, 0], 1 / 3),
    "nested": ([50, 50, 40, 40, 0], [50, 50, 10, 10, 0], 100 / 1600),
    "nested_rotated": ([50, 50, 40, 40, 10], [52, 49, 10, 6, 77], 60 / 1600),
    "nested_sharing_edge": ([50, 50, 40, 40, 0], [40, 50, 20, 40, 0], 0.5),
    "disjoint": ([0, 0, 10, 10, 45], [100, 100, 10, 10, 45], 0.0),
    "cross": ([50, 50, 40, 4, 0], [50, 50, 4, 40, 0], 16 / (160 + 160 - 16)),
    "diamond_in_square": ([0, 0, 10, 10, 0], [0, 0, 10 / math.sqrt(2), 10 / math.sqrt(2), 45], 0.5),
    "octagon": ([0, 0, 10, 10, 0], [0, 0, 10, 10, 45], None),
    "tiny_inside_huge": ([5000, 5000, 1e4, 1e4, 0], [1234.5, 8765.4, 1e-3, 2e-3, 33], 2e-6 / 1e8),
    "tiny_pair": ([3.0, 4.0, 1e-3, 2e-3, 10], [3.0003, 4.0002, 1e-3, 2e-3, 70], None),
    "huge_pair": ([0, 0, 1e4, 5e3, 10], [3e3, -1e3, 8e3, 9e3, -35], None),
    "far_coordinates": ([9990.5, 9995.25, 30, 40, 45], [9991.0, 9996.0, 30, 40, 45.5], None),
    "near_parallel": ([50, 50, 40, 20, 0], [50.5, 50.5, 40, 20, 1e-7], None),
    "angle_1e_minus_9": ([50, 50, 40, 20, 0], [50, 50, 40, 20, 1e-9], None),
    "zero_width": ([50, 50, 0, 10, 0], [50, 50, 20, 10, 0], 0.0),
    "zero_height": ([50, 50, 20, 0, 30], [50, 50, 20, 10, 30], 0.0),
    "both_zero": ([50, 50, 0, 0, 30], [50, 50, 0, 0, 30], 0.0),
}


@pytest.mark.parametrize("name", sorted(EDGE_CASES))
def test_edge_cases(name):
    b1, b2, expected = EDGE_CASES[name]
    ref = shapely_iou([b1], [b2])[0, 0]
    for dtype in (torch.float64, torch.float32):
        if dtype == torch.float32 and name in ("near_parallel", "angle_1e_minus_9", "tiny_inside_huge", "tiny_pair"):
            continue  # float32 inputs cannot represent these boxes faithfully; shapely sees the float64 ones
        got = ours([b1], [b2], dtype)
        assert got.dtype == (np.float64 if dtype == torch.float64 else np.float32)
        assert np.isfinite(got).all()
        assert abs(got[0, 0] - ref) <= 1e-5, (got, ref)
        # symmetric
        assert abs(ours([b2], [b1], dtype)[0, 0] - got[0, 0]) <= 1e-6
    if expected is not None:
        assert abs(ours([b1], [b2])[0, 0] - expected) <= 1e-9


def test_all_edge_cases_at_once_match_shapely():
    boxes = np.array([v[0] for v in EDGE_CASES.values()] + [v[1] for v in EDGE_CASES.values()], dtype=np.float64)
    ref = shapely_iou(boxes, boxes)
    got = ours(boxes, boxes)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref, atol=1e-5, rtol=0)


def test_nested_box_with_nearly_coincident_edge():
    # box 1 lies inside box 2 and shares its right edge up to a 1e-7 degree rotation about different centres.
    # GEOS (shapely 2.x here) returns an empty intersection for this pair; the true IoU is 100 / 400.
    b1, b2 = [25.0, 5.0, 10.0, 10.0, 89.9999999], [20.0, 5.0, 20.0, 20.0, 89.9999999]
    assert abs(ours([b1], [b2])[0, 0] - 0.25) < 1e-6
    assert abs(shapely_iou([b1], [[20.0, 5.0, 20.0, 20.0, 90.0]])[0, 0] - 0.25) < 1e-9  # shapely agrees at 90


def test_degenerate_grid_configurations_match_shapely():
    # snapped centres/sizes and right angles make many coincident edges, vertices on edges and duplicate points
    rng = np.random.default_rng(9)
    for _ in range(4):
        n = 80
        c = np.round(rng.uniform(0, 40, (n, 2)), int(rng.integers(0, 2)))
        s = np.round(rng.uniform(0.5, 30, (n, 2)))
        a = rng.choice([0, 90, -90, 180, 45, -45, 30], n) + rng.choice([0, 0, 1e-3], n)
        b = np.c_[c, s, a]
        np.testing.assert_allclose(ours(b, b), shapely_iou(b, b), atol=1e-6, rtol=0)


def test_thin_boxes_rotated_by_tiny_angles():
    # 10 x 0.001 boxes turned by 1e-7 degree: IoU 1 - 8.7e-6, resolved (a coarse tolerance would return 1.0)
    b1, b2 = [0.0, 25.0, 10.0, 1e-3, 89.9999999], [0.0, 25.0, 10.0, 1e-3, 90.0]
    ref = shapely_iou([b1], [b2])[0, 0]
    got = ours([b1], [b2])[0, 0]
    assert ref < 1 - 8e-6
    assert abs(got - ref) < 1e-8


def test_translation_invariance_at_large_coordinates():
    rng = np.random.default_rng(5)
    b1, b2 = random_boxes(rng, 40, span=50), random_boxes(rng, 40, span=50)
    base = ours(b1, b2)
    shift = np.array([9000.0, 9500.0, 0, 0, 0])
    np.testing.assert_allclose(ours(b1 + shift, b2 + shift), base, atol=1e-9)


def test_chunked_paths_agree(monkeypatch):
    rng = np.random.default_rng(6)
    b1, b2 = random_boxes(rng, 120), random_boxes(rng, 90)
    full = ours(b1, b2)
    monkeypatch.setattr(_C, "_PAIR_CHUNK", 7)
    monkeypatch.setattr(_C, "_DENSE_CHUNK", 200)  # dense candidate search in many row chunks
    np.testing.assert_array_equal(ours(b1, b2), full)
    monkeypatch.setattr(_C, "_DENSE_LIMIT", 0)  # sweep over sorted boxes instead of dense tests
    monkeypatch.setattr(_C, "_SWEEP_CHUNK", 13)
    np.testing.assert_array_equal(ours(b1, b2), full)
    np.testing.assert_allclose(ours(b2, b1), full.T, atol=1e-12, rtol=0)


def test_one_huge_box_among_small_ones():
    rng = np.random.default_rng(7)
    b1 = random_boxes(rng, 60, span=1000, smin=5, smax=50)
    b2 = np.r_[random_boxes(rng, 60, span=1000, smin=5, smax=50), [[500, 500, 2000, 30, 20]]]
    np.testing.assert_allclose(ours(b1, b2), shapely_iou(b1, b2), atol=1e-5)
    np.testing.assert_allclose(ours(b2, b1), shapely_iou(b2, b1), atol=1e-5)


def test_dtype_promotion_and_no_grad():
    a = torch.tensor([[0.0, 0, 4, 2, 0]], dtype=torch.float32, requires_grad=True)
    b = torch.tensor([[1.0, 0, 4, 2, 0]], dtype=torch.float64)
    out = box_iou_rotated(a, b)
    assert out.dtype == torch.float64 and not out.requires_grad
    assert abs(out.item() - 6 / 10) < 1e-12
    assert box_iou_rotated(a.half(), a.half()).dtype == torch.float16


@pytest.mark.parametrize("n,m", [(0, 3), (3, 0), (0, 0)])
def test_empty_inputs(n, m):
    for dtype in (torch.float32, torch.float64):
        out = box_iou_rotated(torch.zeros(n, 5, dtype=dtype), torch.ones(m, 5, dtype=dtype))
        assert out.shape == (n, m) and out.dtype == dtype


@pytest.mark.parametrize(
    "b1,b2,match",
    [
        (torch.zeros(3, 4), torch.zeros(2, 5), r"boxes1: expected shape \(N, 5\)"),
        (torch.zeros(3, 5), torch.zeros(5), r"boxes2: expected shape \(N, 5\)"),
        (torch.zeros(3, 5, 1), torch.zeros(2, 5), "boxes1"),
        (torch.zeros(3, 5, dtype=torch.long), torch.zeros(2, 5), "floating-point"),
        ([[0, 0, 1, 1, 0]], torch.zeros(2, 5), "torch.Tensor"),
        (torch.tensor([[0, 0, float("nan"), 1, 0]]), torch.zeros(2, 5), "NaN"),
        (torch.zeros(2, 5), torch.tensor([[0, 0, 1, 1, float("inf")]]), "boxes2: contains NaN or infinite"),
        (torch.zeros(2, 5), torch.zeros(2, 5, device="meta"), "same device"),
    ],
)
def test_bad_inputs(b1, b2, match):
    with pytest.raises(ValueError, match=match):
        box_iou_rotated(b1, b2)


@CUDA
def test_cuda_matches_cpu():
    rng = np.random.default_rng(8)
    b1, b2 = random_boxes(rng, 200), random_boxes(rng, 150)
    t1, t2 = torch.tensor(b1, dtype=torch.float32), torch.tensor(b2, dtype=torch.float32)
    cpu = box_iou_rotated(t1, t2)
    gpu = box_iou_rotated(t1.cuda(), t2.cuda())
    assert gpu.device.type == "cuda" and gpu.dtype == torch.float32
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-6, rtol=0)
    np.testing.assert_allclose(gpu.cpu().numpy(), shapely_iou(t1.double().numpy(), t2.double().numpy()), atol=1e-5)
