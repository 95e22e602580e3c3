"""torch.ops.detectron2.* and the lookup of a compiled detectron2's ops on both layouts (fasttcm.layers._C).

Detectron2 0.6 exposes its compiled ops as attributes of ``detectron2._C`` (``nms_rotated`` also as a torch op);
its main branch registers box_iou_rotated, nms_rotated and RoIAlignRotated only as ``torch.ops.detectron2.*``. No
compiled detectron2 main can be built here, so its layout is played by stand-in modules.
"""
import types

import numpy as np
import pytest
import torch

import fasttcm.layers  # noqa: F401  (supplies detectron2._C when detectron2 has no compiled ops)
from fasttcm.layers import _C, box_iou_rotated, nms_rotated, roi_align_rotated

import detectron2._C as d2_C  # noqa: E402  (fasttcm.layers above supplies it when not compiled)
OURS = getattr(d2_C, "__fasttcm_ops__", False)
needs_ours = pytest.mark.skipif(not OURS, reason="a compiled detectron2._C is installed; fasttcm's ops are not used")


def _boxes(seed, n):
    rng = np.random.default_rng(seed)
    b = np.c_[rng.uniform(0, 100, (n, 2)), rng.uniform(5, 40, (n, 2)), rng.uniform(-180, 180, n)]
    return torch.tensor(b, dtype=torch.float32)


@needs_ours
def test_all_rotated_ops_are_registered_as_torch_ops_and_are_ours():
    assert set(_C.TORCH_OPS) <= _C._REGISTERED  # registered by fasttcm, as no compiled detectron2 is installed
    b1, b2 = _boxes(0, 30), _boxes(1, 20)
    torch.testing.assert_close(torch.ops.detectron2.box_iou_rotated(b1, b2), box_iou_rotated(b1, b2), rtol=0, atol=0)
    s = torch.rand(30, generator=torch.Generator().manual_seed(0))
    assert torch.ops.detectron2.nms_rotated(b1, s, 0.3).tolist() == nms_rotated(b1, s, 0.3).tolist()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    rois = torch.cat([torch.tensor([[0.0], [1.0], [1.0]]), _boxes(2, 3) * 0.3], 1)
    out = torch.ops.detectron2.roi_align_rotated_forward(x, rois, 0.5, 3, 4, 0)
    torch.testing.assert_close(out, roi_align_rotated(x, rois, (3, 4), 0.5, 0), rtol=0, atol=0)
    g = torch.randn_like(out)
    grad = torch.ops.detectron2.roi_align_rotated_backward(g, rois, 0.5, 3, 4, 2, 3, 16, 16, 0)
    torch.testing.assert_close(grad, _C.roi_align_rotated_backward(g, rois, 0.5, 3, 4, 2, 3, 16, 16, 0), rtol=0, atol=0)
    # no compiled detectron2: nothing to find, our own registrations never count as compiled kernels
    for name in _C.TORCH_OPS:
        assert _C.compiled_op(name) is None


@needs_ours
def test_detectron2_main_style_autograd_function_runs_on_the_torch_ops():
    # what detectron2 main's RoIAlignRotated does: an autograd Function over torch.ops.detectron2.roi_align_rotated_*
    class MainStyle(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x, rois):
            ctx.save_for_backward(rois)
            ctx.shape = x.shape
            return torch.ops.detectron2.roi_align_rotated_forward(x, rois, 0.25, 2, 2, 2)

        @staticmethod
        def backward(ctx, grad):
            (rois,) = ctx.saved_tensors
            n, c, h, w = ctx.shape
            return torch.ops.detectron2.roi_align_rotated_backward(grad, rois, 0.25, 2, 2, n, c, h, w, 2), None

    x = torch.randn(1, 2, 12, 12, dtype=torch.float64, requires_grad=True)
    rois = torch.tensor([[0.0, 20.0, 22.0, 16.0, 9.0, 35.0], [0.0, 25.0, 18.0, 10.0, 14.0, -70.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: MainStyle.apply(t, rois), (x,))


class _Namespace:
    """Stands in for torch.ops.detectron2 of a compiled build: listed ops resolve, others raise like torch does."""

    def __init__(self, **ops):
        self._ops = ops

    def __getattr__(self, name):
        if name.startswith("_") or name not in self._ops:
            raise AttributeError(f"'_OpNamespace' 'detectron2' object has no attribute '{name}'")
        return self._ops[name]


def test_find_op_on_the_v0_6_layout_uses_detectron2_C():
    mine = object()
    c06 = types.SimpleNamespace(box_iou_rotated=mine, roi_align_rotated_forward=mine)
    ns = _Namespace(nms_rotated="torch-op")
    assert _C.find_op("box_iou_rotated", c06, ns) is mine
    assert _C.find_op("nms_rotated", c06, ns) == "torch-op"  # v0.6 registers nms_rotated only as a torch op
    assert _C.find_op("roi_align_rotated_backward", c06, ns) is None  # neither has it: None, not an exception


def test_find_op_on_the_main_layout_uses_torch_ops():
    cmain = types.SimpleNamespace(deform_conv_forward="c-attr")  # main keeps deformable conv in _C
    ns = _Namespace(box_iou_rotated="op-iou", nms_rotated="op-nms", roi_align_rotated_forward="op-fwd",
                    roi_align_rotated_backward="op-bwd")
    assert [_C.find_op(n, cmain, ns) for n in _C.TORCH_OPS] == ["op-nms", "op-iou", "op-fwd", "op-bwd"]
    assert _C.find_op("deform_conv_forward", cmain, ns) == "c-attr"
    # an op registered by fasttcm itself is not a compiled kernel
    assert _C.find_op("box_iou_rotated", cmain, ns, exclude={"box_iou_rotated"}) is None


def test_compiled_op_reads_a_fake_compiled_main_install(monkeypatch):
    # a compiled main install: a _C extension without the rotated ops, which live in torch.ops.detectron2
    fake = types.ModuleType("detectron2._C")
    fake.deform_conv_forward = lambda *a: "deform"
    monkeypatch.setitem(__import__("sys").modules, "detectron2._C", fake)
    monkeypatch.setattr(_C, "_compiled_detectron2_C", lambda: "/fake/detectron2/_C.cpython-311-x86_64-linux-gnu.so")
    monkeypatch.setattr(_C, "_REGISTERED", set())  # pretend the compiled build registered torch.ops.detectron2.*
    fn = _C.compiled_op("box_iou_rotated")
    assert isinstance(fn, torch._ops.OpOverloadPacket) and fn is torch.ops.detectron2.box_iou_rotated
    assert _C.compiled_op("deform_conv_forward")() == "deform"
    assert _C.compiled_op("not_an_op") is None
    # our own module installed as detectron2._C is never "compiled"
    monkeypatch.setitem(__import__("sys").modules, "detectron2._C", _C)
    assert _C.compiled_op("box_iou_rotated") is None
