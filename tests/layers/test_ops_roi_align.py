"""RoIAlignRotated (fasttcm.layers.roi_align_rotated / ROIAlignRotated, detectron2._C.roi_align_rotated_*)."""
import math

import pytest
import torch
import torchvision

from fasttcm.layers import ROIAlignRotated, _C, roi_align_rotated

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def reference(inp, rois, scale, ph_n, pw_n, sr, aligned=True):
    """Per-sample loops, written from detectron2's documented semantics: the RoI (centre shifted by -0.5 when
    aligned) is split into ph_n x pw_n bins, each averaging a grid of bilinear samples (sr per axis, or
    ceil(size / bins)); sample (xx, yy) in the RoI frame lands at x = cx + xx cos + yy sin, y = cy - xx sin + yy cos;
    samples outside [-1, H] x [-1, W] give 0, coordinates below 0 clamp to 0 and above size - 1 to size - 1."""
    n, c, h, w = inp.shape
    out = torch.zeros(rois.shape[0], c, ph_n, pw_n, dtype=torch.float64)
    x64 = inp.double()
    for r, roi in enumerate(rois.double().tolist()):
        b = int(roi[0])
        off = 0.5 if aligned else 0.0
        cx, cy = roi[1] * scale - off, roi[2] * scale - off
        rw, rh = roi[3] * scale, roi[4] * scale
        th = math.radians(roi[5])
        cos, sin = math.cos(th), math.sin(th)
        gh = sr if sr > 0 else math.ceil(rh / ph_n)
        gw = sr if sr > 0 else math.ceil(rw / pw_n)
        for ph in range(ph_n):
            for pw in range(pw_n):
                acc = torch.zeros(c, dtype=torch.float64)
                for iy in range(gh):
                    yy = -rh / 2 + (ph + (iy + 0.5) / gh) * rh / ph_n
                    for ix in range(gw):
                        xx = -rw / 2 + (pw + (ix + 0.5) / gw) * rw / pw_n
                        x = cx + xx * cos + yy * sin
                        y = cy - xx * sin + yy * cos
                        if y < -1 or y > h or x < -1 or x > w:
                            continue
                        y, x = min(max(y, 0.0), h - 1), min(max(x, 0.0), w - 1)
                        y0, x0 = min(int(math.floor(y)), h - 1), min(int(math.floor(x)), w - 1)
                        y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
                        ly, lx = y - y0, x - x0
                        acc += (
                            (1 - ly) * (1 - lx) * x64[b, :, y0, x0]
                            + (1 - ly) * lx * x64[b, :, y0, x1]
                            + ly * (1 - lx) * x64[b, :, y1, x0]
                            + ly * lx * x64[b, :, y1, x1]
                        )
                out[r, :, ph, pw] = acc / max(gh * gw, 1)
    return out


def make_rois(g, r, n_batch, img_w, img_h, smin=0.0, smax=30.0):
    return torch.cat(
        [
            torch.randint(0, n_batch, (r, 1), generator=g).double(),
            torch.rand(r, 1, generator=g, dtype=torch.float64) * (img_w + 20) - 10,  # some RoIs stick out
            torch.rand(r, 1, generator=g, dtype=torch.float64) * (img_h + 20) - 10,
            smin + torch.rand(r, 2, generator=g, dtype=torch.float64) * (smax - smin),
            torch.rand(r, 1, generator=g, dtype=torch.float64) * 360 - 180,
        ],
        1,
    )


@pytest.mark.parametrize("sr", [0, 1, 2])
@pytest.mark.parametrize("aligned", [True, False])
def test_matches_reference(sr, aligned):
    g = torch.Generator().manual_seed(sr + 10 * aligned)
    inp = torch.randn(2, 3, 9, 11, generator=g, dtype=torch.float64)
    rois = make_rois(g, 14, 2, 44, 36)
    rois[0, 3:5] = 0  # empty RoI: adaptive grid of 0 samples
    rois[1, 1:3] = torch.tensor([500.0, 500.0])  # entirely outside
    rois[2, 5] = 90.0
    out = roi_align_rotated(inp, rois, (3, 4), 0.25, sr, aligned)
    assert out.shape == (14, 3, 3, 4) and out.dtype == torch.float64
    torch.testing.assert_close(out, reference(inp, rois, 0.25, 3, 4, sr, aligned), atol=1e-12, rtol=0)
    assert out[1].abs().max() == 0


def test_float32_close_to_float64():
    g = torch.Generator().manual_seed(1)
    inp = torch.randn(2, 4, 16, 12, generator=g)
    rois = make_rois(g, 20, 2, 48, 64).float()
    a = roi_align_rotated(inp, rois, 5, 0.25, 0)
    b = roi_align_rotated(inp.double(), rois.double(), 5, 0.25, 0)
    assert a.dtype == torch.float32
    torch.testing.assert_close(a.double(), b, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("sr", [0, 2])
def test_equals_torchvision_roi_align_at_angle_zero(sr):
    g = torch.Generator().manual_seed(2)
    inp = torch.randn(2, 3, 10, 12, generator=g, dtype=torch.float64)
    rois = make_rois(g, 16, 2, 48, 40, smin=4.0)
    rois[:, 5] = 0
    xyxy = torch.stack(
        [rois[:, 0], rois[:, 1] - rois[:, 3] / 2, rois[:, 2] - rois[:, 4] / 2, rois[:, 1] + rois[:, 3] / 2, rois[:, 2] + rois[:, 4] / 2], 1
    )
    for aligned in (True, False):
        tv = torchvision.ops.roi_align(inp, xyxy, (3, 5), 0.25, sr, aligned=aligned)
        torch.testing.assert_close(roi_align_rotated(inp, rois, (3, 5), 0.25, sr, aligned), tv, atol=1e-12, rtol=0)


def test_angle_90_is_a_rotated_axis_aligned_roi():
    # Counter-clockwise convention: at +90 degrees the RoI's width axis points up the image (-y) and its height
    # axis along +x, so output[ph, pw] samples x = cx + yy(ph), y = cy - xx(pw): the axis-aligned RoIAlign of the
    # swapped box, transposed and flipped.
    g = torch.Generator().manual_seed(3)
    inp = torch.randn(1, 2, 20, 20, generator=g, dtype=torch.float64)
    rot = torch.tensor([[0.0, 40.0, 36.0, 24.0, 16.0, 90.0]])  # w=24 along -y, h=16 along +x
    out = roi_align_rotated(inp, rot, (4, 6), 0.5, 2)
    box = torch.tensor([[0.0, 40.0 - 8, 36.0 - 12, 40.0 + 8, 36.0 + 12]], dtype=torch.float64)  # x: 16, y: 24
    tv = torchvision.ops.roi_align(inp, box, (6, 4), 0.5, 2, aligned=True)  # (.., y bins = 6, x bins = 4)
    torch.testing.assert_close(out, torch.flip(tv.transpose(2, 3), dims=[3]), atol=1e-12, rtol=0)


def test_angle_180_flips_both_axes():
    g = torch.Generator().manual_seed(4)
    inp = torch.randn(1, 2, 16, 16, generator=g, dtype=torch.float64)
    r0 = torch.tensor([[0.0, 30.0, 34.0, 20.0, 12.0, 0.0]])
    r180 = r0.clone()
    r180[0, 5] = 180.0
    a = roi_align_rotated(inp, r0, (3, 5), 0.5, 2)
    b = roi_align_rotated(inp, r180, (3, 5), 0.5, 2)
    torch.testing.assert_close(b, torch.flip(a, dims=[2, 3]), atol=1e-12, rtol=0)


@pytest.mark.parametrize("sr", [0, 2])
def test_gradcheck(sr):
    g = torch.Generator().manual_seed(5)
    inp = torch.randn(2, 1, 5, 6, generator=g, dtype=torch.float64, requires_grad=True)
    rois = make_rois(g, 4, 2, 24, 20, smin=2.0, smax=16.0)
    assert torch.autograd.gradcheck(lambda x: roi_align_rotated(x, rois, (2, 3), 0.25, sr), (inp,))
    assert torch.autograd.gradcheck(lambda x: roi_align_rotated(x, rois, (2, 3), 0.25, sr, False), (inp,))


def test_backward_is_the_adjoint_of_forward():
    # <forward(x), g> == <x, backward(g)> for the linear map, on a bigger case than gradcheck can afford
    g = torch.Generator().manual_seed(6)
    x = torch.randn(2, 5, 30, 40, generator=g, dtype=torch.float64)
    rois = make_rois(g, 40, 2, 160, 120, smax=80.0)
    out = _C.roi_align_rotated_forward(x, rois, 0.25, 7, 7, 0)
    gy = torch.randn(out.shape, generator=g, dtype=torch.float64)
    gx = _C.roi_align_rotated_backward(gy, rois, 0.25, 7, 7, 2, 5, 30, 40, 0)
    assert gx.shape == x.shape
    assert abs((out * gy).sum().item() - (x * gx).sum().item()) < 1e-9 * (out.abs().sum().item() + 1)


def test_chunked_paths_agree(monkeypatch):
    g = torch.Generator().manual_seed(7)
    x = torch.randn(2, 3, 20, 20, generator=g, dtype=torch.float64)
    rois = make_rois(g, 30, 2, 80, 80, smax=60.0)
    out = _C.roi_align_rotated_forward(x, rois, 0.25, 4, 4, 0)
    gx = _C.roi_align_rotated_backward(torch.ones_like(out), rois, 0.25, 4, 4, 2, 3, 20, 20, 0)
    monkeypatch.setattr(_C, "_ROI_SAMPLE_CHUNK", 50)
    torch.testing.assert_close(_C.roi_align_rotated_forward(x, rois, 0.25, 4, 4, 0), out, atol=1e-12, rtol=0)
    gx2 = _C.roi_align_rotated_backward(torch.ones_like(out), rois, 0.25, 4, 4, 2, 3, 20, 20, 0)
    torch.testing.assert_close(gx2, gx, atol=1e-12, rtol=0)


def test_module_and_half_precision():
    m = ROIAlignRotated(3, 0.5, 2)
    assert m.output_size == (3, 3) and "aligned=True" in repr(m)
    x = torch.randn(1, 4, 8, 8)
    rois = torch.tensor([[0.0, 8.0, 8.0, 6.0, 4.0, 30.0]])
    ref = m(x, rois)
    half = m(x.half(), rois.half())
    assert half.dtype == torch.float16 and half.shape == (1, 4, 3, 3)
    torch.testing.assert_close(half.float(), ref, atol=2e-2, rtol=1e-2)
    x.requires_grad_()
    m(x, rois).sum().backward()
    assert x.grad.shape == x.shape and x.grad.abs().sum() > 0


def test_empty_rois():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    out = roi_align_rotated(x, torch.zeros(0, 6), (2, 2), 1.0, 0)
    assert out.shape == (0, 3, 2, 2) and out.dtype == torch.float32
    out.sum().backward()
    assert x.grad.shape == x.shape and x.grad.abs().sum() == 0
    gx = _C.roi_align_rotated_backward(torch.zeros(0, 3, 2, 2), torch.zeros(0, 6), 1.0, 2, 2, 2, 3, 8, 8, 0)
    assert gx.shape == (2, 3, 8, 8)


@pytest.mark.parametrize(
    "inp,rois,match",
    [
        (torch.zeros(3, 8, 8), torch.zeros(1, 6), r"input: expected shape \(N, C, H, W\)"),
        (torch.zeros(1, 3, 8, 8, dtype=torch.long), torch.zeros(1, 6), "floating-point"),
        (torch.zeros(1, 3, 8, 8), torch.zeros(1, 5), r"rois: expected shape \(N, 6\)"),
        (torch.zeros(1, 3, 8, 8), torch.tensor([[1.0, 4, 4, 2, 2, 0]]), r"batch indices in \[0, 1\)"),
        (torch.zeros(1, 3, 8, 8), torch.tensor([[0.5, 4, 4, 2, 2, 0]]), "integer batch indices"),
        (torch.zeros(1, 3, 8, 8), torch.tensor([[0.0, 4, 4, -2, 2, 0]]), "non-negative"),
        (torch.zeros(1, 3, 8, 8), torch.tensor([[0.0, 4, float("nan"), 2, 2, 0]]), "NaN"),
        (torch.zeros(1, 3, 8, 8), torch.zeros(1, 6, device="meta"), "same device"),
    ],
)
def test_bad_inputs(inp, rois, match):
    with pytest.raises(ValueError, match=match):
        _C.roi_align_rotated_forward(inp, rois, 1.0, 2, 2, 0)


def test_bad_arguments():
    x, rois = torch.zeros(1, 3, 8, 8), torch.tensor([[0.0, 4, 4, 2, 2, 0]])
    with pytest.raises(ValueError, match="pooled_height"):
        _C.roi_align_rotated_forward(x, rois, 1.0, 0, 2, 0)
    with pytest.raises(ValueError, match="spatial_scale"):
        _C.roi_align_rotated_forward(x, rois, -1.0, 2, 2, 0)
    with pytest.raises(ValueError, match="sampling_ratio"):
        _C.roi_align_rotated_forward(x, rois, 1.0, 2, 2, 1.5)
    with pytest.raises(ValueError, match=r"grad: expected shape \(1, 3, 2, 2\)"):
        _C.roi_align_rotated_backward(torch.zeros(1, 3, 2, 3), rois, 1.0, 2, 2, 1, 3, 8, 8, 0)


@CUDA
def test_cuda_matches_cpu():
    g = torch.Generator().manual_seed(8)
    x = torch.randn(2, 8, 24, 24, generator=g)
    rois = make_rois(g, 50, 2, 96, 96, smax=60.0).float()
    cpu = roi_align_rotated(x, rois, 7, 0.25, 0)
    xg = x.cuda().requires_grad_()
    gpu = roi_align_rotated(xg, rois.cuda(), 7, 0.25, 0)
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=1e-5)
    gpu.sum().backward()
    xc = x.clone().requires_grad_()
    roi_align_rotated(xc, rois, 7, 0.25, 0).sum().backward()
    torch.testing.assert_close(xg.grad.cpu(), xc.grad, atol=1e-4, rtol=1e-4)
