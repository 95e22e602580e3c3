"""CLIP image encoder (res2..res5, dense attention pool) and text encoder (embeddings in, frozen)."""
import pytest
import torch
import torch.nn.functional as F
from detectron2.layers import FrozenBatchNorm2d
from open_clip.tokenizer import SimpleTokenizer

import fasttcm.modeling  # noqa: F401  (registers fasttcm's backbones and meta-architectures)
from fasttcm.modeling.clip import (
    TINY_CLIP_NAME,
    CLIPImageEncoder,
    CLIPTextEncoder,
    build_clip_model,
    resize_attnpool_positional_embedding,
)


def _tiny(seed=0):
    torch.manual_seed(seed)
    return build_clip_model(TINY_CLIP_NAME)


def test_image_encoder_shapes_and_strides():
    enc = CLIPImageEncoder(_tiny().visual)
    x = torch.randn(2, 3, 96, 160)
    feats = enc(x)
    shapes = enc.output_shape()
    assert list(feats) == ["res2", "res3", "res4", "res5"]
    for name, f in feats.items():
        s = shapes[name]
        assert f.shape == (2, s.channels, 96 // s.stride, 160 // s.stride)
    assert [shapes[n].channels for n in feats] == [32, 64, 128, 256]
    assert [shapes[n].stride for n in feats] == [4, 8, 16, 32]


def test_rn50_channel_layout_without_building_weights():
    # the RN50 numbers follow from the stem width alone; checked on a cheap config with RN50's width
    from open_clip.modified_resnet import ModifiedResNet

    visual = ModifiedResNet(layers=[1, 1, 1, 1], output_dim=1024, heads=32, image_size=224, width=64)
    enc = CLIPImageEncoder(visual)
    assert [enc.output_shape()[k].channels for k in ("res2", "res3", "res4", "res5")] == [256, 512, 1024, 2048]
    assert enc.embed_dim == 1024


@pytest.mark.parametrize("dense_pool", ["attention", "value"])
def test_global_embedding_equals_clip_image_embedding_on_native_grid(dense_pool):
    clip = _tiny()
    x = torch.randn(2, 3, 64, 64)  # tiny-test's pre-training size: 2x2 grid, no resize
    with torch.no_grad():
        ref = clip.encode_image(x)
        enc = CLIPImageEncoder(clip.visual, norm="BN", dense_pool=dense_pool)
        g, dense = enc.pool(enc(x)["res5"])
    assert torch.allclose(g, ref, atol=1e-6)
    assert dense.shape == (2, 64, 2, 2)


def test_dense_modes_follow_their_definitions():
    clip = _tiny()
    enc = CLIPImageEncoder(clip.visual, dense_pool="value")
    ap = enc.visual.attnpool
    res5 = torch.randn(1, 256, 3, 5)
    with torch.no_grad():
        _, dense_v = enc.pool(res5)
        tokens = res5.flatten(2).transpose(1, 2)
        tokens = torch.cat([tokens.mean(1, keepdim=True), tokens], 1)
        tokens = tokens + resize_attnpool_positional_embedding(ap.positional_embedding, 3, 5)
        # value path: c_proj(v_proj(token)) for every pixel token
        assert torch.allclose(dense_v, ap.c_proj(ap.v_proj(tokens[:, 1:])).transpose(1, 2).reshape(1, 64, 3, 5),
                              atol=1e-5)
        # attention path: PyTorch's multi-head attention over all tokens with CLIP's projections
        enc.dense_pool = "attention"
        g, dense_a = enc.pool(res5)
        ref, _ = F.multi_head_attention_forward(
            tokens.transpose(0, 1), tokens.transpose(0, 1), tokens.transpose(0, 1), 256, ap.num_heads, None,
            torch.cat([ap.q_proj.bias, ap.k_proj.bias, ap.v_proj.bias]), None, None, False, 0.0,
            ap.c_proj.weight, ap.c_proj.bias, training=False, need_weights=False, use_separate_proj_weight=True,
            q_proj_weight=ap.q_proj.weight, k_proj_weight=ap.k_proj.weight, v_proj_weight=ap.v_proj.weight)
        ref = ref.transpose(0, 1)
    assert torch.allclose(g, ref[:, 0], atol=1e-5)
    assert torch.allclose(dense_a, ref[:, 1:].transpose(1, 2).reshape(1, 64, 3, 5), atol=1e-5)


def test_value_path_is_folded_and_cached_only_without_gradients():
    enc = CLIPImageEncoder(_tiny().visual, dense_pool="value")
    ap = enc.visual.attnpool
    res5 = torch.randn(2, 256, 3, 4)
    g_live, dense_live = enc.pool(res5)  # gradients wanted: the projections run one after the other, uncached
    assert not enc._value_fold.has_value and not enc._resized_pos.has_value
    (g_live.sum() + dense_live.sum()).backward()
    for p in (ap.v_proj.weight, ap.c_proj.weight, ap.q_proj.weight, ap.k_proj.weight, ap.positional_embedding):
        assert p.grad is not None and p.grad.abs().sum() > 0
    with torch.no_grad():
        g1, dense1 = enc.pool(res5)
        fold = enc._value_fold._value
        g2, dense2 = enc.pool(res5)
        assert enc._value_fold._value is fold  # second image: the folded weights are reused
    assert torch.allclose(dense1, dense_live, atol=1e-5) and torch.allclose(g1, g_live, atol=1e-5)
    assert torch.equal(dense1, dense2) and torch.equal(g1, g2)
    with torch.no_grad():  # an in-place change (an optimizer step, loaded weights) refolds
        ap.c_proj.weight.mul_(2.0)
        ap.c_proj.bias.zero_()
        _, dense3 = enc.pool(res5)
    assert enc._value_fold._value is not fold
    _, dense_ref = enc.pool(res5)  # with gradients: unfused, from the changed weights
    assert not torch.allclose(dense3, dense1, atol=1e-3)
    assert torch.allclose(dense3, dense_ref.detach(), atol=1e-5)


def test_caches_made_in_inference_mode_are_not_reused_by_autograd():
    enc = CLIPImageEncoder(_tiny().visual, dense_pool="value")
    enc.visual.attnpool.requires_grad_(False)  # a frozen pool under a trainable trunk
    res5 = torch.randn(1, 256, 2, 3)
    with torch.inference_mode():
        _, ref = enc.pool(res5)
    x = res5.clone().requires_grad_(True)
    _, dense = enc.pool(x)  # inference tensors cannot be saved for backward: the caches are remade
    dense.sum().backward()
    assert x.grad is not None and torch.allclose(dense.detach(), ref, atol=1e-6)


def test_resized_positional_embedding_follows_the_grid():
    enc = CLIPImageEncoder(_tiny().visual)
    pos = enc.visual.attnpool.positional_embedding
    with torch.no_grad():
        a = enc._positional_embedding(enc.visual.attnpool, 3, 5)
        b = enc._positional_embedding(enc.visual.attnpool, 4, 2)
    assert torch.equal(a, resize_attnpool_positional_embedding(pos, 3, 5).detach())
    assert torch.equal(b, resize_attnpool_positional_embedding(pos, 4, 2).detach())


def test_positional_embedding_resize():
    pos = torch.randn(1 + 7 * 7, 16)
    assert resize_attnpool_positional_embedding(pos, 7, 7) is pos
    out = resize_attnpool_positional_embedding(pos, 20, 12)
    assert out.shape == (1 + 240, 16) and torch.equal(out[0], pos[0])
    grid = pos[1:].reshape(1, 7, 7, 16).permute(0, 3, 1, 2)
    ref = F.interpolate(grid, size=(20, 12), mode="bicubic", align_corners=False)
    assert torch.allclose(out[1:], ref.permute(0, 2, 3, 1).reshape(240, 16))
    with pytest.raises(ValueError, match="square"):
        resize_attnpool_positional_embedding(torch.randn(11, 4), 2, 2)


def test_norm_and_freeze_options():
    enc = CLIPImageEncoder(_tiny().visual, norm="FrozenBN", freeze_at=2)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in enc.modules())
    assert any(isinstance(m, FrozenBatchNorm2d) for m in enc.modules())
    assert not any(p.requires_grad for p in enc.visual.conv1.parameters())
    assert not any(p.requires_grad for p in enc.visual.layer1.parameters())
    assert all(p.requires_grad for p in enc.visual.layer2.parameters())
    assert all(p.requires_grad for p in enc.visual.attnpool.parameters())
    bn = CLIPImageEncoder(_tiny().visual, norm="BN")
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in bn.modules())
    with pytest.raises(ValueError, match="NORM"):
        CLIPImageEncoder(_tiny().visual, norm="GN")
    with pytest.raises(ValueError, match="FREEZE_AT"):
        CLIPImageEncoder(_tiny().visual, freeze_at=6)


def test_without_pool():
    enc = CLIPImageEncoder(_tiny().visual, with_pool=False)
    assert enc.visual.attnpool is None and enc.embed_dim == 0
    with pytest.raises(RuntimeError, match="baseline"):
        enc.pool(torch.randn(1, 256, 2, 2))


def _tokens(prompts, length=77):
    tok = SimpleTokenizer()
    out = torch.zeros(len(prompts), length, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids = [tok.sot_token_id] + tok.encode(p) + [tok.eot_token_id]
        out[i, : len(ids)] = torch.tensor(ids)
    return out


def test_text_encoder_matches_clip_and_ignores_padding_length():
    clip = _tiny()
    tokens = _tokens(["a photo of text.", "ship"])
    eot = tokens.argmax(dim=-1)
    with torch.no_grad():
        ref = clip.encode_text(tokens)
        enc = CLIPTextEncoder(clip)
        full = enc(enc.embed_tokens(tokens), eot)
        short = enc(enc.embed_tokens(tokens[:, :8]), eot)  # causal attention: padding never matters
    assert torch.allclose(full, ref, atol=1e-6)
    assert torch.allclose(short, ref, atol=1e-5)
    assert enc.width == 64 and enc.embed_dim == 64 and enc.max_context_length == 77
    assert not any(p.requires_grad for p in enc.parameters())
    with pytest.raises(ValueError, match="exceed"):
        enc(torch.zeros(1, 78, 64), torch.tensor([3]))


def test_text_encoder_passes_gradients_to_inputs_only():
    enc = CLIPTextEncoder(_tiny())
    x = enc.embed_tokens(_tokens(["text"], 8)).clone().requires_grad_(True)
    enc(x, torch.tensor([2])).sum().backward()
    assert x.grad is not None and x.grad[:, :3].abs().sum() > 0
    assert torch.all(x.grad[:, 3:] == 0)  # after the end token: no influence
    assert all(p.grad is None for p in enc.parameters())
