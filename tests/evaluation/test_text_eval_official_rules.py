"""The RRC text evaluation rules that differ from a naive polygon evaluation (docs/PROTOCOLS.md §1-2): ICDAR 2015
ring areas (with their warning counts in the table and the JSON), the official transcription readers, and the
exact 0.5 thresholds; all on small files written here."""
import json
import re
from fractions import Fraction

import numpy as np
import pytest

from fasttcm.structures.quads import exact_pair_areas, rboxes_to_quads
from conftest import load_tool
from fasttcm.evaluation import text_eval as te
from fasttcm.structures.polygons import signed_area
from fasttcm.evaluation.text_eval import dictionary_word, evaluate, parse_polygon_lines, unquote_transcription

SQ = [[0, 0], [10, 0], [10, 10], [0, 10]]  # clockwise on the image, area 100
BOW = [[0, 0], [10, 10], [10, 0], [0, 10]]  # crosses itself at (5, 5): two lobes of 25, ring (shoelace) area 0


def flat(points):
    return ",".join(str(v) for p in points for v in p)


def write(path, lines):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def counts(res, task="det_only"):
    r = res[task]
    return r["care_gt"], r["care_det"], r["matched"]


# ------------------------------------------------------------------------------ ICDAR 2015 ring areas --
def test_zero_ring_area_bow_tie_detection_matches_under_icdar15_only():
    # filled intersection 50; ICDAR 2015 union = 100 + 0 - 50 = 50 -> IoU 1; filled union 100 + 50 - 50 -> IoU 0.5
    gt, det = {1: [(SQ, "a")]}, {1: [(BOW, "a")]}
    res = evaluate(gt, det, "icdar15")
    assert counts(res) == (1, 1, 1) and counts(res, "e2e") == (1, 1, 1)
    w = res["warnings"]
    assert (w["det_ring_area_differs"], w["gt_ring_area_differs"], w["det_polygons_repaired"]) == (1, 0, 1)
    res = evaluate(gt, det, "totaltext")  # the polygon protocol measures the repaired shape: 0.5 is no match
    assert counts(res) == (1, 1, 0)
    assert res["warnings"]["det_ring_area_differs"] == 0 and res["warnings"]["det_polygons_repaired"] == 1


def test_zero_ring_area_bow_tie_matches_any_word_it_covers_by_more_than_a_third():
    # IoU = I / (G + 0 - I) > 1/2 <=> I > G / 3, for a detection of ring area 0 over a word of area G
    gt = {1: [([[0, 0], [30, 0], [30, 10], [0, 10]], "x")]}  # G = 300
    lobes = [[0, 0], [10, 10], [10, 0], [0, 10]]  # 50 of it
    assert counts(evaluate(gt, {1: [(lobes, "x")]}, "icdar15")) == (1, 1, 0)  # 50 < 100
    wide = [[0, 0], [22, 10], [22, 0], [0, 10]]  # lobes of 55 each: I = 110 > 100
    assert counts(evaluate(gt, {1: [(wide, "x")]}, "icdar15")) == (1, 1, 1)


def test_bow_tie_ground_truth_is_measured_by_its_ring():
    gt, det = {1: [(BOW, "a")]}, {1: [(SQ, "a")]}
    res = evaluate(gt, det, "icdar15")  # 50 / (0 + 100 - 50) = 1
    assert counts(res) == (1, 1, 1)
    assert (res["warnings"]["gt_ring_area_differs"], res["warnings"]["gt_polygons_repaired"]) == (1, 1)
    assert counts(evaluate(gt, det, "totaltext")) == (1, 1, 0)  # 50 / (50 + 100 - 50) = 0.5


def test_zero_ring_area_detection_is_never_dont_care():
    gt = {1: [([[0, 0], [20, 0], [20, 20], [0, 20]], "###")]}
    det = {1: [(BOW, "x")]}  # wholly inside the don't-care region
    assert counts(evaluate(gt, det, "icdar15")) == (0, 1, 0)  # ring area 0: a care detection, unmatched
    assert counts(evaluate(gt, det, "totaltext")) == (0, 0, 0)  # filled area 50, all inside: don't care


def test_small_ring_area_makes_a_detection_dont_care_more_easily():
    # an asymmetric bow tie (clockwise by its shoelace sum, so not reordered): lobes of 64 and 4 meet at (3.2, 2);
    # ring area 60, filled 68; the region holds 33.75 of it: 33.75 / 60 > 0.5 >= 33.75 / 68
    det = np.array([[0, 0], [16, 10], [16, 0], [0, 2.5]], float)[::-1]
    region = np.array([[12, -5], [30, -5], [30, 15], [12, 15]], float)
    inter, _, filled, _, ring = exact_pair_areas(region, det)
    assert (inter, filled, ring) == (Fraction(135, 4), 68, 60) and signed_area(det) > 0
    gt = {1: [(region, "###")]}
    assert counts(evaluate(gt, {1: [(det, "x")]}, "icdar15")) == (0, 0, 0)  # 33.75 / 60 > 0.5: don't care
    assert counts(evaluate(gt, {1: [(det, "x")]}, "totaltext")) == (0, 1, 0)  # 33.75 / 68: a false positive


def test_counter_clockwise_bow_tie_is_reordered_first():
    ccw_bow = [[0, 0], [10, 10], [0, 10], [12, 0]]  # crossing, shoelace sum -20: reordered by angle (a trapezoid)
    res = evaluate({1: [(SQ, "a")]}, {1: [(ccw_bow, "a")]}, "icdar15")
    w = res["warnings"]
    assert counts(res) == (1, 1, 1) and w["quads_reordered"] == 1
    assert (w["det_ring_area_differs"], w["det_polygons_repaired"]) == (0, 0)


def test_ring_area_warnings_in_table_and_json(tmp_path, capsys):
    write(tmp_path / "gt" / "gt_img_1.txt", [flat(BOW) + ",Bow", flat(SQ) + ",###"])
    write(tmp_path / "gt" / "gt_img_2.txt", [flat([[0, 0], [10, 0], [10, 10], [0, 10]]) + ",Word"])
    write(tmp_path / "det" / "res_img_1.txt", [flat(SQ) + ",bow", flat(BOW) + ",x"])
    write(tmp_path / "det" / "res_img_2.txt", [flat([[0, 0], [10, 10], [10, 0], [0, 10]]) + ",word",
                                               flat([[0, 0], [12, 0], [12, 10], [0, 10]]) + ",word"])
    out = tmp_path / "r.json"
    rc = load_tool("evaluate_text").main(["--protocol", "icdar15", "--gt", str(tmp_path / "gt"), "--det", str(tmp_path / "det"),
                  "--json", str(out)])
    assert rc == 0
    text = capsys.readouterr().out
    assert "warning: 1 ground-truth and 2 detection polygon(s) cross themselves" in text
    assert "gt_polygons_repaired=1" in text and "det_polygons_repaired=2" in text
    w = json.loads(out.read_text(encoding="utf-8"))["warnings"]
    assert (w["gt_ring_area_differs"], w["det_ring_area_differs"]) == (1, 2)
    assert (w["gt_polygons_repaired"], w["det_polygons_repaired"]) == (1, 2)
    assert any("gt_img_1.txt:1: invalid gt polygon 'Bow'" in m for m in w["messages"])
    # a clean file set says so
    write(tmp_path / "gt2" / "gt_img_2.txt", [flat(SQ) + ",Word"])
    write(tmp_path / "det2" / "res_img_2.txt", [flat(SQ) + ",word"])
    rc = load_tool("evaluate_text").main(["--protocol", "icdar15", "--gt", str(tmp_path / "gt2"), "--det", str(tmp_path / "det2")])
    text = capsys.readouterr().out
    assert rc == 0 and "warnings: none" in text and "cross themselves" not in text


def _exact_half_rotated_pair():
    """A rotated quad with integer corners and a translate of it whose IoU is exactly 1/2 (found by search)."""
    rng = np.random.default_rng(3)
    for _ in range(5000):
        b = np.r_[rng.integers(20, 60, 2), rng.integers(6, 30), rng.integers(4, 20), rng.uniform(-80, 80)]
        p = np.round(rboxes_to_quads(b[None])[0])
        q = p + rng.integers(-6, 7, 2)
        inter, a, c, ra, rc = exact_pair_areas(p, q)
        if ra == a and rc == c and inter / (ra + rc - inter) == Fraction(1, 2) and abs(p[1, 1] - p[0, 1]) > 0:
            return p, q
    raise AssertionError("no exact half found")


def test_exact_half_is_not_a_match_for_rotated_integer_quads():
    p, q = _exact_half_rotated_pair()
    # clockwise on the image, as ICDAR files are written
    p = p if signed_area(p) > 0 else p[::-1]
    q = q if signed_area(q) > 0 else q[::-1]
    res = evaluate({1: [(p, "a")]}, {1: [(q, "a")]}, "icdar15")
    assert counts(res) == (1, 1, 0)
    assert counts(evaluate({1: [(p, "a")]}, {1: [(p, "a")]}, "icdar15")) == (1, 1, 1)  # the same quad matches


# ----------------------------------------------------------------------------------- transcriptions --
@pytest.mark.parametrize(
    "text,read",
    [
        ("word", "word"),
        (" word ", "word"),  # stripped
        ('"word"', "word"),  # one pair of quotes removed
        (' "word" ', "word"),
        ('"a\\\\"b"', 'a"b'),  # \\ -> \ first, then \" -> "
        ('"a\\"b"', 'a"b'),
        ('"###"', "###"),  # a quoted ### is don't care too
        ('"a"b', '"a"b'),  # not wrapped
        ("a,####b", "a,####b"),  # only the first ,#### separates
        ("", ""),
    ],
)
def test_polygon_reader_spellings(text, read):
    (it,) = parse_polygon_lines(["  1,1,5,1,5,5,####" + text + "  "])
    assert it.text == read and it.points.tolist() == [[1, 1], [5, 1], [5, 5]]


@pytest.mark.parametrize("spelling", ["word", " word ", '"word"', ' "word" ', "\tword"])
def test_totaltext_detection_spellings_are_end_to_end_hits(tmp_path, spelling):
    write(tmp_path / "gt" / "0000001.txt", [flat(SQ) + ",####Word"])
    write(tmp_path / "det" / "0000001.txt", [flat(SQ) + ",####" + spelling])
    res = evaluate(tmp_path / "gt", tmp_path / "det", "totaltext")
    assert counts(res, "e2e") == (1, 1, 1)


@pytest.mark.parametrize("spelling,hit", [("word", True), (' "word" ', True), ('"word"', True),
                                          (" word", False), ("word ", False), ('"word', False)])
def test_icdar15_detection_spellings(tmp_path, spelling, hit):
    write(tmp_path / "gt" / "gt_img_1.txt", [flat(SQ) + ",Word"])
    write(tmp_path / "det" / "res_img_1.txt", [flat(SQ) + "," + spelling])
    res = evaluate(tmp_path / "gt", tmp_path / "det", "icdar15")
    assert counts(res) == (1, 1, 1) and counts(res, "e2e") == (1, 1, int(hit))


def test_unquote_is_the_inverse_of_the_writers_escaping():
    rng = np.random.default_rng(0)
    for _ in range(300):
        s = "".join(rng.choice(list('ab\\" ,#'), int(rng.integers(0, 8))))
        (line,) = te.format_submission_lines([(SQ, s)], "icdar15")
        assert te.parse_icdar15_lines([line])[0].text == s
    assert unquote_transcription('"a\\\\b"') == "a\\b"


def _dictionary_reference(text):
    """docs/PROTOCOLS.md §1's dictionary rule, written out character by character."""
    w = text[:-2] if text.endswith(("'s", "'S")) else text
    w = w.strip("-")
    w = "".join(" " if ch in "'!?.:,*\"()·[]/" else ch for ch in w).strip(" ")
    ok = " " not in w and len(w) >= 3 and not any(ch in "×÷·" for ch in w) and all(
        ch == "-" or "a" <= ch <= "z" or "A" <= ch <= "Z" or 0xC0 <= ord(ch) <= 0x1BF or 0x1C4 <= ord(ch) <= 0x27F
        or 0x386 <= ord(ch) <= 0x3FF for ch in w)
    return w if ok else None


def test_dictionary_rule_matches_a_character_by_character_reference():
    alphabet = list("aZé×÷·-'s S!?.:,*\"()[]/1ǅɏΩͿ\t") + [chr(0x1C0), chr(0x1C4), chr(0x280), chr(0x385)]
    rng = np.random.default_rng(1)
    for _ in range(3000):
        w = "".join(rng.choice(alphabet, int(rng.integers(0, 7))))
        assert dictionary_word(w) == _dictionary_reference(w), repr(w)


def test_cli_errors_are_one_line(tmp_path, capsys):
    write(tmp_path / "gt" / "gt_img_1.txt", [flat(SQ) + ",a"])
    rc = load_tool("evaluate_text").main(["--protocol", "icdar15", "--gt", str(tmp_path / "gt"), "--det", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "nowhere" in err and "Traceback" not in err
    rc = load_tool("evaluate_text").main(["--protocol", "icdar15", "--gt", str(tmp_path / "gt"), "--det", str(tmp_path / "gt"),
                  "--json", str(tmp_path / "gt" / "gt_img_1.txt" / "x.json")])
    err = capsys.readouterr().err
    assert rc == 2 and re.search(r"cannot write .*x\.json", err) and err.count("\n") == 1
