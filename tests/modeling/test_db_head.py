"""DB head: output shapes, and the losses on hand-computed tiny cases."""
import math

import pytest
import torch
from detectron2.layers import ShapeSpec

from fasttcm.modeling.db_head import DBHead, approximate_binary_map, balanced_bce_loss, dice_loss, masked_l1_loss


def sp(x):  # BCE of a negative with logit x = softplus(x)
    return math.log1p(math.exp(x))


def test_balanced_bce_hand_computed():
    logits = torch.tensor([[0.0, 2.0, -1.0], [0.5, 3.0, -2.0]]).view(1, 1, 2, 3)
    gt = torch.tensor([[1.0, 0, 0], [0, 0, 0]]).view(1, 1, 2, 3)
    mask = torch.ones_like(gt)
    # 1 positive (BCE ln 2), 5 negatives of which 3 are kept: the hardest (logits 3, 2, 0.5)
    expect = (math.log(2) + sp(3) + sp(2) + sp(0.5)) / 4
    assert balanced_bce_loss(logits, gt, mask).item() == pytest.approx(expect, rel=1e-5)
    # neg_ratio 1: only the hardest negative
    assert balanced_bce_loss(logits, gt, mask, neg_ratio=1.0).item() == pytest.approx((math.log(2) + sp(3)) / 2,
                                                                                       rel=1e-5)
    # masking the hardest negative out promotes the next one (logit -1)
    mask2 = mask.clone()
    mask2[0, 0, 1, 1] = 0
    expect2 = (math.log(2) + sp(2) + sp(0.5) + sp(-1)) / 4
    assert balanced_bce_loss(logits, gt, mask2).item() == pytest.approx(expect2, rel=1e-5)
    # a masked positive does not count: no positives left -> 0
    mask3 = mask.clone()
    mask3[0, 0, 0, 0] = 0
    assert balanced_bce_loss(logits, gt, mask3).item() == 0.0


def test_balanced_bce_uses_all_negatives_when_fewer_than_ratio():
    logits = torch.tensor([1.0, -1.0, 0.5]).view(1, 1, 1, 3)
    gt = torch.tensor([1.0, 1.0, 0.0]).view(1, 1, 1, 3)
    expect = (sp(-1.0) + sp(1.0) + sp(0.5)) / 3  # positives' BCE = softplus(-x)
    assert balanced_bce_loss(logits, gt, torch.ones_like(gt)).item() == pytest.approx(expect, rel=1e-5)


def test_dice_and_masked_l1_hand_computed():
    pred = torch.tensor([0.5, 1.0, 0.0, 0.7])
    gt = torch.tensor([1.0, 1.0, 0.0, 1.0])
    mask = torch.tensor([1.0, 1.0, 1.0, 0.0])  # the last pixel is don't care
    assert dice_loss(pred, gt, mask).item() == pytest.approx(1 - 3.0 / 3.5, rel=1e-5)
    assert dice_loss(gt, gt, mask).item() == pytest.approx(0.0, abs=1e-5)
    t_pred = torch.tensor([0.2, 0.5, 0.9])
    t_gt = torch.tensor([0.3, 0.3, 0.3])
    t_mask = torch.tensor([1.0, 1.0, 0.0])
    assert masked_l1_loss(t_pred, t_gt, t_mask).item() == pytest.approx(0.15, rel=1e-5)
    assert masked_l1_loss(t_pred, t_gt, torch.zeros(3)).item() == 0.0


def test_approximate_binary_map():
    p = torch.tensor([0.5, 0.6, 0.4])
    t = torch.full((3,), 0.5)
    b = approximate_binary_map(p, t, k=50)
    assert b.tolist() == pytest.approx([0.5, 1 / (1 + math.exp(-5)), 1 / (1 + math.exp(5))], rel=1e-5)


def shapes(ch=16):
    return {f"p{i}": ShapeSpec(channels=ch, stride=2 ** i) for i in range(2, 7)}


def features(b, h, w, ch=16):
    return {f"p{i}": torch.randn(b, ch, h // 2 ** i, w // 2 ** i) for i in range(2, 7)}


def test_head_shapes_train_and_eval():
    head = DBHead(shapes(), in_features=["p2", "p3", "p4", "p5"], inner_channels=8)
    out = head(features(2, 64, 96))
    for k in ("prob_logits", "prob", "thresh", "binary"):
        assert out[k].shape == (2, 1, 64, 96), k
    assert 0 <= out["prob"].min() and out["prob"].max() <= 1
    assert 0 <= out["thresh"].min() and out["thresh"].max() <= 1
    head.eval()
    out = head(features(1, 32, 64))
    assert set(out) == {"prob_logits", "prob"} and out["prob"].shape == (1, 1, 32, 64)
    assert head(features(1, 32, 64), return_thresh=True)["thresh"].shape == (1, 1, 32, 64)
    # stride-8 finest level: one transposed conv fewer, still full resolution
    head8 = DBHead(shapes(), in_features=["p3", "p4", "p5"], inner_channels=8)
    assert head8(features(1, 64, 64))["prob"].shape == (1, 1, 64, 64)


def test_head_losses_are_weighted_and_reach_both_branches():
    torch.manual_seed(0)
    head = DBHead(shapes(), in_features=["p2", "p3", "p4", "p5"], inner_channels=8, prob_weight=5.0,
                  binary_weight=1.0, thresh_weight=10.0)
    out = head(features(2, 32, 32))
    gt = torch.zeros(2, 32, 32)
    gt[:, 8:16, 4:28] = 1
    tm = torch.zeros(2, 32, 32)
    tm[:, 4:20, 0:32] = 1
    targets = {"prob": gt, "prob_mask": torch.ones_like(gt), "thresh": torch.full_like(gt, 0.3) + 0.4 * tm,
               "thresh_mask": tm}
    losses = head.losses(out, targets)
    assert set(losses) == {"loss_db_prob", "loss_db_binary", "loss_db_thresh"}
    g, m = gt.unsqueeze(1), torch.ones_like(gt).unsqueeze(1)
    assert losses["loss_db_prob"].item() == pytest.approx(5 * balanced_bce_loss(out["prob_logits"], g, m).item())
    assert losses["loss_db_binary"].item() == pytest.approx(dice_loss(out["binary"], g, m).item())
    assert losses["loss_db_thresh"].item() == pytest.approx(
        10 * masked_l1_loss(out["thresh"], targets["thresh"].unsqueeze(1), tm.unsqueeze(1)).item())
    sum(losses.values()).backward()
    assert head.prob_branch[0].weight.grad.abs().sum() > 0
    assert head.thresh_branch[0].weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="do not match"):
        head.losses(out, {k: v[:, :16] for k, v in targets.items()})


def test_head_refuses_missing_features():
    with pytest.raises(ValueError, match="p7"):
        DBHead(shapes(), in_features=["p2", "p7"])
