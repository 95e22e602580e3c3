"""DOTA labelTxt parsing, dataset dicts and registration, bad input, and the synthetic aerial dataset."""
import logging
import os
import shutil

import cv2
import numpy as np
import pytest
import shapely
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from fasttcm.data.datasets import dota, synthetic_aerial  # noqa: F401  (registers on import)
from fasttcm.data.datasets.dota import load_dota_dataset, register_dota
from fasttcm.data.datasets.synthetic_aerial import (
    SYNTHETIC_AERIAL_CLASSES,
    SyntheticAerialConfig,
    materialize_synthetic_aerial,
    register_synthetic_aerial,
    render_synthetic_aerial_image,
)
from fasttcm.structures.quads import quad_iou_pairs, rboxes_to_quads
from fasttcm.formats.dota import (
    DOTA_V1_CLASSES,
    DOTA_V15_CLASSES,
    parse_label_file,
    parse_label_text,
)

SAMPLES = ("P0248", "P0706", "P1888")


@pytest.fixture(scope="module")
def dota_dir(shared_data):
    d = shared_data / "dota"
    if not (d / "images").is_dir():
        pytest.skip(f"no DOTA samples in {d}")
    return d


# ------------------------------------------------------------------------------------------- real samples
def test_parse_real_samples(dota_dir):
    files = [parse_label_file(str(dota_dir / "labelTxt" / f"{n}.txt"), DOTA_V1_CLASSES) for n in SAMPLES]
    assert sum(len(f) for f in files) == 647
    assert sum(int((f.difficult > 0).sum()) for f in files) == 26
    counts = {}
    for f in files:
        for n in f.names:
            counts[n] = counts.get(n, 0) + 1
    assert counts == {"ship": 531, "large-vehicle": 54, "small-vehicle": 45, "plane": 12, "harbor": 5}
    for f in files:  # header lines read, not counted as objects
        assert f.header["imagesource"] == "GoogleEarth" and float(f.header["gsd"]) > 0
        assert (f.lines >= 3).all()
    # CR/LF files; P0248 writes floats ("274.0"), the others integers
    raw = (dota_dir / "labelTxt" / "P0248.txt").read_bytes()
    assert b"\r\n" in raw and b"274.0 59.0" in raw
    p0248 = files[0]
    assert p0248.quads[0].reshape(-1).tolist() == [274, 59, 265, 57, 270, 25, 281, 26]
    assert p0248.names[0] == "large-vehicle" and p0248.class_ids[0] == DOTA_V1_CLASSES.index("large-vehicle")


def test_dataset_dicts_of_real_samples(dota_dir):
    recs = load_dota_dataset(str(dota_dir / "images"), str(dota_dir / "labelTxt"))
    assert [r["image_id"] for r in recs] == list(SAMPLES)
    sizes = {r["image_id"]: (r["width"], r["height"]) for r in recs}
    assert sizes == {"P0248": (594, 1104), "P0706": (1111, 1182), "P1888": (712, 557)}
    annos = [a for r in recs for a in r["annotations"]]
    assert len(annos) == 647
    assert sum(a["difficult"] for a in annos) == 26
    assert all(a["iscrowd"] == int(a["difficult"] > 0) for a in annos)
    assert all(a["bbox_mode"] == BoxMode.XYWHA_ABS for a in annos)
    boxes = np.array([a["bbox"] for a in annos])
    quads = np.array([a["segmentation"][0] for a in annos]).reshape(-1, 4, 2)
    assert (boxes[:, 2] >= boxes[:, 3]).all() and (boxes[:, 4] >= -90).all() and (boxes[:, 4] < 90).all()
    # the box is the minimum-area rectangle of the label: it covers it, and for the (nearly rectangular) real
    # labels it is close to it
    rect = shapely.polygons(rboxes_to_quads(boxes))
    assert shapely.covers(shapely.buffer(rect, 1e-6), shapely.polygons(quads)).all()
    assert np.median(quad_iou_pairs(rboxes_to_quads(boxes), quads)) > 0.9
    # segmentation: the label's corners as written
    first = recs[0]["annotations"][0]
    assert first["segmentation"] == [[274.0, 59.0, 265.0, 57.0, 270.0, 25.0, 281.0, 26.0]]
    assert first["category_id"] == DOTA_V1_CLASSES.index("large-vehicle")


def test_registration_is_lazy_and_metadata(dota_dir, tmp_path):
    names = DatasetCatalog.list()
    for split in ("train", "val", "trainval", "test"):
        assert f"dota_v1_{split}" in names and f"dota_v1_{split}_1024" in names
    assert "synthetic_aerial_train" in names and "synthetic_aerial_val" in names
    m = MetadataCatalog.get("dota_v1_val_1024")
    assert m.evaluator_type == "dota" and m.is_split and len(m.thing_classes) == 15
    assert m.gt_dir.endswith(os.path.join("dota", "val", "labelTxt"))
    assert m.imageset.endswith(os.path.join("val_1024", "source_images.txt"))
    assert MetadataCatalog.get("dota_v1_test").gt_dir is None
    assert MetadataCatalog.get("dota_v1_trainval").gt_dir[1].endswith(os.path.join("val", "labelTxt"))
    # a set on a missing folder registers fine and fails on use, naming the folder
    register_dota("dota_test_missing", str(tmp_path / "nowhere" / "images"), str(tmp_path / "nowhere" / "l"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        DatasetCatalog.get("dota_test_missing")
    # a real one
    register_dota("dota_test_samples", str(dota_dir / "images"), str(dota_dir / "labelTxt"), overwrite=True)
    assert len(DatasetCatalog.get("dota_test_samples")) == 3
    assert MetadataCatalog.get("dota_test_samples").gt_dir == str(dota_dir / "labelTxt")
    with pytest.raises(ValueError, match="already registered"):
        register_dota("dota_test_samples", str(dota_dir / "images"))
    # without labels (a test split): no annotations key
    register_dota("dota_test_nolabels", str(dota_dir / "images"), overwrite=True)
    recs = DatasetCatalog.get("dota_test_nolabels")
    assert len(recs) == 3 and all("annotations" not in r for r in recs)


def test_imageset_selects_images(dota_dir, tmp_path):
    lst = tmp_path / "set.txt"
    lst.write_text("P1888.png\n\nP0248\n")
    recs = load_dota_dataset(str(dota_dir / "images"), str(dota_dir / "labelTxt"), imageset=str(lst))
    assert [r["image_id"] for r in recs] == ["P1888", "P0248"]
    with pytest.raises(FileNotFoundError, match="P9999"):
        load_dota_dataset(str(dota_dir / "images"), str(dota_dir / "labelTxt"), imageset=["P9999"])


# ---------------------------------------------------------------------------------------------- bad input
GOOD = "imagesource:GoogleEarth\r\ngsd:0.1\r\n10 10 30 10 30 20 10 20 plane 0\r\n"


@pytest.mark.parametrize(
    "line, message",
    [
        ("10 10 30 10 30 20 10 plane 0", "got 9 fields|coordinate 8"),  # 7 coordinates
        ("10 10 30 10 30 20 10 20 plane 0 extra", "got 11 fields"),
        ("10 10 30 10 30 20 10", "got 7 fields"),
        ("10 10 30 10 30 20 10 20 airship 0", "unknown class 'airship'"),
        ("10 10 30 10 nan 20 10 20 plane 0", "non-finite coordinate 5 \'nan\'"),
        ("10 10 30 10 30 inf 10 20 plane 0", "non-finite coordinate 6 \'inf\'"),
        ("10 10 3O 10 30 20 10 20 plane 0", "non-numeric coordinate 3 \'3O\'"),
        ("10 10 30 10 30 20 10 20 plane 3", "difficult flag must be 0, 1 or 2"),
        ("10 10 30 10 30 20 10 20 container-crane 0", "v1.5 class list"),
    ],
)
def test_bad_label_lines_name_file_and_line(line, message):
    with pytest.raises(ValueError, match=message) as e:
        parse_label_text(GOOD + line + "\r\n", "x/P1.txt", DOTA_V1_CLASSES)
    assert "x/P1.txt:4" in str(e.value)


def test_label_variants_accepted():
    text = "\ufeff'imagesource':GoogleEarth\ngsd:null\n\n1 2 3 4 5 6 7 8 plane\n1.5 2 3 4 5 6 7 8e0 ship 2\r"
    lf = parse_label_text(text, "t", DOTA_V1_CLASSES)
    assert lf.names == ["plane", "ship"] and lf.difficult.tolist() == [0, 2] and lf.lines.tolist() == [4, 5]
    assert lf.quads[1].reshape(-1).tolist() == [1.5, 2, 3, 4, 5, 6, 7, 8]
    assert lf.header == {"imagesource": "GoogleEarth", "gsd": "null"}
    # v1.5 class list accepts container-crane; no list accepts any name
    assert parse_label_text("1 2 3 4 5 6 7 8 container-crane 0", "t", DOTA_V15_CLASSES).class_ids.tolist() == [15]
    assert parse_label_text("1 2 3 4 5 6 7 8 anything 1", "t").class_ids.tolist() == [-1]


def _mini_set(root, w=100, h=80, label=GOOD, name="P1"):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labelTxt").mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "images" / f"{name}.png"), np.zeros((h, w, 3), np.uint8))
    (root / "labelTxt" / f"{name}.txt").write_text(label)


def test_missing_or_wrong_images(tmp_path):
    _mini_set(tmp_path)
    assert len(load_dota_dataset(str(tmp_path / "images"), str(tmp_path / "labelTxt"))[0]["annotations"]) == 1
    (tmp_path / "labelTxt" / "P2.txt").write_text(GOOD)  # label without image
    with pytest.raises(FileNotFoundError, match="P2.txt"):
        load_dota_dataset(str(tmp_path / "images"), str(tmp_path / "labelTxt"))
    os.remove(tmp_path / "labelTxt" / "P2.txt")
    cv2.imwrite(str(tmp_path / "images" / "P3.png"), np.zeros((8, 8, 3), np.uint8))  # image without label
    with pytest.raises(FileNotFoundError, match="P3.png"):
        load_dota_dataset(str(tmp_path / "images"), str(tmp_path / "labelTxt"))
    os.remove(tmp_path / "images" / "P3.png")
    (tmp_path / "images" / "P1.png").write_bytes(b"not a png")  # unreadable image
    with pytest.raises(OSError, match="P1.png"):
        load_dota_dataset(str(tmp_path / "images"), str(tmp_path / "labelTxt"))


def test_image_smaller_than_its_labels(tmp_path):
    # corners 1 px past the border (as in the real data) are fine; 200 px past is another image
    _mini_set(tmp_path / "a", label="0 0 101 0 101 81 0 81 plane 0\n")
    assert len(load_dota_dataset(str(tmp_path / "a" / "images"), str(tmp_path / "a" / "labelTxt"))) == 1
    _mini_set(tmp_path / "b", label="GSD:1\n0 0 300 0 300 20 0 20 plane 0\n")
    with pytest.raises(ValueError, match=r"P1.txt:2.*outside the image .*P1.png \(100x80\)"):
        load_dota_dataset(str(tmp_path / "b" / "images"), str(tmp_path / "b" / "labelTxt"))


def test_degenerate_boxes_are_counted(tmp_path, caplog):
    _mini_set(tmp_path, label="10 10 30 10 30 10.5 10 10.5 small-vehicle 0\n5 5 5 5 5 5 5 5 ship 0\n"
                                "10 10 30 10 30 20 10 20 plane 0\n")
    with caplog.at_level(logging.WARNING):
        recs = load_dota_dataset(str(tmp_path / "images"), str(tmp_path / "labelTxt"), name="mini")
    assert len(recs[0]["annotations"]) == 3  # kept
    assert "mini: 2 degenerate objects" in caplog.text and "P1.txt:1" in caplog.text


# ------------------------------------------------------------------------------------- synthetic aerial
def test_synthetic_aerial_is_deterministic():
    cfg = SyntheticAerialConfig(num_images=3, seed=5)
    a_img, a_obj = render_synthetic_aerial_image(1, cfg)
    b_img, b_obj = render_synthetic_aerial_image(1, cfg)
    assert np.array_equal(a_img, b_img) and len(a_obj) == len(b_obj) >= cfg.min_objects
    assert all(np.array_equal(x["quad"], y["quad"]) and x["name"] == y["name"] for x, y in zip(a_obj, b_obj))
    c_img, _ = render_synthetic_aerial_image(1, SyntheticAerialConfig(num_images=3, seed=6))
    d_img, _ = render_synthetic_aerial_image(2, cfg)
    assert not np.array_equal(a_img, c_img) and not np.array_equal(a_img, d_img)
    assert a_img.shape == (256, 256, 3) and a_img.dtype == np.uint8


def test_synthetic_aerial_labels_are_exact():
    cfg = SyntheticAerialConfig(num_images=12, seed=0, difficult_ratio=0.0)
    seen = set()
    for i in range(12):
        img, objs, bg = render_synthetic_aerial_image(i, cfg, return_background=True)
        ink = np.abs(img.astype(int) - bg.astype(int)).max(axis=2) > 12
        ys, xs = np.nonzero(ink)
        centres = np.stack([xs + 0.5, ys + 0.5], axis=1)
        owner = np.full(len(centres), -1)
        for k, o in enumerate(objs):
            seen.add(o["name"])
            rect = shapely.Polygon(o["quad"])
            inside = shapely.contains_xy(rect.buffer(1.0), centres[:, 0], centres[:, 1])
            owner[inside] = k
            # the drawing touches each side of its rectangle: along both axes, ink reaches the extent (1 px)
            cx, cy, w, h, a = o["rbox"]
            t = np.radians(a)
            d = centres[inside] - [cx, cy]
            u = d[:, 0] * np.cos(t) - d[:, 1] * np.sin(t)
            v = d[:, 0] * np.sin(t) + d[:, 1] * np.cos(t)
            assert u.max() > w / 2 - 1.5 and u.min() < -w / 2 + 1.5, (i, o["name"])
            assert v.max() > h / 2 - 1.5 and v.min() < -h / 2 + 1.5, (i, o["name"])
            assert np.abs(u).max() <= w / 2 + 1.0 and np.abs(v).max() <= h / 2 + 1.0
        # no object ink outside every label (roads are part of the background)
        assert (owner >= 0).all()
    assert seen == set(SYNTHETIC_AERIAL_CLASSES)


def test_synthetic_aerial_registration_and_cache(tmp_path):
    cfg = SyntheticAerialConfig(num_images=4, seed=3, difficult_ratio=0.5)
    folder = register_synthetic_aerial("synthetic_aerial_test_tmp", cfg, root=str(tmp_path / "sa"), overwrite=True)
    recs = DatasetCatalog.get("synthetic_aerial_test_tmp")
    meta = MetadataCatalog.get("synthetic_aerial_test_tmp")
    assert meta.thing_classes == list(SYNTHETIC_AERIAL_CLASSES) and meta.evaluator_type == "dota"
    assert meta.gt_dir == os.path.join(folder, "labelTxt") and not meta.is_split
    assert len(recs) == 4 and {r["image_id"] for r in recs} == {"000001", "000002", "000003", "000004"}
    # labels written = labels generated (6 decimals), through the DOTA parser
    for i, r in enumerate(recs):
        _, objs = render_synthetic_aerial_image(i, cfg)
        q = np.array([a["segmentation"][0] for a in r["annotations"]]).reshape(-1, 4, 2)
        assert np.abs(q - np.array([o["quad"] for o in objs])).max() < 1e-6
        assert [a["difficult"] for a in r["annotations"]] == [o["difficult"] for o in objs]
        assert [a["category_id"] for a in r["annotations"]] == [o["category_id"] for o in objs]
        for a, o in zip(r["annotations"], objs):  # the box: the generated rectangle (canonical form)
            assert quad_iou_pairs(rboxes_to_quads(a["bbox"]), o["quad"][None])[0] > 1 - 1e-6
    # rerun: nothing rendered again; another configuration: rendered again
    img = os.path.join(folder, "images", "000001.png")
    t0 = os.stat(img).st_mtime_ns
    materialize_synthetic_aerial(cfg, folder)
    assert os.stat(img).st_mtime_ns == t0
    cfg2 = SyntheticAerialConfig(num_images=2, seed=4)
    materialize_synthetic_aerial(cfg2, folder)
    assert sorted(os.listdir(os.path.join(folder, "images"))) == ["000001.png", "000002.png"]
    _, objs = render_synthetic_aerial_image(0, cfg2)
    assert parse_label_file(os.path.join(folder, "labelTxt", "000001.txt")).names == [o["name"] for o in objs]
    shutil.rmtree(folder)
