"""Splitting DOTA images into patches and merging patch results back (docs/PROTOCOLS.md §4), on the real samples."""
import json
import os
import shutil

import cv2
import numpy as np
import pytest
import shapely

from fasttcm.structures.quads import quad_iou_pairs
from fasttcm.formats.dota import Task1Detections, parse_label_file, read_task1_dir, write_task1_dir
from fasttcm.data.dota.merge import merge_task1_dir
from fasttcm.structures.patches import merge_detections, patch_to_image
from fasttcm.data.dota.split import (
    SplitConfig,
    parse_patch_name,
    parse_rate,
    patch_name,
    patch_origins,
    patch_starts,
    reduce_to_quads,
    scaled_size,
    split_dataset,
)

from conftest import load_tool


def _tool(name):
    return load_tool(name)


def _src(tmp_path, shared_data, names=("P0706",), labels=True):
    src = tmp_path / "src"
    (src / "images").mkdir(parents=True)
    if labels:
        (src / "labelTxt").mkdir()
    for n in names:
        shutil.copy(shared_data / "dota" / "images" / f"{n}.png", src / "images")
        if labels:
            shutil.copy(shared_data / "dota" / "labelTxt" / f"{n}.txt", src / "labelTxt")
    return src


def test_patch_starts_and_names():
    assert patch_starts(1111, 1024, 200) == [0, 87]
    assert patch_starts(1182, 1024, 200) == [0, 158]
    assert patch_starts(1024, 1024, 200) == [0]
    assert patch_starts(1025, 1024, 200) == [0, 1]
    assert patch_starts(557, 1024, 200) == [0]
    assert patch_starts(3000, 1024, 200) == [0, 824, 1648, 1976]
    assert patch_origins(1111, 1182, 1024, 200) == [(0, 0), (0, 158), (87, 0), (87, 158)]
    with pytest.raises(ValueError):
        patch_starts(100, 1024, 1024)
    # the rate as Python prints the number given
    assert patch_name("P0001", 1, 0, 824) == "P0001__1__0___824"
    assert patch_name("P0001", 0.5, 10, 0) == "P0001__0.5__10___0"
    assert patch_name("P0001", 1.0, 0, 0) == "P0001__1.0__0___0"
    assert [patch_name("P", parse_rate(r), 0, 0) for r in ("1", "1.0", "0.5", "1.5")] == [
        "P__1__0___0", "P__1.0__0___0", "P__0.5__0___0", "P__1.5__0___0"]
    assert isinstance(parse_rate("1"), int) and isinstance(parse_rate("1.0"), float)
    assert parse_patch_name("my__img__0.5__824___0") == ("my__img", 0.5, 824, 0)
    assert parse_patch_name("/x/P1__1__0___0.png") == ("P1", 1.0, 0, 0)
    for bad in ("P0001", "P0001__1__0__0", "P0001__x__0___0"):
        with pytest.raises(ValueError):
            parse_patch_name(bad)
    with pytest.raises(ValueError):
        SplitConfig(rates=(1, 1))


def test_reduce_to_quads_rule():
    # a 4-corner clip stays; a pentagon loses the corner whose removal costs least; a triangle gets a midpoint
    quad = np.array([[0, 0], [4, 0], [4, 2], [0, 2.0]])
    pent = np.array([[0, 0], [4, 0], [4, 2], [3.9, 2.1], [0, 2.1]])
    tri = np.array([[0, 0], [4, 0], [0, 2.0]])
    out = reduce_to_quads([quad, pent, tri], refs=np.array([[0, 0], [0, 0], [0, 0]]))
    assert np.allclose(out[0], quad)
    # dropping (4, 2) loses the triangle (4, 0) (4, 2) (3.9, 2.1) of area 0.1, the least of the five choices
    assert np.allclose(out[1], [[0, 0], [4, 0], [3.9, 2.1], [0, 2.1]])
    assert shapely.Polygon(out[1]).area == pytest.approx(shapely.Polygon(pent).area - 0.1)
    assert shapely.Polygon(out[2]).area == pytest.approx(4.0) and len({tuple(p) for p in out[2]}) == 4
    assert all(np.allclose(o[0], [0, 0]) for o in out)  # starts at the corner nearest the reference


def _patch_labels(dst):
    out = {}
    for fn in sorted(os.listdir(dst / "labelTxt")):
        out[fn[:-4]] = parse_label_file(str(dst / "labelTxt" / fn))
    return out


def test_split_p0706_then_merge_back(tmp_path, shared_data):
    """Split P0706 (1111 x 1182) into 2 x 2 patches at 1024 / gap 200, check every patch label against the rules,
    then merge the labels back (as detections of score 1) and recover every original object.

    Check, per patch rectangle R and original object O (same class):
    * O inside R (its 4 corners): the patch has O's label exactly (shifted by the offsets), its difficult flag too;
    * O cut by R's border with area(O ∩ R) > 0: the patch has one label P (mapped back) for it with P inside
      O ∩ R (up to 1 px: the clamp to [1, subsize]), area(P) >= 0.6 area(O ∩ R1) where R1 is R without its first
      pixel row and column (the clamp range [1, subsize]) - the kept part -, and difficult flag O's own when
      area(O ∩ R) / area(O) > 0.7, else 2;
    * nothing else: one label per object meeting R.
    Merging: all labels except the difficult-2 remnants, score 1, NMS 0.1. Scores tie, so for each object the
    survivor is its first label in input order (patches by name, then file order); the merged set must be exactly
    these first labels mapped back, one per object, and each original object is recovered: exactly when that
    label is its whole copy, else by its kept part (which covers more than 70 % of it).
    """
    src = _src(tmp_path, shared_data)
    dst = tmp_path / "dst"
    stats = split_dataset(str(src), str(dst), SplitConfig(subsize=1024, gap=200, rates=(1,)), progress=False)
    names = ["P0706__1__0___0", "P0706__1__0___158", "P0706__1__87___0", "P0706__1__87___158"]
    assert sorted(os.listdir(dst / "images")) == [n + ".png" for n in names]
    assert (dst / "images.txt").read_text().split() == names
    assert (dst / "source_images.txt").read_text().split() == ["P0706"]
    assert json.loads((dst / "split_config.json").read_text())["rates"] == ["1"]
    full = cv2.imread(str(src / "images" / "P0706.png"))
    for n in names:
        _, _, x, y = parse_patch_name(n)
        patch = cv2.imread(str(dst / "images" / f"{n}.png"))
        assert patch.shape == (1024, 1024, 3) and np.array_equal(patch, full[y : y + 1024, x : x + 1024])

    orig = parse_label_file(str(src / "labelTxt" / "P0706.txt"))
    O = shapely.polygons(orig.quads)
    area = shapely.area(O)
    labels = _patch_labels(dst)
    owner = {}  # (patch, line index) -> original object index
    n_whole = n_cut = 0
    for n in names:
        _, _, x, y = parse_patch_name(n)
        lf = labels[n]
        mapped = lf.quads + [x, y]
        R = shapely.box(x, y, x + 1024, y + 1024)
        inter = shapely.area(shapely.intersection(O, R))
        inside = ((orig.quads[..., 0] >= x) & (orig.quads[..., 0] <= x + 1024)
                  & (orig.quads[..., 1] >= y) & (orig.quads[..., 1] <= y + 1024)).all(axis=1)
        meets = inter > 0
        assert len(lf) == int(meets.sum())
        used = set()
        for k in np.nonzero(meets)[0]:
            same = [j for j in range(len(lf)) if lf.names[j] == orig.names[k] and j not in used]
            if inside[k]:
                j = next(j for j in same if np.array_equal(mapped[j], orig.quads[k]))
                assert lf.difficult[j] == orig.difficult[k]
                n_whole += 1
            else:
                part = shapely.intersection(O[k], R)
                clamped = shapely.intersection(O[k], shapely.box(x + 1, y + 1, x + 1024, y + 1024))
                ok = [j for j in same if shapely.Polygon(mapped[j]).within(part.buffer(1.0))
                      and shapely.Polygon(mapped[j]).area >= 0.6 * clamped.area]
                assert len(ok) >= 1, (n, k)
                j = max(ok, key=lambda j: shapely.Polygon(mapped[j]).intersection(O[k]).area)
                assert lf.difficult[j] == (orig.difficult[k] if inter[k] / area[k] > 0.7 else 2)
                n_cut += 1
            used.add(j)
            owner[(n, j)] = k
        assert len(used) == len(lf)
    assert n_whole == stats.whole and n_cut == stats.cut_kept + stats.cut_difficult2
    assert n_cut > 20 and stats.degenerate_cut == stats.outside == 0

    # merge back: labels as detections of score 1 (difficult-2 remnants excluded)
    det_names, det_quads, det_cls, first = [], [], [], {}
    cls_names = sorted(set(orig.names))
    for n in names:
        lf = labels[n]
        for j in range(len(lf)):
            if lf.difficult[j] == 2:
                continue
            k = owner[(n, j)]
            first.setdefault(k, len(det_names))
            det_names.append(n)
            det_quads.append(lf.quads[j])
            det_cls.append(cls_names.index(lf.names[j]))
    assert sorted(first) == list(range(len(orig)))  # every object has a label that is not a remnant
    ids, mq, ms, mc = merge_detections(det_names, det_quads, np.ones(len(det_names)), det_cls, 0.1)
    assert set(ids) == {"P0706"} and len(mq) == len(orig)
    _, back = patch_to_image(det_names, det_quads)
    expected = back[sorted(first.values())]
    key = lambda a: sorted(map(tuple, np.round(a.reshape(len(a), -1), 9).tolist()))  # noqa: E731
    assert key(mq) == key(expected)
    exact = 0
    for k, i in first.items():
        if np.array_equal(back[i], orig.quads[k]):
            exact += 1
        else:
            assert shapely.Polygon(back[i]).intersection(O[k]).area > 0.7 * 0.6 * area[k]
    assert exact > 0.9 * len(orig)


def test_split_small_image_and_rates(tmp_path, shared_data):
    src = _src(tmp_path, shared_data, names=("P1888",))  # 712 x 557: one padded patch per rate
    dst = tmp_path / "dst"
    split_dataset(str(src), str(dst), SplitConfig(rates=(1, 0.5, 1.0)), progress=False)
    names = sorted(os.listdir(dst / "images"))
    assert names == ["P1888__0.5__0___0.png", "P1888__1.0__0___0.png", "P1888__1__0___0.png"]
    full = cv2.imread(str(src / "images" / "P1888.png"))
    p = cv2.imread(str(dst / "images" / "P1888__1__0___0.png"))
    assert p.shape == (1024, 1024, 3)
    assert np.array_equal(p[:557, :712], full) and not p[557:].any() and not p[:, 712:].any()  # padded with 0
    half = cv2.imread(str(dst / "images" / "P1888__0.5__0___0.png"))
    # 557 * 0.5 = 278.5 rounds to 278 (half to even, as Python and OpenCV round), 712 * 0.5 = 356
    assert scaled_size(712, 557, 0.5) == (356, 278)
    assert np.array_equal(half[:278, :356], cv2.resize(full, (356, 278), interpolation=cv2.INTER_CUBIC))
    assert not half[278:].any() and not half[:, 356:].any()
    orig = parse_label_file(str(src / "labelTxt" / "P1888.txt"))
    for rate in ("1", "1.0", "0.5"):
        lf = parse_label_file(str(dst / "labelTxt" / f"P1888__{rate}__0___0.txt"))
        assert lf.names == orig.names and np.array_equal(lf.difficult, orig.difficult)
        assert np.allclose(lf.quads, orig.quads * float(rate))
        ids, back = patch_to_image([f"P1888__{rate}__0___0"] * len(lf), lf.quads)
        assert set(ids) == {"P1888"} and np.allclose(back, orig.quads)


def test_split_rerun_force_and_config(tmp_path, shared_data):
    src = _src(tmp_path, shared_data, names=("P1888", "P0248"))
    dst = tmp_path / "dst"
    s1 = split_dataset(str(src), str(dst), SplitConfig(), progress=False)
    assert s1.images == 2 and s1.skipped_images == 0 and s1.patches == 3  # P0248 594 x 1104: 1 x 2
    f = dst / "images" / "P0248__1__0___80.png"
    t0 = os.stat(f).st_mtime_ns
    s2 = split_dataset(str(src), str(dst), SplitConfig(), progress=False)
    assert s2.images == 0 and s2.skipped_images == 2 and s2.patches == 0 and os.stat(f).st_mtime_ns == t0
    os.remove(dst / "labelTxt" / "P1888__1__0___0.txt")  # an interrupted run: redone
    s3 = split_dataset(str(src), str(dst), SplitConfig(), progress=False)
    assert s3.images == 1 and (dst / "labelTxt" / "P1888__1__0___0.txt").is_file()
    s4 = split_dataset(str(src), str(dst), SplitConfig(png_compression=0), force=True, progress=False)
    assert s4.images == 2 and os.stat(f).st_mtime_ns != t0
    with pytest.raises(ValueError, match="other parameters"):
        split_dataset(str(src), str(dst), SplitConfig(gap=100), progress=False)


def test_split_without_labels_and_workers(tmp_path, shared_data):
    src = _src(tmp_path, shared_data, names=("P1888", "P0248", "P0706"), labels=False)
    d1, d2 = tmp_path / "d1", tmp_path / "d2"
    split_dataset(str(src), str(d1), SplitConfig(), workers=1, progress=False)
    split_dataset(str(src), str(d2), SplitConfig(), workers=2, progress=False)
    assert not (d1 / "labelTxt").exists()
    names = sorted(os.listdir(d1 / "images"))
    assert len(names) == 7 and names == sorted(os.listdir(d2 / "images"))
    for n in names:
        assert np.array_equal(cv2.imread(str(d1 / "images" / n)), cv2.imread(str(d2 / "images" / n)))


def test_split_errors(tmp_path, shared_data):
    src = _src(tmp_path, shared_data, names=("P1888",))
    (src / "labelTxt" / "P0001.txt").write_text("")
    with pytest.raises(FileNotFoundError, match="P0001"):
        split_dataset(str(src), str(tmp_path / "d"), progress=False)
    with pytest.raises(FileNotFoundError, match="images"):
        split_dataset(str(tmp_path / "nothing"), str(tmp_path / "d"), progress=False)


def test_merge_maps_back_and_suppresses():
    # one object seen in two overlapping patches of rate 0.5, plus a separate detection
    obj = np.array([[100, 100], [140, 100], [140, 120], [100, 120.0]])  # original pixels
    p1, p2 = "A__0.5__0___0", "A__0.5__30___10"
    q1 = obj * 0.5 - [0, 0]
    q2 = obj * 0.5 - [30, 10] + 0.2  # slightly off
    other = np.array([[10, 10], [20, 10], [20, 20], [10, 20.0]])
    ids, q, s, c = merge_detections([p1, p2, "B__1__824___0", p1], [q1, q2, other, q1], [0.9, 0.95, 0.5, 0.3],
                                    [0, 0, 0, 1], nms_thr=0.1)
    assert ids.tolist() == ["A", "B", "A"] and c.tolist() == [0, 0, 1]
    assert np.allclose(q[0], (q2 + [30, 10]) / 0.5) and s[0] == 0.95  # the better one survives
    assert np.allclose(q[1], other + [824, 0])
    assert np.allclose(q[2], obj)  # another class: not suppressed
    with pytest.raises(ValueError, match="not a patch name"):
        merge_detections(["P0001"], [q1], [1.0], [0])


def test_merge_tool_files(tmp_path):
    src, dst = tmp_path / "patches", tmp_path / "merged"
    q = np.array([[[0, 0], [10, 0], [10, 10], [0, 10.0]]] * 2)
    write_task1_dir(str(src), {"plane": Task1Detections(np.array(["X__1__0___0", "X__1__5___0"], object),
                                                        np.array([0.5, 0.9]), q)})
    assert _tool("dota_merge").main([str(src), str(dst), "--nms-thr", "0.1"]) == 0
    out = read_task1_dir(str(dst))
    assert len(out) == 15 and len(out["ship"]) == 0  # every v1.0 class gets a file
    assert out["plane"].images.tolist() == ["X"] and out["plane"].scores.tolist() == [0.9]
    assert np.allclose(out["plane"].quads[0], q[0] + [5, 0])
    # the library function with a higher threshold keeps both (IoU 5/15 = 0.33)
    merge_task1_dir(str(src), str(tmp_path / "m2"), nms_thr=0.5)
    assert len(read_task1_dir(str(tmp_path / "m2"))["plane"]) == 2
    assert quad_iou_pairs(q[:1], q[1:] + [5, 0]) == pytest.approx(1 / 3)


def test_split_tool_cli(tmp_path, shared_data):
    src = _src(tmp_path, shared_data, names=("P1888",))
    dst = tmp_path / "dst"
    assert _tool("dota_split").main([str(src), str(dst), "--rates", "1", "0.5", "--workers", "1"]) == 0
    assert sorted(os.listdir(dst / "images")) == ["P1888__0.5__0___0.png", "P1888__1__0___0.png"]
    assert _tool("dota_split").main([str(src), str(dst), "--gap", "2000"]) == 2  # bad parameters: error
