"""FastTCMBackbone and its FPN: modes, shapes, gradients, the offline text branch, errors."""
import logging

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_backbone
from detectron2.modeling.backbone.fpn import FPN
from detectron2.structures import ImageList

import fasttcm.modeling  # noqa: F401  (registers fasttcm's backbones and meta-architectures)
from fasttcm.config import add_fasttcm_config
from fasttcm.modeling.backbone import (
    FastTCMBackbone,
    FastTCMFPN,
    build_fasttcm_backbone,
    build_fasttcm_fpn_backbone,
    set_clip_input_config,
)
from fasttcm.modeling.clip import CLIP_PIXEL_MEAN, CLIPTextEncoder

from conftest import load_tool
TINY_OPTS = ["MODEL.FASTTCM.CLIP.NAME", "tiny-test", "MODEL.FASTTCM.DECODER_WIDTH", 32,
             "MODEL.FASTTCM.DECODER_LAYERS", 2, "MODEL.FASTTCM.DECODER_HEADS", 4]


def tiny_cfg(mode="fasttcm", fpn=False, **overrides):
    cfg = add_fasttcm_config(get_cfg())
    set_clip_input_config(cfg)
    cfg.merge_from_list(TINY_OPTS)
    cfg.MODEL.FASTTCM.MODE = mode
    cfg.MODEL.BACKBONE.NAME = "build_fasttcm_fpn_backbone" if fpn else "build_fasttcm_backbone"
    for k, v in overrides.items():
        node = cfg.MODEL.FASTTCM
        *path, last = k.split(".")
        for p in path:
            node = node[p]
        node[last] = v
    return cfg


def build(mode="fasttcm", fpn=False, seed=0, **overrides):
    torch.manual_seed(seed)
    return build_backbone(tiny_cfg(mode, fpn, **overrides))


def padded(sizes, divisibility=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ImageList.from_tensors([torch.randn(3, h, w, generator=g) for h, w in sizes], divisibility).tensor


@pytest.fixture(scope="module")
def eval_models():
    """One model per mode, in eval mode, for tests that only run inference (built once: they take time)."""
    return {mode: build(mode).eval() for mode in ("baseline", "tcm", "fasttcm")}


@pytest.mark.parametrize("mode", ["baseline", "tcm", "fasttcm"])
@pytest.mark.parametrize("sizes", [[(70, 70)], [(50, 100), (64, 90)]])
def test_shapes_square_and_non_square(eval_models, mode, sizes):
    bb = eval_models[mode]
    x = padded(sizes, bb.size_divisibility)
    b, _, h, w = x.shape
    assert h % 32 == 0 and w % 32 == 0
    with torch.no_grad():
        feats, aux = bb.forward_with_aux(x)
    shapes = bb.output_shape()
    assert list(feats) == ["res2", "res3", "res4", "res5"]
    for name, f in feats.items():
        assert f.shape == (b, shapes[name].channels, h // shapes[name].stride, w // shapes[name].stride)
    k = 0 if mode == "baseline" else 1
    assert shapes["res5"].channels == 256 + k
    if mode == "baseline":
        assert aux == {}
    else:
        s = aux["score_map"]
        assert s.shape == (b, 1, h // 32, w // 32)
        assert s.abs().max() <= 1 + 1e-5
        assert torch.equal(feats["res5"][:, -1:], s)
        assert aux["text_embeddings"].shape == (b, 1, 64) and aux["global_embedding"].shape == (b, 64)
        assert aux["image_embeddings"].shape == (b, 64, h // 32, w // 32)


def test_plain_forward_returns_features_only(eval_models):
    bb = eval_models["fasttcm"]
    x = padded([(64, 96)])
    with torch.no_grad():
        out = bb(x)
        feats, _ = bb.forward_with_aux(x)
    assert set(out) == set(feats) and all(torch.equal(out[k], feats[k]) for k in out)


def test_many_prompts_for_classes():
    prompts = ["plane.", "ship.", "storage tank."]
    bb = build("fasttcm", PROMPTS=prompts, NUM_PROMPTS=3).eval()
    with torch.no_grad():
        feats, aux = bb.forward_with_aux(padded([(64, 64)]))
    assert aux["score_map"].shape == (1, 3, 2, 2) and feats["res5"].shape[1] == 256 + 3


@pytest.mark.parametrize("mode", ["baseline", "tcm", "fasttcm"])
def test_fpn_backbone_matches_detectron2_fpn(mode):
    fpn = build(mode, fpn=True).eval()
    assert isinstance(fpn, FastTCMFPN) and isinstance(fpn.bottom_up, FastTCMBackbone)
    assert fpn.size_divisibility == 32
    x = padded([(64, 128)])
    with torch.no_grad():
        ours, aux = fpn.forward_with_aux(x)
        ref = FPN.forward(fpn, x)  # Detectron2's own top-down pass over the same modules
    assert list(ours) == ["p2", "p3", "p4", "p5", "p6"] == list(ref)
    for k in ref:
        assert torch.equal(ours[k], ref[k])
        assert ours[k].shape[1] == fpn.output_shape()[k].channels
    assert ("score_map" in aux) == (mode != "baseline")


def test_fpn_without_p6_and_avg_fusion():
    cfg = tiny_cfg("fasttcm", fpn=True, FPN_P6=False)
    cfg.MODEL.FPN.FUSE_TYPE = "avg"
    cfg.MODEL.FPN.IN_FEATURES = ["res3", "res4", "res5"]
    fpn = build_fasttcm_fpn_backbone(cfg).eval()
    x = padded([(64, 64)])
    with torch.no_grad():
        ours = fpn(x)
        ref = FPN.forward(fpn, x)
    assert list(ours) == ["p3", "p4", "p5"]
    assert all(torch.equal(ours[k], ref[k]) for k in ref)


def _loss(feats, aux):
    loss = sum(f.float().mean() for f in feats.values())
    return loss + aux["score_map"].sum() if "score_map" in aux else loss


def _grad_ok(p):
    return p.grad is not None and p.grad.abs().sum() > 0


def test_gradients_fasttcm_reach_learnables_never_text_encoder():
    bb = build("fasttcm").train()
    _loss(*bb.forward_with_aux(padded([(64, 96), (64, 96)]))).backward()
    text = bb.text
    assert _grad_ok(text.meta_query)
    assert _grad_ok(text.prompt_encoder.context)
    assert all(_grad_ok(p) for p in text.prompt_encoder.prompt_generator.parameters())
    assert _grad_ok(bb.bsm.proj.weight)
    assert _grad_ok(bb.visual_prompt.gamma) and _grad_ok(bb.text_context.gamma)
    for dec in (bb.visual_prompt.decoder, bb.text_context.decoder):
        assert _grad_ok(dec.query_in[1].weight) and _grad_ok(dec.memory_in[1].weight) and _grad_ok(dec.out[1].weight)
    # (random open_clip init zeroes each block's last BN scale, so with frozen BN only the stem and the
    # shortcut convolutions of the image encoder receive gradients here)
    assert _grad_ok(bb.image_encoder.visual.conv1.weight)
    shortcut = bb.image_encoder.visual.layer4[0].downsample  # [avgpool, conv, FrozenBN]
    assert _grad_ok(shortcut[1].weight) and not shortcut[2].weight.requires_grad
    assert _grad_ok(bb.image_encoder.visual.attnpool.q_proj.weight)
    text_encoder = text.prompt_encoder.text_encoder
    assert all(not p.requires_grad and p.grad is None for p in text_encoder.parameters())


def test_gradients_tcm_reach_prompt_generator_from_image():
    bb = build("tcm").train()
    _loss(*bb.forward_with_aux(padded([(64, 64)]))).backward()
    assert _grad_ok(bb.text.context) and _grad_ok(bb.text.prompt_generator.fc1.weight)
    assert bb.bsm is None
    assert all(p.grad is None for p in bb.text.text_encoder.parameters())


def test_baseline_has_no_text_branch_and_trains():
    bb = build("baseline").train()
    assert bb.text is None and bb.image_encoder.visual.attnpool is None
    assert not any(isinstance(m, CLIPTextEncoder) for m in bb.modules())
    _loss(*bb.forward_with_aux(padded([(64, 64)]))).backward()
    assert _grad_ok(bb.image_encoder.visual.conv1.weight)


def _text_encoder_calls(bb):
    calls = []
    for m in bb.modules():
        if isinstance(m, CLIPTextEncoder):
            m.register_forward_hook(lambda *a: calls.append(1))
    return calls


def test_fasttcm_eval_runs_text_encoder_once_tcm_per_batch():
    fast, tcm = build("fasttcm").eval(), build("tcm").eval()
    c_fast, c_tcm = _text_encoder_calls(fast), _text_encoder_calls(tcm)
    with torch.no_grad():
        for seed in range(3):
            x = padded([(64, 64), (64, 64)], seed=seed)
            fast(x)
            tcm(x)
    assert len(c_fast) == 1 and len(c_tcm) == 3
    fast.train()
    fast(padded([(64, 64)]))
    assert len(c_fast) == 2  # training recomputes every step


def test_cached_and_uncached_outputs_agree():
    bb = build("fasttcm").eval()
    x = padded([(64, 96), (40, 70)])
    with torch.no_grad():
        cached_feats, cached_aux = bb.forward_with_aux(x)
        again, _ = bb.forward_with_aux(x)  # served from the cache
    live_feats, live_aux = bb.forward_with_aux(x)  # grad enabled: recomputed through the text encoder
    assert live_aux["score_map"].requires_grad
    assert torch.allclose(cached_aux["score_map"], live_aux["score_map"], atol=1e-6)
    for k in cached_feats:
        assert torch.allclose(cached_feats[k], live_feats[k], atol=1e-6)
        assert torch.equal(cached_feats[k], again[k])


def _export_tool():
    return load_tool("export_text_embeddings")


def test_offline_text_embeddings_skip_text_encoder_and_match(tmp_path):
    trained = build("fasttcm", fpn=True, seed=3).eval()
    ckpt = tmp_path / "model_final.pth"
    torch.save({"model": {"backbone." + k: v for k, v in trained.state_dict().items()}, "iteration": 9}, ckpt)
    out = tmp_path / "text_embeddings.pth"
    assert _export_tool().main(["--weights", str(ckpt), "--output", str(out)] + [str(v) for v in TINY_OPTS]) == 0
    with torch.no_grad():
        expected = trained.bottom_up.text_embeddings()
    assert torch.allclose(torch.load(out, weights_only=True)["text_embeddings"], expected, atol=1e-6)

    offline = build("fasttcm", fpn=True, seed=4, TEXT_EMBEDDINGS_FILE=str(out))
    assert not any(isinstance(m, CLIPTextEncoder) for m in offline.modules())
    incompatible = offline.load_state_dict(trained.state_dict(), strict=False)
    assert not incompatible.missing_keys
    assert all(k.startswith("bottom_up.text.") for k in incompatible.unexpected_keys)
    offline.eval()
    x = padded([(64, 96)])
    with torch.no_grad():
        a, aux_a = trained.forward_with_aux(x)
        b, aux_b = offline.forward_with_aux(x)
    assert torch.allclose(aux_a["score_map"], aux_b["score_map"], atol=1e-6)
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


def test_export_refuses_checkpoint_without_text_branch(tmp_path):
    ckpt = tmp_path / "baseline.pth"
    torch.save({"model": {"backbone." + k: v for k, v in build("baseline").state_dict().items()}}, ckpt)
    with pytest.raises(SystemExit, match="lacks text-branch weights"):
        _export_tool().main(["--weights", str(ckpt), "--output", str(tmp_path / "t.pth")] + [str(v) for v in TINY_OPTS])


def test_offline_file_for_other_prompts_refused(tmp_path):
    out = tmp_path / "t.pth"
    _export_tool().main(["--output", str(out)] + [str(v) for v in TINY_OPTS])
    with pytest.raises(ValueError, match="holds embeddings of the prompts"):
        build("fasttcm", TEXT_EMBEDDINGS_FILE=str(out), PROMPTS=["plane.", "ship."])


def test_bad_configs_refused():
    with pytest.raises(ValueError, match="NUM_PROMPTS is 15 but MODEL.FASTTCM.PROMPTS has 1"):
        build("fasttcm", NUM_PROMPTS=15)
    with pytest.raises(ValueError, match="needs 18 text positions"):
        build("tcm", CONTEXT_LENGTH=12)
    with pytest.raises(ValueError, match="MODE must be one of"):
        build("fast")
    with pytest.raises(ValueError, match="PROMPTS is empty"):
        build("fasttcm", PROMPTS=[])
    with pytest.raises(ValueError, match="must be one of.*RN50"):
        build("baseline", **{"CLIP.NAME": "RN5O"})


def test_bad_inputs_refused(eval_models):
    bb = eval_models["fasttcm"]
    with pytest.raises(ValueError, match="multiple of 32.*ImageList"):
        bb(torch.randn(1, 3, 70, 64))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        bb(torch.randn(1, 1, 64, 64))


def test_input_normalization_helper_and_warning(caplog):
    cfg = tiny_cfg("baseline")
    assert cfg.INPUT.FORMAT == "RGB" and cfg.MODEL.PIXEL_MEAN == pytest.approx(CLIP_PIXEL_MEAN)
    with caplog.at_level(logging.WARNING, logger="fasttcm.modeling.backbone"):
        build_fasttcm_backbone(cfg)
    assert "CLIP's input normalization" not in caplog.text
    cfg.MODEL.PIXEL_MEAN = [103.53, 116.28, 123.675]  # Detectron2's BGR ImageNet default
    with caplog.at_level(logging.WARNING, logger="fasttcm.modeling.backbone"):
        build_fasttcm_backbone(cfg)
    assert "CLIP's input normalization" in caplog.text


def test_rn50_interface_contract():
    """The real RN50 architecture (random weights): channels 256/512/1024/2048+K, E = 1024, text width 512."""
    cfg = tiny_cfg("fasttcm", fpn=True, **{"CLIP.NAME": "RN50"})
    cfg.MODEL.FASTTCM.DECODER_WIDTH = 256
    fpn = build_backbone(cfg).eval()
    bb = fpn.bottom_up
    assert {k: v.channels for k, v in bb.output_shape().items()} == {
        "res2": 256, "res3": 512, "res4": 1024, "res5": 2049}
    assert bb.bsm.proj.weight.shape == (1024, 1024)
    assert bb.text.prompt_encoder.context.shape == (4, 512) and bb.text.meta_query.shape == (1, 1024)
    with torch.no_grad():
        feats, aux = fpn.forward_with_aux(padded([(64, 96)]))
    assert aux["score_map"].shape == (1, 1, 2, 3) and aux["global_embedding"].shape == (1, 1024)
    assert {k: tuple(v.shape[1:]) for k, v in feats.items()} == {
        "p2": (256, 16, 24), "p3": (256, 8, 12), "p4": (256, 4, 6), "p5": (256, 2, 3), "p6": (256, 1, 2)}


def test_checkpoint_records_its_dense_pool(tmp_path, caplog):
    from detectron2.checkpoint import DetectionCheckpointer

    trained = build("fasttcm", fpn=True, seed=5, DENSE_POOL="attention")
    DetectionCheckpointer(trained, save_dir=str(tmp_path)).save("attn")
    path = str(tmp_path / "attn.pth")
    same = build("fasttcm", fpn=True, seed=6, DENSE_POOL="attention")
    DetectionCheckpointer(same).load(path)
    assert torch.equal(same.state_dict()["bottom_up.image_encoder.visual.attnpool.q_proj.weight"],
                       trained.state_dict()["bottom_up.image_encoder.visual.attnpool.q_proj.weight"])
    with pytest.raises(ValueError, match=r"trained with MODEL.FASTTCM.DENSE_POOL 'attention', but this model uses "
                                         r"'value'.*DENSE_POOL attention"):
        DetectionCheckpointer(build("fasttcm", fpn=True)).load(path)
    # a checkpoint from before the entry existed loads, with a warning that says what was assumed
    old = {k: v for k, v in trained.state_dict().items() if not k.endswith("dense_pool_id")}
    with caplog.at_level(logging.WARNING, logger="fasttcm"):
        build("fasttcm", fpn=True).load_state_dict(old, strict=False)
    assert "does not record its dense pool" in caplog.text and "'value'" in caplog.text
    # the baseline has no pool and no entry
    assert not any(k.endswith("dense_pool_id") for k in build("baseline").state_dict())
