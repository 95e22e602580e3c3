"""Smoke test of tools/benchmark_backbone.py on the tiny CLIP (no timing assertions)."""
import re

from conftest import load_tool


def _tool(name):
    return load_tool(name)


def test_benchmark_prints_table_and_summary_line(capsys):
    tool = _tool("benchmark_backbone")
    assert tool.main(["--clip", "tiny-test", "--size", "64", "--iters", "1", "--warmup", "1",
                      "--num-prompts", "2", "--context-length", "20"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "K=2" in lines[0] and "context length 20" in lines[0]
    assert [ln.split()[0] for ln in lines[2:6]] == ["baseline", "tcm", "fasttcm", "text_encoder"]
    pattern = (r"baseline=[\d.]+ms tcm=[\d.]+ms fasttcm=[\d.]+ms text_encoder=[\d.]+ms "
               r"tcm/fasttcm=[\d.]+ fasttcm/baseline=[\d.]+")
    assert re.fullmatch(pattern, lines[-1])
