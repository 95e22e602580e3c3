"""Optimizer parameter groups: frozen text encoder, image-encoder LR factor, weight-decay exclusions, clipping."""
import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_backbone
from torch import nn

import fasttcm.modeling  # noqa: F401  (registers fasttcm's backbones and meta-architectures)
from fasttcm.config import add_fasttcm_config
from fasttcm.modeling.backbone import set_clip_input_config
from fasttcm.solver import build_optimizer


def _cfg(**solver):
    cfg = add_fasttcm_config(get_cfg())
    set_clip_input_config(cfg)
    cfg.merge_from_list(["MODEL.FASTTCM.CLIP.NAME", "tiny-test", "MODEL.FASTTCM.DECODER_WIDTH", 32,
                         "MODEL.BACKBONE.NAME", "build_fasttcm_fpn_backbone", "MODEL.FASTTCM.NORM", "BN"])
    cfg.SOLVER.BASE_LR = 1e-3
    cfg.SOLVER.WEIGHT_DECAY = 1e-4
    for k, v in solver.items():
        cfg.SOLVER[k] = v
    return cfg


class Model(nn.Module):
    """A meta-architecture stand-in: backbone + a head."""

    def __init__(self, cfg):
        super().__init__()
        self.backbone = build_backbone(cfg)
        self.head = nn.Conv2d(256, 2, 1)


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return Model(_cfg())


def _settings(opt):
    """param id -> (lr, weight_decay)."""
    return {id(p): (g["lr"], g["weight_decay"]) for g in opt.param_groups for p in g["params"]}


def test_groups(model):
    opt = build_optimizer(_cfg(), model)
    assert isinstance(opt, torch.optim.AdamW)
    s = _settings(opt)
    bb = model.backbone.bottom_up
    text_encoder = bb.text.prompt_encoder.text_encoder
    # frozen text encoder: not in the optimizer
    assert not any(id(p) in s for p in text_encoder.parameters())
    # every trainable parameter exactly once
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert len(s) == len(trainable) == sum(len(g["params"]) for g in opt.param_groups)
    # image encoder (trunk and attention pool) at 0.1 x base LR
    assert s[id(bb.image_encoder.visual.conv1.weight)] == pytest.approx((1e-4, 1e-4))
    assert s[id(bb.image_encoder.visual.attnpool.q_proj.weight)] == pytest.approx((1e-4, 1e-4))
    assert s[id(bb.image_encoder.visual.bn1.weight)] == pytest.approx((1e-4, 0.0))  # norm: WEIGHT_DECAY_NORM = 0
    assert s[id(bb.image_encoder.visual.attnpool.positional_embedding)] == pytest.approx((1e-4, 0.0))
    # the rest at base LR
    assert s[id(model.head.weight)] == pytest.approx((1e-3, 1e-4))
    assert s[id(bb.bsm.proj.weight)] == pytest.approx((1e-3, 1e-4))
    assert s[id(model.backbone.fpn_lateral5.weight)] == pytest.approx((1e-3, 1e-4))
    for p in (bb.visual_prompt.gamma, bb.text_context.gamma, bb.text.meta_query, bb.text.prompt_encoder.context):
        assert s[id(p)] == pytest.approx((1e-3, 0.0))
    ln = bb.visual_prompt.decoder.query_in[0]
    assert s[id(ln.weight)] == pytest.approx((1e-3, 0.0)) and s[id(ln.bias)] == pytest.approx((1e-3, 0.0))
    # biases follow SOLVER.WEIGHT_DECAY_BIAS (None = WEIGHT_DECAY, as in Detectron2)
    assert s[id(model.head.bias)] == pytest.approx((1e-3, 1e-4))
    s0 = _settings(build_optimizer(_cfg(WEIGHT_DECAY_BIAS=0.0), model))
    assert s0[id(model.head.bias)] == pytest.approx((1e-3, 0.0))


def test_sgd_and_lr_factor(model):
    cfg = _cfg(OPTIMIZER="SGD", MOMENTUM=0.8)
    cfg.MODEL.FASTTCM.IMAGE_ENCODER_LR_FACTOR = 0.5
    opt = build_optimizer(cfg, model)
    assert isinstance(opt, torch.optim.SGD) and all(g["momentum"] == 0.8 for g in opt.param_groups)
    assert _settings(opt)[id(model.backbone.bottom_up.image_encoder.visual.conv1.weight)][0] == pytest.approx(5e-4)
    with pytest.raises(ValueError, match="AdamW' or 'SGD"):
        build_optimizer(_cfg(OPTIMIZER="Adam"), model)


def test_gradient_clipping_wraps_optimizer(model):
    cfg = _cfg()
    cfg.SOLVER.CLIP_GRADIENTS.ENABLED = True
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_TYPE = "value"
    cfg.SOLVER.CLIP_GRADIENTS.CLIP_VALUE = 0.5
    opt = build_optimizer(cfg, model)
    assert type(opt) is not torch.optim.AdamW and isinstance(opt, torch.optim.AdamW)
    p = model.head.bias
    for q in model.parameters():
        q.grad = None
    p.grad = torch.full_like(p, 10.0)
    opt.step()
    assert torch.all(p.grad <= 0.5)


def test_frozen_stages_left_out():
    torch.manual_seed(0)
    cfg = _cfg()
    cfg.MODEL.FASTTCM.FREEZE_AT = 2
    m = Model(cfg)
    s = _settings(build_optimizer(cfg, m))
    visual = m.backbone.bottom_up.image_encoder.visual
    assert id(visual.conv1.weight) not in s and id(visual.layer1[0].conv1.weight) not in s
    assert id(visual.layer2[0].conv1.weight) in s
