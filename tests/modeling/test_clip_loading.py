"""CLIP loading: names, weight files in OpenAI / open_clip / TorchScript / converted layouts, QuickGELU, errors."""
import warnings

import pytest
import torch
from open_clip.transformer import QuickGELU
from torch import nn

import fasttcm.modeling  # noqa: F401  (registers fasttcm's backbones and meta-architectures)
from fasttcm.modeling.clip import (
    TINY_CLIP_NAME,
    available_clip_names,
    build_clip_model,
    build_clip_visual,
    clip_model_config,
    clip_state_dict_for_export,
    read_clip_state_dict,
)

OPENAI_META = {"input_resolution": torch.tensor(64), "context_length": torch.tensor(77),
               "vocab_size": torch.tensor(49408)}


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return build_clip_model(TINY_CLIP_NAME)


def _inputs():
    g = torch.Generator().manual_seed(1)
    image = torch.randn(2, 3, 64, 64, generator=g)
    text = torch.zeros(2, 77, dtype=torch.long)
    text[0, :4] = torch.tensor([49406, 518, 1346, 49407])
    text[1, :3] = torch.tensor([49406, 2368, 49407])
    return image, text


def _outputs(model):
    image, text = _inputs()
    with torch.no_grad():
        return model.encode_image(image), model.encode_text(text)


def _assert_same_outputs(a, b):
    for x, y in zip(_outputs(a), _outputs(b)):
        assert torch.equal(x, y)


def _uses_quick_gelu(model) -> bool:
    return any(isinstance(m, QuickGELU) for m in model.modules())


def test_available_names_are_resnets_plus_tiny():
    names = available_clip_names()
    assert {"RN50", "RN101", "RN50x4", TINY_CLIP_NAME} <= set(names)
    assert not any(n.startswith("ViT") for n in names)
    assert clip_model_config("RN50")["vision_cfg"]["layers"] == [3, 4, 6, 3]


@pytest.mark.parametrize("name", ["RN51", "ViT-B-32"])
def test_unknown_or_non_resnet_name_lists_available(name):
    with pytest.raises(ValueError, match="RN50.*RN101|RN101.*RN50") as e:
        build_clip_model(name)
    assert name in str(e.value) and TINY_CLIP_NAME in str(e.value)


def test_tiny_model_is_clip_resnet_architecture(tiny):
    from open_clip.modified_resnet import AttentionPool2d, ModifiedResNet

    assert isinstance(tiny.visual, ModifiedResNet) and isinstance(tiny.visual.attnpool, AttentionPool2d)
    assert len(tiny.transformer.resblocks) == 2
    assert _uses_quick_gelu(tiny)  # CLIP ResNets default to QuickGELU
    assert not _uses_quick_gelu(build_clip_model(TINY_CLIP_NAME, quick_gelu=False))


def test_openai_layout_state_dict_reproduces_outputs(tiny, tmp_path):
    """A checkpoint in OpenAI's layout (open_clip's keys + metadata) loads into an identical model."""
    from open_clip.model import build_model_from_openai_state_dict

    sd = {**tiny.state_dict(), **OPENAI_META}
    # open_clip's own reader of OpenAI state dicts accepts this layout (it rounds weights to fp16 on the way)
    rebuilt = build_model_from_openai_state_dict(dict(sd), cast_dtype=None).float()
    for x, y in zip(_outputs(tiny), _outputs(rebuilt)):
        assert torch.allclose(x, y, atol=1e-2)
    path = tmp_path / "openai_layout.pt"
    torch.save(sd, path)
    loaded, from_openai = read_clip_state_dict(str(path))
    assert from_openai and not any(k in loaded for k in OPENAI_META)
    model = build_clip_model(TINY_CLIP_NAME, str(path), quick_gelu=False)  # OpenAI weights force QuickGELU
    assert _uses_quick_gelu(model)
    _assert_same_outputs(tiny, model)


def test_open_clip_checkpoint_layouts(tiny, tmp_path):
    """{'state_dict': ...} with DDP's 'module.' prefix, as open_clip's training writes it."""
    path = tmp_path / "epoch_1.pt"
    torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in tiny.state_dict().items()}}, path)
    sd, from_openai = read_clip_state_dict(str(path))
    assert not from_openai and set(sd) == set(tiny.state_dict())
    _assert_same_outputs(tiny, build_clip_model(TINY_CLIP_NAME, str(path)))


def test_torchscript_archive_like_openai_rn50_pt(tiny, tmp_path):
    """OpenAI ships a TorchScript archive whose state_dict holds the weights and the metadata entries."""

    class Archive(nn.Module):
        def __init__(self, clip):
            super().__init__()
            for n, c in clip.named_children():
                self.add_module(n, c)
            for n, p in clip.named_parameters(recurse=False):
                self.register_parameter(n, p)
            for n, v in OPENAI_META.items():
                self.register_buffer(n, v.clone())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    path = str(tmp_path / "RN50_like.pt")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.script is deprecated, but OpenAI used it
        torch.jit.script(Archive(build_clip_model(TINY_CLIP_NAME))).save(path)
    sd, from_openai = read_clip_state_dict(path)
    assert from_openai
    ref = build_clip_model(TINY_CLIP_NAME)
    ref.load_state_dict(sd)
    model = build_clip_model(TINY_CLIP_NAME, path)
    _assert_same_outputs(ref, model)


def test_converter_round_trip(tiny, tmp_path):
    from conftest import load_tool

    tool = load_tool("convert_clip_weights")
    src = tmp_path / "src.pt"
    torch.save({**tiny.state_dict(), **OPENAI_META}, src)
    out = tmp_path / "converted.pth"
    assert tool.main(["--name", TINY_CLIP_NAME, "--weights", str(src), "--output", str(out)]) == 0
    written = torch.load(out, weights_only=True)
    assert all(k in written for k in OPENAI_META)  # stays marked as OpenAI weights (QuickGELU)
    assert all(v.dtype != torch.float16 for v in written.values())
    _assert_same_outputs(tiny, build_clip_model(TINY_CLIP_NAME, str(out)))


def test_export_adds_metadata_only_when_asked(tiny):
    assert not any(k in clip_state_dict_for_export(tiny, False) for k in OPENAI_META)
    sd = clip_state_dict_for_export(tiny, True)
    assert int(sd["input_resolution"]) == 64 and int(sd["context_length"]) == 77


def test_weights_that_do_not_fit_name_keys(tiny, tmp_path):
    sd = dict(tiny.state_dict())
    del sd["ln_final.weight"]
    sd["visual.extra.weight"] = torch.zeros(3)
    sd["text_projection"] = torch.zeros(5, 5)
    path = tmp_path / "bad.pt"
    torch.save(sd, path)
    with pytest.raises(ValueError) as e:
        build_clip_model(TINY_CLIP_NAME, str(path))
    msg = str(e.value)
    assert "missing keys: ln_final.weight" in msg
    assert "unexpected keys: visual.extra.weight" in msg
    assert "text_projection: file (5, 5)" in msg
    with pytest.raises(ValueError, match="visual.extra.weight"):
        build_clip_visual(TINY_CLIP_NAME, str(path))


def test_rn50_weights_into_tiny_name_refused_with_hint(tmp_path):
    path = tmp_path / "tiny_state.pt"
    torch.save(build_clip_model(TINY_CLIP_NAME).state_dict(), path)
    with pytest.raises(ValueError, match="check MODEL.FASTTCM.CLIP.NAME"):
        build_clip_visual("RN101", str(path))


def test_bad_weight_sources():
    with pytest.raises(FileNotFoundError):
        build_clip_model(TINY_CLIP_NAME, "/no/such/RN50.pt")
    with pytest.raises(ValueError, match="neither an existing file nor a pretrained tag"):
        build_clip_visual("RN50", "not-a-tag")
    with pytest.raises(ValueError, match="no pretrained weights"):
        build_clip_model(TINY_CLIP_NAME, "openai")


def test_non_state_dict_file_refused(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="expected a state dict"):
        read_clip_state_dict(str(path))


def test_visual_only_build_matches_full_model_image_tower(tiny, tmp_path):
    path = tmp_path / "w.pt"
    torch.save(tiny.state_dict(), path)
    visual = build_clip_visual(TINY_CLIP_NAME, str(path))
    image, _ = _inputs()
    with torch.no_grad():
        assert torch.equal(visual(image), tiny.encode_image(image))
