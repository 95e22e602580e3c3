"""Text datasets on the real samples in ../shared/data, and registration through Detectron2's catalogs."""
import logging
import os

import numpy as np
import pytest
from shapely.geometry import Polygon

import fasttcm.data.datasets  # noqa: F401  (registers the built-in datasets)
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from fasttcm.data.datasets.builtin import TEXT_SPLITS, register_all_text, text_split_paths
from fasttcm.data.datasets.text import LoadStats, load_gt_file, load_text_dataset, register_text_dataset

IC15_IMG = "icdar2015/ch4_training_images"
IC15_GT = "icdar2015/ch4_training_localization_transcription_gt"


def _check_dict(d):
    assert set(d) >= {"file_name", "height", "width", "image_id", "annotations"}
    assert os.path.isfile(d["file_name"])
    for a in d["annotations"]:
        (poly,) = a["segmentation"]
        assert all(isinstance(v, float) for v in poly) and len(poly) % 2 == 0 and len(poly) >= 6
        pts = np.asarray(poly).reshape(-1, 2)
        x0, y0 = pts.min(0)
        x1, y1 = pts.max(0)
        assert a["bbox"] == pytest.approx([x0, y0, x1 - x0, y1 - y0])
        assert a["bbox_mode"] == BoxMode.XYWH_ABS and a["category_id"] == 0 and a["iscrowd"] in (0, 1)
        assert isinstance(a["text"], str)
        assert Polygon(pts).is_valid


# ------------------------------------------------------------------------------------------ ICDAR 2015 --
def test_icdar2015_real_sample(shared_data, caplog):
    stats = LoadStats()
    with caplog.at_level(logging.INFO, logger="fasttcm"):
        dicts = load_text_dataset(
            str(shared_data / IC15_IMG), str(shared_data / IC15_GT), "icdar15", "ic15", stats=stats
        )
    assert len(dicts) == 10
    annos = [a for d in dicts for a in d["annotations"]]
    assert len(annos) == 82
    assert sum(a["iscrowd"] for a in annos) == 61
    assert sum(a["text"] == "###" for a in annos) == 61
    assert (stats.images, stats.instances, stats.dont_care, stats.repaired, stats.dropped) == (10, 82, 61, 0, 0)
    assert "ic15: 10 images, 82 instances (61 don't care), 0 repaired, 0 dropped" in caplog.text
    by_id = {d["image_id"]: d for d in dicts}
    assert set(by_id) == {f"img_{i}" for i in range(1, 11)}
    for d in dicts:
        assert (d["height"], d["width"]) == (720, 1280)
        _check_dict(d)
    img1 = by_id["img_1"]["annotations"]
    assert img1[0]["text"] == "Genaxis Theatre"  # the BOM did not leak into the first line
    assert img1[0]["segmentation"][0] == [377.0, 117.0, 463.0, 117.0, 465.0, 130.0, 378.0, 130.0]
    assert [a["text"] for a in img1 if not a["iscrowd"]] == ["Genaxis Theatre", "[06]", "62-03", "Carpark"]
    assert by_id["img_5"]["annotations"] and all(a["iscrowd"] == 1 for a in by_id["img_5"]["annotations"])
    # quads are clockwise in image coordinates
    from fasttcm.structures.polygons import is_clockwise

    assert all(is_clockwise(np.reshape(a["segmentation"][0], (-1, 2))) for a in annos)


def test_icdar2015_official_folder_names_as_builtin_root(shared_data):
    img, gt = text_split_paths("icdar2015_train", str(shared_data))
    assert img.endswith("ch4_training_images") and gt.endswith("ch4_training_localization_transcription_gt")
    img, gt = text_split_paths("icdar2015_test", str(shared_data))  # absent: primary documented names
    assert img.endswith(os.path.join("icdar2015", "test_images")) and gt.endswith("test_gts")


# ------------------------------------------------------------------------------------------ Total-Text --
def test_totaltext_real_sample(shared_data):
    stats = LoadStats()
    dicts = load_text_dataset(
        str(shared_data / "totaltext/Images/Test"),
        str(shared_data / "totaltext/Groundtruth/Polygon/Test"),
        "totaltext",
        stats=stats,
    )
    assert len(dicts) == 1
    (d,) = dicts
    _check_dict(d)
    assert d["image_id"] == "img3" and (d["height"], d["width"]) == (960, 1280)
    assert len(d["annotations"]) == 4 and stats.dont_care == 0 and stats.repaired == stats.dropped == 0
    assert [a["text"] for a in d["annotations"]] == ["KELUAR", "naughty", "NURS", "restaurant"]
    assert d["annotations"][0]["segmentation"][0] == [697.0, 196.0, 890.0, 202.0, 892.0, 261.0, 694.0, 259.0]
    assert [len(a["segmentation"][0]) // 2 for a in d["annotations"]] == [4, 6, 6, 8]


def test_totaltext_gt_only_files(shared_data):
    folder = shared_data / "totaltext/gt_only_no_images/Test"
    per_file = {n: load_gt_file(str(folder / f"poly_gt_img{n}.mat"), "totaltext") for n in (1, 2, 4, 5)}
    assert {n: len(v) for n, v in per_file.items()} == {1: 1, 2: 9, 4: 12, 5: 1}
    insts = [i for v in per_file.values() for i in v]
    assert len(insts) == 23
    assert sum(i.ignore for i in insts) == 3
    assert {n: sum(i.ignore for i in v) for n, v in per_file.items()} == {1: 0, 2: 2, 4: 1, 5: 0}
    assert per_file[1][0].text == "PETROSAINS" and per_file[1][0].points.shape == (10, 2)
    assert per_file[2][0].points.tolist() == [[115, 322], [503, 346], [494, 426], [115, 404]]
    assert [i.line for i in per_file[2]] == list(range(1, 10))
    assert all(Polygon(i.points).is_valid for i in insts)


def test_gt_without_image_names_the_file(shared_data, tmp_path, caplog):
    folder = str(shared_data / "totaltext/gt_only_no_images/Test")
    with pytest.raises(FileNotFoundError, match="poly_gt_img1.mat"):
        load_text_dataset(str(tmp_path), folder, "totaltext")
    stats = LoadStats()
    with caplog.at_level(logging.WARNING, logger="fasttcm"):
        assert load_text_dataset(str(tmp_path), folder, "totaltext", on_missing="warn", stats=stats) == []
    assert len(stats.skipped_files) == 4 and "poly_gt_img5.mat" in caplog.text


# ---------------------------------------------------------------------------------------- registration --
def test_builtin_names_registered_lazily():
    names = set(DatasetCatalog.list())
    assert set(TEXT_SPLITS) <= names
    assert {"synthetic_text_train", "synthetic_text_val"} <= names
    expect = {"icdar2015": ("icdar15", False), "totaltext": ("totaltext", True), "ctw1500": ("ctw1500", False)}
    for name in TEXT_SPLITS:
        m = MetadataCatalog.get(name)
        ev, ws = expect[name.split("_")[0]]
        assert m.thing_classes == ["text"] and m.evaluator_type == ev and m.word_spotting is ws
        assert m.gt_dir and m.image_root
    assert MetadataCatalog.get("synthetic_text_train").evaluator_type == "totaltext"


def test_builtin_registration_under_a_root(shared_data):
    saved = {n: (DatasetCatalog[n], MetadataCatalog.get(n).as_dict()) for n in TEXT_SPLITS}
    try:
        for n in TEXT_SPLITS:
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)
        register_all_text(str(shared_data))
        dicts = DatasetCatalog.get("icdar2015_train")
        assert len(dicts) == 10 and sum(len(d["annotations"]) for d in dicts) == 82
        assert MetadataCatalog.get("icdar2015_train").gt_dir == str(shared_data / IC15_GT)
        assert len(DatasetCatalog.get("totaltext_test")) == 1
        with pytest.raises(FileNotFoundError, match="ctw1500"):
            DatasetCatalog.get("ctw1500_train")  # not there: fails on use, naming the folder
    finally:
        for n, (fn, meta) in saved.items():
            DatasetCatalog.remove(n)
            MetadataCatalog.remove(n)
            DatasetCatalog.register(n, fn)
            meta.pop("name", None)
            MetadataCatalog.get(n).set(**meta)


def test_register_text_dataset_one_call(shared_data):
    name = "test_custom_ic15"
    register_text_dataset(name, str(shared_data / IC15_IMG), str(shared_data / IC15_GT), fmt="icdar2015", year=2015)
    try:
        m = MetadataCatalog.get(name)
        assert (m.evaluator_type, m.gt_format, m.year, m.word_spotting) == ("icdar15", "icdar15", 2015, False)
        assert m.gt_dir == str(shared_data / IC15_GT)
        assert len(DatasetCatalog.get(name)) == 10
        with pytest.raises(ValueError, match="already registered"):
            register_text_dataset(name, "a", "b")
        register_text_dataset(name, "nowhere/img", "nowhere/gt", fmt="ctw1500", overwrite=True)  # lazy: no error
        assert MetadataCatalog.get(name).evaluator_type == "ctw1500"
        with pytest.raises(FileNotFoundError, match="nowhere"):
            DatasetCatalog.get(name)
        with pytest.raises(ValueError, match="unknown text dataset format"):
            register_text_dataset("test_bad_fmt", "a", "b", fmt="coco")
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
