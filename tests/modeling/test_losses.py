"""Auxiliary score-map losses and mask downsampling, on hand-computed cases."""
import math

import pytest
import torch

from fasttcm.modeling.losses import downsample_mask, score_map_class_loss, score_map_text_loss


def bce(s, y, tau=0.07):
    """BCE of one cell by hand: logit s / tau."""
    p = 1 / (1 + math.exp(-s / tau))
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_text_loss_hard_negative_mining_by_hand():
    # one positive, five negatives; neg_ratio 3 keeps the three hardest (largest score) negatives
    s = torch.tensor([0.5, 0.1, -0.2, 0.05, -0.5, 0.0]).view(1, 1, 2, 3)
    y = torch.tensor([1, 0, 0, 0, 0, 0.0]).view(1, 1, 2, 3)
    expected = (bce(0.5, 1) + bce(0.1, 0) + bce(0.05, 0) + bce(0.0, 0)) / 4
    assert score_map_text_loss(s, y).item() == pytest.approx(expected, rel=1e-5)
    # (B, h, w) targets for K = 1 are accepted
    assert score_map_text_loss(s, y[:, 0]).item() == pytest.approx(expected, rel=1e-5)
    # fewer negatives than 3x positives: all of them
    expected_all = (bce(0.5, 1) + sum(bce(v, 0) for v in (0.1, -0.2, 0.05, -0.5, 0.0))) / 6
    assert score_map_text_loss(s, y, neg_ratio=10).item() == pytest.approx(expected_all, rel=1e-5)


def test_text_loss_ignore_mask_and_tau():
    s = torch.tensor([0.5, 0.1, -0.2, 0.05]).view(1, 1, 1, 4)
    y = torch.tensor([1, 0, 0, 0.0]).view(1, 1, 1, 4)
    ignore = torch.tensor([False, True, False, False]).view(1, 1, 4)  # (B, h, w)
    expected = (bce(0.5, 1, 0.1) + bce(0.05, 0, 0.1) + bce(-0.2, 0, 0.1)) / 3
    assert score_map_text_loss(s, y, ignore, tau=0.1).item() == pytest.approx(expected, rel=1e-5)


def test_text_loss_without_positives_is_zero_but_differentiable():
    s = torch.rand(2, 1, 3, 3, requires_grad=True)
    loss = score_map_text_loss(s, torch.zeros(2, 1, 3, 3))
    assert loss.item() == 0.0
    loss.backward()
    assert s.grad is not None


def test_text_loss_gradient_pushes_in_the_right_direction():
    s = torch.zeros(1, 1, 2, 2, requires_grad=True)
    y = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]]]])
    score_map_text_loss(s, y).backward()
    assert s.grad[0, 0, 0, 0] < 0 and s.grad[0, 0, 0, 1] > 0


def test_class_loss_by_hand():
    s = torch.tensor([[[[0.3, -0.1]], [[0.0, 0.2]]]])  # (B=1, K=2, h=1, w=2)
    y = torch.tensor([[[[1.0, 0.0]], [[0.5, 1.0]]]])  # soft coverage allowed
    cells = [(0.3, 1), (-0.1, 0), (0.0, 0.5), (0.2, 1)]
    assert score_map_class_loss(s, y).item() == pytest.approx(sum(bce(a, b) for a, b in cells) / 4, rel=1e-5)
    valid = torch.tensor([[[True, False]]])  # (B, h, w): broadcast over the classes
    expected = (bce(0.3, 1) + bce(0.0, 0.5)) / 2
    assert score_map_class_loss(s, y, valid).item() == pytest.approx(expected, rel=1e-5)
    per_class = torch.tensor([[[[True, True]], [[False, False]]]])  # (B, K, h, w)
    assert score_map_class_loss(s, y, per_class).item() == pytest.approx((bce(0.3, 1) + bce(-0.1, 0)) / 2, rel=1e-5)
    none = torch.zeros(1, 1, 2, dtype=torch.bool)
    assert score_map_class_loss(s, y, none).item() == 0.0


def test_shape_errors():
    with pytest.raises(ValueError, match="must match the score map"):
        score_map_class_loss(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 6, 6))
    with pytest.raises(ValueError, match="does not match"):
        score_map_text_loss(torch.zeros(1, 1, 3, 3), torch.zeros(1, 1, 3, 3), torch.zeros(1, 4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"\(B, K, h, w\)"):
        score_map_text_loss(torch.zeros(3, 3), torch.zeros(3, 3))


def test_downsample_mask_area_and_max():
    m = torch.zeros(1, 4, 6)
    m[0, 0, 0] = 1  # one pixel of the first 2x2 cell
    m[0, 2:4, 2:4] = 1  # a full cell
    area = downsample_mask(m, 2)
    assert area.shape == (1, 2, 3)
    assert torch.equal(area, torch.tensor([[[0.25, 0, 0], [0, 1, 0]]]))
    assert torch.equal(downsample_mask(m, 2, "max"), torch.tensor([[[1.0, 0, 0], [0, 1, 0]]]))
    # sizes not divisible: ceil, missing pixels count as 0; (B, K, H, W) keeps K
    odd = torch.ones(2, 3, 5, 5, dtype=torch.bool)
    out = downsample_mask(odd, 4)
    assert out.shape == (2, 3, 2, 2)
    assert torch.allclose(out[0, 0], torch.tensor([[1.0, 0.25], [0.25, 1 / 16]]))
    with pytest.raises(ValueError, match="area"):
        downsample_mask(m, 2, "mean")
