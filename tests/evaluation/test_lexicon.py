"""Lexicons for end-to-end spotting (fasttcm.evaluation.lexicon): files, rules, bookkeeping, P/R, exactness."""
import random

import numpy as np
import pytest

from fasttcm.evaluation import lexicon as lx
from fasttcm.evaluation import text_eval as te
from fasttcm.evaluation.lexicon import (CharProbabilities, Lexicon, PerImageLexicon, apply_lexicon, levenshtein,
                                        load_lexicon, load_strong_lexicons, weighted_edit_distance)

CHARSET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _write(path, text, encoding="utf-8", bom=False, newline="\n"):
    data = text.replace("\n", newline).encode(encoding)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data)
    return path


def _probs(text, overrides=None, own=0.9):
    """(len(text), 36) probabilities: ``own`` on each character, the rest spread evenly; ``overrides``:
    {(position, char): probability} (the row is not renormalised: the rule reads probabilities as given)."""
    p = np.full((len(text), len(CHARSET)), (1 - own) / (len(CHARSET) - 1))
    for j, ch in enumerate(text):
        p[j, CHARSET.index(ch)] = own
    for (j, ch), v in (overrides or {}).items():
        p[j, CHARSET.index(ch)] = v
    return p


# ------------------------------------------------------------------------------------------------ files --
def test_plain_word_list_bom_crlf_blank_lines(tmp_path):
    f = _write(tmp_path / "voc.txt", "Hello\n\n  World  \nDON'T\n", bom=True, newline="\r\n")
    lex = load_lexicon(f)
    assert lex.words == ("Hello", "World", "DON'T")
    assert lex.submitted == lex.words and not lex.has_pairs
    assert lex.files == (str(f),) and "voc.txt" in lex.description
    g = _write(tmp_path / "cr.txt", "A\rB\r", newline="\n")  # old Mac line ends
    assert load_lexicon(g).words == ("A", "B")


def test_pair_list_forms(tmp_path):
    words = _write(tmp_path / "GenericVocabulary_new.txt", "DONT\nNEWYORK\nhouse\nTAB\nCAFE\n")
    pairs = _write(tmp_path / "GenericVocabulary_pair_list.txt",
                   "dont DON'T\n"             # key case does not matter
                   "NEWYORK New York\n"       # the original may contain spaces
                   "HOUSE House\n"
                   "TAB\tT.A.B.\n"            # tab separator
                   "CAFE   Café\n",           # several spaces
                   bom=True, newline="\r\n")
    lex = load_lexicon(words, pairs)
    assert lex.has_pairs
    assert lex.submitted == ("DON'T", "New York", "House", "T.A.B.", "Café")
    assert lex.files == (str(words), str(pairs))
    m = lex.match("dont")
    assert (m.word, m.submitted, m.distance, m.keep) == ("DONT", "DON'T", 0.0, True)


def test_pair_conflict_last_wins_and_is_counted(tmp_path, caplog):
    words = _write(tmp_path / "w.txt", "ITS\n")
    pairs = _write(tmp_path / "p.txt", "ITS IT'S\nITS ITS\nITS IT'S\nOTHER OTHER\n")
    lex = load_lexicon(words, pairs)
    assert lex.submitted == ("IT'S",)
    assert lex.warnings["pair_conflicts"] == 2 and lex.warnings["unused_pairs"] == 1
    assert "p.txt:2" in caplog.text


def test_malformed_lines_name_file_and_line(tmp_path):
    bad_words = _write(tmp_path / "words.txt", "ONE\nTWO\nTHREE FOUR\n")
    with pytest.raises(ValueError, match=r"words\.txt:3: a word list has one word per line"):
        load_lexicon(bad_words)
    words = _write(tmp_path / "ok.txt", "ONE\nTWO\n")
    bad_pairs = _write(tmp_path / "pairs.txt", "ONE ONE\n\nTWO\n")
    with pytest.raises(ValueError, match=r"pairs\.txt:3: expected 'WORD ORIGINAL'"):
        load_lexicon(words, bad_pairs)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("A\nB\nCAF\xc9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.txt:3: not UTF-8"):
        load_lexicon(latin1)


def test_empty_lexicon_and_missing_files(tmp_path):
    empty = _write(tmp_path / "empty.txt", "\n  \n", bom=True, newline="\r\n")
    with pytest.raises(ValueError, match=r"empty lexicon: .*empty\.txt"):
        load_lexicon(empty)
    with pytest.raises(FileNotFoundError, match="nope.txt"):
        load_lexicon(tmp_path / "nope.txt")
    with pytest.raises(ValueError, match="empty lexicon"):
        Lexicon([])


def test_word_without_pair(tmp_path, caplog):
    words = _write(tmp_path / "w_new.txt", "DONT\nCANT\n")
    pairs = _write(tmp_path / "w_pair_list.txt", "DONT DON'T\n")
    with pytest.raises(ValueError, match=r"w_new\.txt:2: word 'CANT' has no pair in .*w_pair_list\.txt"):
        load_lexicon(words, pairs)
    lex = load_lexicon(words, pairs, missing_pair="warn")
    assert lex.submitted == ("DON'T", "CANT") and lex.warnings["missing_pairs"] == 1
    assert "without a pair" in caplog.text


# ------------------------------------------------------------------------------------------------ rules --
def test_adelaidet_vs_replace_threshold():
    lex = Lexicon(["HOUSE", "MOUSE", "CAR"])
    one = lex.match("HOUSF")  # one substitution
    assert (one.word, one.distance, one.keep) == ("HOUSE", 1.0, True)
    two = lex.match("HXUSF")  # two edits: adelaidet drops, replace substitutes
    assert (two.word, two.distance, two.keep) == ("HOUSE", 2.0, False)
    assert lex.match("HXUSF", "replace").keep
    assert lex.match("ZZZZZZZZ", "replace").word in ("HOUSE", "MOUSE", "CAR")
    # a custom threshold, and None = always
    assert lex.match("HXUSF", "adelaidet", max_distance=2.5).keep
    assert lex.match("HXUSF", "adelaidet", max_distance=None).keep
    assert lx.resolve_max_distance("replace") is None and lx.resolve_max_distance("weighted") == 1.5
    assert lx.resolve_max_distance("adelaidet", float("inf")) is None
    assert lx.resolve_max_distance("replace", 2) == 2.0
    for bad in (-1, float("nan"), "always"):
        with pytest.raises(ValueError, match="max_distance"):
            lx.resolve_max_distance("adelaidet", bad)
    with pytest.raises(ValueError, match="unknown lexicon rule"):
        lex.match("A", "nearest")


def test_upper_case_compare_and_first_word_wins_ties():
    lex = Lexicon(["cat", "BAT", "CAT", "Hat"])
    m = lex.match("hat")
    assert (m.index, m.word, m.distance) == (3, "Hat", 0.0)
    tie = lex.match("RAT")  # distance 1 to cat, BAT, CAT and Hat: the first in file order
    assert (tie.index, tie.word, tie.distance) == (0, "cat", 1.0)
    assert lex.warnings["duplicates"] == 1  # "CAT" repeats "cat" upper-cased
    # the submitted form is the word as written in a plain list
    assert lex.match("CAT").submitted == "cat"


def test_weighted_distance_by_hand():
    # delete the last character: costs its own probability
    p = CharProbabilities(_probs("AB", {(0, "A"): 0.9, (1, "B"): 0.6, (1, "A"): 0.3}), CHARSET)
    assert weighted_edit_distance("AB", "A", p) == pytest.approx(0.6)
    # insert between two characters: the mean of their probabilities
    p = CharProbabilities(_probs("AC", {(0, "A"): 0.8, (1, "C"): 0.4}), CHARSET)
    assert weighted_edit_distance("AC", "ABC", p) == pytest.approx(0.6)
    # substitute: max(0, 1 - 5 p(new) / p(old))
    p = CharProbabilities(_probs("AX", {(1, "X"): 0.5, (1, "Y"): 0.05}), CHARSET)
    assert weighted_edit_distance("AX", "AY", p) == pytest.approx(0.5)
    p = CharProbabilities(_probs("AX", {(1, "X"): 0.5, (1, "Y"): 0.2}), CHARSET)
    assert weighted_edit_distance("AX", "AY", p) == 0.0
    # unit costs on the borders: inserting before the first character costs 1
    p = CharProbabilities(_probs("BC"), CHARSET)
    assert weighted_edit_distance("BC", "ABC", p) == pytest.approx(1.0)
    # an equal word costs nothing; the empty text costs the word's length
    assert weighted_edit_distance("BC", "BC", p) == 0.0
    assert weighted_edit_distance("", "ABC", CharProbabilities(np.zeros((0, 36)), CHARSET)) == 3.0


def test_weighted_decides_differently_from_levenshtein():
    lex = Lexicon(["BAT", "CAT"])
    # the recogniser hesitated between E and C: weighted picks CAT, Levenshtein ties and takes BAT (first)
    probs = _probs("EAT", {(0, "E"): 0.5, (0, "C"): 0.45, (0, "B"): 0.001})
    plain = lex.match("EAT")
    w = lex.match("EAT", "weighted", char_probs=probs, charset=CHARSET)
    assert (plain.word, plain.distance) == ("BAT", 1.0)
    assert (w.word, w.distance, w.plain_distance, w.keep) == ("CAT", 0.0, 1, True)
    # two confusable substitutions: Levenshtein 2 (adelaidet drops), weighted below 1.5 (kept)
    lex = Lexicon(["HOUSE", "HORSE"])
    probs = _probs("H0USF", {(1, "0"): 0.5, (1, "O"): 0.4, (4, "F"): 0.5, (4, "E"): 0.3})
    assert not lex.match("H0USF").keep
    w = lex.match("H0USF", "weighted", char_probs=probs, charset=CHARSET)
    assert w.word == "HOUSE" and w.keep and w.distance < 1.5 and w.plain_distance == 2
    # Generic as Mask TextSpotter does it: always keep
    far = lex.match("QQQQQQ", "weighted", char_probs=_probs("QQQQQQ"), charset=CHARSET, max_distance=None)
    assert far.keep


def test_weighted_needs_probabilities_and_alignment():
    lex = Lexicon(["STRASSE"])
    with pytest.raises(ValueError, match="needs per-character probabilities"):
        lex.match("ABC", "weighted")
    with pytest.raises(ValueError, match=r"shape \(len\(text\), 36\)"):
        lex.match("ABC", "weighted", char_probs=np.ones((3, 5)), charset=CHARSET)
    with pytest.raises(ValueError, match="rows for a text of"):
        lex.match("ABC", "weighted", char_probs=np.ones((2, 36)), charset=CHARSET)
    with pytest.raises(ValueError, match="changes length when upper-cased"):
        lex.match("straße", "weighted", char_probs=np.ones((6, 2)), charset="sß")


def test_char_probabilities_case_insensitive_and_unknown():
    p = CharProbabilities([[0.2, 0.3, 0.5]], "aAb")
    assert p.prob(0, "A") == pytest.approx(0.5)  # a + A
    assert p.prob(0, "B") == pytest.approx(0.5)
    assert p.prob(0, "Z") == 0.0
    assert list(p.columns_of(np.array([ord("A"), ord("B"), ord("Z"), -1]))) == [
        p.column("A"), p.column("B"), p.column("Z"), p.column("Z")]


# ----------------------------------------------------------------------------------- vectorised == plain --
def _random_words(rng, n, alphabet, max_len=12, min_len=1):
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(min_len, max_len))) for _ in range(n)]


@pytest.mark.parametrize("grouping", ["flat", "length"])
def test_vectorised_levenshtein_equals_plain_dp(grouping):
    rng = random.Random(1234)
    alphabet = "ABCDEFGHIJ'-éÖ9"
    words = _random_words(rng, 400, alphabet) + ["X" * 70, "AB" * 40, "A" * 64, "B" * 65]  # > 64: plain DP
    idx = lx._Index(words, grouping)
    for _ in range(100):
        q = "".join(rng.choice(alphabet + "xyz") for _ in range(rng.randint(0, 16))).upper()
        if rng.random() < 0.05:
            q = "A" * rng.randint(60, 80)
        ref = np.array([levenshtein(q, k) for k in idx.keys])
        assert np.array_equal(idx.all_distances(q), ref)
        best = min(range(len(ref)), key=lambda i: (ref[i], i))
        assert idx.nearest(q) == (best, ref[best])
        pos, d = idx.within(q, 2)
        expect = [i for i in range(len(ref)) if ref[i] <= ref.min() + 2]
        assert list(pos) == expect and list(d) == [ref[i] for i in expect]


def test_lexicon_distances_and_nearest_on_random_lexicon():
    rng = random.Random(99)
    # some duplicates, many ties; more than 2048 distinct words: length buckets
    words = _random_words(rng, 2400, "abcdefghij", 9, min_len=2)
    lex = Lexicon(words)
    assert len(lex.index.groups) > 1
    for _ in range(30):
        q = "".join(rng.choice("abcdefghij") for _ in range(rng.randint(0, 11)))
        ref = [levenshtein(q.upper(), w.upper()) for w in words]
        assert lex.distances(q).tolist() == ref
        best = min(range(len(ref)), key=lambda i: (ref[i], i))
        assert lex.nearest(q) == (best, ref[best])


def test_vectorised_weighted_equals_plain_dp():
    rng = random.Random(7)
    nrng = np.random.default_rng(7)
    words = _random_words(rng, 600, "ABCDEFG1'", 10)
    lex = Lexicon(words)
    for t in range(50):
        q = "".join(rng.choice("ABCDEFGH1'") for _ in range(rng.randint(0, 9)))  # ' and H: some not in charset
        charset = "ABCDEFG1" if t % 2 else "abcdefgAB1"
        probs = nrng.dirichlet(np.full(len(charset), 0.3), size=len(q))
        probs[nrng.random(probs.shape) < 0.2] = 0.0  # zero probabilities: the limit rules
        cp = CharProbabilities(probs, charset)
        m = lex.match(q, "weighted", char_probs=cp)
        keys = [w.upper() for w in words]
        plain = [levenshtein(q, k) for k in keys]
        short = [i for i in range(len(keys)) if plain[i] <= min(plain) + lx.WEIGHTED_SHORTLIST_MARGIN]
        first = {}
        for i in short:
            first.setdefault(keys[i], i)  # distinct forms at their first position
        cand = sorted(first.values())
        wd = [weighted_edit_distance(q, keys[i], cp) for i in cand]
        k = min(range(len(cand)), key=lambda j: (wd[j], j))
        assert (m.index, m.distance, m.plain_distance) == (cand[k], wd[k], plain[cand[k]])
        # the whole shortlist, value by value
        pos, _ = lex.index.within(q, 2)
        assert lex.index.weighted(q, pos, cp).tolist() == [weighted_edit_distance(q, lex.index.keys[p], cp)
                                                           for p in pos]


# ------------------------------------------------------------------------------ applying and evaluating --
def _quad(x):
    return np.array([[x, 0], [x + 50, 0], [x + 50, 20], [x, 20]], dtype=np.float64)


GT = {"img_1": [{"points": _quad(0), "text": "DON'T"}, {"points": _quad(100), "text": "HOUSE"},
                {"points": _quad(200), "text": "CAR"}]}


def _dets(kind="dict"):
    texts = ["DONT", "HOUSE", "XQZW"]
    if kind == "dict":
        return {"img_1": [{"points": _quad(100 * i), "text": t, "score": 0.9 - 0.1 * i} for i, t in enumerate(texts)]}
    if kind == "item":
        return {"img_1": [te.TextItem(_quad(100 * i), t, i + 1) for i, t in enumerate(texts)]}
    return {"img_1": [(_quad(100 * i), t, 0.9 - 0.1 * i) for i, t in enumerate(texts)]}


@pytest.fixture()
def pair_lexicon():
    return Lexicon(["DONT", "HOUSE", "CAR"], pairs={"DONT": "DON'T", "HOUSE": "HOUSE", "CAR": "CAR"},
                   source="test lexicon")


@pytest.mark.parametrize("kind", ["dict", "item", "tuple"])
def test_apply_lexicon_bookkeeping_and_kinds(kind, pair_lexicon):
    dets = _dets(kind)
    res = apply_lexicon(dets, pair_lexicon, details=True)
    c = res.counts
    assert (c["total"], c["kept"], c["replaced"], c["dropped"], c["below_score"]) == (3, 1, 1, 1, 0)
    out = res.detections["img_1"]
    assert len(out) == 2
    texts = [w["text"] if kind == "dict" else (w.text if kind == "item" else w[1]) for w in out]
    assert texts == ["DON'T", "HOUSE"]
    assert type(out[0]) is type(dets["img_1"][0])
    if kind == "item":
        assert out[0].line == 1  # everything but the text is kept
    assert dets["img_1"][0] is not out[0]  # the input is not modified
    assert [m["action"] for m in res.matches["img_1"]] == ["replaced", "kept", "dropped"]
    s = res.summary()
    assert s["rule"] == "adelaidet" and s["max_distance"] == 1.5 and s["lexicon"].startswith("test lexicon")


def test_dropped_vs_replaced_changes_precision_and_recall(pair_lexicon):
    dets = _dets()
    none = te.evaluate(GT, dets, "icdar15")["e2e"]
    assert (none["matched"], none["care_det"]) == (1, 3)  # DONT != DON'T (the apostrophe is inside)
    ad = apply_lexicon(dets, pair_lexicon, "adelaidet")
    e = te.evaluate(GT, ad.detections, "icdar15")["e2e"]
    assert (e["matched"], e["care_det"], e["care_gt"]) == (2, 2, 3)  # XQZW dropped: precision 1
    assert e["precision"] == 1.0 and e["recall"] == pytest.approx(2 / 3)
    rp = apply_lexicon(dets, pair_lexicon, "replace")
    assert (rp.counts["replaced"], rp.counts["dropped"]) == (2, 0)
    # XQZW is 4 edits from DONT and from CAR: the first word wins, DON'T is submitted on the CAR box
    assert rp.detections["img_1"][2]["text"] == "DON'T"
    e = te.evaluate(GT, rp.detections, "icdar15")["e2e"]
    assert (e["matched"], e["care_det"]) == (2, 3)
    assert e["precision"] == pytest.approx(2 / 3) and e["recall"] == pytest.approx(2 / 3)


def test_score_threshold_is_applied_and_counted(pair_lexicon):
    res = apply_lexicon(_dets(), pair_lexicon, score_threshold=0.85)
    assert res.counts["below_score"] == 2 and res.counts["kept"] + res.counts["replaced"] == 1
    assert res.summary()["score_threshold"] == 0.85
    with pytest.raises(ValueError, match="no score"):
        apply_lexicon(_dets("item"), pair_lexicon, score_threshold=0.5)


def test_apply_weighted_needs_char_probs(pair_lexicon):
    with pytest.raises(ValueError, match="needs the charset"):
        apply_lexicon(_dets(), pair_lexicon, "weighted")
    with pytest.raises(ValueError, match=r"image 'img_1', word #0 \('DONT'\): rule 'weighted' needs its char_probs"):
        apply_lexicon(_dets(), pair_lexicon, "weighted", charset=CHARSET)
    dets = {"img_1": [{"points": _quad(0), "text": "D0NT", "char_probs": _probs("D0NT", {(1, "O"): 0.4})}]}
    res = apply_lexicon(dets, pair_lexicon, "weighted", charset=CHARSET)
    assert res.detections["img_1"][0]["text"] == "DON'T" and res.counts["replaced"] == 1


def _strong_dir(tmp_path, images=(1, 2)):
    d = tmp_path / "new_strong_lexicon"
    d.mkdir()
    for i in images:
        _write(d / f"new_voc_img_{i}.txt", "DONT\nHOUSE\nCAR\n" if i == 1 else "DOT\nHOSE\nCART\n")
        _write(d / f"pair_voc_img_{i}.txt", "DONT DON'T\nHOUSE HOUSE\nCAR CAR\n" if i == 1
               else "DOT DOT\nHOSE HOSE\nCART CART\n")
    _write(d / "README.txt", "not a lexicon\n")
    return d


def test_strong_lexicons_keyed_per_image(tmp_path, caplog):
    strong = load_strong_lexicons(_strong_dir(tmp_path))
    assert isinstance(strong, PerImageLexicon) and sorted(strong) == ["1", "2"]
    assert strong.ignored == ("README.txt",) and "1 file(s) ignored" in caplog.text
    assert "img_1" in strong and 1 in strong and "res_img_2" in strong and "img_3" not in strong
    dets = {"img_1": [{"points": _quad(0), "text": "HOSE"}], 2: [{"points": _quad(0), "text": "HOSE"}]}
    res = apply_lexicon(dets, strong)
    assert res.detections["img_1"][0]["text"] == "HOUSE"  # image 1's lexicon
    assert res.detections[2][0]["text"] == "HOSE"  # image 2's lexicon
    assert strong.missing(["img_1", "img_3", 4]) == ["3", "4"]


def test_strong_image_without_file(tmp_path, caplog):
    strong = load_strong_lexicons(_strong_dir(tmp_path))
    dets = {"img_1": [{"points": _quad(0), "text": "HOUSE"}], "img_3": [{"points": _quad(0), "text": "CAR"},
                                                                       {"points": _quad(100), "text": "X"}]}
    with pytest.raises(ValueError, match=r"image 'img_3' \(key '3'\) has no lexicon in strong: .*new_strong_lexicon"):
        apply_lexicon(dets, strong)
    drop = apply_lexicon(dets, strong, on_missing="drop")
    assert drop.images_without_lexicon == ["3"] and drop.counts["images_without_lexicon"] == 1
    assert drop.detections["img_3"] == [] and drop.counts["dropped"] == 2 and drop.counts["kept"] == 1
    assert "has no lexicon" in caplog.text
    keep = apply_lexicon(dets, strong, on_missing="keep")
    assert [w["text"] for w in keep.detections["img_3"]] == ["CAR", "X"] and keep.counts["unmatched"] == 2
    # a mapping image id -> Lexicon works the same way
    res = apply_lexicon(dets, {1: Lexicon(["HOUSE"]), "img_3": Lexicon(["CAT"])}, "replace")
    assert [w["text"] for w in res.detections["img_3"]] == ["CAT", "CAT"]


def test_strong_folder_errors_and_plain_form(tmp_path):
    d = _strong_dir(tmp_path)
    (d / "pair_voc_img_2.txt").unlink()
    with pytest.raises(ValueError, match=r"new_voc_img_2\.txt has no pair list: expected .*pair_voc_img_2\.txt"):
        load_strong_lexicons(d)
    plain = tmp_path / "plain"
    plain.mkdir()
    _write(plain / "voc_img_7.txt", "Hello\nWorld\n")
    _write(plain / "voc_img_8.txt", "\n")
    with pytest.raises(ValueError, match=r"empty lexicon: .*voc_img_8\.txt"):
        load_strong_lexicons(plain)
    (plain / "voc_img_8.txt").unlink()
    s = load_strong_lexicons(plain)
    assert list(s) == ["7"] and s["img_7"].words == ("Hello", "World") and not s["img_7"].has_pairs
    empty = tmp_path / "none"
    empty.mkdir()
    with pytest.raises(ValueError, match="no per-image lexicon"):
        load_strong_lexicons(empty)


def _kit(tmp_path):
    ic15 = tmp_path / "lexicons" / "ic15"
    ic15.mkdir(parents=True)
    _write(ic15 / "GenericVocabulary_new.txt", "DONT\nHOUSE\nCAR\nTREE\n")
    _write(ic15 / "GenericVocabulary_pair_list.txt", "DONT DON'T\nHOUSE HOUSE\nCAR CAR\nTREE TREE\n")
    _write(ic15 / "GenericVocabulary.txt", "DON'T\nHOUSE\nCAR\nTREE\n")  # plain form too: the rewritten wins
    _write(ic15 / "ch4_test_vocabulary.txt", "DON'T\nHOUSE\nCAR\n")
    _strong_dir(ic15)
    tt = tmp_path / "lexicons" / "totaltext"
    tt.mkdir()
    _write(tt / "weak_voc_new.txt", "DONT\nHOUSE\n")
    _write(tt / "weak_voc_pair_list.txt", "DONT DON'T\nHOUSE HOUSE\n")
    return tmp_path / "lexicons"


def test_kit_folder_layout(tmp_path):
    root = _kit(tmp_path)
    files = lx.find_lexicon_files(root, "icdar2015")
    assert files["generic"][0].endswith("GenericVocabulary_new.txt") and files["generic"][1].endswith(
        "GenericVocabulary_pair_list.txt")
    assert files["weak"] == (str(root / "ic15" / "ch4_test_vocabulary.txt"), None)
    assert files["strong"] == (str(root / "ic15" / "new_strong_lexicon"), None)
    lexs = lx.load_lexicon_dir(root, "icdar15")
    assert list(lexs) == ["strong", "weak", "generic"]
    assert lexs["generic"].match("DONT").submitted == "DON'T" and lexs["weak"].match("DONT").submitted == "DON'T"
    assert lexs["generic"].description.startswith("generic: GenericVocabulary_new.txt + GenericVocabulary_pair")
    tt = lx.load_lexicon_dir(root / "totaltext", "totaltext")
    assert list(tt) == ["full"] and tt["full"].match("DONT").submitted == "DON'T"
    with pytest.raises(FileNotFoundError, match="no full lexicon"):
        lx.load_lexicon_dir(root, "ctw1500", names=["full"])
    with pytest.raises(ValueError, match="has no 'full' lexicon"):
        lx.load_lexicon_dir(root, "icdar15", names=["full"])
    (root / "totaltext" / "weak_voc_pair_list.txt").unlink()
    with pytest.raises(ValueError, match=r"weak_voc_new\.txt needs its pair list"):
        lx.find_lexicon_files(root, "totaltext")


def test_load_lexicons_explicit_paths_override_the_folder(tmp_path):
    root = _kit(tmp_path)
    other = _write(tmp_path / "weak_new.txt", "DOT\n")
    other_pairs = _write(tmp_path / "weak_pairs.txt", "DOT D.O.T.\n")
    import os
    lexs = lx.load_lexicons("icdar15", root, weak=f"{other}{os.pathsep}{other_pairs}")
    assert list(lexs) == ["strong", "weak", "generic"]
    assert lexs["weak"].submitted == ("D.O.T.",) and lexs["weak"].files == (str(other), str(other_pairs))
    only = lx.load_lexicons("icdar15", generic=(str(other), None))
    assert list(only) == ["generic"] and only["generic"].submitted == ("DOT",)
    with pytest.raises(ValueError, match="has no 'strong' lexicon"):
        lx.load_lexicons("totaltext", strong=str(root / "ic15" / "new_strong_lexicon"))
    assert lx.parse_lexicon_arg(str(other)) == (str(other), None)


def test_evaluate_spotting_rows(tmp_path):
    root = _kit(tmp_path)
    lexs = lx.load_lexicons("icdar15", root)
    dets = {"img_1": [{"points": _quad(0), "text": "DONT", "score": 0.9},
                      {"points": _quad(100), "text": "HOUSE", "score": 0.9},
                      {"points": _quad(200), "text": "CARS", "score": 0.3}]}
    res = lx.evaluate_spotting(GT, dets, "icdar15", lexs)
    rows = res["rows"]
    assert list(rows) == ["none", "strong", "weak", "generic"]
    assert rows["none"]["e2e"]["matched"] == 1 and res["det_only"]["matched"] == 3
    for name in ("strong", "weak", "generic"):
        assert rows[name]["e2e"]["matched"] == 3, name  # DONT -> DON'T, CARS -> CAR
        assert rows[name]["lexicon"]["rule"] == "adelaidet"
    res = lx.evaluate_spotting(GT, dets, "icdar15", {"generic": lexs["generic"]}, score_threshold=0.5)
    rows = res["rows"]
    assert rows["none"]["e2e"]["care_det"] == 2 and rows["generic"]["e2e"]["care_det"] == 2
    assert rows["generic"]["lexicon"]["counts"]["below_score"] == 1
    table = lx.format_spotting_table(res)
    assert "score threshold >= 0.5" in table and "| end to end * | generic |" in table


def test_module_loads_neither_torch_nor_detectron2():
    """The lexicon module (with the metric it feeds) runs where only numpy and shapely are installed."""
    import subprocess
    import sys

    code = ("import sys\nimport fasttcm.evaluation.lexicon as m\n"
            "assert m.Lexicon(['DONT'], pairs={'DONT': \"DON'T\"}).match('dont').submitted == \"DON'T\"\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('torch', 'detectron2', 'cv2')))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
