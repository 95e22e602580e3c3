"""Rotated-box augmentations and the rotated dataset mapper: boxes must stay on the pixels they describe."""
import cv2
import numpy as np
import pytest
import torch
from detectron2.data import transforms as T
from detectron2.structures import BoxMode, RotatedBoxes

from fasttcm.data.rotated_mapper import RotatedDatasetMapper
from fasttcm.data.rotated_transforms import RandomRot90, RandomVFlip, Rot90Transform, RotatedVFlipTransform
from fasttcm.structures.quads import rboxes_to_quads as rotated_boxes_to_corners


def _mask_of_boxes(boxes, hw):
    m = np.zeros(hw, dtype=np.uint8)
    for quad in rotated_boxes_to_corners(boxes):
        # continuous coordinates: pixel i spans [i, i+1], so its centre is at i + 0.5
        cv2.fillPoly(m, [np.round((quad - 0.5) * 16).astype(np.int32)], 1, shift=4)
    return m.astype(bool)


def _iou(a, b):
    return (a & b).sum() / max((a | b).sum(), 1)


BOXES = np.array([[40.0, 30.0, 50.0, 14.0, 30.0], [70.0, 60.0, 20.0, 36.0, -75.0]])


def test_corners_follow_detectron2_convention():
    # angle 90: the width now runs upwards (CCW as seen), so a 10x2 box becomes 2 wide and 10 tall
    quad = rotated_boxes_to_corners([[0, 0, 10, 2, 90]])[0]
    assert np.allclose(quad.min(0), [-1, -5]) and np.allclose(quad.max(0), [1, 5])
    # same polygon area as the box, and clockwise on screen (positive shoelace sum with y down)
    x, y = quad[:, 0], quad[:, 1]
    assert np.isclose(0.5 * np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y), 20.0)
    # the same corners detectron2's RotatedBoxes area and our polygon agree on
    assert np.isclose(RotatedBoxes(torch.tensor([[0, 0, 10, 2, 90.0]])).area().item(), 20.0)


@pytest.mark.parametrize(
    "make",
    [
        lambda h, w: Rot90Transform(h, w, 1),
        lambda h, w: Rot90Transform(h, w, 2),
        lambda h, w: Rot90Transform(h, w, 3),
        lambda h, w: RotatedVFlipTransform(h),
        lambda h, w: T.HFlipTransform(w),
        lambda h, w: T.ResizeTransform(h, w, 2 * h, 2 * w),
    ],
    ids=["rot90", "rot180", "rot270", "vflip", "hflip", "resize2x"],
)
def test_transform_moves_boxes_with_pixels(make):
    h, w = 96, 128
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[_mask_of_boxes(BOXES, (h, w))] = 255
    t = make(h, w)
    out = t.apply_image(img)
    boxes = t.apply_rotated_box(BOXES.copy())
    ink = out[:, :, 0] > 127
    assert _iou(_mask_of_boxes(boxes, out.shape[:2]), ink) > 0.9
    assert np.all(boxes[:, 4] > -180) and np.all(boxes[:, 4] <= 180)


def test_rot90_inverse_round_trip():
    t = Rot90Transform(50, 80, 1)
    pts = np.array([[3.0, 7.0], [79.0, 0.5]])
    assert t.apply_image(np.zeros((50, 80))).shape == (80, 50)
    assert np.allclose(t.inverse().apply_coords(t.apply_coords(pts)), pts)


def test_random_augmentations_choose_transforms():
    img = np.zeros((10, 20, 3), dtype=np.uint8)
    assert isinstance(RandomVFlip(prob=1.0).get_transform(img), RotatedVFlipTransform)
    assert isinstance(RandomVFlip(prob=0.0).get_transform(img), T.NoOpTransform)
    ks = {RandomRot90(prob=1.0).get_transform(img).k for _ in range(60)}
    assert ks == {1, 2, 3}


def _write_record(tmp_path, boxes, classes, difficult):
    h, w = 96, 128
    img = np.zeros((h, w, 3), dtype=np.uint8)
    img[_mask_of_boxes(boxes, (h, w))] = 255
    path = tmp_path / "img.png"
    cv2.imwrite(str(path), img)
    annos = [
        {"bbox": list(b), "bbox_mode": BoxMode.XYWHA_ABS, "category_id": c, "difficult": d, "iscrowd": 0}
        for b, c, d in zip(boxes.tolist(), classes, difficult)
    ]
    return {"file_name": str(path), "height": h, "width": w, "image_id": "img", "annotations": annos}


def test_mapper_keeps_rotated_boxes_on_pixels(tmp_path):
    rec = _write_record(tmp_path, BOXES, [0, 2], [0, 1])
    np.random.seed(0)
    mapper = RotatedDatasetMapper(
        True, augmentations=[T.ResizeShortestEdge([64], 200, "choice"), RandomVFlip(1.0), RandomRot90(1.0)],
        image_format="BGR", keep_difficult=True,
    )
    out = mapper(rec)
    inst = out["instances"]
    assert isinstance(inst.gt_boxes, RotatedBoxes) and len(inst) == 2
    assert inst.gt_classes.tolist() == [0, 2]
    img = out["image"].numpy().transpose(1, 2, 0)
    assert img.shape[:2] == inst.image_size
    ink = img[:, :, 0] > 127
    assert _iou(_mask_of_boxes(inst.gt_boxes.tensor.numpy(), img.shape[:2]), ink) > 0.85
    # the input record is not modified
    assert rec["annotations"][0]["bbox"] == BOXES[0].tolist()

    drop = RotatedDatasetMapper(True, augmentations=[], image_format="BGR", keep_difficult=False)(rec)
    assert drop["instances"].gt_classes.tolist() == [0]
    test = RotatedDatasetMapper(False, augmentations=[], image_format="BGR")(rec)
    assert "instances" not in test and test["image"].shape == (3, 96, 128)


def test_mapper_refuses_axis_aligned_boxes_and_names_unreadable_images(tmp_path):
    rec = _write_record(tmp_path, BOXES, [0, 1], [0, 0])
    rec["annotations"][1]["bbox_mode"] = BoxMode.XYWH_ABS
    mapper = RotatedDatasetMapper(True, augmentations=[], image_format="BGR")
    with pytest.raises(ValueError, match="XYWHA_ABS"):
        mapper(rec)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    rec["file_name"] = str(bad)
    with pytest.raises(OSError, match="broken.png"):
        mapper(rec)
