"""TextDetector: a short training run on synthetic images (loss falls), inference output format, score-map loss."""
import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.structures import BoxMode, Boxes, Instances
from detectron2.utils.events import EventStorage
from PIL import Image

import fasttcm.modeling  # noqa: F401  (registers fasttcm's backbones and meta-architectures)
from fasttcm.config import add_fasttcm_config
from fasttcm.structures.raster import fill_polygon
from fasttcm.data.text_mapper import TextDatasetMapper
from fasttcm.modeling.text_detector import TextDetector, pad_db_targets, score_map_targets

H, W = 64, 96


def tiny_cfg(backbone="resnet"):
    cfg = add_fasttcm_config(get_cfg())
    cfg.MODEL.META_ARCHITECTURE = "TextDetector"
    cfg.MODEL.DEVICE = "cpu"
    cfg.INPUT.FORMAT = "RGB"
    if backbone == "resnet":
        cfg.MODEL.BACKBONE.NAME = "build_resnet_fpn_backbone"
        # a narrow ResNet-50 (bottleneck width 4, 16..128 channels): ~0.3 M parameters, fast on 2 CPU cores
        cfg.MODEL.RESNETS.DEPTH = 50
        cfg.MODEL.RESNETS.WIDTH_PER_GROUP = 4
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 16
        cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = 16
        cfg.MODEL.RESNETS.NORM = "BN"
        cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
        cfg.MODEL.FPN.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    else:
        from fasttcm.modeling.backbone import set_clip_input_config

        set_clip_input_config(cfg)
        cfg.MODEL.BACKBONE.NAME = "build_fasttcm_fpn_backbone"
        cfg.MODEL.FASTTCM.MODE = backbone
        cfg.MODEL.FASTTCM.CLIP.NAME = "tiny-test"
        cfg.MODEL.FASTTCM.DECODER_WIDTH = 32
        cfg.MODEL.FASTTCM.DECODER_LAYERS = 1
        cfg.MODEL.FASTTCM.DECODER_HEADS = 4
    cfg.MODEL.FPN.OUT_CHANNELS = 32
    cfg.MODEL.FASTTCM.DB.INNER_CHANNELS = 16
    cfg.MODEL.FASTTCM.DB.MIN_TEXT_SIZE = 3
    f = cfg.INPUT.FASTTCM  # fixed data: no augmentation, so the loss curve reflects learning only
    f.TEXT_RESIZE_MODE, f.TEXT_CROP_SIZE, f.TEXT_ROTATE_PROB, f.TEXT_COLOR_JITTER_PROB = "none", 0, 0.0, 0.0
    cfg.INPUT.MIN_SIZE_TEST, cfg.INPUT.MAX_SIZE_TEST = H, 1000
    return cfg


def synthetic_dataset(tmp_path, n=4, seed=0):
    """``n`` images of dark noise with 1-2 bright quadrilaterals (text stand-ins) each, as dataset dicts."""
    rng = np.random.default_rng(seed)
    dicts = []
    for i in range(n):
        img = rng.integers(0, 60, (H, W, 3)).astype(np.uint8)
        annos = []
        for j in range(1 + i % 2):
            cx, cy = rng.uniform(25, 70), 16 + 30 * j + rng.uniform(-3, 3)
            w, h, a = rng.uniform(30, 44), rng.uniform(10, 14), np.deg2rad(rng.uniform(-10, 10))
            c, s = np.cos(a), np.sin(a)
            poly = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]]) @ [[c, s], [-s, c]]
            poly += [cx, cy]
            m = np.zeros((H, W), np.float32)
            fill_polygon(m, poly, 1)
            img[m > 0] = rng.integers(180, 256, 3)
            annos.append({"segmentation": [poly.reshape(-1).tolist()], "bbox": [0, 0, 1, 1],
                          "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0, "iscrowd": 0})
        path = tmp_path / f"{i}.png"
        Image.fromarray(img).save(path)
        dicts.append({"file_name": str(path), "height": H, "width": W, "image_id": i, "annotations": annos})
    return dicts


def train(model, batches, iters, lr=2e-3):
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr, weight_decay=1e-4)
    history = []
    model.train()
    with EventStorage():
        for it in range(iters):
            losses = model(batches[it % len(batches)])
            total = sum(losses.values())
            assert torch.isfinite(total), losses
            opt.zero_grad()
            total.backward()
            opt.step()
            history.append({k: float(v.detach()) for k, v in losses.items()})
    return history


def test_training_loss_falls_and_inference_format(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_cfg()
    cfg.TEST.FASTTCM.RETURN_MAPS = True
    model = build_model(cfg)
    assert isinstance(model, TextDetector)
    data = [TextDatasetMapper(cfg, True)(d) for d in synthetic_dataset(tmp_path)]
    batches = [data[0:2], data[2:4]]
    history = train(model, batches, 40, lr=1e-2)
    assert set(history[0]) == {"loss_db_prob", "loss_db_binary", "loss_db_thresh"}  # no score map: no aux loss
    totals = [sum(h.values()) for h in history]
    first, last = np.mean(totals[:5]), np.mean(totals[-5:])
    assert last < 0.6 * first, (first, last)  # typically ~0.25

    model.eval()
    model.postprocessor.box_thresh = 0.5
    test_dicts = synthetic_dataset(tmp_path, n=2)  # the first two training images
    test_inputs = [TextDatasetMapper(cfg, False)(d) for d in test_dicts]
    test_inputs[1]["height"], test_inputs[1]["width"] = 2 * H, 2 * W  # predictions rescale to this size
    with torch.no_grad():
        outputs = model(test_inputs)
    assert len(outputs) == 2
    for out, size in zip(outputs, [(H, W), (2 * H, 2 * W)]):
        inst = out["instances"]
        assert isinstance(inst, Instances) and inst.image_size == size
        n = len(inst)
        assert len(inst.pred_polygons) == n and inst.scores.shape == (n,) and inst.scores.dtype == torch.float32
        assert inst.pred_classes.tolist() == [0] * n
        assert isinstance(inst.pred_boxes, Boxes) and inst.pred_boxes.tensor.shape == (n, 4)
        for p, box in zip(inst.pred_polygons, inst.pred_boxes.tensor):
            assert p.dtype == np.float32 and p.ndim == 2 and p.shape[1] == 2 and len(p) >= 4
            assert p[:, 0].max() <= size[1] and p[:, 1].max() <= size[0] and p.min() >= 0
            np.testing.assert_allclose(box.numpy(), [*p.min(0), *p.max(0)], atol=1e-4)
        assert out["prob_map"].shape == size
        assert "score_map" not in out
        kept = inst[inst.scores > 0.0]  # Instances indexing works with the polygon list
        assert len(kept) == n
    # the trained model finds the text it was trained on, in original-image coordinates
    for out, d, scale in zip(outputs, test_dicts, (1, 2)):
        gts = [np.asarray(a["segmentation"][0]).reshape(-1, 2) * scale for a in d["annotations"]]
        preds = out["instances"].pred_polygons
        assert len(preds) >= 1
        best = max(polygon_iou(p, g) for p in preds for g in gts)
        assert best > 0.5, best
    # and the outputs are what the evaluator consumes (Total-Text protocol on the first image, original size)
    evaluation = evaluate_with_text_evaluator(test_dicts[:1], test_inputs[:1], outputs[:1], tmp_path)
    assert evaluation["text_det"]["hmean"] > 0


def evaluate_with_text_evaluator(dicts, inputs, outputs, tmp_path):
    import uuid

    from detectron2.data import DatasetCatalog, MetadataCatalog

    from fasttcm.evaluation.text_evaluator import TextDetEvaluator

    name = f"test_text_detector_{uuid.uuid4().hex[:8]}"
    DatasetCatalog.register(name, lambda: dicts)
    MetadataCatalog.get(name).set(thing_classes=["text"], evaluator_type="totaltext")
    try:
        ev = TextDetEvaluator(name, output_dir=str(tmp_path / "eval"), score_threshold=0.5, distributed=False)
        ev.reset()
        ev.process(inputs, outputs)
        return ev.evaluate()
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def polygon_iou(a, b):
    from shapely.geometry import Polygon

    a, b = Polygon(a).buffer(0), Polygon(b).buffer(0)
    return a.intersection(b).area / a.union(b).area


def test_pad_db_targets_and_score_map_targets():
    t1 = {k: torch.ones(3, 4) for k in ("prob", "prob_mask", "thresh", "thresh_mask")}
    t2 = {k: torch.ones(2, 5) for k in ("prob", "prob_mask", "thresh", "thresh_mask")}
    out = pad_db_targets([t1, t2], (4, 8), torch.device("cpu"))
    assert out["prob"].shape == (2, 4, 8)
    assert out["prob"][0, 3].sum() == 0 and out["prob"][0, :3, :4].min() == 1
    assert out["prob_mask"].min() == 1  # padding counts as background for P
    assert out["thresh_mask"][1, 2:].sum() == 0 and out["thresh_mask"][1, :, 5:].sum() == 0
    with pytest.raises(ValueError):
        pad_db_targets([t1], (2, 8), torch.device("cpu"))
    prob = torch.zeros(1, 64, 64)
    prob[0, 10:12, 5:30] = 1  # a thin kernel in cell (0, 0)
    mask = torch.ones(1, 64, 64)
    mask[0, 40:50, 40:50] = 0  # don't care in cell (1, 1)
    mask[0, 10:12, 30:33] = 0  # don't care touching a text cell: stays text
    text, ignore = score_map_targets(prob, mask, (2, 2))
    assert text.shape == (1, 1, 2, 2) and text[0, 0].tolist() == [[1, 0], [0, 0]]
    assert ignore[0, 0].tolist() == [[False, True], [False, True]]


def test_score_map_loss_with_fasttcm_tiny_backbone(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_cfg("fasttcm")
    cfg.TEST.FASTTCM.RETURN_MAPS = True
    model = build_model(cfg)
    data = [TextDatasetMapper(cfg, True)(d) for d in synthetic_dataset(tmp_path, n=2)]
    history = train(model, [data], 3)
    for h in history:
        assert set(h) == {"loss_db_prob", "loss_db_binary", "loss_db_thresh", "loss_score_map"}
        assert np.isfinite(h["loss_score_map"]) and h["loss_score_map"] > 0
    # the loss is the backbone's balanced BCE on the downsampled shrunk text, times the configured weight
    from fasttcm.modeling.losses import score_map_text_loss

    values = {}
    for weight in (1.0, 2.5):
        cfg.MODEL.FASTTCM.SCORE_MAP_LOSS_WEIGHT = weight
        torch.manual_seed(1)
        m = build_model(cfg).train()
        with EventStorage():
            values[weight] = float(m(data)["loss_score_map"].detach())
    assert values[2.5] == pytest.approx(2.5 * values[1.0], rel=1e-5)
    with torch.no_grad():
        images = m.preprocess_image(data)
        score_map = m.backbone.forward_with_aux(images.tensor)[1]["score_map"]
        targets = pad_db_targets([x["db_targets"] for x in data], tuple(images.tensor.shape[-2:]), m.device)
        text, ignore = score_map_targets(targets["prob"], targets["prob_mask"], tuple(score_map.shape[-2:]))
        assert text.sum() > 0
        assert values[2.5] == pytest.approx(2.5 * float(score_map_text_loss(score_map, text, ignore)), rel=1e-4)
    cfg.MODEL.FASTTCM.SCORE_MAP_LOSS_WEIGHT = 0.0
    model0 = build_model(cfg)
    assert "loss_score_map" not in train(model0, [data], 1)[0]
    model.eval()
    with torch.no_grad():
        out = model([TextDatasetMapper(cfg, False)(d) for d in synthetic_dataset(tmp_path, n=1)])[0]
    assert out["score_map"].shape == (1, 2, 3)  # 64 x 96 image -> 2 x 3 cells of 32 px
    assert out["prob_map"].shape == (H, W)
    assert isinstance(out["instances"], Instances)


def test_baseline_mode_has_no_score_map_loss(tmp_path):
    torch.manual_seed(0)
    cfg = tiny_cfg("baseline")
    model = build_model(cfg)
    data = [TextDatasetMapper(cfg, True)(d) for d in synthetic_dataset(tmp_path, n=2)]
    assert "loss_score_map" not in train(model, [data], 1)[0]


def test_training_without_targets_is_refused(tmp_path):
    cfg = tiny_cfg()
    model = build_model(cfg)
    inputs = [TextDatasetMapper(cfg, False)(d) for d in synthetic_dataset(tmp_path, n=1)]
    with EventStorage(), pytest.raises(KeyError, match="db_targets"):
        model(inputs)


def test_missing_fpn_level_is_refused():
    cfg = tiny_cfg()
    cfg.MODEL.FASTTCM.DB.IN_FEATURES = ["p2", "p3", "p9"]
    with pytest.raises(ValueError, match="p9"):
        build_model(cfg)
