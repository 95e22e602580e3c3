"""FastTCMRotatedRCNN: per-class score-map targets from rotated boxes, training and inference on a FastTCM FPN."""
import numpy as np
import pytest
import torch
from detectron2.structures import RotatedBoxes
from detectron2.utils.events import EventStorage

import fasttcm.engine  # noqa: F401  (registers fasttcm's config keys, datasets and models)
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


@pytest.fixture(scope="module")
def aerial_batches(tmp_path_factory):
    """Mapped training batches from a 4-image synthetic aerial set (2 of its classes kept), and one test input."""
    from detectron2.data import DatasetCatalog

    from fasttcm.data.datasets.synthetic_aerial import SyntheticAerialConfig, register_synthetic_aerial
    from fasttcm.data.rotated_mapper import RotatedDatasetMapper

    name = "test_rotated_rcnn_aerial"
    register_synthetic_aerial(name, SyntheticAerialConfig(num_images=4, height=128, width=128, seed=3),
                              root=str(tmp_path_factory.mktemp("aerial")), overwrite=True)
    records = DatasetCatalog.get(name)
    for r in records:
        r["annotations"] = [a for a in r["annotations"] if a["category_id"] < 2]
    cfg = _quick_cfg()
    train_map, test_map = RotatedDatasetMapper(cfg, True), RotatedDatasetMapper(cfg, False)
    np.random.seed(0)
    batches = [[train_map(records[0]), train_map(records[1])], [train_map(records[2]), train_map(records[3])]]
    return batches, test_map(records[0])


@pytest.mark.parametrize("mode", ["fasttcm", "baseline"])
def test_trains_and_predicts_rotated_boxes(mode, aerial_batches):
    from detectron2.modeling import build_model

    batches, test_input = aerial_batches
    assert all(len(d["instances"]) > 0 for b in batches for d in b)

    torch.manual_seed(0)
    model = build_model(_quick_cfg(mode))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = []
    with EventStorage():
        for i in range(8):
            loss_dict = model(batches[i % 2])
            assert all(torch.isfinite(v) for v in loss_dict.values())
            assert ("loss_score_map" in loss_dict) == (mode != "baseline")
            loss = sum(loss_dict.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert np.mean(losses[-2:]) < np.mean(losses[:2]), losses
    model.eval()
    with torch.no_grad():
        out = model([test_input])[0]
    inst = out["instances"]
    assert isinstance(inst.pred_boxes, RotatedBoxes) and inst.image_size == (test_input["height"], test_input["width"])
    assert inst.pred_classes.dtype == torch.int64 and len(inst.scores) == len(inst)
    if mode != "baseline":
        h, w = test_input["image"].shape[1:]
        assert out["score_map"].shape == (2, -(-h // 32), -(-w // 32))
