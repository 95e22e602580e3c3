"""Each row of docs/DETECTRON2.md's table "fasttcm's ops against Detectron2's kernels", as a test.

The rows: rotated IoU ties, NMS at IoU == threshold, degenerate boxes (area < 1e-14, negative sides), non-finite
input, the exception types of bad input (deformable convolution and the other ops).
"""
import numpy as np
import pytest
import torch
import torchvision

import fasttcm.layers  # noqa: F401  (supplies detectron2._C when detectron2 has no compiled ops)
from fasttcm.layers import _C, batched_nms_rotated, box_iou_rotated, nms_rotated, roi_align_rotated

import detectron2._C  # noqa: E402,F401  (fasttcm.layers above supplies it when not compiled)


# --- row: rotated IoU ties ---------------------------------------------------------------------------------------
def _containing_anchors():
    """A 2 x 2 ground truth and 16 x 16 anchors: 9 contain it (shifted, some rotated by 90 degrees, which is the same
    square), 3 do not."""
    gt = torch.tensor([[100.0, 100.0, 2.0, 2.0, 0.0]])
    inside = [[100.0 + dx, 100.0 + dy, 16.0, 16.0, a] for dx, dy, a in
              [(0, 0, 0), (3, 0, 0), (-3, 2, 0), (5, -5, 0), (0, 6, 0), (-6, -6, 0), (2, 2, 90), (-4, 1, -90), (6, 6, 180)]]
    outside = [[100.0 + dx, 100.0, 16.0, 16.0, 0.0] for dx in (30, -40, 60)]
    return gt, torch.tensor(inside + outside)


def test_equal_geometry_gives_exactly_equal_ious():
    gt, anchors = _containing_anchors()
    for dtype in (torch.float32, torch.float64):
        iou = box_iou_rotated(gt.to(dtype), anchors.to(dtype))[0]
        assert torch.unique(iou[:9]).tolist() == [4 / 256]  # one value, bit for bit, and it is the exact one
        assert (iou[9:] == 0).all()


def test_low_quality_matches_keep_every_tied_anchor_like_the_axis_aligned_path():
    # Detectron2's matcher keeps, for each ground truth, every prediction whose IoU equals its best one. With exact
    # ties all 9 anchors containing the box are positive; Detectron2's axis-aligned path (Boxes, pairwise_iou)
    # gives the same on the same unrotated anchors.
    from detectron2.modeling.matcher import Matcher
    from detectron2.structures import Boxes, RotatedBoxes, pairwise_iou, pairwise_iou_rotated

    gt, anchors = _containing_anchors()
    matcher = Matcher([0.3, 0.7], [0, -1, 1], allow_low_quality_matches=True)
    _, labels = matcher(pairwise_iou_rotated(RotatedBoxes(gt), RotatedBoxes(anchors)))
    assert labels.tolist() == [1] * 9 + [0] * 3

    upright = anchors[anchors[:, 4] == 0]
    xyxy = torch.cat([upright[:, :2] - upright[:, 2:4] / 2, upright[:, :2] + upright[:, 2:4] / 2], 1)
    gt_xyxy = torch.cat([gt[:, :2] - 1, gt[:, :2] + 1], 1)
    _, labels_aa = matcher(pairwise_iou(Boxes(gt_xyxy), Boxes(xyxy)))
    _, labels_rot = matcher(pairwise_iou_rotated(RotatedBoxes(gt), RotatedBoxes(upright)))
    assert labels_aa.tolist() == labels_rot.tolist() and int((labels_aa == 1).sum()) == 6


# --- row: NMS at IoU == threshold --------------------------------------------------------------------------------
def _half_overlapping():
    # 3 x 1 boxes shifted by 1: intersection 2, union 4, IoU exactly 0.5 in floating point
    return torch.tensor([[0.0, 0.0, 3.0, 1.0, 0.0], [1.0, 0.0, 3.0, 1.0, 0.0]]), torch.tensor([0.9, 0.8])


def test_nms_keeps_a_box_whose_iou_equals_the_threshold_like_torchvision():
    from detectron2.layers import batched_nms_rotated as d2_batched
    from detectron2.layers import nms_rotated as d2_nms

    boxes, scores = _half_overlapping()
    assert box_iou_rotated(boxes, boxes)[0, 1].item() == 0.5
    assert nms_rotated(boxes, scores, 0.5).tolist() == [0, 1]
    assert nms_rotated(boxes, scores, 0.4999).tolist() == [0]
    assert torch.ops.detectron2.nms_rotated(boxes, scores, 0.5).tolist() == [0, 1]
    assert d2_nms(boxes, scores, 0.5).tolist() == [0, 1]
    assert sorted(d2_batched(boxes, scores, torch.tensor([0, 0]), 0.5).tolist()) == [0, 1]
    assert batched_nms_rotated(boxes, scores, torch.tensor([3, 3]), 0.5).tolist() == [0, 1]
    # the reason: torchvision's NMS (Detectron2's axis-aligned NMS) and Detectron2's CUDA kernel suppress only above
    xyxy = torch.tensor([[-1.5, -0.5, 1.5, 0.5], [-0.5, -0.5, 2.5, 0.5]])
    assert torchvision.ops.nms(xyxy, scores, 0.5).tolist() == [0, 1]
    assert torchvision.ops.nms(xyxy, scores, 0.4999).tolist() == [0]


# --- rows: degenerate boxes --------------------------------------------------------------------------------------
def test_boxes_of_area_below_1e_14_have_iou_zero_like_detectron2():
    tiny = torch.tensor([[5.0, 5.0, 1e-8, 1e-7, 30.0]], dtype=torch.float64)  # area 1e-15
    small = torch.tensor([[5.0, 5.0, 2e-7, 1e-7, 30.0]], dtype=torch.float64)  # area 2e-14
    assert box_iou_rotated(tiny, tiny).item() == 0.0
    assert box_iou_rotated(small, small).item() == pytest.approx(1.0, abs=1e-9)
    # NMS: a degenerate box neither suppresses nor is suppressed
    boxes = torch.cat([tiny, tiny, small, small])
    assert sorted(nms_rotated(boxes, torch.tensor([0.9, 0.8, 0.7, 0.6], dtype=torch.float64), 0.5).tolist()) == [0, 1, 2]


def test_negative_sides_follow_the_signed_area_like_detectron2():
    from detectron2.structures import RotatedBoxes

    ref = torch.tensor([[10.0, 10.0, 8.0, 4.0, 30.0]])
    other = torch.tensor([[12.0, 11.0, 6.0, 6.0, -15.0]])
    both = torch.tensor([[10.0, 10.0, -8.0, -4.0, 30.0]])  # same corners as ref (a point reflection)
    one = torch.tensor([[10.0, 10.0, -8.0, 4.0, 30.0]])  # negative area: empty, as RotatedBoxes.nonempty() says
    expected = box_iou_rotated(ref, other).item()
    assert 0.1 < expected < 0.9
    assert box_iou_rotated(both, other).item() == expected
    assert box_iou_rotated(both, ref).item() == pytest.approx(1.0, abs=1e-6)
    assert box_iou_rotated(one, other).item() == 0.0 and box_iou_rotated(one, one).item() == 0.0
    assert RotatedBoxes(both).area().item() == RotatedBoxes(ref).area().item() > 0
    assert RotatedBoxes(one).area().item() < 0 and not RotatedBoxes(one).nonempty().item()
    scores = torch.tensor([0.9, 0.8])
    assert nms_rotated(torch.cat([both, ref]), scores, 0.5).tolist() == [0]
    assert nms_rotated(torch.cat([one, ref]), scores, 0.5).tolist() == [0, 1]


# --- row: non-finite input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input_raises_a_floating_point_error_naming_the_argument(bad):
    box = torch.tensor([[0.0, 0.0, 4.0, 2.0, 0.0], [1.0, 0.0, 4.0, 2.0, bad]])
    good = torch.tensor([[0.0, 0.0, 4.0, 2.0, 0.0]])
    for call, arg in [
        (lambda: box_iou_rotated(box, good), "boxes1"),
        (lambda: box_iou_rotated(good, box), "boxes2"),
        (lambda: nms_rotated(box, torch.tensor([0.9, 0.8]), 0.5), "boxes"),
        (lambda: nms_rotated(box[:1], torch.tensor([bad]), 0.5), "scores"),
        (lambda: roi_align_rotated(torch.zeros(1, 1, 8, 8), torch.cat([torch.zeros(2, 1), box], 1), 2, 1.0, 0), "rois"),
    ]:
        with pytest.raises(_C.NonFiniteInputError, match=f"{arg}: contains NaN or infinite") as info:
            call()
        assert isinstance(info.value, (ValueError, RuntimeError, FloatingPointError))
        assert all(isinstance(info.value, t) for t in (ValueError, RuntimeError, FloatingPointError))


def test_detectron2_filters_non_finite_boxes_before_rotated_nms():
    # The reason raising is safe: Detectron2's rotated pipelines drop non-finite boxes before they call NMS (here
    # its rotated Fast R-CNN inference), so no Detectron2 code path hands them to our check.
    from detectron2.modeling.roi_heads.rotated_fast_rcnn import fast_rcnn_inference_single_image_rotated

    g = torch.Generator().manual_seed(0)
    n, k = 30, 2
    boxes = torch.cat([torch.rand(n, 2, generator=g) * 40 + 10, torch.rand(n, 2, generator=g) * 10 + 4,
                       torch.rand(n, 1, generator=g) * 180 - 90], 1).repeat(1, k)
    boxes[3, 2] = float("nan")
    boxes[5, 7] = float("inf")
    scores = torch.softmax(torch.rand(n, k + 1, generator=g), 1)
    scores[3] = torch.tensor([0.0, 0.99, 0.01])  # the broken box scores best
    # had the two broken rows reached fasttcm's NMS, it would raise NonFiniteInputError here
    inst, kept = fast_rcnn_inference_single_image_rotated(boxes, scores, (64, 64), 0.05, 0.5, 100)
    assert len(inst) > 0 and torch.isfinite(inst.pred_boxes.tensor).all()
    assert int(kept.max()) < n - 2  # indices into the 28 finite rows


# --- row: exception types of bad input ---------------------------------------------------------------------------
def _deform_args(offset_channels=18, weight=None):
    x = torch.zeros(1, 4, 8, 8)
    w = torch.zeros(6, 4, 3, 3) if weight is None else weight
    return (x, w, torch.zeros(1, offset_channels, 8, 8), x.new_empty(0), None, None, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 64)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: _C.deform_conv_forward(*_deform_args(offset_channels=16)), "offset: expected 18 channels"),
        (lambda: _C.deform_conv_forward(*_deform_args(weight=torch.zeros(6, 3, 3, 3))), "input channels per group"),
        (
            lambda: _C.modulated_deform_conv_forward(
                torch.zeros(1, 4, 8, 8), torch.zeros(6, 4, 3, 3), torch.zeros(6), None, torch.zeros(1, 18, 8, 8),
                torch.zeros(1, 8, 8, 8), torch.zeros(0), None, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, True,
            ),
            "mask: expected 9 channels",
        ),
    ],
    ids=["offset-channels", "weight-channels", "mask-channels"],
)
def test_deformable_conv_shape_errors_are_runtime_errors(call, match):
    # code written against Detectron2 catches RuntimeError; fasttcm's convention is ValueError: the error is both
    with pytest.raises(RuntimeError, match=match) as info:
        call()
    assert isinstance(info.value, ValueError) and isinstance(info.value, _C.OpInputError)


def test_every_op_input_error_is_a_runtime_error_and_wrong_types_are_type_errors():
    cases = [
        (lambda: box_iou_rotated(torch.zeros(3, 4), torch.zeros(2, 5)), r"boxes1: expected shape \(N, 5\)"),
        (lambda: nms_rotated(torch.zeros(3, 5), torch.zeros(4), 0.5), "scores: expected shape"),
        (lambda: roi_align_rotated(torch.zeros(1, 1, 4, 4), torch.tensor([[0.0, 2, 2, -1, 1, 0]]), 2, 1.0, 0), "non-negative"),
        (lambda: _C.roi_align_rotated_forward(torch.zeros(1, 1, 4, 4), torch.zeros(0, 6), 1.0, 0, 2, 0), "pooled_height"),
    ]
    for call, match in cases:
        with pytest.raises(RuntimeError, match=match) as info:
            call()
        assert isinstance(info.value, ValueError)
    for call, match in [
        (lambda: box_iou_rotated([[0, 0, 1, 1, 0]], torch.zeros(2, 5)), "torch.Tensor"),
        (lambda: nms_rotated(torch.zeros(1, 5), torch.zeros(1), "high"), "iou_threshold"),
    ]:
        with pytest.raises(TypeError, match=match) as info:
            call()
        assert isinstance(info.value, RuntimeError) and isinstance(info.value, ValueError)


def test_detectron2_module_errors_reach_callers_as_runtime_errors():
    # through Detectron2's own wrapper of the op (detectron2.layers.rotated_boxes.pairwise_iou_rotated)
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated

    with pytest.raises(RuntimeError, match="boxes2"):
        pairwise_iou_rotated(torch.zeros(2, 5), torch.zeros(2, 6))
    assert np.isfinite(pairwise_iou_rotated(torch.ones(2, 5), torch.ones(2, 5)).numpy()).all()
