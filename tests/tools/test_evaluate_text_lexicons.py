"""tools/evaluate_text.py with lexicons: one table with detection, end to end and word spotting rows for no lexicon
and each lexicon; the JSON carries the same; bad lexicon input is one error line."""
import json

from conftest import load_tool

GT = ["0,0,40,0,40,10,0,10,HELLO", "50,0,90,0,90,10,50,10,WORLD", "0,20,40,20,40,30,0,30,###",
      "50,20,90,20,90,30,50,30,ab"]
DET = ["0,0,40,0,40,10,0,10,HELL0", "50,0,90,0,90,10,50,10,WORLD", "50,20,90,20,90,30,50,30,XY"]


def _files(tmp_path):
    for d, lines, name in (("gt", GT, "gt_img_1.txt"), ("det", DET, "res_img_1.txt")):
        (tmp_path / d).mkdir()
        (tmp_path / d / name).write_text("\n".join(lines) + "\n")
    kit = tmp_path / "kit"
    (kit / "strong").mkdir(parents=True)
    (kit / "strong" / "voc_img_1.txt").write_text("HELLO\nWORLD\nAB\n")
    (tmp_path / "weak.txt").write_text("HELLO\nWORLD\n")
    return kit


def test_lexicon_table_and_json(tmp_path, capsys):
    kit = _files(tmp_path)
    out = tmp_path / "r.json"
    rc = load_tool("evaluate_text").main([
        "--protocol", "icdar15", "--gt", str(tmp_path / "gt"), "--det", str(tmp_path / "det"),
        "--strong", str(kit / "strong"), "--weak", str(tmp_path / "weak.txt"), "--json", str(out)])
    text = capsys.readouterr().out
    assert rc == 0
    assert "lexicon rule adelaidet (keep when distance < 1.5)" in text
    assert "| end to end * | strong |" in text and "| word spotting | weak |" in text
    res = json.loads(out.read_text())
    rows = res["rows"]
    assert list(rows) == ["none", "strong", "weak"]
    # no lexicon: WORLD right, HELL0 wrong, XY wrong (3 care GT: HELLO, WORLD, ab)
    assert rows["none"]["e2e"]["matched"] == 1 and res["det_only"]["matched"] == 3
    # strong: HELL0 -> HELLO (1 edit); XY is 2 edits from AB: dropped, so precision rises and recall stays
    assert rows["strong"]["e2e"]["matched"] == 2 and rows["strong"]["e2e"]["care_det"] == 2
    assert rows["strong"]["lexicon"]["counts"] == {**rows["strong"]["lexicon"]["counts"], "replaced": 1,
                                                   "kept": 1, "dropped": 1}
    # word spotting: 'ab' (2 letters) fails the dictionary rule and becomes don't care
    assert rows["strong"]["word_spotting"]["care_gt"] == 2 and rows["strong"]["word_spotting"]["matched"] == 2


def test_replace_rule_keeps_every_detection(tmp_path):
    kit = _files(tmp_path)
    out = tmp_path / "r.json"
    assert load_tool("evaluate_text").main([
        "--protocol", "icdar15", "--gt", str(tmp_path / "gt"), "--det", str(tmp_path / "det"),
        "--strong", str(kit / "strong"), "--lexicon-rule", "replace", "--json", str(out)]) == 0
    strong = json.loads(out.read_text())["rows"]["strong"]
    assert strong["lexicon"]["counts"]["dropped"] == 0 and strong["e2e"]["care_det"] == 3
    assert strong["e2e"]["matched"] == 3  # XY -> AB (nearest word) is now correct


def test_bad_lexicon_is_one_error_line(tmp_path, capsys):
    _files(tmp_path)
    bad = tmp_path / "bad.txt"
    bad.write_text("HELLO\nNEW YORK\n")
    rc = load_tool("evaluate_text").main(["--protocol", "icdar15", "--gt", str(tmp_path / "gt"), "--det",
                                          str(tmp_path / "det"), "--weak", str(bad)])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and f"{bad}:2" in err
    rc = load_tool("evaluate_text").main(["--protocol", "totaltext", "--gt", str(tmp_path / "gt"), "--det",
                                          str(tmp_path / "det"), "--weak", str(bad)])
    assert rc == 2 and "no 'weak' lexicon" in capsys.readouterr().err
