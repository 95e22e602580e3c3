"""ICDAR 2015 / Total-Text evaluation protocol (fasttcm.evaluation.text_eval) on hand-computed cases, on the real
ICDAR 2015 sample GT, and through its command line and writers."""
import json
import logging
import zipfile

import numpy as np
import pytest
from shapely.geometry import Polygon

from conftest import load_tool
from fasttcm.evaluation import text_eval as te
from fasttcm.structures.polygons import signed_area
from fasttcm.evaluation.text_eval import (
    TextItem,
    dictionary_word,
    evaluate,
    image_key,
    load_text_files,
    order_quad_clockwise,
    parse_icdar15_lines,
    parse_polygon_lines,
    transcription_match,
)

IC15_GT = "icdar2015/ch4_training_localization_transcription_gt"


def rect(x0, y0, x1, y1):
    """Clockwise (image coordinates) axis-aligned rectangle."""
    return [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]


def flat(points):
    return ",".join(str(v) for p in points for v in p)


def write(path, text, bom=False, eol="\n"):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = text.replace("\n", eol)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode("utf-8"))
    return path


def numbers(res, task="det_only"):
    r = res[task]
    return r["precision"], r["recall"], r["hmean"]


def counts(res, task="det_only"):
    r = res[task]
    return r["care_gt"], r["care_det"], r["matched"]


# ------------------------------------------------------------------------------------------- matching --
@pytest.mark.parametrize("protocol", ["icdar15", "totaltext"])
def test_perfect_detections(protocol):
    gt = {1: [(rect(0, 0, 10, 10), "Hello"), (rect(20, 0, 40, 10), "World"), (rect(50, 0, 60, 10), "###")],
          2: [(rect(5, 5, 15, 25), "Foo")]}
    res = evaluate(gt, gt, protocol)
    assert numbers(res) == (1.0, 1.0, 1.0)
    assert numbers(res, "e2e") == (1.0, 1.0, 1.0)
    assert counts(res) == (3, 3, 3)  # the copied ### region is a don't-care detection
    assert res["num_images"] == 2 and res["warnings"]["messages"] == []


def test_one_to_one():
    gt = {1: [(rect(0, 0, 10, 10), "a")]}
    det = {1: [(rect(0, 0, 10, 10), "a"), (rect(0, 0, 10, 10), "a")]}
    res = evaluate(gt, det)
    assert counts(res) == (1, 2, 1)
    assert numbers(res) == (0.5, 1.0, pytest.approx(2 / 3))
    assert res["per_sample"]["1"]["det_only_pairs"] == [[0, 0]]


def test_iou_exactly_half_is_not_a_match():
    # GT 3x2, det shifted by 1: intersection 4, union 6 + 6 - 4 = 8 -> IoU exactly 0.5 (integers: exact in floats)
    gt = {1: [(rect(0, 0, 3, 2), "a")]}
    res = evaluate(gt, {1: [(rect(1, 0, 4, 2), "a")]})
    assert counts(res) == (1, 1, 0)
    assert numbers(res) == (0.0, 0.0, 0.0)
    # just above 0.5: det 2x2 inside, IoU 4/6
    res = evaluate(gt, {1: [(rect(1, 0, 3, 2), "a")]})
    assert counts(res) == (1, 1, 1)


def test_dont_care_area_precision_threshold():
    gt = {1: [(rect(0, 0, 4, 2), "###")]}
    # det 2x2 at x 1..3: inside the region (area precision 1) -> don't care; nothing left: P = R = 1 per image
    res = evaluate(gt, {1: [(rect(1, 0, 3, 2), "x")]})
    assert counts(res) == (0, 0, 0)
    assert res["per_sample"]["1"]["det_only"]["precision"] == 1.0
    # det 2x2 at x 3..5: area precision 2/4 = 0.5 exactly -> NOT don't care: a false positive
    res = evaluate(gt, {1: [(rect(3, 0, 5, 2), "x")]})
    assert counts(res) == (0, 1, 0)
    assert res["per_sample"]["1"]["det_only"]["precision"] == 0.0
    assert res["per_sample"]["1"]["det_only"]["recall"] == 1.0
    # 0.75 inside -> don't care
    res = evaluate(gt, {1: [(rect(2, 0, 6, 2), "x")]})  # area 8, inside 2..4 -> 4/8 = 0.5: counted
    assert counts(res) == (0, 1, 0)
    res = evaluate(gt, {1: [(rect(1, 0, 5, 2), "x")]})  # area 8, inside 1..4 -> 6/8 = 0.75: don't care
    assert counts(res) == (0, 0, 0)


def test_zero_area_detection_is_never_dont_care():
    gt = {1: [(rect(0, 0, 10, 10), "###")]}
    res = evaluate(gt, {1: [(rect(2, 2, 2, 8), "x")]})  # a segment: zero area
    assert counts(res) == (0, 1, 0)
    assert res["warnings"]["det_polygons_empty"] == 1


def test_greedy_matching_follows_file_order():
    g1, g2 = rect(0, 0, 10, 10), rect(2, 0, 12, 10)
    d_a = rect(1, 0, 11, 10)  # IoU 90/110 with both GTs
    d_b = rect(-3, 0, 7, 10)  # IoU 70/130 > 0.5 with g1, 50/150 with g2
    gt = {1: [(g1, "a"), (g2, "b")]}
    res = evaluate(gt, {1: [(d_a, ""), (d_b, "")]})
    # g1 takes d_a (first in file order), g2 has nothing left: the official greedy result, not the optimum (2)
    assert counts(res) == (2, 2, 1)
    assert res["per_sample"]["1"]["det_only_pairs"] == [[0, 0]]
    res = evaluate(gt, {1: [(d_b, ""), (d_a, "")]})
    assert counts(res) == (2, 2, 2)
    assert res["per_sample"]["1"]["det_only_pairs"] == [[0, 0], [1, 1]]
    # GT order matters too
    res = evaluate({1: [(g2, "b"), (g1, "a")]}, {1: [(d_a, ""), (d_b, "")]})
    assert counts(res) == (2, 2, 2)


def test_image_without_care_gt_and_overall_denominators():
    gt = {1: [(rect(0, 0, 10, 10), "###")]}
    res = evaluate(gt, {1: []})
    s = res["per_sample"]["1"]["det_only"]
    assert (s["precision"], s["recall"], s["hmean"]) == (1.0, 1.0, 1.0)
    assert numbers(res) == (0.0, 0.0, 0.0)  # overall: 0/0 -> 0
    res = evaluate(gt, {1: [(rect(50, 50, 60, 60), "x")]})
    s = res["per_sample"]["1"]["det_only"]
    assert (s["precision"], s["recall"]) == (0.0, 1.0)
    # an empty GT list is an image without care GT as well
    res = evaluate({1: []}, {})
    assert res["per_sample"]["1"]["det_only"]["recall"] == 1.0 and res["num_images_without_detections"] == 1


def test_per_image_vs_overall_numbers():
    gt = {1: [(rect(0, 0, 10, 10), "a"), (rect(20, 0, 30, 10), "b")], 2: [(rect(0, 0, 10, 10), "c")]}
    det = {1: [(rect(0, 0, 10, 10), "a")], 2: [(rect(0, 0, 10, 10), "c"), (rect(50, 0, 60, 10), "z")]}
    res = evaluate(gt, det)
    assert counts(res) == (3, 3, 2)
    assert numbers(res) == (pytest.approx(2 / 3), pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert res["per_sample"]["1"]["det_only"]["recall"] == 0.5
    assert res["per_sample"]["2"]["det_only"]["precision"] == 0.5


# ------------------------------------------------------------------------------------------ end to end --
@pytest.mark.parametrize(
    "gt,det,ok",
    [
        ("Hello", "hello", True),
        ("NOTHING?", "nothing", True),  # special char at the end of the GT
        ("(06)", "06", True),  # both ends
        ("(06)", "(06", True),  # end only
        ('"Quote', "quote", True),
        ("?a?b", "a?b", True),
        ("NOTHING", "NOTHING?", False),  # only the GT word is stripped
        ("!!ab", "ab", False),  # one character per end only
        ("!!ab", "!ab", True),
        ("-ab", "ab", False),  # '-' is not special
        ("a.b", "ab", False),  # not inside the word
        ("", "", True),
        ("", "x", False),
        ("·x·", "X", True),
    ],
)
def test_transcription_match(gt, det, ok):
    assert transcription_match(gt, det) is ok


def test_transcription_match_word_spotting_is_exact():
    assert transcription_match("NOTHING", "nothing", word_spotting=True)
    assert not transcription_match("NOTHING?", "nothing", word_spotting=True)


@pytest.mark.parametrize(
    "word,clean",
    [
        ("Theatre's", "Theatre"),
        ("Theatre'S", "Theatre"),
        ("-abc-", "abc"),
        ("--abc", "abc"),
        ("(Hello)", "Hello"),
        ("NOTHING?", "NOTHING"),
        ("Café", "Café"),
        ("Ωmega", "Ωmega"),  # U+03A9 in U+0386-U+03FF
        ("co-op", "co-op"),
        ("ab", None),  # fewer than 3 characters
        ("ab's", None),  # "ab" after dropping 's
        ("a.b", None),  # '.' becomes an inner space
        ("don't", None),
        ("Genaxis Theatre", None),
        ("62-03", None),  # digits
        ("CC22", None),
        ("×abc", None),  # U+00D7 lies in U+00C0-U+01BF but is excluded
        ("a÷bc", None),
        ("abc·", "abc"),  # '·' is replaced by a space first, then stripped
        ("«abc»", None),  # U+00AB is outside every range
        ("###", None),
        ("[06]", None),
    ],
)
def test_dictionary_rule(word, clean):
    assert dictionary_word(word) == clean


def test_word_spotting_end_to_end():
    gt = {1: [(rect(0, 0, 10, 10), "Theatre's"), (rect(20, 0, 30, 10), "62-03"), (rect(40, 0, 50, 10), "NOTHING?"),
              (rect(60, 0, 70, 10), "###")]}
    det = {1: [(rect(0, 0, 10, 10), "THEATRE"), (rect(20, 0, 30, 10), "62-03"), (rect(40, 0, 50, 10), "nothing?"),
               (rect(60, 0, 70, 10), "x")]}
    res = evaluate(gt, det, word_spotting=True)
    # detection only: '###' is the only don't care
    assert counts(res) == (3, 3, 3)
    # end to end: "62-03" fails the dictionary -> don't care, and the detection on it too (area precision 1)
    assert counts(res, "e2e") == (2, 2, 1)  # "nothing?" != cleaned "NOTHING"
    assert res["per_sample"]["1"]["e2e_pairs"] == [[0, 0, 1], [2, 2, 0]]
    res = evaluate(gt, det, word_spotting=False)
    assert counts(res, "e2e") == (3, 3, 2)  # "THEATRE" != "THEATRE'S" ('s is not one special character)


# ---------------------------------------------------------------------------------------- ICDAR parsing --
def test_icdar_bom_crlf_commas_and_quotes(tmp_path):
    lines = [
        "1,2,30,2,30,12,1,12,Hello, world",
        '40,2,60,2,60,12,40,12,"a,b \\"c\\" \\\\d"',
        "",
        "5,20,25,20,25,30,5,30,###",
        "70,2,90,2,90,12,70,12",
        '100,2,120,2,120,12,100,12,say "hi"',
    ]
    p = write(tmp_path / "gt" / "gt_img_7.txt", "\n".join(lines) + "\n", bom=True, eol="\r\n")
    files = load_text_files(tmp_path / "gt", "icdar15", "gt")
    assert list(files.items) == ["7"]
    items = files.items["7"]
    assert [it.text for it in items] == ["Hello, world", 'a,b "c" \\d', "###", "", 'say "hi"']
    assert [it.line for it in items] == [1, 2, 4, 5, 6]
    assert items[0].points.tolist() == [[1, 2], [30, 2], [30, 12], [1, 12]]
    assert files.sources["7"] == str(p)


@pytest.mark.parametrize(
    "written,text",
    [
        ('"a\\\\"b"', 'a"b'),  # a \\ " b: \\ -> \ first, then \" -> " (the reader's two replacements, in order)
        ('"x\\\\\\"y"', 'x\\"y'),  # x \\ \" y -> x \ " y
        ('"', '"'),  # a lone quote wraps nothing
        (' "a"', "a"),  # white space outside the quotes is allowed, and goes with them
        ('\t"a" ', "a"),
        ('"a" b', '"a" b'),  # not wrapped: kept as written
        ('""', ""),
        ('"say ""hi"""', 'say ""hi""'),  # one pair only
        (" word ", " word "),  # ICDAR 2015 keeps spaces of an unquoted transcription
    ],
)
def test_icdar_transcription_spellings(written, text):
    (it,) = parse_icdar15_lines(["0,0,1,0,1,1,0,1," + written])
    assert it.text == text


def test_non_clockwise_quads_are_reordered():
    a, b, c, d = [0, 0], [10, 0], [12, 10], [0, 10]  # clockwise on the image
    assert order_quad_clockwise([a, b, c, d]).tolist() == [a, b, c, d]
    ccw = order_quad_clockwise([a, d, c, b])
    assert signed_area(ccw) == pytest.approx(110) and sorted(ccw.tolist()) == sorted([a, b, c, d])
    # "a, b, d, c" crosses itself and is not clockwise: reordered into the trapezoid, which then matches exactly
    gt = {1: [([a, b, c, d], "x")]}
    res = evaluate(gt, {1: [([a, b, d, c], "x")]})
    assert counts(res) == (1, 1, 1)
    assert res["per_sample"]["1"]["det_only_pairs"] == [[0, 0]]
    assert res["warnings"]["quads_reordered"] == 1 and res["warnings"]["det_polygons_repaired"] == 0
    # a crossing quad with a positive shoelace area is clockwise by the rule: repaired (two triangles), counted
    res = evaluate(gt, {1: [([a, c, d, b], "x")]})
    assert res["warnings"]["det_polygons_repaired"] == 1 and res["warnings"]["quads_reordered"] == 0
    # the two triangles cover 55.45 of the 110 px^2, but ICDAR 2015 measures the ring (area 10): IoU 55.45 / 64.55
    assert counts(res) == (1, 1, 1) and res["warnings"]["det_ring_area_differs"] == 1
    # the polygon protocol does not reorder
    res = evaluate(gt, {1: [([a, b, d, c], "x")]}, "totaltext")
    assert res["warnings"]["quads_reordered"] == 0 and res["warnings"]["det_polygons_repaired"] == 1


@pytest.mark.parametrize(
    "line,msg",
    [
        ("1,2,3,4,5,6,7", "expected 8 coordinates"),
        ("1,2,3,4,5,6,7,abc", "non-numeric coordinate 'abc'"),
        ("1,2,3,x,5,6,7,8,word", "non-numeric coordinate 'x'"),
        ("1,2,3,4,5,6,7,nan,word", "non-finite"),
    ],
)
def test_icdar_malformed_lines(tmp_path, line, msg):
    p = write(tmp_path / "gt" / "gt_img_3.txt", "0,0,1,0,1,1,0,1,ok\n" + line + "\n")
    with pytest.raises(ValueError, match=msg) as e:
        evaluate(tmp_path / "gt", {})
    assert f"{p}:2:" in str(e.value)


def test_not_utf8_names_the_file(tmp_path):
    p = tmp_path / "gt" / "gt_img_1.txt"
    p.parent.mkdir()
    p.write_bytes("0,0,1,0,1,1,0,1,caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="not UTF-8") as e:
        load_text_files(p.parent, "icdar15")
    assert str(p) in str(e.value)


def test_missing_detection_files_unknown_images_and_stray_files(tmp_path, caplog):
    write(tmp_path / "gt" / "gt_img_1.txt", "0,0,10,0,10,10,0,10,a\n")
    write(tmp_path / "gt" / "gt_img_2.txt", "0,0,10,0,10,10,0,10,b\n20,0,30,0,30,10,20,10,c\n")
    write(tmp_path / "gt" / "gt_img_3.txt", "")  # empty file: an image without words
    write(tmp_path / "gt" / "README.txt", "not a GT file")
    write(tmp_path / "det" / "res_img_1.txt", "0,0,10,0,10,10,0,10,a\n")
    write(tmp_path / "det" / "res_img_9.txt", "0,0,10,0,10,10,0,10,a\n")  # no GT for image 9
    write(tmp_path / "det" / "res_img_3.txt", "")
    with caplog.at_level(logging.WARNING, logger="fasttcm.evaluation.text_eval"):
        res = evaluate(tmp_path / "gt", tmp_path / "det")
    assert res["num_images"] == 3 and res["num_images_without_detections"] == 2
    assert counts(res) == (3, 1, 1)  # image 2 has no detection file: its 2 words are missed
    assert res["per_sample"]["2"]["det_only"]["recall"] == 0.0
    assert res["per_sample"]["3"]["det_only"]["recall"] == 1.0  # no care GT
    assert res["warnings"]["unknown_det_images"] == ["9"]
    assert res["warnings"]["ignored_files"] == ["gt:README.txt"]
    assert "no ground truth" in caplog.text and "README.txt" in caplog.text


def test_zip_inputs_and_duplicate_ids(tmp_path):
    with zipfile.ZipFile(tmp_path / "gt.zip", "w") as z:
        z.writestr("gt_img_1.txt", "\ufeff0,0,10,0,10,10,0,10,a\r\n")
        z.writestr("sub/gt_img_2.txt", "0,0,10,0,10,10,0,10,b\n")  # not flat: ignored
    with zipfile.ZipFile(tmp_path / "det.zip", "w") as z:
        z.writestr("res_img_1.txt", "1,0,11,0,11,10,1,10,A\n")
    res = evaluate(tmp_path / "gt.zip", tmp_path / "det.zip")
    assert numbers(res) == (1.0, 1.0, 1.0) and numbers(res, "e2e") == (1.0, 1.0, 1.0)
    assert res["warnings"]["ignored_files"] == ["gt:sub/gt_img_2.txt"]
    write(tmp_path / "dup" / "gt_img_1.txt", "")
    write(tmp_path / "dup" / "gt_img_01.txt", "")
    with pytest.raises(ValueError, match="both the gt file of image '1'"):
        load_text_files(tmp_path / "dup", "icdar15")
    with pytest.raises(FileNotFoundError):
        evaluate(tmp_path / "nowhere", {})


def test_image_keys():
    assert image_key("img_1", "icdar15") == image_key(1, "icdar15") == image_key("1", "icdar15") == "1"
    assert image_key("gt_img_12", "icdar15") == "12"
    assert image_key("img3", "totaltext") == image_key(3, "totaltext") == image_key("0000003", "totaltext")
    assert image_key("poly_gt_img3", "ctw1500") == "0000003"
    assert image_key("scene", "totaltext") == "scene"
    with pytest.raises(ValueError, match="unknown text evaluation protocol"):
        image_key(1, "coco")
    with pytest.raises(ValueError, match="same image '1'"):
        evaluate({"img_1": [], 1: []}, {})


# ----------------------------------------------------------------------------------- Total-Text layout --
def test_totaltext_layout(tmp_path, caplog):
    circle = [[50 + 10 * np.cos(t), 50 + 10 * np.sin(t)] for t in np.linspace(0, 2 * np.pi, 16, endpoint=False)]
    gt_lines = [
        "0,0,10,0,10,10,0,10,####Hello",
        "20.5,0,30.5,0,30.5,10,20.5,10,#######",  # don't care, floats
        "40,0,45,-2,50,0,50,10,45,12,40,10,####Curve, bent",
        ",".join(f"{v:.3f}" for p in circle for v in p) + ",####Round",
        "70,0,80,10,80,0,70,10,####Bow",  # a self-intersecting GT: repaired (two triangles), counted
    ]
    write(tmp_path / "gt" / "0000001.txt", "\n".join(gt_lines) + "\n", bom=True, eol="\r\n")
    write(tmp_path / "gt" / "0000002.txt", "0,0,10,0,10,10,0,10,####Alone\n")  # no detection file
    det_lines = [
        "0,10,10,10,10,0,0,0,####hello",  # counter-clockwise: accepted
        "21,1,29,1,29,9,21,9,####x",  # inside the don't-care region
        "40,0,45,-2,50,0,50,10,45,12,40,10,####CURVE, BENT",
        ",".join(f"{v:.3f}" for p in circle[::-1] for v in p) + ",####round",
        "100,0,110,10,110,0,100,10",  # bow-tie detection, no transcription: repaired, counted, a false positive
    ]
    write(tmp_path / "det" / "0000001.txt", "\n".join(det_lines) + "\n")
    with caplog.at_level(logging.WARNING, logger="fasttcm.evaluation.text_eval"):
        res = evaluate(tmp_path / "gt", tmp_path / "det", "totaltext", word_spotting=False)
    w = res["warnings"]
    assert (w["gt_polygons_repaired"], w["det_polygons_repaired"]) == (1, 1)
    assert "0000001.txt:5: invalid gt polygon 'Bow'" in caplog.text
    assert "0000001.txt:5: invalid det polygon" in caplog.text
    # care GT: Hello, Curve, Round, Bow + Alone = 5; care det: hello, curve, round, bow-tie = 4; matched 3
    assert counts(res) == (5, 4, 3)
    assert counts(res, "e2e") == (5, 4, 3)
    assert res["per_sample"]["0000001"]["e2e_pairs"] == [[0, 0, 1], [2, 2, 1], [3, 3, 1]]
    assert res["num_images_without_detections"] == 1
    # word spotting: "Curve, bent" fails the dictionary -> end-to-end don't care (its detection too)
    res = evaluate(tmp_path / "gt", tmp_path / "det", "totaltext", word_spotting=True)
    assert counts(res, "e2e") == (4, 3, 2)


def test_polygon_item_count_and_text_with_hashes():
    (it,) = parse_polygon_lines(["1,1,5,1,5,5,####a####b"])
    assert it.text == "a####b" and it.points.shape == (3, 2)
    (it,) = parse_polygon_lines(["1,1,5,1,5,5"], require_text=False)
    assert it.text == ""


@pytest.mark.parametrize(
    "line,msg",
    [
        ("1,2,3,4,5,####x", "odd number of coordinates"),
        ("1,2,3,4,####x", "2 point\\(s\\), a polygon needs at least 3"),
        ("1,2,3,4,5,six,####x", "non-numeric coordinate 'six'"),
        ("1,2,3,4,5,6,x", "expected x1,y1,...,xn,yn,####transcription"),  # GT lines need ####
        ("1,2,,4,5,6,####x", "non-numeric coordinate ''"),
    ],
)
def test_totaltext_malformed_lines(tmp_path, line, msg):
    p = write(tmp_path / "gt" / "0000004.txt", "\n\n" + line + "\n")
    with pytest.raises(ValueError, match=msg) as e:
        evaluate(tmp_path / "gt", {}, "totaltext")
    assert f"{p}:3:" in str(e.value)


def test_in_memory_degenerate_polygons_are_kept_empty_and_counted(caplog):
    gt = {1: [(rect(0, 0, 10, 10), "a"), ([[0, 0], [5, 5], [10, 10]], "line")]}
    det = {1: [(rect(0, 0, 10, 10), "a"), ([[1, 1], [2, 2]], "two points"), ([[0, 0], [np.nan, 1], [3, 3]], "n")]}
    with caplog.at_level(logging.WARNING, logger="fasttcm.evaluation.text_eval"):
        res = evaluate(gt, det, "totaltext")
    w = res["warnings"]
    assert (w["gt_polygons_empty"], w["det_polygons_empty"]) == (1, 2)
    assert counts(res) == (2, 3, 1)  # nothing dropped: the empty GT can't be found, the empty dets are FPs
    assert "kept with an empty geometry" in caplog.text


# ------------------------------------------------------------------------------------------ real data --
def _copy_as_detections(gt_dir, det_dir):
    det_dir.mkdir(parents=True)
    for p in sorted(gt_dir.glob("gt_img_*.txt")):
        (det_dir / ("res_" + p.name[3:])).write_bytes(p.read_bytes())


def test_real_icdar2015_gt_against_itself(shared_data, tmp_path):
    gt_dir = shared_data / IC15_GT
    files = load_text_files(gt_dir, "icdar15", "gt")
    words = [w for ws in files.items.values() for w in ws]
    assert len(files.items) == 10 and len(words) == 82
    assert sum(w.text == "###" for w in words) == 61
    assert files.items["1"][0].text == "Genaxis Theatre"  # the BOM did not leak
    _copy_as_detections(gt_dir, tmp_path / "det")
    with zipfile.ZipFile(tmp_path / "det.zip", "w") as z:
        for p in sorted((tmp_path / "det").iterdir()):
            z.write(p, p.name)
    res = evaluate(gt_dir, tmp_path / "det.zip", "icdar15")
    assert numbers(res) == (1.0, 1.0, 1.0) and numbers(res, "e2e") == (1.0, 1.0, 1.0)
    assert counts(res) == (21, 21, 21) and counts(res, "e2e") == (21, 21, 21)
    assert res["per_sample"]["5"]["det_only"] == {
        "precision": 1.0, "recall": 1.0, "hmean": 1.0, "care_gt": 0, "care_det": 0, "matched": 0}
    w = res["warnings"]
    assert w["messages"] == [] and w["gt_polygons_repaired"] == 0 and w["unknown_det_images"] == []
    # word spotting: 16 of the 21 legible words pass the dictionary; "NOTHING?" is cleaned to "NOTHING" in the GT
    # while the copied detection still reads "NOTHING?": 15 correct
    res = evaluate(gt_dir, tmp_path / "det", "icdar15", word_spotting=True)
    assert counts(res) == (21, 21, 21)
    assert counts(res, "e2e") == (16, 16, 15)


def test_real_icdar2015_perturbed(shared_data, tmp_path):
    gt_dir = shared_data / IC15_GT
    _copy_as_detections(gt_dir, tmp_path / "det")
    p = tmp_path / "det" / "res_img_1.txt"
    lines = p.read_text(encoding="utf-8-sig").splitlines()
    assert lines[0].endswith("Genaxis Theatre") and lines[4].endswith("Carpark")
    lines[0] = "377,117,463,117,465,130,378,130,Genaxis Theater"  # right box, wrong text
    lines[4] = "386,198,432,198,432,212,386,212,Carpark"  # shifted by 10 px: IoU 36/56 -> still a match
    lines.append("900,600,950,600,950,640,900,640,ghost")  # a false positive
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "det" / "res_img_2.txt").unlink()  # its 2 legible words (EXIT, I2R) are missed
    res = evaluate(gt_dir, tmp_path / "det", "icdar15")
    assert counts(res) == (21, 21 + 1 - 2, 21 - 2)
    assert counts(res, "e2e") == (21, 20, 18)  # "Genaxis Theater" is matched but not correct
    assert res["per_sample"]["2"]["det_only"]["recall"] == 0.0 and res["num_images_without_detections"] == 1


# --------------------------------------------------------------------------------------------- writers --
def test_writers_round_trip(tmp_path):
    dets = {
        "img_1": [(rect(0.4, 0.6, 10.2, 9.7), 'say "hi"'), (rect(20, 0, 30, 10)[::-1], "a,b\\c"),
                  (rect(40, 0, 50, 9), None)],
        "img_2": [],
    }
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "res_img_99.txt").write_text("stale")
    out = te.write_icdar15_submission(dets, tmp_path / "res")
    assert out["files"] == ["res_img_1.txt", "res_img_2.txt"] and out["zip"] == str(tmp_path / "res.zip")
    assert sorted(q.name for q in (tmp_path / "res").iterdir()) == ["res_img_1.txt", "res_img_2.txt"]
    text = (tmp_path / "res" / "res_img_1.txt").read_text(encoding="utf-8").splitlines()
    assert text == [
        '0,1,10,1,10,10,0,10,"say \\"hi\\""',
        '20,0,30,0,30,10,20,10,"a,b\\\\c"',  # reversed input written clockwise
        "40,0,50,0,50,9,40,9",
    ]
    with zipfile.ZipFile(out["zip"]) as z:
        assert sorted(z.namelist()) == ["res_img_1.txt", "res_img_2.txt"]
        assert z.read("res_img_2.txt") == b""
    loaded = load_text_files(out["zip"], "icdar15", "det")
    assert [w.text for w in loaded.items["1"]] == ['say "hi"', "a,b\\c", ""]
    # Total-Text: 7-digit names, 2 decimals, clockwise, ####
    out = te.write_totaltext_submission({"img3": [(rect(0.25, 1, 10.5, 9.125)[::-1], "Word")]}, tmp_path / "tt")
    assert out["files"] == ["0000003.txt"] and out["zip"] is None
    assert (tmp_path / "tt" / "0000003.txt").read_text() == "0.25,1,10.5,1,10.5,9.12,0.25,9.12,####Word\n"
    with pytest.raises(ValueError, match="quadrilaterals"):
        te.format_submission_lines([(np.zeros((5, 2)), "x")], "icdar15")
    assert te.to_quad([[0, 0], [4, 0], [4, 2], [2, 3], [0, 2]]).shape == (4, 2)


# ------------------------------------------------------------------------------------------------- CLI --
def test_cli_json_and_table(shared_data, tmp_path, capsys):
    gt_dir = shared_data / IC15_GT
    _copy_as_detections(gt_dir, tmp_path / "det")
    out = tmp_path / "out" / "r.json"
    rc = load_tool("evaluate_text").main(["--protocol", "icdar15", "--gt", str(gt_dir), "--det", str(tmp_path / "det"), "--json", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "protocol icdar15" in printed and "word spotting off" in printed
    assert "| detection only |      100.00 |   100.00 |  100.00 |      21 |       21 |      21 |" in printed
    data = json.loads(out.read_text(encoding="utf-8"))
    assert {"protocol", "word_spotting", "num_images", "det_only", "e2e", "per_sample", "warnings"} <= set(data)
    assert set(data["det_only"]) == {"precision", "recall", "hmean", "care_gt", "care_det", "matched"}
    assert data["protocol"] == "icdar15" and data["e2e"]["hmean"] == 1.0 and len(data["per_sample"]) == 10
    assert set(data["per_sample"]["1"]) >= {"det_only", "e2e", "det_only_pairs", "e2e_pairs"}


def test_cli_help_and_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        load_tool("evaluate_text").main(["--help"])
    assert e.value.code == 0
    h = capsys.readouterr().out
    assert "res_img_<id>.txt" in h and "####transcription" in h and "--word-spotting" in h
    write(tmp_path / "gt" / "0000001.txt", "1,2,3,####x\n")
    rc = load_tool("evaluate_text").main(["--protocol", "totaltext", "--gt", str(tmp_path / "gt"), "--det", str(tmp_path / "gt")])
    assert rc == 2
    assert "0000001.txt:1: odd number of coordinates" in capsys.readouterr().err


# ------------------------------------------------------------------- independent brute-force reference --
def _reference(gt, det):
    """docs/PROTOCOLS.md §1 written out with nested loops and one shapely call per pair (no word spotting)."""
    from shapely.geometry import Polygon

    special = "!?.:,*\"()·[]/'"
    tot = np.zeros((2, 3), int)  # rows det_only/e2e (identical lists without word spotting); care_gt, care_det, n
    for key, gws in gt.items():
        dws = det.get(key, [])
        gp = [Polygon(w.points) for w in gws]
        dp = [Polygon(w.points) for w in dws]
        gdc = [w.text == "###" for w in gws]
        ddc = []
        for d in dp:
            ddc.append(d.area > 0 and any(gdc[i] and d.intersection(g).area / d.area > 0.5 for i, g in enumerate(gp)))
        gm, dm, matched, correct = [False] * len(gp), [False] * len(dp), 0, 0
        for i, g in enumerate(gp):
            for j, d in enumerate(dp):
                if gm[i] or dm[j] or gdc[i] or ddc[j]:
                    continue
                inter = g.intersection(d).area
                if inter / (g.area + d.area - inter) > 0.5:
                    gm[i] = dm[j] = True
                    matched += 1
                    a, b = gws[i].text.upper(), dws[j].text.upper()
                    ok = a == b or (a[:1] in special and a[1:] == b) or (a[-1:] in special and a[:-1] == b) or (
                        a[:1] in special and a[-1:] in special and a[1:-1] == b)
                    correct += bool(ok)
        cg, cd = gdc.count(False), ddc.count(False)
        tot += [[cg, cd, matched], [cg, cd, correct]]
    return tot


def test_against_brute_force_reference():
    rng = np.random.default_rng(7)
    words = ["Hello", "(06)", "NOTHING?", "###", "###", "abc", "a.b", ""]

    def box():
        cx, cy, w, h, a = rng.uniform(0, 200), rng.uniform(0, 200), rng.uniform(5, 60), rng.uniform(5, 30), \
            rng.uniform(-0.5, 0.5)
        c, s = np.cos(a), np.sin(a)
        return np.array([[cx + c * x - s * y, cy + s * x + c * y]
                         for x, y in ((-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2), (-w / 2, h / 2))])

    gt, det = {}, {}
    for k in range(40):
        g = [TextItem(box(), words[rng.integers(len(words))]) for _ in range(rng.integers(0, 12))]
        d = [TextItem(w.points + rng.normal(0, 2.5, (4, 2)) if rng.random() < 0.9 else box(),
                      rng.choice(["hello", "06", "(06", "nothing", "ABC", "x", ""])) for w in g]
        d += [TextItem(box(), "x") for _ in range(rng.integers(0, 4))]
        rng.shuffle(d)
        gt[k], det[k] = g, [w for w in d if Polygon(w.points).is_valid]
    res = evaluate(gt, det, "totaltext")
    ref = _reference(gt, det)
    assert counts(res) == tuple(ref[0]) and counts(res, "e2e") == tuple(ref[1])
    assert ref[0, 2] > 50 and ref[0, 1] > ref[0, 2] and ref[1, 2] > 0  # a non-trivial case
    res15 = evaluate(gt, det, "icdar15")  # the quads are clockwise: same numbers under the ICDAR rules
    assert counts(res15) == tuple(ref[0]) and res15["warnings"]["quads_reordered"] == 0
