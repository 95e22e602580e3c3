"""Smoke test of tools/benchmark_backbone.py on the tiny CLIP (no timing assertions)."""
import importlib.util
import pathlib
import re

REPO = pathlib.Path(__file__).resolve().parents[1]


def _tool(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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
