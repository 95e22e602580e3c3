"""Synthetic scene-text set: determinism, exact/tight polygons, curved polygon shape, caching and registration."""
import os

import numpy as np
import pytest
import shapely
from PIL import Image
from shapely.geometry import Polygon

from detectron2.data import DatasetCatalog, MetadataCatalog
from fasttcm.data.datasets.synthetic_text import (
    SyntheticTextConfig,
    default_fonts,
    register_synthetic_text,
    render_synthetic_text_image,
)
from fasttcm.structures.polygons import is_clockwise

CFG = SyntheticTextConfig(num_images=6, height=160, width=224, min_words=3, max_words=5, curved_ratio=0.5,
                          rotated_ratio=0.5, dont_care_ratio=0.15, min_font_size=12, max_font_size=28, seed=7)


def _polys(annos):
    return [np.reshape(a["segmentation"][0], (-1, 2)) for a in annos]


def test_fonts_are_matplotlib_dejavu():
    fonts = default_fonts()
    assert len(fonts) >= 6 and all(os.path.basename(f).startswith("DejaVu") for f in fonts)


def test_deterministic_from_seed():
    a_img, a_annos = render_synthetic_text_image(3, CFG)
    b_img, b_annos = render_synthetic_text_image(3, CFG)
    assert a_img.dtype == np.uint8 and a_img.shape == (160, 224, 3)
    assert np.array_equal(a_img, b_img) and a_annos == b_annos
    c_img, _ = render_synthetic_text_image(3, SyntheticTextConfig(**{**CFG.__dict__, "seed": 8}))
    d_img, _ = render_synthetic_text_image(4, CFG)
    assert not np.array_equal(a_img, c_img) and not np.array_equal(a_img, d_img)


def test_polygons_tight_and_each_contains_ink():
    n_curved = n_straight = n_dc = 0
    for i in range(8):
        img, annos, bg = render_synthetic_text_image(i, CFG, return_background=True)
        assert 1 <= len(annos) <= CFG.max_words
        ink = np.abs(img.astype(int) - bg.astype(int)).max(axis=2) > 24
        ys, xs = np.nonzero(ink)
        centers = shapely.points(np.stack([xs + 0.5, ys + 0.5], axis=1))
        polys = [Polygon(p) for p in _polys(annos)]
        union = shapely.union_all(polys).buffer(2.0)
        inside = shapely.covers(union, centers)
        assert inside.mean() >= 0.95, f"image {i}: only {inside.mean():.3f} of ink inside the polygons"
        for a, poly in zip(annos, polys):
            n_ink = int(shapely.covers(poly, centers).sum())
            assert n_ink >= (1 if a["iscrowd"] else 10), f"image {i}: {a['text']!r} polygon holds {n_ink} ink px"
            if not a["iscrowd"]:  # tight: ink covers a fair share of the polygon
                assert n_ink >= 0.2 * poly.area, f"image {i}: {a['text']!r} polygon is loose"
        # words never overlap and stay inside the image
        for j in range(len(polys)):
            lo, hi = _polys(annos)[j].min(0), _polys(annos)[j].max(0)
            assert lo.min() >= 0 and hi[0] <= CFG.width and hi[1] <= CFG.height
            for k in range(j):
                assert not polys[j].intersects(polys[k])
        for a, p in zip(annos, _polys(annos)):
            n_curved += len(p) > 4
            n_straight += len(p) == 4
            n_dc += a["iscrowd"]
    assert n_curved and n_straight and n_dc  # all kinds exercised


def test_polygon_shapes_and_labels():
    cfg = SyntheticTextConfig(**{**CFG.__dict__, "curved_ratio": 1.0, "dont_care_ratio": 0.0, "seed": 11})
    seen_curved = 0
    for i in range(6):
        _, annos = render_synthetic_text_image(i, cfg)
        for a, p in zip(annos, _polys(annos)):
            assert Polygon(p).is_valid and is_clockwise(p), a["text"]
            assert a["iscrowd"] == 0 and a["text"] and a["text"].isalnum() and a["category_id"] == 0
            assert a["bbox"] == pytest.approx([*p.min(0), *(p.max(0) - p.min(0))])
            if len(p) > 4:
                seen_curved += 1
                k = len(p) // 2
                assert len(p) % 2 == 0 and 4 <= k <= 8
                # upper boundary first: its points are on the glyphs' top side, so the first upper point and the
                # last lower point (both at the word start) and the pairs across the band are about one
                # text-height apart
                widths = np.linalg.norm(p[:k] - p[::-1][:k], axis=1)
                assert np.allclose(widths, widths[0], rtol=0.2)
    assert seen_curved >= 4
    dc = SyntheticTextConfig(**{**CFG.__dict__, "dont_care_ratio": 1.0})
    _, annos = render_synthetic_text_image(0, dc)
    assert annos and all(a["iscrowd"] == 1 and a["text"] == "###" for a in annos)


def test_register_renders_caches_and_loads(tmp_path):
    cfg = SyntheticTextConfig(**{**CFG.__dict__, "num_images": 3})
    name = "test_synthetic_tmp"
    root = register_synthetic_text(name, cfg, root=str(tmp_path / "synth"))
    try:
        assert not os.path.exists(root)  # lazy: nothing rendered before use
        m = MetadataCatalog.get(name)
        assert (m.evaluator_type, m.gt_format, m.thing_classes) == ("totaltext", "polygon_txt", ["text"])
        assert m.gt_dir == os.path.join(root, "gts")
        dicts = DatasetCatalog.get(name)
        assert [d["image_id"] for d in dicts] == ["0000001", "0000002", "0000003"]
        assert sorted(os.listdir(m.gt_dir)) == ["0000001.txt", "0000002.txt", "0000003.txt"]
        for i, d in enumerate(dicts):
            assert (d["height"], d["width"]) == (160, 224) and d["file_name"].endswith(f"{i + 1:07d}.png")
            img, annos = render_synthetic_text_image(i, cfg)
            assert np.array_equal(np.asarray(Image.open(d["file_name"]).convert("RGB")), img)
            assert [a["text"] for a in d["annotations"]] == [a["text"] for a in annos]
            for x, y in zip(d["annotations"], annos):
                assert x["iscrowd"] == y["iscrowd"]
                assert np.allclose(x["segmentation"][0], y["segmentation"][0], atol=0.006)
        line = open(os.path.join(m.gt_dir, "0000001.txt"), encoding="utf-8").readline()
        assert ",####" in line
        mtime = os.path.getmtime(dicts[0]["file_name"])
        assert len(DatasetCatalog.get(name)) == 3 and os.path.getmtime(dicts[0]["file_name"]) == mtime  # reused
        os.remove(dicts[1]["file_name"])  # as after an interrupted run: only the missing image is rendered again
        again = DatasetCatalog.get(name)
        assert os.path.getmtime(dicts[0]["file_name"]) == mtime and again == dicts
        assert np.array_equal(np.asarray(Image.open(dicts[1]["file_name"]).convert("RGB")),
                              render_synthetic_text_image(1, cfg)[0])
        cfg2 = SyntheticTextConfig(**{**cfg.__dict__, "num_images": 2, "seed": 9})
        register_synthetic_text(name, cfg2, root=root, overwrite=True)
        dicts2 = DatasetCatalog.get(name)  # another config in the same folder: rendered again, extras removed
        assert len(dicts2) == 2 and sorted(os.listdir(m.gt_dir)) == ["0000001.txt", "0000002.txt"]
        img, _ = render_synthetic_text_image(0, cfg2)
        assert np.array_equal(np.asarray(Image.open(dicts2[0]["file_name"]).convert("RGB")), img)
    finally:
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)


def test_config_validation():
    with pytest.raises(ValueError):
        SyntheticTextConfig(min_words=3, max_words=2)
    with pytest.raises(ValueError):
        SyntheticTextConfig(curved_ratio=1.5)
