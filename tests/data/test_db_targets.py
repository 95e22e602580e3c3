"""DB targets on hand-made polygons: shrink distance, threshold map, masks, don't care."""
import numpy as np
import pytest
from shapely.geometry import Polygon

from fasttcm.data.db_targets import make_db_targets
from fasttcm.structures.polygons import offset_polygon, shrink_distance
from fasttcm.structures.raster import fill_polygon, polygon_border_distance


def rect(x0, y0, x1, y1):
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def test_shrink_distance_formula():
    w, h, r = 40.0, 10.0, 0.4
    d = shrink_distance(rect(0, 0, w, h), r)
    assert d == pytest.approx(w * h * (1 - r * r) / (2 * (w + h)))  # 6.72
    shrunk = offset_polygon(rect(0, 0, w, h), -d)
    assert len(shrunk) == 1
    xs, ys = shrunk[0][:, 0], shrunk[0][:, 1]
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == pytest.approx((d, w - d, d, h - d), abs=1e-9)


def test_mitre_offset_keeps_corners_of_a_rotated_rectangle():
    c, s = np.cos(0.5), np.sin(0.5)
    base = rect(-20, -5, 20, 5)
    poly = base @ np.array([[c, s], [-s, c]]) + 50
    d = shrink_distance(poly)
    shrunk = Polygon(offset_polygon(poly, -d)[0])
    assert len(shrunk.exterior.coords) - 1 == 4  # a rectangle again, not rounded
    assert shrunk.area == pytest.approx((40 - 2 * d) * (10 - 2 * d), rel=1e-9)
    grown = Polygon(offset_polygon(poly, d)[0])
    assert grown.area == pytest.approx((40 + 2 * d) * (10 + 2 * d), rel=1e-9)


def test_fill_polygon_uses_pixel_centres():
    canvas = np.zeros((10, 10), np.float32)
    fill_polygon(canvas, rect(2, 3, 6, 5), 1.0)  # covers pixels x 2..5, y 3..4 exactly
    expect = np.zeros_like(canvas)
    expect[3:5, 2:6] = 1
    np.testing.assert_array_equal(canvas, expect)


def test_polygon_mask_matches_point_in_polygon():
    import shapely

    rng = np.random.default_rng(0)
    for _ in range(5):
        ang = np.sort(rng.uniform(0, 2 * np.pi, 9))
        rad = rng.uniform(4, 14, 9)
        poly = np.stack([20 + rad * np.cos(ang), 15 + rad * np.sin(ang)], 1)
        canvas = np.zeros((30, 40), np.float32)
        fill_polygon(canvas, poly, 1.0)
        ys, xs = np.mgrid[0:30, 0:40] + 0.5
        inside = shapely.contains_xy(Polygon(poly), xs, ys)
        np.testing.assert_array_equal(canvas.astype(bool), inside)


def test_prob_map_is_the_shrunk_polygon():
    poly = rect(10, 20, 90, 50)  # 80 x 30
    t = make_db_targets([poly], [False], 64, 100)
    d = shrink_distance(poly)
    assert set(t) == {"prob", "prob_mask", "thresh", "thresh_mask"}
    for v in t.values():
        assert v.shape == (64, 100) and v.dtype == np.float32
    ys, xs = np.nonzero(t["prob"])
    # pixel centres inside [10 + d, 90 - d] x [20 + d, 50 - d]
    assert xs.min() + 0.5 >= 10 + d - 1e-6 and xs.max() + 0.5 <= 90 - d + 1e-6
    assert ys.min() + 0.5 >= 20 + d - 1e-6 and ys.max() + 0.5 <= 50 - d + 1e-6
    expected_area = (80 - 2 * d) * (30 - 2 * d)
    assert abs(t["prob"].sum() - expected_area) <= 2 * (80 + 30)  # within a one-pixel rim
    assert t["prob_mask"].min() == 1.0  # nothing ignored


def test_threshold_map_range_and_location():
    poly = rect(20, 20, 80, 44)
    t = make_db_targets([poly], [False], 64, 100, thresh_min=0.3, thresh_max=0.7)
    th, tm = t["thresh"], t["thresh_mask"]
    assert th.min() >= 0.3 - 1e-6 and th.max() <= 0.7 + 1e-6
    d = shrink_distance(poly)
    # on the border: close to thresh_max; at the centre (farther than D from the border): thresh_min
    assert th[20, 50] > 0.7 - 0.4 / d  # pixel centre 0.5 px from the top edge
    assert th[32, 50] == pytest.approx(0.3)
    assert th[5, 5] == pytest.approx(0.3)
    # values follow 1 - dist / D
    ys, xs = np.mgrid[0:64, 0:100] + 0.5
    dist = polygon_border_distance(poly, xs, ys)
    expect = 0.3 + 0.4 * (1 - np.minimum(dist / d, 1))
    np.testing.assert_allclose(th, expect, atol=1e-5)
    # mask = polygon dilated by D
    dil = Polygon(poly).buffer(d, join_style="mitre")
    assert abs(tm.sum() - dil.area) <= dil.length + 4
    assert tm[20 - int(d) + 1, 50] == 1 and tm[20 - int(d) - 2, 50] == 0
    assert tm[32, 50] == 1  # centre is inside the dilated polygon too


def test_dont_care_and_degenerate_are_masked():
    text, dc = rect(5, 5, 60, 25), rect(5, 35, 60, 55)
    tiny = rect(80, 10, 95, 13)  # 3 px high < min_text_size
    flat = np.array([[70, 40], [90, 40], [80, 40]], float)  # zero area
    t = make_db_targets([text, dc, tiny, flat], [False, True, False, False], 64, 100, min_text_size=8)
    assert t["prob"][12:18, 20:40].min() == 1  # text is positive (shrunk by 6.2 px)
    assert t["prob"][35:55].sum() == 0 and t["prob"][:, 70:].sum() == 0
    assert t["prob_mask"][40:50, 10:50].max() == 0  # don't care masked
    assert t["prob_mask"][11, 85] == 0  # too small: masked
    assert t["prob_mask"][15, 30] == 1 and t["prob_mask"][60, 5] == 1
    assert t["thresh_mask"][45, 30] == 0  # no threshold supervision on don't care
    assert t["thresh"][35, 30] == pytest.approx(0.3)


def test_thin_text_is_dont_care_and_thin_sliver_marks_nothing():
    thin = rect(10, 10, 40, 12)  # 2 px high
    t = make_db_targets([thin], [False], 32, 50, min_text_size=3)
    assert t["prob"].sum() == 0 and t["prob_mask"][10:12, 10:40].max() == 0
    assert t["prob_mask"].sum() == 32 * 50 - 2 * 30
    t = make_db_targets([thin], [False], 32, 50, min_text_size=1)  # shrinks to y in [10.8, 11.2]: no centre
    assert t["prob"].sum() == 0 and t["prob_mask"][10:12, 10:40].max() == 0  # don't care, not background
    thicker = rect(10, 10, 40, 13)  # 3 px high: the kernel covers row 11
    t = make_db_targets([thicker], [False], 32, 50, min_text_size=1)
    assert t["prob"][11, 12:38].min() == 1 and t["prob"].sum() == t["prob"][11].sum()
    assert t["prob_mask"].min() == 1
    sliver = np.array([[10, 10], [40, 10], [25, 10.4]], float)  # covers no pixel centre
    t = make_db_targets([sliver], [False], 32, 50, min_text_size=1)
    assert t["prob"].sum() == 0 and t["prob_mask"].min() == 1


def test_mismatched_ignore_raises():
    with pytest.raises(ValueError, match="ignore"):
        make_db_targets([rect(0, 0, 5, 5)], [False, True], 10, 10)
