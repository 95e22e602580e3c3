"""FastTCMPredictor (whole images and tiled aerial images) and tools/demo.py's pictures and JSON."""
import json

import cv2
import numpy as np
import pytest
import torch
from detectron2.structures import Instances, RotatedBoxes

import fasttcm.engine  # noqa: F401  (registers fasttcm's config keys, datasets and models)
from fasttcm.engine import load_config
from fasttcm.predictor import FastTCMPredictor
from fasttcm.utils.demo import main as demo_main

from conftest import REPO
AERIAL = str(REPO / "configs/quickstart/fasttcm_synthaerial_cpu.yaml")
TEXT = str(REPO / "configs/quickstart/fasttcm_synthtext_cpu.yaml")


class _OneBoxPerTile(torch.nn.Module):
    """Stands in for a detector: one box at the centre of whatever tile it sees, plus a duplicate of class 1
    that overlaps neighbours' duplicates, so merging must shift boxes back and suppress overlaps."""

    def forward(self, batched):
        d = batched[0]
        h, w = d["height"], d["width"]
        inst = Instances((h, w))
        inst.pred_boxes = RotatedBoxes(torch.tensor([[w / 2, h / 2, 20.0, 10.0, 30.0], [w - 1.0, h / 2, 60.0, 100.0, 0.0]]))
        inst.scores = torch.tensor([0.9, 0.5])
        inst.pred_classes = torch.tensor([0, 1])
        return [{"instances": inst}]


def test_tiled_prediction_maps_boxes_back_and_merges():
    cfg = load_config(AERIAL, ["TEST.FASTTCM.TILE_SIZE", "100", "TEST.FASTTCM.TILE_GAP", "20"])
    pred = FastTCMPredictor(cfg)
    pred.model = _OneBoxPerTile()
    img = np.zeros((150, 250, 3), dtype=np.uint8)  # tiles start at x 0, 80, 150 and y 0, 50
    out = pred(img)["instances"]
    assert out.image_size == (150, 250)
    b = out.pred_boxes.tensor.numpy()
    centres = {(round(x), round(y)) for x, y in b[out.pred_classes.numpy() == 0, :2]}
    assert centres == {(x + 50, y + 50) for x in (0, 80, 150) for y in (0, 50)}
    # class-1 boxes of neighbouring tiles along y overlap (IoU > 0.1) and are merged
    ones = b[out.pred_classes.numpy() == 1]
    assert len(ones) == 3 and set(np.round(ones[:, 0]).tolist()) == {99, 179, 249}
    # a small image is not tiled
    small = pred(np.zeros((90, 90, 3), dtype=np.uint8))["instances"]
    assert len(small) == 2 and small.image_size == (90, 90)


def test_tiled_inference_on_real_dota_image(shared_data):
    path = shared_data / "dota" / "images" / "P0706.png"
    img = cv2.imread(str(path))
    torch.manual_seed(0)
    cfg = load_config(AERIAL, ["TEST.FASTTCM.TILE_SIZE", "1024", "MODEL.ROI_HEADS.SCORE_THRESH_TEST", "0.0"])
    out = FastTCMPredictor(cfg)(img)["instances"]
    h, w = img.shape[:2]
    assert out.image_size == (h, w) and max(h, w) > 1024
    assert len(out) > 0 and isinstance(out.pred_boxes, RotatedBoxes)
    c = out.pred_boxes.tensor[:, :2]
    assert bool((c[:, 0] >= -1).all() and (c[:, 0] <= w + 1).all() and (c[:, 1] >= -1).all() and (c[:, 1] <= h + 1).all())


def test_demo_writes_pictures_json_and_heatmaps(tmp_path, shared_data):
    torch.manual_seed(0)
    img = shared_data / "demo" / "mmocr" / "demo_text_det.jpg"
    out_dir = tmp_path / "demo"
    assert demo_main(["--config-file", TEXT, "--input", str(img), "--output", str(out_dir), "--heatmap",
                      "--confidence-threshold", "0.0"]) == 0
    vis = cv2.imread(str(out_dir / "demo_text_det.jpg"))
    heat = cv2.imread(str(out_dir / "demo_text_det_scoremap.jpg"))
    src = cv2.imread(str(img))
    assert vis.shape == src.shape and heat.shape == src.shape
    rec = json.loads((out_dir / "demo_text_det.json").read_text())
    assert rec["height"] == src.shape[0] and rec["width"] == src.shape[1]
    for p in rec["predictions"]:
        assert len(p["polygon"]) >= 3 and 0.0 <= p["score"] <= 1.0


def test_demo_names_missing_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        demo_main(["--config-file", TEXT, "--input", str(tmp_path / "nope*.jpg"), "--output", str(tmp_path)])


def test_demo_processes_a_video(tmp_path):
    src = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(src), cv2.VideoWriter_fourcc(*"mp4v"), 5, (96, 64))
    if not writer.isOpened():
        pytest.skip("OpenCV here has no mp4v encoder")
    for i in range(4):
        frame = np.full((64, 96, 3), 40 * i, dtype=np.uint8)
        cv2.putText(frame, "AB", (10, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        writer.write(frame)
    writer.release()
    out = tmp_path / "out.mp4"
    torch.manual_seed(0)
    assert demo_main(["--config-file", TEXT, "--video-input", str(src), "--output", str(out)]) == 0
    cap = cv2.VideoCapture(str(out))
    shapes = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        shapes.append(frame.shape)
    cap.release()
    assert shapes == [(64, 96, 3)] * 4
