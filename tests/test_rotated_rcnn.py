"""FastTCMRotatedRCNN: per-class score-map targets from rotated boxes, training and inference on a FastTCM FPN."""
import numpy as np
import pytest
import torch
from detectron2.structures import Instances, RotatedBoxes
from detectron2.utils.events import EventStorage

import fasttcm  # noqa: F401
from fasttcm.engine import load_config
from fasttcm.modeling.rotated_rcnn import rotated_box_class_masks


def test_class_masks_cover_boxes_per_class():
    # a 64x64 axis-aligned box on cells (1..2, 1..2) of a 32-px grid, class 1; a 4x4 box in cell (3, 0), class 0
    boxes = np.array([[64.0, 64.0, 64.0, 64.0, 0.0], [112.0, 16.0, 4.0, 4.0, 30.0]])
    m = rotated_box_class_masks(boxes, np.array([1, 0]), 3, (4, 5), 32)
    assert m.shape == (3, 4, 5) and m.dtype == np.float32
    assert np.allclose(m[1, 1:3, 1:3], 1.0) and m[1].sum() == pytest.approx(4.0)
    assert m[0, 0, 3] == 1.0  # smaller than a cell: its centre cell is marked
    assert m[0].sum() == pytest.approx(1.0) and m[2].sum() == 0
    # a 45-degree square covers half of the cells around it: soft targets in (0, 1)
    m45 = rotated_box_class_masks(np.array([[64.0, 64.0, 45.25, 45.25, 45.0]]), np.array([0]), 1, (4, 4), 32)
    assert 0.1 < m45[0, 1, 1] < 0.9 and m45[0].sum() == pytest.approx(45.25 ** 2 / 32 ** 2, rel=0.1)


def _quick_cfg(mode="fasttcm"):
    return load_config(
        "configs/quickstart/fasttcm_synthaerial_cpu.yaml",
        ["MODEL.FASTTCM.MODE", mode, "MODEL.FASTTCM.PROMPTS", "['plane', 'ship']", "MODEL.FASTTCM.NUM_PROMPTS", "2",
         "MODEL.ROI_HEADS.NUM_CLASSES", "2", "MODEL.RPN.POST_NMS_TOPK_TRAIN", "64", "MODEL.RPN.POST_NMS_TOPK_TEST",
         "64", "MODEL.ROI_HEADS.BATCH_SIZE_PER_IMAGE", "32"],
    )


def _batch(n=2, size=128, seed=0):
    rng = np.random.RandomState(seed)
    out = []
    for _ in range(n):
        img = torch.zeros(3, size, size)
        boxes = torch.tensor([[40.0, 50.0, 40.0, 16.0, float(rng.uniform(-90, 90))],
                              [90.0, 90.0, 24.0, 24.0, 0.0]])
        for (cx, cy, w, h, _), c in zip(boxes.tolist(), (200.0, 90.0)):
            img[:, int(cy - h / 2):int(cy + h / 2), int(cx - w / 2):int(cx + w / 2)] = c
        inst = Instances((size, size))
        inst.gt_boxes = RotatedBoxes(boxes)
        inst.gt_classes = torch.tensor([0, 1])
        out.append({"image": img, "height": size, "width": size, "instances": inst})
    return out


@pytest.mark.parametrize("mode", ["fasttcm", "baseline"])
def test_trains_and_predicts_rotated_boxes(mode):
    from detectron2.modeling import build_model

    torch.manual_seed(0)
    model = build_model(_quick_cfg(mode))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    with EventStorage():
        for _ in range(6):
            loss_dict = model(_batch())
            assert all(torch.isfinite(v) for v in loss_dict.values())
            assert ("loss_score_map" in loss_dict) == (mode != "baseline")
            loss = sum(loss_dict.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert np.mean(losses[-2:]) < np.mean(losses[:2])
    model.eval()
    with torch.no_grad():
        out = model([{k: v for k, v in d.items() if k != "instances"} for d in _batch(1, seed=1)])[0]
    inst = out["instances"]
    assert isinstance(inst.pred_boxes, RotatedBoxes) and inst.image_size == (128, 128)
    assert inst.pred_classes.dtype == torch.int64 and len(inst.scores) == len(inst)
    if mode != "baseline":
        assert out["score_map"].shape == (2, 4, 4)
