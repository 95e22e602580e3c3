"""fasttcm.checkpoint: weight files cannot run code, every bad file is named, mismatches are summarised, saves
are atomic."""
import logging
import os
import pickle
import re

import numpy as np
import pytest
import torch
from torch import nn

from fasttcm.checkpoint import CheckpointError, FastTCMCheckpointer, read_checkpoint_file

from conftest import REPO


class _Net(nn.Module):
    def __init__(self, heads=True):
        super().__init__()
        self.fc1 = nn.Linear(3, 2)
        if heads:
            self.head = nn.Linear(2, 1)


class _Evil:
    """Unpickling this runs ``os.system`` (creates ``marker``) — what a crafted model file does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def _evil_pkl(tmp_path, protocol=2):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"model": {"fc1.weight": _Evil(marker)}, "__author__": "x"}, protocol=protocol))
    return path, marker


@pytest.mark.parametrize("protocol", [2, 4])
def test_crafted_pkl_cannot_run_code(tmp_path, protocol):
    path, marker = _evil_pkl(tmp_path, protocol)
    with pytest.raises(CheckpointError) as e:
        FastTCMCheckpointer(_Net()).load(str(path))
    assert not marker.exists()
    msg = str(e.value)
    assert str(path) in msg and "refused unsafe content" in msg
    assert re.search(r"refused global (posix|nt|os)\.system", msg)


def test_crafted_torch_file_cannot_run_code(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pth"
    torch.save({"model": {"fc1.weight": _Evil(marker)}}, str(path))
    with pytest.raises(CheckpointError) as e:
        FastTCMCheckpointer(_Net()).load(str(path))
    assert not marker.exists()
    assert str(path) in str(e.value) and "refused unsafe content" in str(e.value)


def test_detectron2_model_zoo_pkl_layout_loads(tmp_path):
    """The model zoo's .pkl: a protocol-2 pickle of {"model": {name: ndarray}, "__author__": ...}."""
    src = _Net()
    blobs = {k: v.detach().numpy().copy() + 1.0 for k, v in src.state_dict().items()}
    path = tmp_path / "zoo.pkl"
    path.write_bytes(pickle.dumps({"model": blobs, "__author__": "Detectron2 Model Zoo"}, protocol=2))
    dst = _Net()
    FastTCMCheckpointer(dst, require_complete=True).load(str(path))
    for k, v in dst.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), blobs[k])


def test_numpy1_pickles_load(tmp_path):
    """Pickles written by numpy 1 name ``numpy.core.multiarray``; numpy 2 writes ``numpy._core.multiarray``."""
    blobs = {"fc1.weight": np.full((2, 3), 2.0, np.float32), "fc1.bias": np.arange(2, dtype=np.float64)}
    raw = pickle.dumps({"model": blobs, "__author__": "old"}, protocol=2)
    raw = raw.replace(b"cnumpy._core.multiarray\n", b"cnumpy.core.multiarray\n")
    assert b"numpy.core.multiarray" in raw
    path = tmp_path / "np1.pkl"
    path.write_bytes(raw)
    net = _Net(heads=False)
    FastTCMCheckpointer(net).load(str(path))
    assert torch.equal(net.fc1.weight, torch.full((2, 3), 2.0))
    assert net.fc1.bias.dtype == torch.float32 and net.fc1.bias.tolist() == [0.0, 1.0]


def test_caffe2_pkl_layout_loads_with_name_matching(tmp_path):
    """Caffe2/Detectron1 model zoo: {"blobs": {c2 name: ndarray}}, ``*_momentum`` dropped, names converted."""
    blobs = {"fc1_w": np.full((2, 3), 3.0, np.float32), "fc1_b": np.full(2, -1.0, np.float32),
             "fc1_w_momentum": np.zeros((2, 3), np.float32)}
    path = tmp_path / "c2.pkl"
    path.write_bytes(pickle.dumps({"blobs": blobs}, protocol=2))
    net = _Net(heads=False)
    FastTCMCheckpointer(net).load(str(path))
    assert torch.equal(net.fc1.weight, torch.full((2, 3), 3.0))
    assert torch.equal(net.fc1.bias, torch.full((2,), -1.0))


@pytest.mark.parametrize("case,expect", [
    ("missing", "file not found"),
    ("empty", "the file is empty"),
    ("truncated_zip", "truncated or corrupt"),
    ("truncated_pkl", "truncated or corrupt"),
    ("text", "not a torch or pickle file"),
    ("list", "not a checkpoint: it holds a list"),
    ("non_tensor", "not a checkpoint: 1 entry of 'model' is not a tensor"),
    ("folder", "is a folder"),
])
def test_bad_files_are_named_with_the_reason(tmp_path, case, expect):
    path = tmp_path / f"{case}.pth"
    if case == "empty":
        path.write_bytes(b"")
    elif case == "truncated_zip":
        torch.save({"model": _Net().state_dict()}, str(path))
        path.write_bytes(path.read_bytes()[:300])
    elif case == "truncated_pkl":
        path = tmp_path / "t.pkl"
        path.write_bytes(pickle.dumps({"model": {"a": np.zeros(100)}}, protocol=2)[:60])
    elif case == "text":
        path = tmp_path / "weights.bin2"
        path.write_text("hello, I am not weights\n")
    elif case == "list":
        torch.save([1, 2, 3], str(path))
    elif case == "non_tensor":
        torch.save({"model": {"fc1.weight": "a string"}}, str(path))
    elif case == "folder":
        path.mkdir()
    with pytest.raises(CheckpointError) as e:
        FastTCMCheckpointer(_Net()).load(str(path))
    assert str(path) in str(e.value)
    assert expect in str(e.value)
    assert read_checkpoint_file is not None


def test_one_summary_names_the_file_and_counts_each_kind(tmp_path, caplog):
    sd = {"module." + k: v for k, v in _Net(heads=False).state_dict().items()}  # saved from a DDP model
    sd["module.fc1.bias"] = torch.zeros(5)  # wrong shape
    sd["module.extra.weight"] = torch.zeros(1)  # unexpected
    path = tmp_path / "ddp.pth"
    torch.save({"model": sd}, str(path))
    with caplog.at_level(logging.WARNING):
        FastTCMCheckpointer(_Net()).load(str(path))
    summaries = [r.getMessage() for r in caplog.records if str(path) in r.getMessage()]
    assert len(summaries) == 1, summaries
    s = summaries[0]
    assert "loaded 1 of 4 model tensors" in s
    assert "2 missing" in s and "head.weight" in s and "head.bias" in s
    assert "1 unexpected" in s and "extra.weight" in s
    assert "1 of the wrong shape" in s and "(5,) in the file vs (2,) in the model" in s
    assert "stripped the DistributedDataParallel prefix 'module.' from 3 keys" in s


def test_inference_refuses_weights_without_the_heads(tmp_path):
    path = tmp_path / "backbone_only.pth"
    torch.save({"model": _Net(heads=False).state_dict()}, str(path))
    with pytest.raises(CheckpointError) as e:
        FastTCMCheckpointer(_Net(), require_complete=True).load(str(path))
    assert "2 missing" in str(e.value) and "head.weight" in str(e.value)
    assert "ALLOW_INCOMPLETE_WEIGHTS" in str(e.value)
    FastTCMCheckpointer(_Net(), require_complete=False).load(str(path))  # training: a warning only


def test_save_is_atomic(tmp_path, monkeypatch):
    net = _Net()
    ck = FastTCMCheckpointer(net, save_dir=str(tmp_path))
    ck.save("model_0000009")
    good = (tmp_path / "model_0000009.pth").read_bytes()
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000009.pth"

    real_save = torch.save

    def dying_save(obj, f):  # writes half a file, then the process "dies"
        real_save(obj, f)
        f.truncate(100)
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ck.save("model_0000009")
    with pytest.raises(KeyboardInterrupt):
        ck.save("model_0000019")
    monkeypatch.setattr(torch, "save", real_save)
    assert (tmp_path / "model_0000009.pth").read_bytes() == good
    assert not (tmp_path / "model_0000019.pth").exists()
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000009.pth"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last_checkpoint", "model_0000009.pth"]


def test_no_unsafe_reads_and_one_checkpointer_in_the_code():
    """No plain pickle.load / torch.load without weights_only=True, no DetectionCheckpointer(...) outside
    fasttcm/checkpoint.py, in fasttcm/ and tools/."""
    unsafe, d2 = [], []
    for root in ("fasttcm", "tools"):
        for p in sorted((REPO / root).rglob("*.py")):
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"pickle\.loads?\(|torch\.load\(", line) and "weights_only=True" not in line:
                    unsafe.append(f"{p}:{i}")
                if "DetectionCheckpointer(" in line and p.name != "checkpoint.py":
                    d2.append(f"{p}:{i}")
    assert unsafe == [] and d2 == []


def _script_archive(tmp_path):
    import warnings

    from fasttcm.modeling.clip.loading import TINY_CLIP_NAME, build_clip_model

    class Archive(nn.Module):  # like OpenAI's RN50.pt: the CLIP modules plus a plain tensor attribute
        def __init__(self, clip):
            super().__init__()
            for n, c in clip.named_children():
                self.add_module(n, c)
            for n, p in clip.named_parameters(recurse=False):
                self.register_parameter(n, p)
            self.register_buffer("input_resolution", torch.tensor(224))
            self.not_state = torch.ones(3)  # an attribute that is neither parameter nor buffer

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + self.not_state.sum()

    path = tmp_path / "RN50_like.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        torch.jit.script(Archive(build_clip_model(TINY_CLIP_NAME))).save(str(path))
    return path


def test_torchscript_archive_read_without_running_code_equals_jit_state_dict(tmp_path):
    import warnings

    from fasttcm.checkpoint import read_torchscript_state_dict

    path = _script_archive(tmp_path)
    mine = read_torchscript_state_dict(str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        ref = torch.jit.load(str(path), map_location="cpu").state_dict()
    assert sorted(mine) == sorted(ref) and "not_state" not in mine
    for k, v in ref.items():
        assert mine[k].dtype == v.dtype and torch.equal(mine[k], v), k


def test_torchscript_archive_with_a_crafted_pickle_is_refused(tmp_path):
    import zipfile

    from fasttcm.checkpoint import read_torchscript_state_dict

    src = _script_archive(tmp_path)
    marker = tmp_path / "pwned"
    bad = tmp_path / "bad.pt"
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(bad, "w") as zout:
        for item in zin.infolist():
            data = zin.read(item.filename)
            if item.filename.endswith("/data.pkl"):
                data = pickle.dumps(_Evil(marker), protocol=2)
            zout.writestr(item, data)
    with pytest.raises(CheckpointError) as e:
        read_torchscript_state_dict(str(bad))
    assert not marker.exists()
    assert str(bad) in str(e.value) and "refused" in str(e.value)
