"""Deformable convolution entry points of detectron2._C (fasttcm.layers._C), through torchvision.ops.deform_conv2d.

Independent checks: with zero offsets (and a unit mask) deformable convolution is an ordinary convolution, and a
constant integer offset is a convolution of the shifted input. Asymmetric strides/paddings/dilations catch
swapped (h, w) arguments in detectron2's (kW, kH, dW, dH, ...) call order.
"""
import pytest
import torch
import torch.nn.functional as F
import torchvision

from fasttcm.layers import _C

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

# kernel (kh, kw), stride (sh, sw), padding (ph, pw), dilation (dh, dw), groups, deformable groups
CASES = [
    ((3, 2), (1, 2), (2, 1), (1, 2), 1, 1),
    ((3, 3), (2, 1), (1, 0), (2, 1), 2, 2),
]


def _conv_inputs(kernel, groups, dg, stride, pad, dil, seed, n=2, cin=4, cout=6, h=9, w=11):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, cin, h, w, generator=g, dtype=torch.float64)
    weight = torch.randn(cout, cin // groups, *kernel, generator=g, dtype=torch.float64)
    ho = (h + 2 * pad[0] - dil[0] * (kernel[0] - 1) - 1) // stride[0] + 1
    wo = (w + 2 * pad[1] - dil[1] * (kernel[1] - 1) - 1) // stride[1] + 1
    offset = torch.zeros(n, 2 * dg * kernel[0] * kernel[1], ho, wo, dtype=torch.float64)
    return x, weight, offset, g


def _fwd(x, weight, offset, kernel, stride, pad, dil, groups, dg):
    out = x.new_empty(0)
    _C.deform_conv_forward(
        x, weight, offset, out, x.new_empty(0), x.new_empty(0), kernel[1], kernel[0], stride[1], stride[0], pad[1],
        pad[0], dil[1], dil[0], groups, dg, 64,
    )
    return out


@pytest.mark.parametrize("kernel,stride,pad,dil,groups,dg", CASES)
def test_zero_offset_is_conv2d_forward_and_backward(kernel, stride, pad, dil, groups, dg):
    x, weight, offset, g = _conv_inputs(kernel, groups, dg, stride, pad, dil, seed=0)
    ref = F.conv2d(x, weight, None, stride, pad, dil, groups)
    out = _fwd(x, weight, offset, kernel, stride, pad, dil, groups, dg)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)

    gy = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    xr, wr = x.clone().requires_grad_(), weight.clone().requires_grad_()
    F.conv2d(xr, wr, None, stride, pad, dil, groups).backward(gy)
    grad_x, grad_off = torch.zeros_like(x), torch.zeros_like(offset)
    _C.deform_conv_backward_input(
        x, offset, gy, grad_x, grad_off, weight, x.new_empty(0), kernel[1], kernel[0], stride[1], stride[0], pad[1],
        pad[0], dil[1], dil[0], groups, dg, 64,
    )
    torch.testing.assert_close(grad_x, xr.grad, atol=1e-10, rtol=0)
    grad_w = torch.zeros_like(weight)
    _C.deform_conv_backward_filter(
        x, offset, gy, grad_w, x.new_empty(0), x.new_empty(0), kernel[1], kernel[0], stride[1], stride[0], pad[1],
        pad[0], dil[1], dil[0], groups, dg, 0.5, 64,
    )
    torch.testing.assert_close(grad_w, 0.5 * wr.grad, atol=1e-10, rtol=0)  # scale multiplies the weight gradient


def test_integer_offset_is_shifted_convolution():
    # offset (dy, dx) = (1, -2) on every kernel tap samples the image at integer positions moved by (1, -2)
    kernel, stride, pad, dil = (3, 3), (1, 1), (1, 1), (1, 1)
    x, weight, offset, _ = _conv_inputs(kernel, 1, 1, stride, pad, dil, seed=1, h=12, w=13)
    offset[:, 0::2] = 1.0
    offset[:, 1::2] = -2.0
    out = _fwd(x, weight, offset, kernel, stride, pad, dil, 1, 1)
    # padded canvas P[i, j] = x[i - 1 + 1, j - 1 - 2] where that pixel exists, else 0; then an unpadded conv
    n, c, h, w = x.shape
    canvas = torch.zeros(n, c, h + 2, w + 2, dtype=x.dtype)
    for i in range(h + 2):
        for j in range(w + 2):
            yi, xj = i - 1 + 1, j - 1 - 2
            if 0 <= yi < h and 0 <= xj < w:
                canvas[:, :, i, j] = x[:, :, yi, xj]
    torch.testing.assert_close(out, F.conv2d(canvas, weight), atol=1e-10, rtol=0)


def test_offset_gradient_matches_torchvision_autograd():
    kernel, stride, pad, dil = (3, 2), (1, 2), (2, 1), (1, 2)
    x, weight, offset, g = _conv_inputs(kernel, 2, 2, stride, pad, dil, seed=2)
    offset = torch.randn(offset.shape, generator=g, dtype=torch.float64) * 1.5
    xr, orr, wr = x.clone().requires_grad_(), offset.clone().requires_grad_(), weight.clone().requires_grad_()
    ref = torchvision.ops.deform_conv2d(xr, orr, wr, stride=stride, padding=pad, dilation=dil)
    gy = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    ref.backward(gy)
    torch.testing.assert_close(_fwd(x, weight, offset, kernel, stride, pad, dil, 2, 2), ref.detach())
    grad_x, grad_off, grad_w = torch.zeros_like(x), torch.zeros_like(offset), torch.zeros_like(weight)
    args = (kernel[1], kernel[0], stride[1], stride[0], pad[1], pad[0], dil[1], dil[0], 2, 2)
    _C.deform_conv_backward_input(x, offset, gy, grad_x, grad_off, weight, x.new_empty(0), *args, 64)
    _C.deform_conv_backward_filter(x, offset, gy, grad_w, x.new_empty(0), x.new_empty(0), *args, 1.0, 64)
    torch.testing.assert_close(grad_x, xr.grad)
    torch.testing.assert_close(grad_off, orr.grad)
    torch.testing.assert_close(grad_w, wr.grad)


def _mfwd(x, weight, bias, offset, mask, kernel, stride, pad, dil, groups, dg, with_bias):
    out = x.new_empty(0)
    _C.modulated_deform_conv_forward(
        x, weight, bias, x.new_empty(0), offset, mask, out, x.new_empty(0), kernel[0], kernel[1], stride[0], stride[1],
        pad[0], pad[1], dil[0], dil[1], groups, dg, with_bias,
    )
    return out


@pytest.mark.parametrize("with_bias", [True, False])
def test_modulated_unit_mask_zero_offset_is_conv2d(with_bias):
    kernel, stride, pad, dil, groups, dg = (3, 2), (2, 1), (1, 2), (1, 2), 2, 1
    x, weight, offset, g = _conv_inputs(kernel, groups, dg, stride, pad, dil, seed=3)
    bias = torch.randn(weight.shape[0], generator=g, dtype=torch.float64) if with_bias else x.new_empty(1)
    mask = torch.ones(offset.shape[0], dg * kernel[0] * kernel[1], *offset.shape[2:], dtype=torch.float64)
    out = _mfwd(x, weight, bias, offset, mask, kernel, stride, pad, dil, groups, dg, with_bias)
    ref = F.conv2d(x, weight, bias if with_bias else None, stride, pad, dil, groups)
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)
    # half mask halves the convolution (bias excluded)
    out_half = _mfwd(x, weight, bias, offset, 0.5 * mask, kernel, stride, pad, dil, groups, dg, with_bias)
    torch.testing.assert_close(out_half, 0.5 * F.conv2d(x, weight, None, stride, pad, dil, groups) + (ref - F.conv2d(x, weight, None, stride, pad, dil, groups)), atol=1e-10, rtol=0)


def test_modulated_backward_matches_autograd():
    kernel, stride, pad, dil, groups, dg = (3, 3), (1, 2), (1, 1), (2, 1), 1, 2
    x, weight, offset, g = _conv_inputs(kernel, groups, dg, stride, pad, dil, seed=4)
    offset = torch.randn(offset.shape, generator=g, dtype=torch.float64)
    mask = torch.rand(offset.shape[0], dg * 9, *offset.shape[2:], generator=g, dtype=torch.float64)
    bias = torch.randn(weight.shape[0], generator=g, dtype=torch.float64)
    leaves = [t.clone().requires_grad_() for t in (x, offset, mask, weight, bias)]
    ref = torchvision.ops.deform_conv2d(
        leaves[0], leaves[1], leaves[3], leaves[4], stride=stride, padding=pad, dilation=dil, mask=leaves[2]
    )
    torch.testing.assert_close(_mfwd(x, weight, bias, offset, mask, kernel, stride, pad, dil, groups, dg, True), ref.detach())
    gy = torch.randn(ref.shape, generator=g, dtype=torch.float64)
    ref.backward(gy)
    grads = [torch.zeros_like(t) for t in (x, weight, bias, offset, mask)]
    _C.modulated_deform_conv_backward(
        x, weight, bias, x.new_empty(0), offset, mask, x.new_empty(0), *grads, gy, kernel[0], kernel[1], stride[0],
        stride[1], pad[0], pad[1], dil[0], dil[1], groups, dg, True,
    )
    for got, leaf in zip(grads, [leaves[0], leaves[3], leaves[4], leaves[1], leaves[2]]):
        torch.testing.assert_close(got, leaf.grad)


def test_detectron2_deformconv_cpu_forward_agrees():
    # detectron2's DeformConv runs torchvision directly on CPU; ours must agree with it
    from detectron2.layers import DeformConv

    torch.manual_seed(5)
    m = DeformConv(4, 6, kernel_size=3, stride=1, padding=2, dilation=2).double()
    x = torch.randn(2, 4, 10, 9, dtype=torch.float64)
    offset = torch.randn(2, 18, 10, 9, dtype=torch.float64)
    ref = m(x, offset)
    torch.testing.assert_close(_fwd(x, m.weight.detach(), offset, (3, 3), (1, 1), (2, 2), (2, 2), 1, 1), ref.detach())


def test_detectron2_cpu_limits_are_its_own():
    # Canary: detectron2 0.6 itself refuses DeformConv backward and ModulatedDeformConv on CPU (in Python, before
    # reaching _C). If this starts failing, detectron2 changed and its CPU path may now reach our _C functions.
    from detectron2.layers import DeformConv, ModulatedDeformConv

    x = torch.randn(1, 2, 6, 6, requires_grad=True)
    m = DeformConv(2, 2, 3, padding=1)
    with pytest.raises(NotImplementedError, match="not supported on CPUs"):
        m(x, torch.zeros(1, 18, 6, 6)).sum().backward()
    mm = ModulatedDeformConv(2, 2, 3, padding=1)
    with pytest.raises(NotImplementedError, match="not supported on CPUs"):
        mm(x, torch.zeros(1, 18, 6, 6), torch.ones(1, 9, 6, 6))


def test_bad_inputs():
    x, w = torch.zeros(1, 4, 8, 8), torch.zeros(6, 4, 3, 3)
    with pytest.raises(ValueError, match="kernel size"):
        _C.deform_conv_forward(x, w, torch.zeros(1, 18, 8, 8), x.new_empty(0), None, None, 2, 3, 1, 1, 1, 1, 1, 1, 1, 1, 64)
    with pytest.raises(ValueError, match="offset: expected 18 channels"):
        _C.deform_conv_forward(x, w, torch.zeros(1, 16, 8, 8), x.new_empty(0), None, None, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 64)
    with pytest.raises(ValueError, match="input channels per group"):
        _C.deform_conv_forward(x, w, torch.zeros(1, 18, 8, 8), x.new_empty(0), None, None, 3, 3, 1, 1, 1, 1, 1, 1, 2, 1, 64)
    with pytest.raises(ValueError, match=r"input: expected shape \(N, C, H, W\)"):
        _C.deform_conv_forward(x[0], w, torch.zeros(1, 18, 8, 8), x.new_empty(0), None, None, 3, 3, 1, 1, 1, 1, 1, 1, 1, 1, 64)
    with pytest.raises(ValueError, match="mask: expected 9 channels"):
        _C.modulated_deform_conv_forward(
            x, w, x.new_empty(1), None, torch.zeros(1, 18, 8, 8), torch.zeros(1, 8, 8, 8), x.new_empty(0), None, 3, 3,
            1, 1, 1, 1, 1, 1, 1, 1, False,
        )


@CUDA
def test_detectron2_modules_on_cuda_use_our_ops():
    from detectron2.layers import DeformConv, ModulatedDeformConv

    torch.manual_seed(6)
    x = torch.randn(2, 4, 10, 9, device="cuda", requires_grad=True)
    off = (torch.randn(2, 2 * 2 * 9, 10, 9, device="cuda") * 0.7).requires_grad_()
    m = DeformConv(4, 6, 3, padding=1, groups=2, deformable_groups=2).cuda()
    y = m(x, off)
    ref = torchvision.ops.deform_conv2d(x, off, m.weight, padding=1)
    torch.testing.assert_close(y, ref)
    gy = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, off, m.weight), gy)
    exp = torch.autograd.grad(ref, (x, off, m.weight), gy)
    for a, b in zip(got, exp):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)

    mm = ModulatedDeformConv(4, 6, 3, padding=1, deformable_groups=2).cuda()
    torch.nn.init.normal_(mm.bias)
    mask = torch.rand(2, 18, 10, 9, device="cuda", requires_grad=True)
    y = mm(x, off, mask)
    ref = torchvision.ops.deform_conv2d(x, off, mm.weight, mm.bias, padding=1, mask=mask)
    torch.testing.assert_close(y, ref)
    gy = torch.randn_like(y)
    got = torch.autograd.grad(y, (x, off, mask, mm.weight, mm.bias), gy)
    exp = torch.autograd.grad(ref, (x, off, mask, mm.weight, mm.bias), gy)
    for a, b in zip(got, exp):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4)
