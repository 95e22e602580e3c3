"""Polygon-aware augmentations: polygons stay aligned with the pixels they were drawn into."""
import numpy as np
import pytest
from detectron2.data import transforms as T

from fasttcm.structures.raster import fill_polygon
from fasttcm.data.transforms import (
    PhotometricTransform,
    RandomColorJitter,
    RandomScaleRange,
    TextAugInput,
    TextRandomCrop,
    clip_polygons_to_image,
)

H, W = 96, 128
POLY = np.array([[30, 20], [90, 28], [100, 60], [60, 70], [25, 55]], dtype=np.float64)


def drawn(poly=POLY, h=H, w=W):
    img = np.zeros((h, w, 3), np.uint8)
    canvas = np.zeros((h, w), np.float32)
    fill_polygon(canvas, poly, 1.0)
    img[canvas > 0] = 255
    return img


def iou_with_image(image, poly):
    ink = image[..., 0] > 127
    canvas = np.zeros(ink.shape, np.float32)
    fill_polygon(canvas, poly, 1.0)
    ref = canvas > 0
    return (ink & ref).sum() / max((ink | ref).sum(), 1)


def apply(aug, image, polys, ignore=None):
    inp = TextAugInput(image, polygons=polys, ignore=ignore)
    tfm = aug(inp)
    return inp, tfm


@pytest.mark.parametrize("aug", [
    RandomScaleRange(0.6, 0.6),
    RandomScaleRange(1.7, 1.7),
    T.ResizeShortestEdge(80, 1000, "choice"),
    T.RandomFlip(prob=1.0, horizontal=True, vertical=False),
    T.RandomRotation([10, 10], expand=True),
    T.RandomRotation([-15, -15], expand=False),
], ids=["down", "up", "shortest_edge", "hflip", "rot_expand", "rot_noexpand"])
def test_geometric_augmentations_keep_polygons_aligned(aug):
    inp, _ = apply(aug, drawn(), [POLY])
    assert iou_with_image(drawn(), POLY) == 1.0
    assert iou_with_image(inp.image, inp.polygons[0]) > 0.95


def test_rotation_expand_keeps_all_text_and_noexpand_keeps_size():
    inp, _ = apply(T.RandomRotation([10, 10], expand=True), drawn(), [POLY])
    assert inp.image.shape[0] > H and inp.image.shape[1] > W
    inp, _ = apply(T.RandomRotation([10, 10], expand=False), drawn(), [POLY])
    assert inp.image.shape[:2] == (H, W)


def test_crop_keeps_polygons_aligned_and_fits_crop_size():
    np.random.seed(0)
    for _ in range(10):
        inp, _ = apply(TextRandomCrop((64, 64), min_crop_ratio=0.3), drawn(), [POLY], [False])
        assert max(inp.image.shape[:2]) == 64 and min(inp.image.shape[:2]) <= 64
        p = inp.polygons[0]
        assert iou_with_image(inp.image, p) > 0.95


def boxes_layout():
    return [np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], float)
            for x0, y0, x1, y1 in [(5, 5, 40, 20), (60, 10, 120, 30), (10, 50, 50, 70), (70, 60, 110, 90)]]


def test_text_crop_never_cuts_text_when_gaps_exist():
    polys = boxes_layout()
    crop = TextRandomCrop((64, 64), min_crop_ratio=0.1)
    np.random.seed(1)
    for _ in range(50):
        x0, y0, w, h = crop.choose_region(H, W, polys, np.zeros(4, bool))
        assert 0 <= x0 and 0 <= y0 and x0 + w <= W and y0 + h <= H
        assert w >= 0.1 * W and h >= 0.1 * H
        inside = 0
        for p in polys:
            bx0, by0 = p.min(0)
            bx1, by1 = p.max(0)
            full = bx0 >= x0 and bx1 <= x0 + w and by0 >= y0 and by1 <= y0 + h
            disjoint_x = bx1 <= x0 or bx0 >= x0 + w
            disjoint_y = by1 <= y0 or by0 >= y0 + h
            assert full or disjoint_x or disjoint_y, (x0, y0, w, h, p)
            inside += full
        assert inside >= 1


def test_crop_ignores_dont_care_when_requiring_text():
    polys = boxes_layout()
    ignore = np.array([True, True, True, False])
    crop = TextRandomCrop((64, 64), min_crop_ratio=0.1)
    np.random.seed(2)
    for _ in range(20):
        x0, y0, w, h = crop.choose_region(H, W, polys, ignore)
        assert x0 <= 70 and x0 + w >= 110 and y0 <= 60 and y0 + h >= 90  # the only real text is inside


def test_crop_fallback_contains_a_text_instance():
    crop = TextRandomCrop((64, 64), min_crop_ratio=0.5)
    text = np.array([[40.0, 30.0, 70.0, 50.0]])
    np.random.seed(3)
    for _ in range(20):
        x0, y0, w, h = crop._fallback_region(H, W, text, 64, 48)
        assert w >= 64 and h >= 48 and x0 + w <= W and y0 + h <= H
        assert x0 <= 40 and x0 + w >= 70 and y0 <= 30 and y0 + h >= 50


def test_clip_polygons_to_image_rules():
    inside = np.array([[10, 10], [30, 10], [30, 20], [10, 20]], float)
    mostly = np.array([[50, 10], [70, 10], [70, 20], [50, 20]], float) + [10, 0]  # 60..80, 80% visible in W=76
    half = np.array([[-10, 30], [10, 30], [10, 40], [-10, 40]], float)  # 50% visible -> below 0.6
    gone = np.array([[-30, 30], [-10, 30], [-10, 40], [-30, 40]], float)
    # an upside-down U whose bar lies above the image: clipping leaves its two legs (2 x 200 of 700 px^2)
    u = np.array([[40, -20], [60, -20], [60, 40], [55, 40], [55, -10], [45, -10], [45, 40], [40, 40]], float)
    polys, ign, src = clip_polygons_to_image([inside, mostly, half, gone, u], [False, False, False, True, True],
                                             50, 76, min_visible=0.6)
    assert list(src) == [0, 1, 2, 4, 4]
    np.testing.assert_array_equal(polys[0], inside)
    assert list(ign) == [False, False, True, True, True]
    from shapely.geometry import Polygon

    assert Polygon(polys[1]).area == pytest.approx(16 * 10)
    assert Polygon(polys[2]).area == pytest.approx(100)
    for p in polys:
        assert p[:, 0].min() >= 0 and p[:, 0].max() <= 76 and p[:, 1].min() >= 0 and p[:, 1].max() <= 50
    legs = clip_polygons_to_image([u], [False], 50, 76, min_visible=0.2)
    assert len(legs[0]) == 2 and list(legs[1]) == [False, True]  # the larger part stays text, the other ignored


def test_photometric_transform_is_channel_order_aware():
    img = np.zeros((4, 4, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 200, 100, 50
    out = PhotometricTransform(1.2, 1.0, 1.0, ["brightness"]).apply_image(img)
    np.testing.assert_array_equal(out[0, 0], [240, 120, 60])
    grey_bgr = PhotometricTransform(1.0, 1.0, 0.0, ["saturation"], "BGR").apply_image(img)
    grey_rgb = PhotometricTransform(1.0, 1.0, 0.0, ["saturation"], "RGB").apply_image(img)
    assert grey_bgr[0, 0, 0] == grey_bgr[0, 0, 1] == grey_bgr[0, 0, 2] == round(0.114 * 200 + 0.587 * 100 + 0.299 * 50)
    assert grey_rgb[0, 0, 0] == round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    flat = PhotometricTransform(1.0, 0.0, 1.0, ["contrast"], "BGR").apply_image(drawn())
    assert flat.std() == 0  # zero contrast -> uniform image
    coords = np.array([[1.0, 2.0]])
    assert PhotometricTransform(1.1, 0.9, 1.2, ["contrast"]).apply_coords(coords) is coords


def test_color_jitter_changes_pixels_not_polygons():
    np.random.seed(4)
    inp, _ = apply(RandomColorJitter(0.4, 0.4, 0.4, prob=1.0), drawn() // 2 + 40, [POLY])
    assert not np.array_equal(inp.image, drawn() // 2 + 40)
    np.testing.assert_array_equal(inp.polygons[0], POLY)
    with pytest.raises(ValueError):
        RandomColorJitter(brightness=1.5)
