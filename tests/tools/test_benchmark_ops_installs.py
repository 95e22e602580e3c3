"""tools/benchmark_ops.py on the three installs: fasttcm's ops only, a compiled detectron2 0.6 (ops as attributes of
detectron2._C) and a compiled detectron2 main (ops under torch.ops.detectron2). The compiled builds are stand-ins
(no compiler or CUDA toolkit here): modules whose kernels count their calls and run fasttcm's ops."""
import importlib.util
import sys
import types

import pytest
import torch

import fasttcm  # noqa: F401
from fasttcm.layers import _C

from conftest import REPO
_spec = importlib.util.spec_from_file_location("benchmark_ops_under_test", REPO / "tools" / "benchmark_ops.py")
bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench)

SMALL = ["--iou-boxes", "40", "--nms-boxes", "60", "--rois", "4", "--repeat", "1", "--no-baseline", "--threads", "1"]
FAKE_SO = "/fake/site-packages/detectron2/_C.cpython-311-x86_64-linux-gnu.so"


def _counting(calls, name, fn):
    def kernel(*args):
        calls[name] = calls.get(name, 0) + 1
        return fn(*args)

    return kernel


def test_fasttcm_ops_only(capsys):
    if not getattr(sys.modules.get("detectron2._C"), "__fasttcm_ops__", False):
        pytest.skip("a compiled detectron2 is installed")
    assert bench.main(SMALL) == 0
    out = capsys.readouterr().out
    assert "detectron2 compiled ops: not installed (fasttcm supplies detectron2._C)" in out
    assert "detectron2 (s)" not in out


def test_compiled_v0_6_layout(monkeypatch, capsys):
    calls = {}
    fake = types.ModuleType("detectron2._C")
    for name in ("box_iou_rotated", "roi_align_rotated_forward", "roi_align_rotated_backward"):
        setattr(fake, name, _counting(calls, name, getattr(_C, name)))
    monkeypatch.setitem(sys.modules, "detectron2._C", fake)
    monkeypatch.setattr(_C, "_compiled_detectron2_C", lambda: FAKE_SO)
    # v0.6 registers nms_rotated as a torch op: the registered one stands for it
    monkeypatch.setattr(_C, "_REGISTERED", set())
    assert bench.main(SMALL) == 0
    out = capsys.readouterr().out
    assert "box_iou_rotated (detectron2._C)" in out and "nms_rotated (torch.ops.detectron2)" in out
    assert calls == {"box_iou_rotated": 2, "roi_align_rotated_forward": 2, "roi_align_rotated_backward": 2}
    assert "detectron2 (s)" in out and "d2/ours" in out


def test_compiled_main_layout(monkeypatch, capsys):
    # main: the rotated ops only under torch.ops.detectron2; the stand-in's namespace counts the calls
    calls = {}
    ops = {n: _counting(calls, n, getattr(torch.ops.detectron2, n)) for n in _C.TORCH_OPS}

    class Namespace:
        def __getattr__(self, name):
            if name not in ops:
                raise AttributeError(name)
            return ops[name]

    fake = types.ModuleType("detectron2._C")
    fake.deform_conv_forward = _C.deform_conv_forward
    monkeypatch.setitem(sys.modules, "detectron2._C", fake)
    monkeypatch.setattr(_C, "_compiled_detectron2_C", lambda: FAKE_SO)
    monkeypatch.setattr(_C, "_REGISTERED", set())
    monkeypatch.setattr(bench.ours, "compiled_op", lambda name: _C.find_op(name, fake, Namespace()))
    assert bench.main(SMALL) == 0
    out = capsys.readouterr().out
    assert "missing" not in out
    assert all(f"{n} (torch.ops.detectron2)" in out for n in _C.TORCH_OPS)
    assert calls == {n: 2 for n in _C.TORCH_OPS}  # warm-up + 1 timed run each, none skipped, nothing crashed
