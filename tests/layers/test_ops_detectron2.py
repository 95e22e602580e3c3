"""Detectron2's public API running on fasttcm's ops (when detectron2 has no compiled _C, as in CI)."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import fasttcm.layers  # noqa: F401  (installs detectron2._C when needed)
from fasttcm.layers import _C, batched_nms_rotated, box_iou_rotated, nms_rotated, roi_align_rotated

import detectron2._C as d2_C  # noqa: E402  (fasttcm.layers above supplies it when not compiled)
OURS = getattr(d2_C, "__fasttcm_ops__", False)
needs_ours = pytest.mark.skipif(not OURS, reason="a compiled detectron2._C is installed; fasttcm's ops are not used")


def _boxes(seed, n, span=300.0):
    rng = np.random.default_rng(seed)
    b = np.c_[rng.uniform(0, span, (n, 2)), rng.uniform(5, 80, (n, 2)), rng.uniform(-180, 180, n)]
    return torch.tensor(b, dtype=torch.float32), torch.tensor(rng.random(n), dtype=torch.float32)


@needs_ours
def test_fresh_process_imports_detectron2_layers_without_fasttcm(tmp_path):
    code = textwrap.dedent(
        """
        import sys, torch
        import detectron2.layers as L
        from detectron2 import _C
        assert _C.__fasttcm_ops__ is True, _C
        assert "fasttcm" not in sys.modules, sorted(m for m in sys.modules if m.startswith("fasttcm"))
        b = torch.tensor([[10.0, 10, 8, 4, 30], [10.5, 10, 8, 4, 30], [40.0, 40, 8, 4, 0]])
        keep = L.nms_rotated(b, torch.tensor([0.9, 0.8, 0.7]), 0.5)
        assert keep.tolist() == [0, 2], keep
        assert torch.ops.detectron2.nms_rotated(b, torch.tensor([0.9, 0.8, 0.7]), 0.5).tolist() == [0, 2]
        from detectron2.layers.rotated_boxes import pairwise_iou_rotated
        print("OK", pairwise_iou_rotated(b, b).diagonal().tolist())
        """
    )
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "OK [1.0, 1.0, 1.0]" in res.stdout


@needs_ours
def test_detectron2_C_is_ours_and_reports_itself():
    assert d2_C is sys.modules["fasttcm.layers._C"] is _C
    assert "fasttcm" in d2_C.get_compiler_version() and "fasttcm" in d2_C.get_cuda_version()
    from fasttcm import detectron2_ops_source

    assert "fasttcm" in detectron2_ops_source()


@needs_ours
@pytest.mark.parametrize("name", ["COCOevalAccumulate", "COCOevalEvaluateImages", "InstanceAnnotation", "ImageEvaluation"])
def test_fast_coco_eval_entry_points_are_provided(name):
    # numerical agreement with pycocotools: tests/layers/test_coco_fast_eval.py
    assert getattr(d2_C, name) is getattr(_C._coco_eval, name)


@needs_ours
def test_unknown_op_names_itself():
    with pytest.raises(AttributeError, match="detectron2._C.some_future_op .*install a compiled detectron2"):
        d2_C.some_future_op  # noqa: B018


@needs_ours
def test_coco_evaluator_slow_path_is_unaffected():
    from detectron2.evaluation import COCOEvaluator  # noqa: F401  (import of fast_eval_api must not fail)
    from detectron2.evaluation.fast_eval_api import COCOeval_opt  # noqa: F401


def test_pairwise_iou_rotated_and_rotated_boxes():
    from detectron2.layers.rotated_boxes import pairwise_iou_rotated
    from detectron2.structures import RotatedBoxes
    from detectron2.structures import pairwise_iou_rotated as structures_pairwise_iou_rotated

    b1, _ = _boxes(0, 60)
    b2, _ = _boxes(1, 50)
    ref = box_iou_rotated(b1, b2)
    assert (ref > 0).any()
    torch.testing.assert_close(pairwise_iou_rotated(b1, b2), ref)
    # detectron2 0.6's RotatedBoxes IoU (later versions also expose it as a RotatedBoxes.pairwise_iou method)
    torch.testing.assert_close(structures_pairwise_iou_rotated(RotatedBoxes(b1), RotatedBoxes(b2)), ref)
    if hasattr(RotatedBoxes, "pairwise_iou"):
        torch.testing.assert_close(RotatedBoxes(b1).pairwise_iou(RotatedBoxes(b2)), ref)
    # the RRPN / RROIHeads matcher path
    from detectron2.modeling.matcher import Matcher

    matches, labels = Matcher([0.3, 0.7], [0, -1, 1])(structures_pairwise_iou_rotated(RotatedBoxes(b2), RotatedBoxes(b1)))
    assert matches.shape == (60,) and set(labels.unique().tolist()) <= {-1, 0, 1}


def test_nms_rotated_and_batched():
    from detectron2.layers import batched_nms_rotated as d2_batched
    from detectron2.layers import nms_rotated as d2_nms

    b, s = _boxes(2, 300, span=150)
    assert d2_nms(b, s, 0.3).tolist() == nms_rotated(b, s, 0.3).tolist()
    idxs = torch.tensor(np.random.default_rng(3).integers(0, 4, 300))
    # detectron2 offsets the boxes per class; same result as filtering pairs by class
    assert sorted(d2_batched(b, s, idxs, 0.3).tolist()) == sorted(batched_nms_rotated(b, s, idxs, 0.3).tolist())


def test_detectron2_roi_align_rotated_module_forward_backward():
    from detectron2.layers import ROIAlignRotated

    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 3, 12, 14, generator=g, requires_grad=True)
    rois = torch.cat([torch.tensor([[0.0], [1.0], [1.0]]), torch.tensor([[20.0, 18, 16, 10, 30], [30.0, 20, 22, 6, -75], [5.0, 40, 12, 12, 180]])], 1)
    m = ROIAlignRotated((3, 4), spatial_scale=0.5, sampling_ratio=0)
    y = m(x, rois)
    y.backward(torch.ones_like(y))
    x2 = x.detach().clone().requires_grad_()
    y2 = roi_align_rotated(x2, rois, (3, 4), 0.5, 0)
    y2.backward(torch.ones_like(y2))
    torch.testing.assert_close(y, y2)
    torch.testing.assert_close(x.grad, x2.grad)
    assert x.grad.abs().sum() > 0
    # the pooler of the rotated R-CNN box head
    from detectron2.modeling.poolers import ROIPooler
    from detectron2.structures import RotatedBoxes

    pooler = ROIPooler((7, 7), scales=(0.5,), sampling_ratio=0, pooler_type="ROIAlignRotated")
    out = pooler([x.detach()], [RotatedBoxes(rois[:1, 1:]), RotatedBoxes(rois[1:, 1:])])
    torch.testing.assert_close(out, roi_align_rotated(x.detach(), rois, 7, 0.5, 0))


def _rotated_rcnn_cfg():
    from detectron2.config import get_cfg

    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "GeneralizedRCNN"
    cfg.MODEL.BACKBONE.NAME = "build_resnet_backbone"
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res4"]
    cfg.MODEL.PROPOSAL_GENERATOR.NAME = "RRPN"
    cfg.MODEL.PROPOSAL_GENERATOR.MIN_SIZE = 2  # > 0: zero-size proposals break RROIHeads matching
    cfg.MODEL.ANCHOR_GENERATOR.NAME = "RotatedAnchorGenerator"
    cfg.MODEL.ANCHOR_GENERATOR.SIZES = [[24, 48]]
    cfg.MODEL.ANCHOR_GENERATOR.ASPECT_RATIOS = [[0.5, 1.0, 2.0]]
    cfg.MODEL.ANCHOR_GENERATOR.ANGLES = [[-60, -30, 0, 30, 60, 90]]
    cfg.MODEL.RPN.IN_FEATURES = ["res4"]
    cfg.MODEL.RPN.BBOX_REG_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 1.0)
    cfg.MODEL.RPN.PRE_NMS_TOPK_TRAIN = cfg.MODEL.RPN.PRE_NMS_TOPK_TEST = 200
    cfg.MODEL.RPN.POST_NMS_TOPK_TRAIN = cfg.MODEL.RPN.POST_NMS_TOPK_TEST = 40
    cfg.MODEL.ROI_HEADS.NAME = "RROIHeads"
    cfg.MODEL.ROI_HEADS.IN_FEATURES = ["res4"]
    cfg.MODEL.ROI_HEADS.NUM_CLASSES = 2
    cfg.MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE = 32
    cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
    cfg.MODEL.ROI_BOX_HEAD.NAME = "FastRCNNConvFCHead"
    cfg.MODEL.ROI_BOX_HEAD.NUM_FC = 1
    cfg.MODEL.ROI_BOX_HEAD.FC_DIM = 64
    cfg.MODEL.ROI_BOX_HEAD.POOLER_TYPE = "ROIAlignRotated"
    cfg.MODEL.ROI_BOX_HEAD.POOLER_RESOLUTION = 7
    cfg.MODEL.ROI_BOX_HEAD.POOLER_SAMPLING_RATIO = 0
    cfg.MODEL.ROI_BOX_HEAD.BBOX_REG_WEIGHTS = (10.0, 10.0, 5.0, 5.0, 1.0)
    cfg.freeze()
    return cfg


def test_train_and_run_stock_rotated_faster_rcnn():
    from detectron2.modeling import build_model
    from detectron2.structures import Instances, RotatedBoxes
    from detectron2.utils.events import EventStorage

    torch.manual_seed(0)
    model = build_model(_rotated_rcnn_cfg())
    g = torch.Generator().manual_seed(0)

    def sample():
        n = 3
        boxes = torch.cat(
            [torch.rand(n, 2, generator=g) * 70 + 29, torch.rand(n, 2, generator=g) * 30 + 12, torch.rand(n, 1, generator=g) * 180 - 90], 1
        )
        inst = Instances((128, 128), gt_boxes=RotatedBoxes(boxes), gt_classes=torch.randint(0, 2, (n,), generator=g))
        return {"image": torch.rand(3, 128, 128, generator=g) * 255, "instances": inst, "height": 128, "width": 128}

    data = [sample(), sample()]
    opt = torch.optim.SGD(model.parameters(), lr=0.005, momentum=0.9)
    model.train()
    history = []
    with EventStorage(0) as storage:
        for _ in range(3):
            losses = model(data)
            assert {"loss_cls", "loss_box_reg", "loss_rpn_cls", "loss_rpn_loc"} <= set(losses)
            total = sum(losses.values())
            assert torch.isfinite(total), losses
            history.append(total.item())
            opt.zero_grad()
            total.backward()
            opt.step()
            storage.step()
    assert all(np.isfinite(history))
    model.eval()
    with torch.no_grad():
        outputs = model([{"image": d["image"], "height": 128, "width": 128} for d in data])
    assert len(outputs) == 2
    for out in outputs:
        inst = out["instances"]
        assert isinstance(inst.pred_boxes, RotatedBoxes)
        assert len(inst) > 0 and inst.pred_boxes.tensor.shape[1] == 5
        assert torch.isfinite(inst.pred_boxes.tensor).all() and torch.isfinite(inst.scores).all()
