"""Rotated NMS (fasttcm.layers.nms_rotated / batched_nms_rotated, torch.ops.detectron2.nms_rotated) against a
brute-force greedy NMS over shapely IoUs."""
import numpy as np
import pytest
import shapely
import torch

from fasttcm.layers import _C, batched_nms_rotated, box_iou_rotated, nms_rotated

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def corners(b):
    b = np.asarray(b, dtype=np.float64).reshape(-1, 5)
    t = np.deg2rad(b[:, 4])
    ew = np.stack([np.cos(t), -np.sin(t)], 1)
    eh = np.stack([np.sin(t), np.cos(t)], 1)
    return np.stack(
        [b[:, :2] + su * 0.5 * b[:, 2:3] * ew + sv * 0.5 * b[:, 3:4] * eh for su, sv in ((1, 1), (-1, 1), (-1, -1), (1, -1))], 1
    )


def shapely_iou(b):
    p = shapely.polygons(corners(b))
    inter = shapely.area(shapely.intersection(p[:, None], p[None, :]))
    union = shapely.area(p)[:, None] + shapely.area(p)[None, :] - inter
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, 0.0)


def greedy_reference(iou, scores, thr, classes=None):
    """Textbook greedy NMS: visit by decreasing score (ties by index), keep unless a kept box has IoU > thr."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    keep = []
    for i in order:
        if all(
            not (iou[i, k] > thr and (classes is None or classes[i] == classes[k])) for k in keep
        ):
            keep.append(i)
    return keep


def random_boxes(rng, n, span=200.0):
    return np.c_[rng.uniform(0, span, (n, 2)), rng.uniform(5, 60, (n, 2)), rng.uniform(-180, 180, n)]


def clustered_boxes(rng, clusters, per):
    base = random_boxes(rng, clusters, span=400)
    reps = np.repeat(base, per, axis=0)
    jitter = np.c_[rng.normal(0, 3, (len(reps), 2)), rng.normal(0, 3, (len(reps), 2)), rng.normal(0, 8, len(reps))]
    out = reps + jitter
    out[:, 2:4] = np.abs(out[:, 2:4]) + 1
    return out


@pytest.mark.parametrize("kind", ["random", "clustered"])
@pytest.mark.parametrize("thr", [0.0, 0.1, 0.3, 0.5, 0.7, 0.95])
def test_matches_bruteforce_greedy(kind, thr):
    rng = np.random.default_rng(int(thr * 100) + (0 if kind == "random" else 1000))
    b = random_boxes(rng, 250) if kind == "random" else clustered_boxes(rng, 12, 20)
    scores = rng.random(len(b))
    ref = greedy_reference(shapely_iou(b), scores, thr)
    for dtype in (torch.float64, torch.float32):
        keep = nms_rotated(torch.tensor(b, dtype=dtype), torch.tensor(scores, dtype=dtype), thr)
        assert keep.dtype == torch.int64
        if dtype == torch.float64:
            assert keep.tolist() == ref  # same set, same (score) order
        # kept indices come by decreasing score
        s = torch.tensor(scores)[keep]
        assert bool((s[:-1] >= s[1:]).all())
    assert 0 < len(ref) < len(b) or thr == 0.95


def test_clustered_actually_suppresses():
    rng = np.random.default_rng(11)
    b = clustered_boxes(rng, 10, 30)
    keep = nms_rotated(torch.tensor(b), torch.tensor(rng.random(len(b))), 0.5)
    assert 10 <= keep.numel() < 150


def test_larger_sparse_problem_matches_dense_greedy():
    # 3000 DOTA-like boxes: the sparse greedy pass must equal greedy over the dense IoU matrix
    rng = np.random.default_rng(12)
    b = np.c_[rng.uniform(0, 1000, (3000, 2)), rng.uniform(5, 100, (3000, 2)), rng.uniform(-180, 180, 3000)]
    b = np.r_[b, clustered_boxes(rng, 20, 25)]
    scores = rng.random(len(b))
    tb, ts = torch.tensor(b, dtype=torch.float32), torch.tensor(scores, dtype=torch.float32)
    iou = box_iou_rotated(tb, tb).double().numpy()
    order = np.argsort(-ts.numpy(), kind="stable")
    suppressed = np.zeros(len(b), bool)
    ref = []
    for i in order:
        if not suppressed[i]:
            ref.append(i)
            suppressed |= iou[i] > 0.5
    assert nms_rotated(tb, ts, 0.5).tolist() == ref


@pytest.mark.parametrize("dense_limit,dense_chunk,sweep_chunk", [(1 << 26, 97, 1 << 22), (0, 1 << 23, 50)])
def test_candidate_search_paths_agree(monkeypatch, dense_limit, dense_chunk, sweep_chunk):
    rng = np.random.default_rng(17)
    b = np.r_[random_boxes(rng, 150), clustered_boxes(rng, 5, 20)]
    scores = rng.random(len(b))
    ref = greedy_reference(shapely_iou(b), scores, 0.4)
    monkeypatch.setattr(_C, "_DENSE_LIMIT", dense_limit)
    monkeypatch.setattr(_C, "_DENSE_CHUNK", dense_chunk)
    monkeypatch.setattr(_C, "_SWEEP_CHUNK", sweep_chunk)
    assert nms_rotated(torch.tensor(b), torch.tensor(scores), 0.4).tolist() == ref


def test_thresholds_outside_unit_interval():
    rng = np.random.default_rng(13)
    b = torch.tensor(random_boxes(rng, 40))
    s = torch.tensor(rng.random(40))
    order = torch.argsort(s, descending=True)
    assert nms_rotated(b, s, 1.0).tolist() == order.tolist()  # IoU never exceeds 1
    assert nms_rotated(b, s, -0.1).tolist() == order[:1].tolist()  # every IoU (even 0) exceeds it
    # identical boxes have IoU 1, which is not > 1
    same = torch.tensor([[5.0, 5, 4, 3, 10]] * 3)
    assert nms_rotated(same, torch.tensor([0.1, 0.3, 0.2]), 1.0).tolist() == [1, 2, 0]
    assert nms_rotated(same, torch.tensor([0.1, 0.3, 0.2]), 0.999).tolist() == [1]


def test_equal_scores_keep_lower_index_first():
    b = torch.tensor([[0.0, 0, 10, 10, 0], [1.0, 0, 10, 10, 0], [100.0, 0, 10, 10, 0], [101.0, 0, 10, 10, 0]])
    s = torch.tensor([0.5, 0.5, 0.5, 0.5])
    assert nms_rotated(b, s, 0.5).tolist() == [0, 2]


def test_zero_size_boxes_never_suppress():
    b = torch.tensor([[5.0, 5, 0, 3, 10], [5.0, 5, 4, 3, 10], [5.0, 5, 4, 0, 10]])
    assert nms_rotated(b, torch.tensor([0.9, 0.5, 0.1]), 0.0).tolist() == [0, 1, 2]


def test_same_region_different_angles_is_suppressed():
    # detectron2's documented choice: (w, h, 0) and (h, w, 90) cover the same region, IoU 1
    b = torch.tensor([[5.0, 3, 4, 2, -90], [5.0, 3, 4, 2, 90], [5.0, 3, 2, 4, 0]])
    assert nms_rotated(b, torch.tensor([0.9, 0.8, 0.7]), 0.9).tolist() == [0]


def test_chained_suppression_is_greedy_not_transitive():
    # a suppresses b; b would suppress c but b is gone, so c survives
    b = torch.tensor([[0.0, 0, 10, 10, 0], [4.0, 0, 10, 10, 0], [8.0, 0, 10, 10, 0]])
    assert nms_rotated(b, torch.tensor([0.9, 0.8, 0.7]), 0.4).tolist() == [0, 2]


def test_torch_op_registered_and_equal():
    rng = np.random.default_rng(14)
    b = torch.tensor(random_boxes(rng, 100), dtype=torch.float32)
    s = torch.rand(100, generator=torch.Generator().manual_seed(0))
    ours = nms_rotated(b, s, 0.3)
    op = torch.ops.detectron2.nms_rotated(b, s, 0.3)
    assert op.tolist() == ours.tolist()
    # works on inputs that require grad (no autograd kernel needed for an index output)
    assert torch.ops.detectron2.nms_rotated(b.clone().requires_grad_(), s, 0.3).tolist() == ours.tolist()


def test_registration_is_idempotent():
    assert _C._register_torch_op() is False  # already there: nothing registered twice
    _C.install_as_detectron2_C()
    assert _C._torch_op_exists()


@pytest.mark.parametrize("thr", [0.2, 0.5])
def test_batched_matches_per_class_reference(thr):
    rng = np.random.default_rng(15)
    b = clustered_boxes(rng, 8, 15)
    classes = rng.integers(0, 3, len(b))
    scores = rng.random(len(b))
    ref = greedy_reference(shapely_iou(b), scores, thr, classes)
    keep = batched_nms_rotated(torch.tensor(b), torch.tensor(scores), torch.tensor(classes), thr)
    assert keep.tolist() == ref
    # per-class loop gives the same set
    loop = []
    for c in range(3):
        idx = np.flatnonzero(classes == c)
        loop += idx[nms_rotated(torch.tensor(b[idx]), torch.tensor(scores[idx]), thr).numpy()].tolist()
    assert sorted(loop) == sorted(ref)


def test_batched_classes_do_not_interact_even_at_large_coordinates():
    b = torch.tensor([[9000.0, 9000, 10, 10, 0], [9000.0, 9000, 10, 10, 0], [-9000.0, 9000, 10, 10, 0]])
    s = torch.tensor([0.9, 0.8, 0.7])
    assert batched_nms_rotated(b, s, torch.tensor([0, 1, 0]), 0.5).tolist() == [0, 1, 2]
    assert batched_nms_rotated(b, s, torch.tensor([1, 1, 1]), 0.5).tolist() == [0, 2]
    assert batched_nms_rotated(b, s, torch.tensor([4, 7, 4]), -1.0).tolist() == [0, 1]


def test_empty_inputs():
    for fn in (lambda b, s: nms_rotated(b, s, 0.5), lambda b, s: batched_nms_rotated(b, s, torch.zeros(0, dtype=torch.long), 0.5)):
        keep = fn(torch.zeros(0, 5), torch.zeros(0))
        assert keep.shape == (0,) and keep.dtype == torch.int64


@pytest.mark.parametrize(
    "boxes,scores,thr,match",
    [
        (torch.zeros(3, 4), torch.zeros(3), 0.5, r"boxes: expected shape \(N, 5\)"),
        (torch.zeros(3, 5), torch.zeros(4), 0.5, r"scores: expected shape \(3,\)"),
        (torch.zeros(3, 5), torch.zeros(3, 1), 0.5, r"scores: expected shape \(N,\)"),
        (torch.zeros(3, 5), torch.zeros(3, dtype=torch.long), 0.5, "floating-point"),
        (torch.zeros(3, 5, dtype=torch.int32), torch.zeros(3), 0.5, "floating-point"),
        (torch.tensor([[0.0, 0, 1, 1, float("nan")]]), torch.zeros(1), 0.5, "NaN"),
        (torch.zeros(1, 5), torch.tensor([float("inf")]), 0.5, "scores: contains NaN or infinite"),
        (torch.zeros(1, 5), torch.zeros(1), float("nan"), "iou_threshold"),
        (torch.zeros(1, 5), torch.zeros(1), "high", "iou_threshold"),
        (torch.zeros(1, 5), torch.zeros(1, device="meta"), 0.5, "same device"),
    ],
)
def test_bad_inputs(boxes, scores, thr, match):
    with pytest.raises(ValueError, match=match):
        nms_rotated(boxes, scores, thr)


def test_batched_bad_idxs():
    b, s = torch.zeros(2, 5), torch.zeros(2)
    with pytest.raises(ValueError, match="idxs"):
        batched_nms_rotated(b, s, torch.zeros(3, dtype=torch.long), 0.5)
    with pytest.raises(ValueError, match="integer"):
        batched_nms_rotated(b, s, torch.zeros(2), 0.5)


@CUDA
def test_cuda_matches_cpu():
    rng = np.random.default_rng(16)
    b = torch.tensor(clustered_boxes(rng, 20, 20), dtype=torch.float32)
    s = torch.tensor(rng.random(len(b)), dtype=torch.float32)
    cls = torch.tensor(rng.integers(0, 4, len(b)))
    keep = nms_rotated(b.cuda(), s.cuda(), 0.5)
    assert keep.device.type == "cuda"
    assert keep.cpu().tolist() == nms_rotated(b, s, 0.5).tolist()
    assert torch.ops.detectron2.nms_rotated(b.cuda(), s.cuda(), 0.5).cpu().tolist() == keep.cpu().tolist()
    assert batched_nms_rotated(b.cuda(), s.cuda(), cls.cuda(), 0.5).cpu().tolist() == batched_nms_rotated(b, s, cls, 0.5).tolist()
