"""DB post-processing on synthetic probability maps with blobs of known shapes."""
import numpy as np
import pytest
import torch
from shapely.geometry import Polygon

from fasttcm.structures.raster import fill_polygon
from fasttcm.structures.polygons import signed_area
from fasttcm.modeling.db_postprocess import DBPostProcessor
from fasttcm.structures.polygons import PolygonList, order_quad_clockwise

RECT = np.array([[20, 20], [100, 20], [100, 40], [20, 40]], float)


def rotated_rect(cx, cy, w, h, deg):
    t = np.deg2rad(deg)
    c, s = np.cos(t), np.sin(t)
    base = np.array([[-w / 2, -h / 2], [w / 2, -h / 2], [w / 2, h / 2], [-w / 2, h / 2]])
    return base @ np.array([[c, s], [-s, c]]) + [cx, cy]


def arc_band(cx, cy, r0, r1, a0, a1, n=12):
    a = np.linspace(a0, a1, n)
    outer = np.stack([cx + r1 * np.cos(a), cy + r1 * np.sin(a)], 1)
    inner = np.stack([cx + r0 * np.cos(a), cy + r0 * np.sin(a)], 1)[::-1]
    return np.concatenate([outer, inner])


def prob_map(shapes, h=128, w=160, value=0.9, background=0.05):
    p = np.full((h, w), background, np.float32)
    for s in shapes:
        fill_polygon(p, s, value)
    return p


def expected(shape, ratio=1.5):
    g = Polygon(shape)
    return g.buffer(g.area * ratio / g.length, join_style="mitre", mitre_limit=2.0)


def iou(a, b):
    a, b = Polygon(a) if not isinstance(a, Polygon) else a, Polygon(b) if not isinstance(b, Polygon) else b
    return a.intersection(b).area / a.union(b).area


def match(polys, target):
    return max(iou(p, target) for p in polys)


@pytest.mark.parametrize("shape", [RECT, rotated_rect(80, 64, 90, 24, 25), arc_band(80, 110, 45, 70, -2.6, -0.5)],
                         ids=["rect", "rotated", "curved"])
def test_poly_mode_recovers_shapes(shape):
    post = DBPostProcessor(box_thresh=0.6, unclip_ratio=1.5, output_mode="poly")
    polys, scores = post(prob_map([shape]), (128, 160), (128, 160))
    assert len(polys) == 1 and isinstance(polys, PolygonList)
    assert polys[0].dtype == np.float32 and polys[0].shape[1] == 2
    assert match(polys, expected(shape)) > 0.8
    assert scores[0] == pytest.approx(0.9, abs=0.02)


def test_unclip_ratio_one_point_zero_is_smaller_and_rescale():
    post = DBPostProcessor(unclip_ratio=1.5)
    small = DBPostProcessor(unclip_ratio=1.0)
    (p15,), _ = post(prob_map([RECT]), (128, 160), (128, 160))
    (p10,), _ = small(prob_map([RECT]), (128, 160), (128, 160))
    assert Polygon(p10).area < Polygon(p15).area
    (big,), _ = post(prob_map([RECT]), (128, 160), (256, 480))  # x scaled by 3, y by 2
    np.testing.assert_allclose(big[:, 0], p15[:, 0] * 3, atol=1e-3)
    np.testing.assert_allclose(big[:, 1], p15[:, 1] * 2, atol=1e-3)


def test_quad_mode_gives_clockwise_rectangles():
    shape = rotated_rect(80, 64, 90, 24, -30)
    post = DBPostProcessor(output_mode="quad")
    polys, _ = post(prob_map([shape]), (128, 160), (128, 160))
    assert len(polys) == 1 and polys[0].shape == (4, 2)
    q = polys[0]
    assert signed_area(q) > 0  # clockwise in image coordinates
    assert int(np.argmin(q.sum(1))) == 0  # starts at the top-left-most corner
    assert iou(q, expected(shape)) > 0.8


def test_order_quad_clockwise():
    q = np.array([[10, 0], [0, 0], [0, 5], [10, 5]], float)  # counter-clockwise, starting top-right
    np.testing.assert_array_equal(order_quad_clockwise(q), [[0, 0], [10, 0], [10, 5], [0, 5]])


def test_thresholds_are_honoured():
    weak = rotated_rect(50, 40, 60, 20, 0)
    faint = rotated_rect(125, 60, 60, 20, 0)
    p = prob_map([RECT + [0, 60]])
    fill_polygon(p, weak, 0.5)  # above BINARY_THRESH 0.3, below BOX_THRESH 0.6
    fill_polygon(p, faint, 0.25)  # below BINARY_THRESH
    polys, scores = DBPostProcessor(box_thresh=0.6)(p, (128, 160), (128, 160))
    assert len(polys) == 1 and scores.min() >= 0.6
    polys, scores = DBPostProcessor(box_thresh=0.4)(p, (128, 160), (128, 160))
    assert len(polys) == 2 and scores.min() >= 0.4
    polys, scores = DBPostProcessor(box_thresh=0.0, binary_thresh=0.3)(p, (128, 160), (128, 160))
    assert len(polys) == 2  # the 0.25 blob never binarizes
    polys, scores = DBPostProcessor(box_thresh=0.0, binary_thresh=0.2)(p, (128, 160), (128, 160))
    assert len(polys) == 3
    assert list(scores) == sorted(scores, reverse=True)


def test_min_size_max_candidates_and_padding():
    blobs = [rotated_rect(20 + 30 * i, 30, 20, 12, 0) for i in range(5)]
    tiny = rotated_rect(80, 80, 10, 2, 0)  # 2 px high
    p = prob_map(blobs + [tiny])
    polys, _ = DBPostProcessor(min_size=3)(p, (128, 160), (128, 160))
    assert len(polys) == 5
    polys, _ = DBPostProcessor(min_size=3, max_candidates=2)(p, (128, 160), (128, 160))
    assert len(polys) == 2
    # only the top-left 100 x 100 is image: blobs beyond are batch padding and must be ignored
    p = prob_map([RECT, rotated_rect(130, 100, 40, 20, 0)])
    polys, _ = DBPostProcessor()(torch.from_numpy(p), (100, 100), (100, 100))
    assert len(polys) == 1


def test_empty_map_and_polygon_list_indexing():
    polys, scores = DBPostProcessor()(np.zeros((64, 64), np.float32), (64, 64), (64, 64))
    assert len(polys) == 0 and scores.shape == (0,)
    pl = PolygonList([np.zeros((4, 2)), np.ones((5, 2)), np.full((6, 2), 2.0)])
    sub = pl[torch.tensor([True, False, True])]
    assert isinstance(sub, PolygonList) and [len(p) for p in sub] == [4, 6]
    assert len(pl[torch.tensor([2])][0]) == 6 and len(pl[1:]) == 2 and len(pl[0]) == 4
    with pytest.raises(IndexError):
        pl[torch.tensor([True])]
