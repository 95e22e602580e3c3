"""TextDatasetMapper: reading, augmenting, instances and DB targets for one dataset dict."""
import numpy as np
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.structures import BoxMode, PolygonMasks
from PIL import Image

from fasttcm.config import add_fasttcm_config
from fasttcm.structures.raster import fill_polygon
from fasttcm.data.text_mapper import TextDatasetMapper, read_text_annotations

H, W = 96, 128
TEXT = np.array([[20, 20], [100, 24], [98, 44], [18, 40]], float)
DONT_CARE = np.array([[20, 60], [60, 60], [60, 80], [20, 80]], float)


def make_cfg(**input_opts):
    cfg = add_fasttcm_config(get_cfg())
    cfg.INPUT.FORMAT = "RGB"
    cfg.INPUT.MIN_SIZE_TEST = 64
    cfg.INPUT.MAX_SIZE_TEST = 200
    cfg.INPUT.MAX_SIZE_TRAIN = 400
    f = cfg.INPUT.FASTTCM
    f.TEXT_RESIZE_MODE = "scale_range"
    f.TEXT_SCALE_RANGE = (0.8, 1.5)
    f.TEXT_CROP_SIZE = 96
    for k, v in input_opts.items():
        setattr(f, k, v)
    return cfg


@pytest.fixture
def sample(tmp_path):
    img = np.zeros((H, W, 3), np.uint8)
    img[..., 2] = 60  # blue background, text red: RGB order is checkable
    for poly, colour in ((TEXT, (255, 0, 0)), (DONT_CARE, (0, 255, 0))):
        m = np.zeros((H, W), np.float32)
        fill_polygon(m, poly, 1)
        img[m > 0] = colour
    path = tmp_path / "img.png"
    Image.fromarray(img).save(path)
    annos = [
        {"segmentation": [TEXT.reshape(-1).tolist()], "bbox": [18, 20, 82, 24], "bbox_mode": BoxMode.XYWH_ABS,
         "category_id": 0, "iscrowd": 0, "text": "hello"},
        {"segmentation": [DONT_CARE.reshape(-1).tolist()], "bbox": [20, 60, 40, 20],
         "bbox_mode": BoxMode.XYWH_ABS, "category_id": 0, "iscrowd": 1, "text": "###"},
    ]
    return {"file_name": str(path), "height": H, "width": W, "image_id": 7, "annotations": annos}


def instance_iou(image, polygon):
    ink = image[0].numpy() > 127  # red channel of the RGB image
    m = np.zeros(ink.shape, np.float32)
    fill_polygon(m, polygon, 1)
    ref = m > 0
    return (ink & ref).sum() / max((ink | ref).sum(), 1)


def test_train_output_format_and_alignment(sample):
    np.random.seed(0)
    mapper = TextDatasetMapper(make_cfg(TEXT_ROTATE_PROB=1.0), True)
    seen_text = 0
    for _ in range(6):
        d = mapper(sample)
        img = d["image"]
        assert img.dtype == torch.uint8 and img.dim() == 3 and img.shape[0] == 3
        h, w = img.shape[1:]
        assert max(h, w) == 96
        assert (d["height"], d["width"], d["image_id"]) == (H, W, 7)
        assert "annotations" not in d
        inst = d["instances"]
        assert inst.image_size == (h, w)
        assert isinstance(inst.gt_masks, PolygonMasks)
        assert inst.gt_classes.dtype == torch.int64 and inst.gt_ignore.dtype == torch.bool
        assert len(inst.gt_boxes) == len(inst)
        t = d["db_targets"]
        assert set(t) == {"prob", "prob_mask", "thresh", "thresh_mask"}
        for v in t.values():
            assert v.shape == (h, w) and v.dtype == torch.float32
        text_area = np.zeros((h, w), np.float32)
        for poly, ign in zip(inst.gt_masks.polygons, inst.gt_ignore.tolist()):
            p = poly[0].reshape(-1, 2)
            assert p[:, 0].min() >= 0 and p[:, 0].max() <= w and p[:, 1].min() >= 0 and p[:, 1].max() <= h
            if not ign:
                seen_text += 1
                assert instance_iou(img, p) > 0.9  # rendered text and its polygon still coincide
                fill_polygon(text_area, p, 1)
        assert (t["prob"].numpy() * (1 - text_area)).sum() == 0  # positives only inside text polygons
        assert (t["prob"] * (1 - t["thresh_mask"])).sum() == 0  # shrunk text lies inside the dilated text
        if bool(inst.gt_ignore.any()):
            assert (t["prob_mask"] == 0).any()
    assert seen_text >= 3


def test_dont_care_is_masked_without_augmentation(sample):
    cfg = make_cfg(TEXT_RESIZE_MODE="none", TEXT_CROP_SIZE=0, TEXT_ROTATE_PROB=0.0, TEXT_COLOR_JITTER_PROB=0.0)
    d = TextDatasetMapper(cfg, True)(sample)
    assert tuple(d["image"].shape[1:]) == (H, W)
    assert d["instances"].gt_ignore.tolist() == [False, True]
    t = d["db_targets"]
    assert t["prob_mask"][62:78, 22:58].max() == 0 and t["prob"][62:78, 22:58].max() == 0
    assert t["prob"][30, 60] == 1 and t["prob_mask"][30, 60] == 1
    assert d["image"][0, 30, 60] == 255 and d["image"][2, 5, 5] == 60  # RGB order


def test_test_mode_resizes_only_and_keeps_original_size(sample):
    d = TextDatasetMapper(make_cfg(), False)(sample)
    assert tuple(d["image"].shape[1:]) == (64, round(128 * 64 / 96))
    assert (d["height"], d["width"]) == (H, W)
    assert "instances" not in d and "db_targets" not in d and "annotations" not in d


def test_unreadable_image_names_the_file(tmp_path, sample):
    bad = tmp_path / "corrupt.jpg"
    bad.write_bytes(b"not an image at all")
    mapper = TextDatasetMapper(make_cfg(), True)
    with pytest.raises(OSError, match="corrupt.jpg"):
        mapper({**sample, "file_name": str(bad)})
    with pytest.raises(OSError, match="missing.png"):
        mapper({**sample, "file_name": str(tmp_path / "missing.png")})


def test_read_text_annotations_repairs_and_drops():
    annos = [
        {"segmentation": [[0, 0, 10, 10, 10, 0, 0, 10]], "category_id": 0, "iscrowd": 0},  # bow-tie: reordered
        {"segmentation": [[0, 0, 5, 5, 10, 10]], "category_id": 0, "iscrowd": 0},  # collinear: dropped
        {"segmentation": [[0, 0, 4, 0, 4, 4], [10, 10, 14, 10, 14, 14]], "category_id": 2, "iscrowd": 1},
    ]
    polys, ignore, classes = read_text_annotations(annos)
    assert len(polys) == 3 and list(ignore) == [False, True, True] and list(classes) == [0, 2, 2]
    with pytest.raises(ValueError, match="RLE"):
        read_text_annotations([{"segmentation": {"counts": "x", "size": [4, 4]}}], "f.png")


def test_augmentation_list_from_config():
    from detectron2.data import transforms as T

    from fasttcm.data.transforms import RandomColorJitter, RandomScaleRange, TextRandomCrop, build_text_augmentations
    from fasttcm.engine.trainer import build_mapper

    augs = build_text_augmentations(make_cfg(TEXT_HFLIP_PROB=0.5), True)
    kinds = [type(a) for a in augs]
    assert kinds == [RandomScaleRange, T.RandomFlip, T.RandomApply, TextRandomCrop, RandomColorJitter]
    assert augs[0].max_size == 4096
    augs = build_text_augmentations(make_cfg(TEXT_RESIZE_MODE="shortest_edge"), True)
    assert isinstance(augs[0], T.ResizeShortestEdge) and not any(isinstance(a, T.RandomFlip) for a in augs)
    test_augs = build_text_augmentations(make_cfg(), False)
    assert len(test_augs) == 1 and isinstance(test_augs[0], T.ResizeShortestEdge)
    with pytest.raises(ValueError, match="TEXT_RESIZE_MODE"):
        build_text_augmentations(make_cfg(TEXT_RESIZE_MODE="random"), True)
    cfg = make_cfg()
    cfg.MODEL.META_ARCHITECTURE = "TextDetector"
    assert isinstance(build_mapper(cfg, True), TextDatasetMapper)
