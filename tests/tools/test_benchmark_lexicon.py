"""Smoke test of tools/benchmark_lexicon.py on a small lexicon (no timing assertions)."""
import re

from conftest import load_tool


def _tool(name):
    return load_tool(name)


def test_benchmark_lexicon_checks_plain_dp_and_prints_summary(capsys):
    tool = _tool("benchmark_lexicon")
    assert tool.main(["--words", "3000", "--queries", "40", "--plain-sample", "2", "--seed", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("lexicon: 3000 words") and "plain DP on 2 of them" in lines[0]
    assert [ln.split()[0] for ln in lines[1:7]] == ["adelaidet", "replace", "weighted"] * 2
    assert re.fullmatch(r"lexicon: adelaidet=[\d.]+ ms replace=[\d.]+ ms weighted=[\d.]+ ms per query "
                        r"\(3000 words, 40 queries\); same as plain DP: yes", lines[-1])


def test_benchmark_lexicon_data_is_seeded():
    tool = _tool("benchmark_lexicon")
    a, b = tool.make_lexicon(500, 1), tool.make_lexicon(500, 1)
    assert a == b and len(set(a)) == 500 and a != tool.make_lexicon(500, 2)
    q = tool.make_queries(a, 50, 1)
    assert q == tool.make_queries(a, 50, 1) and len(set(q)) == 50
