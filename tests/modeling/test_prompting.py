"""Prompt tokens, language prompt generator, BSM, decoders, score map, cached/offline text embeddings."""
import pytest
import torch
import torch.nn.functional as F

import fasttcm.modeling  # noqa: F401  (registers fasttcm's backbones and meta-architectures)
from fasttcm.modeling.clip import TINY_CLIP_NAME, CLIPTextEncoder, build_clip_model
from fasttcm.modeling.prompting import (
    DEFAULT_TEXT_PROMPT,
    BimodalSimilarityMatching,
    CachedTextEmbeddings,
    CrossModalDecoder,
    OfflineTextEmbeddings,
    PromptTextEncoder,
    TextContextDecoder,
    VisualPromptGenerator,
    class_name_prompts,
    cosine_score_map,
    load_text_embeddings,
    save_text_embeddings,
    tokenize_prompts,
)

SOT, EOT = 49406, 49407


def _text_encoder(seed=0):
    torch.manual_seed(seed)
    return CLIPTextEncoder(build_clip_model(TINY_CLIP_NAME))


def test_default_prompt_fits_default_context_length():
    tokens, eot = tokenize_prompts([DEFAULT_TEXT_PROMPT], num_context=4, context_length=18)
    assert tokens.shape == (1, 18) and eot.tolist() == [17]
    row = tokens[0].tolist()
    assert row[0] == SOT and row[1:5] == [0, 0, 0, 0] and row[17] == EOT


def test_token_layout_with_padding():
    tokens, eot = tokenize_prompts(["plane.", "ground track field."], num_context=2, context_length=12)
    assert tokens.shape == (2, 12)
    for row, e in zip(tokens.tolist(), eot.tolist()):
        assert row[0] == SOT and row[1:3] == [0, 0] and row[e] == EOT and all(t == 0 for t in row[e + 1:])
        assert all(t not in (0, SOT, EOT) for t in row[3:e])
    assert eot[1] > eot[0]


def test_long_prompt_refused_with_needed_length():
    with pytest.raises(ValueError, match=r"needs 18 text positions.*CONTEXT_LENGTH is 17.*at least 18"):
        tokenize_prompts([DEFAULT_TEXT_PROMPT], num_context=4, context_length=17)
    with pytest.raises(ValueError, match="empty"):
        tokenize_prompts([], 4, 18)
    with pytest.raises(ValueError, match="no tokens"):
        tokenize_prompts(["  "], 4, 18)


def test_class_name_prompts():
    assert class_name_prompts(["small-vehicle", "ship"], "a satellite photo of a {}.") == [
        "a satellite photo of a small vehicle.", "a satellite photo of a ship."]


def test_prompt_encoder_inputs_and_outputs():
    enc = _text_encoder()
    pe = PromptTextEncoder(enc, ["plane.", "large vehicle."], num_context=3, context_length=10, cue_in_dim=64)
    x = pe.input_embeddings()
    assert x.shape == (2, 10, 64)
    assert torch.equal(x[:, 1:4], pe.context.unsqueeze(0).expand(2, -1, -1))
    assert torch.equal(x[:, 0], enc.embed_tokens(torch.full((2,), SOT)))
    cue = torch.randn(5, 64)
    xc = pe.input_embeddings(cue)
    assert xc.shape == (5, 2, 10, 64) and torch.allclose(xc - x.unsqueeze(0), cue[:, None, None].expand_as(xc))
    out = pe(torch.randn(3, 64))
    assert out.shape == (3, 2, 64)
    with pytest.raises(ValueError, match="exceeds"):
        PromptTextEncoder(enc, ["plane."], 4, 78, 64)


def test_prompt_encoder_output_independent_of_context_length():
    enc = _text_encoder()
    a = PromptTextEncoder(enc, [DEFAULT_TEXT_PROMPT], 4, 18, 64)
    b = PromptTextEncoder(enc, [DEFAULT_TEXT_PROMPT], 4, 77, 64)
    b.load_state_dict(a.state_dict())
    src = torch.randn(2, 64)
    with torch.no_grad():
        assert torch.allclose(a(src), b(src), atol=1e-5)


def test_bsm_formula_on_hand_made_tensors():
    bsm = BimodalSimilarityMatching(2)
    assert torch.equal(bsm.proj.weight, torch.eye(2))  # identity init, not all-ones
    text = torch.tensor([[3.0, 0.0], [1.0, 1.0]])  # t = (1, 0), (1/sqrt2, 1/sqrt2)
    g = torch.tensor([[0.0, 2.0]])  # g' = (0, 1)
    out = bsm(text, g)
    r = 2 ** -0.5
    expected = torch.tensor([[[1.0, 0.0], [r, r + r]]])  # <t,g'> g' + t
    assert out.shape == (1, 2, 2) and torch.allclose(out, expected)
    with torch.no_grad():
        bsm.proj.weight.copy_(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))  # P swaps: g' = (1, 0)
    assert torch.allclose(bsm(text, g), torch.tensor([[[2.0, 0.0], [r + r, r]]]))


def test_score_map_is_cosine_similarity():
    image = torch.zeros(1, 2, 1, 3)
    image[0, :, 0, 0] = torch.tensor([2.0, 0.0])
    image[0, :, 0, 1] = torch.tensor([0.0, -1.0])
    image[0, :, 0, 2] = torch.tensor([1.0, 1.0])
    text = torch.tensor([[[5.0, 0.0], [0.0, 1.0]]])
    s = cosine_score_map(image, text)
    r = 2 ** -0.5
    assert s.shape == (1, 2, 1, 3)
    assert torch.allclose(s[0, :, 0], torch.tensor([[1.0, 0.0, r], [0.0, -1.0, r]]))
    x, t = torch.randn(2, 8, 4, 5), torch.randn(2, 3, 8)
    ref = F.cosine_similarity(x.unsqueeze(1), t[:, :, :, None, None], dim=2)
    assert torch.allclose(cosine_score_map(x, t), ref, atol=1e-6)


def test_decoders_shapes_and_gamma_residuals():
    vp = VisualPromptGenerator(16, width=8, layers=2, heads=2, gamma_init=1e-3)
    tc = TextContextDecoder(16, width=8, layers=2, heads=2, gamma_init=1e-3)
    assert vp.gamma.shape == () and vp.gamma.item() == pytest.approx(1e-3)
    assert tc.gamma.shape == (16,) and torch.allclose(tc.gamma, torch.full((16,), 1e-3))
    image, text, g = torch.randn(2, 16, 3, 4), torch.randn(2, 5, 16), torch.randn(2, 16)
    out_i = vp(image, text)
    out_t = tc(text, g, image)
    assert out_i.shape == image.shape and out_t.shape == text.shape
    pixels = image.flatten(2).transpose(1, 2)
    ref_i = image + vp.gamma * vp.decoder(pixels, text).transpose(1, 2).reshape(2, 16, 3, 4)
    assert torch.allclose(out_i, ref_i, atol=1e-6)
    ref_t = text + tc.gamma * tc.decoder(text, torch.cat([g[:, None], pixels], 1))
    assert torch.allclose(out_t, ref_t, atol=1e-6)
    with torch.no_grad():
        vp.gamma.zero_()
        tc.gamma.zero_()
    assert torch.equal(vp(image, text), image) and torch.equal(tc(text, g, image), text)
    with pytest.raises(ValueError, match="divisible"):
        CrossModalDecoder(16, width=10, heads=4)


def test_cross_modal_decoder_attends_to_memory():
    dec = CrossModalDecoder(8, width=8, layers=1, heads=2).eval()
    q, m = torch.randn(1, 3, 8), torch.randn(1, 4, 8)
    assert dec(q, m).shape == (1, 3, 8)
    assert not torch.allclose(dec(q, m), dec(q, m + torch.randn_like(m)))


def _cached(seed=0):
    pe = PromptTextEncoder(_text_encoder(seed), ["plane.", "ship."], 4, 12, 64)
    return CachedTextEmbeddings(pe, 64)


def _count_calls(module):
    calls = []
    module.register_forward_hook(lambda *a: calls.append(1))
    return calls


def test_cache_in_eval_and_invalidation():
    te = _cached()
    calls = _count_calls(te.prompt_encoder.text_encoder)
    te.eval()
    with torch.no_grad():
        a = te()
        b = te()
    assert len(calls) == 1 and a is b and a.shape == (2, 64)
    te.train()
    assert not te.is_cached
    te.eval()
    with torch.no_grad():
        te()
    assert len(calls) == 2
    # loading weights drops the cache
    other = _cached(seed=1)
    te.load_state_dict(other.state_dict())
    with torch.no_grad():
        c = te()
    assert len(calls) == 3 and not torch.allclose(c, a)
    # in-place parameter changes (an optimizer step) are noticed too
    with torch.no_grad():
        te.meta_query.add_(1.0)
        d = te()
    assert len(calls) == 4 and not torch.allclose(d, c)


def test_cache_not_used_when_gradients_are_wanted():
    te = _cached().eval()
    calls = _count_calls(te.prompt_encoder.text_encoder)
    with torch.no_grad():
        cached = te()
    live = te()  # grad enabled: recomputed, differentiable
    assert len(calls) == 2 and live.requires_grad
    assert torch.allclose(cached, live, atol=1e-6)
    te.train()
    te()
    te()
    assert len(calls) == 4  # training: every call


def test_offline_embeddings_round_trip(tmp_path):
    emb = torch.randn(2, 64)
    path = str(tmp_path / "t.pth")
    save_text_embeddings(path, emb, ["plane.", "ship."], clip=TINY_CLIP_NAME)
    obj = load_text_embeddings(path)
    assert obj["clip"] == TINY_CLIP_NAME
    off = OfflineTextEmbeddings.from_file(path, ["plane.", "ship."], 64)
    assert torch.equal(off(), emb) and "embeddings" not in off.state_dict()
    with pytest.raises(ValueError, match=r"K=1"):
        OfflineTextEmbeddings.from_file(path, ["plane."], 64)
    with pytest.raises(ValueError, match="expected"):
        OfflineTextEmbeddings.from_file(path, ["plane.", "ship."], 32)
    with pytest.raises(ValueError, match="for 3 prompts"):
        save_text_embeddings(path, emb, ["a", "b", "c"])
    torch.save({"x": 1}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a text-embedding file"):
        load_text_embeddings(str(tmp_path / "bad.pth"))
