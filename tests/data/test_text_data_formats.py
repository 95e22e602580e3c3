"""Text GT formats written in temporary folders: encodings, line ends, the Total-Text text form, both CTW1500
forms, malformed lines, degenerate polygons, unpaired and unreadable images, EXIF sizes, polygon helpers."""
import logging

import numpy as np
import pytest
from PIL import Image
from shapely.geometry import Polygon

from fasttcm.data.datasets.text import LoadStats, load_gt_file, load_text_dataset
from fasttcm.data.fileio import image_size
from fasttcm.structures.polygons import bbox_xywh, is_clockwise, repair_polygon, signed_area


def _image(path, w=64, h=48):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (w, h), (10, 20, 30)).save(path)


def _write(path, text, encoding="utf-8"):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode(encoding))


# ------------------------------------------------------------------------------------------------- ICDAR --
@pytest.mark.parametrize("bom,eol", [(True, "\r\n"), (False, "\n"), (True, "\n"), (False, "\r\n")])
def test_icdar_encodings_line_ends_and_commas(tmp_path, bom, eol):
    lines = ["1,2,30,2,30,12,1,12,Hello, world", "5,20,25,20,25,30,5,30,###", "", "0.5,1,9.5,1,9.5,8,0.5,8,a,b,,c"]
    _write(tmp_path / "gts" / "gt_img_7.txt", ("\ufeff" if bom else "") + eol.join(lines) + eol)
    _image(tmp_path / "imgs" / "img_7.jpg")
    (d,) = load_text_dataset(str(tmp_path / "imgs"), str(tmp_path / "gts"), "icdar15")
    assert (d["image_id"], d["height"], d["width"]) == ("img_7", 48, 64)
    texts = [a["text"] for a in d["annotations"]]
    assert texts == ["Hello, world", "###", "a,b,,c"]  # no BOM, no \r, commas kept
    assert [a["iscrowd"] for a in d["annotations"]] == [0, 1, 0]
    assert d["annotations"][0]["segmentation"] == [[1.0, 2.0, 30.0, 2.0, 30.0, 12.0, 1.0, 12.0]]
    assert d["annotations"][0]["bbox"] == [1.0, 2.0, 29.0, 10.0]
    assert d["annotations"][2]["segmentation"][0][0] == 0.5


@pytest.mark.parametrize(
    "bad,msg",
    [
        ("1,2,3,4,5,6,7,word", "non-numeric"),  # 7 coordinates
        ("1,2,3,4,5,6,x,8,word", "non-numeric"),
        ("1,2,3,nan,5,6,7,8,word", "non-finite"),
        ("1,2,3,4", "expected 8 coordinates"),
    ],
)
def test_icdar_malformed_line_names_file_and_line(tmp_path, bad, msg):
    p = tmp_path / "gt_img_1.txt"
    _write(p, "\ufeff1,2,30,2,30,12,1,12,ok\r\n" + bad + "\r\n")
    with pytest.raises(ValueError, match=rf"gt_img_1\.txt:2: .*{msg}"):
        load_gt_file(str(p), "icdar15")


def test_unpaired_and_unreadable_images_name_the_file(tmp_path):
    _write(tmp_path / "gts" / "gt_img_1.txt", "1,2,30,2,30,12,1,12,a\n")
    _image(tmp_path / "imgs" / "img_1.jpg")
    _image(tmp_path / "imgs" / "img_2.png")
    with pytest.raises(FileNotFoundError, match=r"no ground-truth file for image .*img_2\.png"):
        load_text_dataset(str(tmp_path / "imgs"), str(tmp_path / "gts"), "icdar15")
    stats = LoadStats()
    dicts = load_text_dataset(str(tmp_path / "imgs"), str(tmp_path / "gts"), "icdar15", on_missing="warn", stats=stats)
    assert len(dicts) == 1
    assert stats.skipped_files == [str(tmp_path / "imgs" / "img_2.png")]
    (tmp_path / "imgs" / "img_2.png").unlink()
    (tmp_path / "imgs" / "img_1.jpg").write_bytes(b"not a jpeg at all")
    with pytest.raises(ValueError, match=r"img_1\.jpg: unreadable image"):
        load_text_dataset(str(tmp_path / "imgs"), str(tmp_path / "gts"), "icdar15")


def test_exif_orientation_swaps_size_like_read_image(tmp_path):
    from detectron2.data.detection_utils import read_image

    p = tmp_path / "rot.jpg"
    exif = Image.Exif()
    exif[274] = 6  # rotate 90 degrees on display
    Image.new("RGB", (64, 48)).save(p, exif=exif)
    assert image_size(str(p)) == (64, 48, True)
    assert read_image(str(p)).shape[:2] == (64, 48)
    _image(tmp_path / "plain.png")
    assert image_size(str(tmp_path / "plain.png")) == (48, 64, False)


# ------------------------------------------------------------------------------------- degenerate polygons --
def test_degenerate_polygons_repaired_or_dropped_with_warnings(tmp_path, caplog):
    lines = [
        "0,0,20,0,20,10,0,10,good",
        "0,0,20,10,20,0,0,10,bowtie",  # corners in the wrong order: self-intersecting
        "0,0,10,0,20,0,30,0,flat",  # collinear
        "5,5,5,5,5,5,6,6,point",  # 2 distinct points
        "1,1,21,1,21,11,1,11,###",
    ]
    _write(tmp_path / "gts" / "gt_img_3.txt", "\n".join(lines))
    _image(tmp_path / "imgs" / "img_3.jpg")
    stats = LoadStats()
    with caplog.at_level(logging.INFO, logger="fasttcm"):
        (d,) = load_text_dataset(str(tmp_path / "imgs"), str(tmp_path / "gts"), "icdar15", name="degen", stats=stats)
    assert [a["text"] for a in d["annotations"]] == ["good", "bowtie", "###"]
    assert (stats.instances, stats.dont_care, stats.repaired, stats.dropped) == (3, 1, 1, 2)
    bow = np.reshape(d["annotations"][1]["segmentation"][0], (-1, 2))
    assert Polygon(bow).is_valid and Polygon(bow).area == pytest.approx(200.0) and is_clockwise(bow)
    assert "gt_img_3.txt:2: repaired polygon 'bowtie'" in caplog.text
    assert "gt_img_3.txt:3: dropped polygon 'flat'" in caplog.text
    assert "gt_img_3.txt:4: dropped polygon 'point'" in caplog.text
    assert "degen: 1 images, 3 instances (1 don't care), 1 repaired, 2 dropped (see warnings)" in caplog.text


def test_repair_polygon_rules():
    sq = [[0, 0], [10, 0], [10, 10], [0, 10]]
    r = repair_polygon(sq)
    assert r.status == "ok" and r.points.tolist() == sq
    r = repair_polygon([0, 0, 10, 0, 10, 0, 10, 10, 0, 10, 0, 0])  # repeated vertices, closing point
    assert r.status == "ok" and len(r.points) == 4
    # self-intersecting hexagon (figure eight): make_valid, largest part kept
    r = repair_polygon([[0, 0], [10, 10], [20, 0], [20, 20], [10, 10], [0, 20]])
    assert r.status == "repaired" and Polygon(r.points).is_valid and Polygon(r.points).area == pytest.approx(100.0)
    assert is_clockwise(r.points)
    assert repair_polygon([[0, 0], [1, 1], [2, 2]]).status == "dropped"
    assert repair_polygon([[0, 0], [np.nan, 1], [2, 2]]).status == "dropped"
    assert signed_area(sq) == 100.0 and signed_area(sq[::-1]) == -100.0
    assert bbox_xywh(np.array([[3, 4], [10, 2], [5, 9]])) == [3.0, 2.0, 7.0, 7.0]


# ---------------------------------------------------------------------------------------------- Total-Text --
TT_TXT = (
    "x: [[115 503 494 115]], y: [[322 346 426 404]], ornt: [u'm'], transcriptions: [u'nauGHTY']\r\n"
    "x: [[ 62 112 156 159\r\n 112  69]], y: [[79 50 43\r\n  61 72 97]], ornt: [u'c'],\r\n"
    "  transcriptions: [u\"Kid's [corner]\"]\r\n"
    "x: [[168 186 187 170]], y: [[43 44 63 63]], ornt: [u'#'], transcriptions: [u'#']\r\n"
    "x: [[1 9 9 1]], y: [[1 1 9 9]], ornt: [u'h'], transcriptions: [u'###']\r\n"
)


def test_totaltext_text_form_wrapped_records(tmp_path):
    _write(tmp_path / "gt" / "poly_gt_img11.txt", TT_TXT)
    _image(tmp_path / "Images" / "img11.jpg", 600, 500)
    insts = load_gt_file(str(tmp_path / "gt" / "poly_gt_img11.txt"), "totaltext")
    assert [i.text for i in insts] == ["nauGHTY", "Kid's [corner]", "#", "###"]
    assert [i.ignore for i in insts] == [False, False, True, True]
    assert [i.line for i in insts] == [1, 2, 6, 7]  # record 2 wraps over lines 2-5
    assert insts[1].points.tolist() == [[62, 79], [112, 50], [156, 43], [159, 61], [112, 72], [69, 97]]
    (d,) = load_text_dataset(str(tmp_path / "Images"), str(tmp_path / "gt"), "totaltext")
    assert d["image_id"] == "img11" and [a["iscrowd"] for a in d["annotations"]] == [0, 0, 1, 1]


@pytest.mark.parametrize(
    "bad,line,msg",
    [
        ("x: [[1 2 3]], y: [[1 2]], ornt: [u'h'], transcriptions: [u'a']", 2, "3 x coordinates but 2"),
        ("x: [[1 2 z]], y: [[1 2 3]], ornt: [u'h'], transcriptions: [u'a']", 2, "non-numeric"),
        ("x: [[1 2 3]], y: [[1 2 3]], transcriptions: [u'a']", 2, "malformed record"),
        ("x: [[1 2]], y: [[1 2]], ornt: [u'h'], transcriptions: [u'a']", 2, "polygon with 2 point"),
    ],
)
def test_totaltext_text_form_malformed(tmp_path, bad, line, msg):
    p = tmp_path / "poly_gt_img1.txt"
    _write(p, "x: [[1 9 9 1]], y: [[1 1 9 9]], ornt: [u'h'], transcriptions: [u'ok']\n" + bad + "\n")
    with pytest.raises(ValueError, match=rf"poly_gt_img1\.txt:{line}: .*{msg}"):
        load_gt_file(str(p), "totaltext")


def test_totaltext_mat_written_here(tmp_path):
    import scipy.io

    rows = np.empty((2, 6), dtype=object)
    rows[0] = ["x:", np.array([[1, 20, 20, 1]], np.int16), "y:", np.array([[1, 1, 9, 9]], np.int16), "AB", "h"]
    rows[1] = ["x:", np.array([[1, 20, 1]], np.int16), "y:", np.array([[1, 1, 9]], np.int16), "#", "#"]
    scipy.io.savemat(tmp_path / "poly_gt_img2.mat", {"polygt": rows})
    insts = load_gt_file(str(tmp_path / "poly_gt_img2.mat"), "totaltext")
    assert [(i.text, i.ignore, len(i.points)) for i in insts] == [("AB", False, 4), ("#", True, 3)]
    scipy.io.savemat(tmp_path / "poly_gt_img3.mat", {"other": np.zeros(2)})
    with pytest.raises(ValueError, match="poly_gt_img3.mat: no 'polygt'"):
        load_gt_file(str(tmp_path / "poly_gt_img3.mat"), "totaltext")


# ------------------------------------------------------------------------------------------------- CTW1500 --
def _ctw_relative_line(xmin, ymin, pts):
    pts = np.asarray(pts)
    xmax, ymax = pts.max(0)
    rel = (pts - [xmin, ymin]).reshape(-1)
    return ",".join(str(int(v)) for v in [xmin, ymin, xmax, ymax, *rel])


def test_ctw1500_both_forms(tmp_path):
    t = np.linspace(0, np.pi, 7)
    upper = np.stack([100 + 80 * np.cos(np.pi - t), 100 - 60 * np.sin(t)], 1).round()
    lower = np.stack([100 + 50 * np.cos(t), 100 - 30 * np.sin(np.pi - t)], 1).round()
    pts = np.concatenate([upper, lower])  # 14 points, arch shaped, clockwise
    assert len(pts) == 14 and is_clockwise(pts)
    xmin, ymin = pts.min(0)
    _write(tmp_path / "train_labels" / "0001.txt", _ctw_relative_line(xmin, ymin, pts) + "\r\n")
    _image(tmp_path / "train_images" / "0001.jpg", 300, 200)
    (d,) = load_text_dataset(str(tmp_path / "train_images"), str(tmp_path / "train_labels"), "ctw1500")
    (a,) = d["annotations"]
    assert np.reshape(a["segmentation"][0], (-1, 2)).tolist() == pts.tolist()
    assert a["text"] == "" and a["iscrowd"] == 0

    absolute = ",".join(str(int(v)) for v in pts.reshape(-1))
    _write(
        tmp_path / "test_labels" / "1001.txt",
        f"\ufeff{absolute},####Hello, again\n{absolute},#######\n10,10,50,10,50,30,10,30,####x\n",
    )
    _image(tmp_path / "test_images" / "1001.jpg", 300, 200)
    (d,) = load_text_dataset(str(tmp_path / "test_images"), str(tmp_path / "test_labels"), "ctw1500")
    assert [(x["text"], x["iscrowd"]) for x in d["annotations"]] == [("Hello, again", 0), ("###", 1), ("x", 0)]
    assert np.reshape(d["annotations"][0]["segmentation"][0], (-1, 2)).tolist() == pts.tolist()


@pytest.mark.parametrize(
    "bad,msg",
    [
        ("1,2,3,4,5", "5 numbers"),
        ("1,2,3,4,5,6,7,####t", "odd number"),
        ("1,2,3,4,####t", "2 point"),
        ("1,a,3,4,5,6", "non-numeric"),
    ],
)
def test_ctw1500_malformed(tmp_path, bad, msg):
    p = tmp_path / "0003.txt"
    _write(p, "10,10,50,10,50,30,10,30,####ok\n\n" + bad + "\n")
    with pytest.raises(ValueError, match=rf"0003\.txt:3: .*{msg}"):
        load_gt_file(str(p), "ctw1500")


def _ctw_xml(boxes, image="0001.jpg"):
    """CTW1500's XML label layout: (segs string, label or None) per box."""
    out = ['<?xml version="1.0" encoding="utf-8"?>', "<Annotations>", f'  <image file="{image}">']
    for segs, label in boxes:
        out.append('    <box height="40" left="10" top="10" width="90">')
        if label is not None:
            out.append(f"      <label>{label}</label>")
        if segs is not None:
            out.append(f"      <segs>{segs}</segs>")
        out.append('      <pts x="12" y="14" />')
        out.append("    </box>")
    return "\n".join(out + ["  </image>", "</Annotations>", ""])


def test_ctw1500_xml_training_labels(tmp_path):
    t = np.linspace(0, np.pi, 7)
    pts = np.concatenate([np.stack([100 + 80 * np.cos(np.pi - t), 100 - 60 * np.sin(t)], 1),
                          np.stack([100 + 50 * np.cos(t), 100 - 30 * np.sin(np.pi - t)], 1)]).round()
    segs = ",".join(str(int(v)) for v in pts.reshape(-1))
    xml = _ctw_xml([(segs, "Caf&#233; &amp; Bar, 24h"), ("10,10,50,10,50,30,10,30", "###"), (segs, None)])
    _write(tmp_path / "ctw1500_train_labels" / "0001.xml", "\ufeff" + xml.replace("\n", "\r\n"))
    _image(tmp_path / "train_images" / "0001.jpg", 300, 200)
    (d,) = load_text_dataset(str(tmp_path / "train_images"), str(tmp_path / "ctw1500_train_labels"), "ctw1500")
    assert [(a["text"], a["iscrowd"]) for a in d["annotations"]] == [("Caf\u00e9 & Bar, 24h", 0), ("###", 1), ("", 0)]
    assert np.reshape(d["annotations"][0]["segmentation"][0], (-1, 2)).tolist() == pts.tolist()
    assert d["annotations"][1]["bbox"] == [10.0, 10.0, 40.0, 20.0]
    # errors name the file and the line of the <box>
    assert [i.line for i in load_gt_file(str(tmp_path / "ctw1500_train_labels" / "0001.xml"), "ctw1500")] == [4, 9, 14]


@pytest.mark.parametrize(
    "boxes,msg",
    [
        ([("1,2,3,4,5,6", "ok"), (None, "x")], r":9: <box> without <segs>"),
        ([("1,2,3,4,5,6", "ok"), ("1,2,3,4", "x")], r":9: 2 point"),
        ([("1,2,3,4,5,6", "ok"), ("1,2,x,4,5,6", "x")], r":9: non-numeric"),
        ([("1,2,3,4,5,6", "ok"), ("1,2,3,4,5,6,7", "x")], r":9: odd number"),
    ],
)
def test_ctw1500_xml_malformed(tmp_path, boxes, msg):
    p = tmp_path / "0002.xml"
    _write(p, _ctw_xml(boxes))
    with pytest.raises(ValueError, match=rf"0002\.xml{msg}"):
        load_gt_file(str(p), "ctw1500")


def test_ctw1500_xml_broken_structure(tmp_path):
    p = tmp_path / "0003.xml"
    _write(p, _ctw_xml([("1,2,3,4,5,6", "ok")]).replace("</box>", "", 1))
    with pytest.raises(ValueError, match=r"0003\.xml:\d+: malformed XML \(mismatched tag\)"):
        load_gt_file(str(p), "ctw1500")
    two = _ctw_xml([("1,2,3,4,5,6", "a")]).replace("</Annotations>", '<image file="x.jpg"></image></Annotations>')
    _write(p, two)
    with pytest.raises(ValueError, match=r"0003\.xml:\d+: a second <image>"):
        load_gt_file(str(p), "ctw1500")
    _write(p, _ctw_xml([("1,2,3,4,5,6", "a")]).replace("<label>a</label>", "<label>a</label><label>b</label>"))
    with pytest.raises(ValueError, match=r"0003\.xml:4: <box> has more than one <label>"):
        load_gt_file(str(p), "ctw1500")


def test_polygon_txt_requires_separator(tmp_path):
    p = tmp_path / "0000001.txt"
    _write(p, "1.5,2,30,2,30,12.25,1,12,####Hi, there\r\n5,5,9,5,9,9,####\n")
    insts = load_gt_file(str(p), "polygon_txt")
    assert [(i.text, i.ignore, len(i.points)) for i in insts] == [("Hi, there", False, 4), ("", False, 3)]
    assert insts[0].points[0].tolist() == [1.5, 2.0]
    _write(p, "1,2,30,2,30,12,1,12,####ok\n" + ",".join(["1"] * 32) + "\n")  # 32 numbers: not CTW relative here
    with pytest.raises(ValueError, match=r"0000001\.txt:2: expected x1,y1"):
        load_gt_file(str(p), "polygon_txt")
