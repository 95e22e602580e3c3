"""``FastTCMCheckpointer``: the one door through which fasttcm reads and writes model weights.

Model files are shared on the internet, and a pickle can run any code while it is being read. Detectron2's
``DetectionCheckpointer`` opens ``.pkl`` model-zoo files with plain ``pickle.load``; this subclass never does:

* torch files (``.pth``, ``.pt``, ``.pyth``, anything else) are read with ``torch.load(..., weights_only=True)``;
* ``.pkl`` files (Detectron2 model zoo, Caffe2/Detectron1) go through :class:`RestrictedUnpickler`, which builds
  only numpy arrays and dtypes, ``dict``/``list``/``tuple``/``set``/``OrderedDict``, strings, bytes and numbers,
  and refuses every other global (a function or class to call) before anything is executed.

Every failure is a :class:`CheckpointError` (a ``ValueError``) that names the file and says in words what is
wrong: not found, empty, truncated or corrupt, refused unsafe content (with the refused global), or not a
checkpoint (with what was found instead).

Keys that do not fit the model are reported in **one** summary naming the file, with a count of each kind
(missing, unexpected, wrong shape) and whether a DistributedDataParallel ``module.`` prefix was stripped. With
``require_complete=True`` (``--eval-only``, the demo, :class:`fasttcm.predictor.FastTCMPredictor`) a missing or
wrong-shaped model tensor is an error: evaluating or drawing a model whose heads are random would report
meaningless numbers. ``TEST.FASTTCM.ALLOW_INCOMPLETE_WEIGHTS: True`` turns that error back into the summary
warning, for users who mean it (e.g. a detection checkpoint evaluated in a spotter config for detection only).

Saving is atomic: a checkpoint is written to a temporary file in the same folder, flushed to disk and renamed;
``last_checkpoint`` is rewritten the same way and only after the rename, so a process killed at any moment leaves
either the previous complete checkpoint or the new one, never a truncated file that ``--resume`` would pick.
"""
from __future__ import annotations

import io
import logging
import os
import pickle
import tempfile
import zipfile
from collections import OrderedDict
from typing import Any, Dict, Optional

import numpy as np
import torch

from . import _detectron2  # noqa: F401,I001  (first: supplies detectron2._C before detectron2 loads)
from detectron2.checkpoint import DetectionCheckpointer

__all__ = ["CheckpointError", "RestrictedUnpickler", "FastTCMCheckpointer", "read_checkpoint_file",
           "model_state_dict", "is_torchscript_archive", "read_torchscript_state_dict"]

logger = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A weight file that cannot be used; the message names the file and the reason."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"checkpoint {path}: {reason}")
        self.path = path
        self.reason = reason


def _latin1_bytes(data, encoding="latin1"):
    """``_codecs.encode`` as Python 3 uses it to pickle ``bytes`` at protocols < 3, and nothing else."""
    if not isinstance(data, str) or encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"refused _codecs.encode({type(data).__name__}, {encoding!r})")
    return data.encode("latin1")


def _numpy_multiarray():
    core = getattr(np, "_core", None)  # numpy >= 2
    if core is not None and hasattr(core, "multiarray"):
        return core.multiarray
    return np.core.multiarray  # pragma: no cover  (numpy 1.x)


_MA = _numpy_multiarray()
#: ``(module, name)`` -> object: everything a ``.pkl`` weight file may reference. Pickles written by numpy 1
#: name ``numpy.core.multiarray``, by numpy 2 ``numpy._core.multiarray``; Python 2 pickles name ``__builtin__``.
_SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _MA._reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _MA._reconstruct,
    ("numpy.core.multiarray", "scalar"): _MA.scalar,
    ("numpy._core.multiarray", "scalar"): _MA.scalar,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): OrderedDict,
    ("_codecs", "encode"): _latin1_bytes,
}
for _mod in ("builtins", "__builtin__"):
    for _name, _obj in (("dict", dict), ("list", list), ("tuple", tuple), ("set", set), ("frozenset", frozenset),
                        ("int", int), ("float", float), ("complex", complex), ("bool", bool), ("str", str),
                        ("bytes", bytes), ("bytearray", bytearray)):
        _SAFE_GLOBALS[(_mod, _name)] = _obj
_SAFE_GLOBALS[("__builtin__", "unicode")] = str
_SAFE_GLOBALS[("__builtin__", "long")] = int


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that can build numpy arrays, containers, strings and numbers, and nothing else.

    ``find_class`` is the only way a pickle reaches code; it admits the globals in ``_SAFE_GLOBALS`` (numpy's
    array/scalar reconstructors, ``numpy.ndarray``/``numpy.dtype``, ``OrderedDict``, builtin containers and
    number types) and raises ``pickle.UnpicklingError`` naming any other. Object arrays are safe too: their
    elements go through the same ``find_class``. Persistent ids (torch's tensor storages) are refused.
    """

    def find_class(self, module: str, name: str):
        try:
            return _SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refused global {module}.{name}") from None

    def persistent_load(self, pid):
        raise pickle.UnpicklingError(f"refused persistent id {pid!r}")


def _describe(obj) -> str:
    if isinstance(obj, dict):
        return f"a dict with {len(obj)} entries"
    return f"a {type(obj).__name__}"


def _read_pkl(path: str):
    with open(path, "rb") as f:
        try:
            return RestrictedUnpickler(f, encoding="latin1").load()
        except pickle.UnpicklingError as e:
            msg = str(e)
            if msg.startswith("refused"):
                raise CheckpointError(path, f"refused unsafe content ({msg}); a .pkl weight file may hold only "
                                            "numpy arrays, containers, strings and numbers") from None
            raise CheckpointError(path, f"truncated or corrupt pickle ({msg})") from None
        except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as e:
            raise CheckpointError(path, f"truncated or corrupt pickle ({type(e).__name__}: {e})") from None


def _read_torch(path: str):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        msg = str(e)
        if "weights_only" in msg.lower() or "unsupported global" in msg.lower():
            refused = next((ln.strip() for ln in msg.splitlines() if "GLOBAL" in ln), "")
            detail = f" ({refused})" if refused else ""
            raise CheckpointError(path, f"refused unsafe content{detail}: fasttcm reads torch files with "
                                        "weights_only=True, which admits tensors, containers and numbers only; "
                                        "convert the file to a plain state dict with a trusted tool") from None
        raise CheckpointError(path, f"truncated or corrupt torch file ({msg.splitlines()[0] if msg else e})") from None
    except (EOFError, zipfile.BadZipFile) as e:
        raise CheckpointError(path, f"truncated or corrupt ({type(e).__name__}: {e})") from None
    except RuntimeError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        if "zip" in first.lower() or "central directory" in first.lower() or "PytorchStreamReader" in first:
            raise CheckpointError(path, f"not a complete torch zip file: truncated or corrupt ({first})") from None
        raise CheckpointError(path, f"could not be read as a torch file ({first})") from None


def read_checkpoint_file(path: str):
    """Read a weight file without running code from it; returns what it holds (usually a dict).

    ``.pkl`` files use :class:`RestrictedUnpickler` unless they are in fact torch zip files; everything else uses
    ``torch.load(weights_only=True)``. Raises :class:`CheckpointError` naming ``path`` for a missing, empty,
    truncated, corrupt or unsafe file.
    """
    if not os.path.exists(path):
        raise CheckpointError(path, "file not found")
    if os.path.isdir(path):
        raise CheckpointError(path, "is a folder, not a file")
    if os.path.getsize(path) == 0:
        raise CheckpointError(path, "the file is empty")
    with open(path, "rb") as f:
        head = f.read(4)
    if path.endswith(".pkl") and head != b"PK\x03\x04":
        return _read_pkl(path)
    if path.endswith(".pkl") or head == b"PK\x03\x04" or path.endswith((".pth", ".pt", ".pyth", ".bin", ".ckpt")):
        return _read_torch(path)
    # unknown extension and not a zip: a legacy torch pickle or a plain pickle
    if head[:1] == b"\x80":
        try:
            return _read_torch(path)
        except CheckpointError as torch_error:
            try:
                return _read_pkl(path)
            except CheckpointError:
                raise torch_error from None
    raise CheckpointError(path, "not a torch or pickle file (unrecognised first bytes "
                                f"{head!r}; expected a torch zip or a pickle)")


def _check_tensors(path: str, state: dict, where: str) -> None:
    bad = [k for k, v in state.items() if not (torch.is_tensor(v) or isinstance(v, (np.ndarray, np.generic)))]
    if bad:
        raise CheckpointError(path, f"not a checkpoint: {len(bad)} entr{'y' if len(bad) == 1 else 'ies'} of "
                                    f"{where} {'is not a tensor' if len(bad) == 1 else 'are not tensors'} "
                                    f"(first: {bad[0]!r} is {_describe(state[bad[0]])})")
    bad = [k for k in state if not isinstance(k, str)]
    if bad:
        raise CheckpointError(path, f"not a checkpoint: {where} has non-string keys (first: {bad[0]!r})")


def model_state_dict(path: str, loaded: Any) -> Dict[str, Any]:
    """Detectron2's checkpoint dict from what :func:`read_checkpoint_file` returned, validated.

    Returns a dict with ``"model"`` (name -> tensor or ndarray) and the file's other entries. Handles Detectron2
    checkpoints (``{"model": ..., "iteration": ...}``), Detectron2 model-zoo ``.pkl`` (``"__author__"``), Caffe2
    ``.pkl`` (``"blobs"``, ``*_momentum`` dropped; name matching heuristics on), pycls ``.pyth``
    (``"model_state"``) and plain state dicts.
    """
    if not isinstance(loaded, dict):
        raise CheckpointError(path, f"not a checkpoint: it holds {_describe(loaded)}, expected a dict of tensors")
    if path.endswith(".pkl") and not isinstance(loaded.get("model"), dict):
        # Caffe2 / Detectron1 model zoo: a dict of blobs (detection models nest them under "blobs")
        blobs = loaded.get("blobs", loaded)
        if not isinstance(blobs, dict):
            raise CheckpointError(path, f"not a checkpoint: 'blobs' is {_describe(blobs)}")
        blobs = {k: v for k, v in blobs.items() if not str(k).endswith("_momentum")}
        _check_tensors(path, blobs, "the blobs")
        return {"model": blobs, "__author__": "Caffe2", "matching_heuristics": True}
    if path.endswith(".pkl"):
        _check_tensors(path, loaded["model"], "'model'")
        return dict(loaded)  # Detectron2 model zoo layout ("model", "__author__", maybe "matching_heuristics")
    if path.endswith(".pyth") and isinstance(loaded.get("model_state"), dict):
        state = {k: v for k, v in loaded["model_state"].items() if not str(k).endswith("num_batches_tracked")}
        _check_tensors(path, state, "'model_state'")
        return {"model": state, "__author__": "pycls", "matching_heuristics": True}
    if "model" in loaded:
        if not isinstance(loaded["model"], dict):
            raise CheckpointError(path, f"not a checkpoint: 'model' is {_describe(loaded['model'])}, "
                                        "expected a dict of tensors")
        _check_tensors(path, loaded["model"], "'model'")
        return dict(loaded)
    _check_tensors(path, loaded, "the file")
    return {"model": dict(loaded)}


# ------------------------------------------------------------------------------------ TorchScript archives --
def is_torchscript_archive(path: str) -> bool:
    """True for a TorchScript zip (it holds ``<root>/code/...``); plain ``torch.save`` zips do not."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
    return any(n.split("/", 1)[-1].startswith("code/") or n.endswith("/constants.pkl") for n in names)


_STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8, "BoolStorage": torch.bool,
}


class _ScriptObject:
    """Stands in for a TorchScript module or class instance: records its attributes, runs nothing. One subclass
    per archive class (``qualname``), made by :meth:`_TorchScriptUnpickler.find_class` (pickle's NEWOBJ needs a
    class)."""

    qualname = ""
    state: Any = None

    def __setstate__(self, state):
        self.state = state


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
    return torch.as_strided(storage, tuple(size), tuple(stride), int(offset))


def _rebuild_parameter(data, requires_grad=False, hooks=None):
    return data


class _TorchScriptUnpickler(pickle.Unpickler):
    """Reads a TorchScript archive's ``data.pkl`` as plain data: classes of the archive become
    :class:`_ScriptObject` records, tensors are rebuilt from the archive's storages; nothing else is admitted."""

    def __init__(self, f, zf: zipfile.ZipFile, root: str):
        super().__init__(f)
        self._zf, self._root = zf, root
        self._classes: Dict[str, type] = {}

    def find_class(self, module: str, name: str):
        if module == "__torch__" or module.startswith("__torch__."):
            qual = f"{module}.{name}"
            if qual not in self._classes:
                self._classes[qual] = type("ScriptObject", (_ScriptObject,), {"qualname": qual})
            return self._classes[qual]
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _rebuild_parameter
        if module == "torch.jit._pickle" and name in ("build_intlist", "build_doublelist", "build_boollist",
                                                      "build_tensorlist", "build_list"):
            return list  # TorchScript's typed lists: plain lists here
        if module == "torch.jit._pickle" and name == "restore_type_tag":
            return lambda value, type_str=None: value
        if module == "torch" and name in _STORAGE_DTYPES:
            return _STORAGE_DTYPES[name]
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[(module, name)]
        raise pickle.UnpicklingError(f"refused global {module}.{name}")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], torch.dtype)):
            raise pickle.UnpicklingError(f"refused persistent id {pid!r}")
        _, dtype, key, _, numel = pid
        raw = bytearray(self._zf.read(f"{self._root}/data/{key}"))
        n = len(raw) // torch.empty((), dtype=dtype).element_size()
        if n < int(numel):
            raise pickle.UnpicklingError(f"storage {key} holds {n} elements, {numel} expected")
        return torch.frombuffer(raw, dtype=dtype, count=n) if n else torch.empty(0, dtype=dtype)


_CLASS_RE = None


def _archive_state_names(zf: zipfile.ZipFile, root: str) -> Dict[str, tuple]:
    """``qualified class name -> (parameters, buffers)`` from the archive's code files (read as text, never
    executed): each TorchScript module class lists ``__parameters__ = [...]`` and ``__buffers__ = [...]``."""
    import re

    global _CLASS_RE
    if _CLASS_RE is None:
        _CLASS_RE = re.compile(r"^class\s+([\w.]+)\s*\(Module\):\s*\n((?:[ \t]+.*\n?)*)", re.M)
    names: Dict[str, tuple] = {}
    for n in zf.namelist():
        if not (n.startswith(f"{root}/code/") and n.endswith(".py")):
            continue
        module = n[len(f"{root}/code/"):-3].replace("/", ".")
        text = zf.read(n).decode("utf-8", "replace")
        for m in _CLASS_RE.finditer(text):
            body = m.group(2)
            lists = []
            for key in ("__parameters__", "__buffers__"):
                mm = re.search(rf"{key}\s*=\s*\[([^\]]*)\]", body)
                lists.append(tuple(re.findall(r'"([^"]*)"', mm.group(1))) if mm else None)
            names[f"{module}.{m.group(1)}"] = tuple(lists)
    return names


def read_torchscript_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """The state dict (parameters and buffers) of a TorchScript archive, read without running its code.

    ``torch.jit.load`` would compile the archive's code and run its ``__setstate__`` methods; this reads
    ``data.pkl`` with a restricted unpickler instead (module objects become plain records, tensors come from the
    archive's storages) and takes, for each module, the attributes its class lists in ``__parameters__`` and
    ``__buffers__`` (from the code files, parsed as text). Raises :class:`CheckpointError` naming the file for
    anything else in the pickle.
    """
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise CheckpointError(path, f"not a readable TorchScript zip ({e})") from None
    with zf:
        pkl = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if not pkl:
            raise CheckpointError(path, "TorchScript archive without data.pkl")
        root = pkl[0].split("/", 1)[0]
        order = zf.read(f"{root}/byteorder").decode().strip() if f"{root}/byteorder" in zf.namelist() else "little"
        if order != "little":
            raise CheckpointError(path, f"byte order {order!r} is not supported")
        declared = _archive_state_names(zf, root)
        try:
            obj = _TorchScriptUnpickler(io.BytesIO(zf.read(pkl[0])), zf, root).load()
        except pickle.UnpicklingError as e:
            if str(e).startswith("refused"):
                raise CheckpointError(path, f"refused unsafe content ({e})") from None
            raise CheckpointError(path, f"truncated or corrupt TorchScript data ({e})") from None
        except (EOFError, KeyError, ValueError, TypeError, RuntimeError, zipfile.BadZipFile) as e:
            raise CheckpointError(path, f"truncated or corrupt TorchScript data ({type(e).__name__}: {e})") from None
    out: Dict[str, torch.Tensor] = {}

    def walk(o, prefix):
        if not isinstance(o, _ScriptObject) or not isinstance(o.state, dict):
            return
        params, buffers = declared.get(o.qualname, (None, None))
        keep = None if params is None or buffers is None else set(params) | set(buffers)
        for k, v in o.state.items():
            if torch.is_tensor(v) and (keep is None or k in keep):
                out[prefix + k] = v.clone()
            elif isinstance(v, _ScriptObject):
                walk(v, f"{prefix}{k}.")

    walk(obj, "")
    if not out:
        raise CheckpointError(path, "TorchScript archive without tensors")
    return out


def _fsync_replace(tmp: str, dst: str) -> None:
    os.replace(tmp, dst)
    try:  # make the rename itself durable
        fd = os.open(os.path.dirname(os.path.abspath(dst)), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover  (file systems without directory fsync)
        pass


def _atomic_write(path: str, write_fn) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            write_fn(f)
            f.flush()
            os.fsync(f.fileno())
        _fsync_replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


class FastTCMCheckpointer(DetectionCheckpointer):
    """``DetectionCheckpointer`` that never unpickles arbitrary objects, reports key mismatches in one summary,
    can refuse incomplete weights, and writes checkpoints atomically (see the module docstring).

    Args:
        model, save_dir, save_to_disk, **checkpointables: as ``DetectionCheckpointer``.
        require_complete: raise :class:`CheckpointError` when a model tensor is missing from the file or has the
            wrong shape (used for evaluation and inference).
    """

    def __init__(self, model, save_dir: str = "", *, save_to_disk: Optional[bool] = None,
                 require_complete: bool = False, **checkpointables):
        super().__init__(model, save_dir, save_to_disk=save_to_disk, **checkpointables)
        self.require_complete = require_complete
        self._loading: str = ""
        self._ddp_prefixed = 0

    @classmethod
    def for_inference(cls, cfg, model) -> "FastTCMCheckpointer":
        """The checkpointer for ``--eval-only``, the demo and the predictor: complete weights required unless
        ``TEST.FASTTCM.ALLOW_INCOMPLETE_WEIGHTS``."""
        allow = bool(cfg.TEST.FASTTCM.get("ALLOW_INCOMPLETE_WEIGHTS", False))
        return cls(model, save_dir=cfg.OUTPUT_DIR, require_complete=not allow)

    # ------------------------------------------------------------------------------------------- reading --
    def load(self, path: str, *args, **kwargs):
        if path and "://" not in path:
            if not os.path.exists(path):
                raise CheckpointError(path, "file not found")
            if os.path.isdir(path):
                raise CheckpointError(path, "is a folder, not a file")
        self._loading = path
        try:
            return super().load(path, *args, **kwargs)
        finally:
            self._loading = ""

    def _load_file(self, filename: str) -> Dict[str, Any]:
        loaded = read_checkpoint_file(filename)
        out = model_state_dict(filename, loaded)
        if out.get("__author__") and out.get("__author__") not in ("Caffe2", "pycls"):
            self.logger.info(f"Reading a file from '{out['__author__']}'")
        return out

    def _load_model(self, checkpoint: Dict[str, Any]):
        state = checkpoint["model"]
        self._ddp_prefixed = sum(1 for k in state if k.startswith("module.")) if (
            state and all(k.startswith("module.") for k in state)) else 0
        return super()._load_model(checkpoint)

    def _log_incompatible_keys(self, incompatible) -> None:
        path = self._loading or "?"
        total = len(self.model.state_dict())
        missing = list(incompatible.missing_keys)
        unexpected = list(incompatible.unexpected_keys)
        shapes = list(incompatible.incorrect_shapes)
        wrong = {k for k, _, _ in shapes}
        missing = [k for k in missing if k not in wrong]  # a wrong-shaped tensor is not loaded: counted once
        if missing:  # parameters shared between modules appear once in a checkpoint
            from fvcore.common.checkpoint import _filter_reused_missing_keys

            missing = _filter_reused_missing_keys(self.model, missing)
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (first: {', '.join(missing[:5])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (first: {', '.join(unexpected[:5])})")
        if shapes:
            desc = ", ".join(f"{k} {tuple(a)} in the file vs {tuple(b)} in the model" for k, a, b in shapes[:3])
            parts.append(f"{len(shapes)} of the wrong shape ({desc})")
        loaded = total - len(missing) - len(shapes)
        ddp = (f"; stripped the DistributedDataParallel prefix 'module.' from {self._ddp_prefixed} keys"
               if self._ddp_prefixed else "")
        if not parts:
            self.logger.info(f"Loaded all {total} model tensors from {path}{ddp}")
            return
        summary = f"{path}: loaded {loaded} of {total} model tensors; " + "; ".join(parts) + ddp
        if self.require_complete and (missing or shapes):
            raise CheckpointError(path, "does not fit the model: " + summary.split(": ", 1)[1] + ". Evaluating or "
                                        "running a model with randomly initialised parts is refused; check "
                                        "--config-file against the file, or set "
                                        "TEST.FASTTCM.ALLOW_INCOMPLETE_WEIGHTS True if you mean it")
        self.logger.warning(summary)

    # ------------------------------------------------------------------------------------------- writing --
    def save(self, name: str, **kwargs: Any) -> None:
        """Write ``<save_dir>/<name>.pth`` atomically, then point ``last_checkpoint`` at it (also atomically)."""
        if not self.save_dir or not self.save_to_disk:
            return
        data = {"model": self.model.state_dict()}
        for key, obj in self.checkpointables.items():
            data[key] = obj.state_dict()
        data.update(kwargs)
        basename = f"{name}.pth"
        save_file = os.path.join(self.save_dir, basename)
        if os.path.basename(save_file) != basename:
            raise ValueError(f"checkpoint name {name!r} must not contain a folder")
        os.makedirs(self.save_dir, exist_ok=True)
        self.logger.info(f"Saving checkpoint to {save_file}")
        _atomic_write(save_file, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)
        self._remove_stale_temporaries()

    def _remove_stale_temporaries(self) -> None:
        """Delete temporary files a killed process left behind (``.<name>.pth.<random>.tmp``)."""
        for fn in os.listdir(self.save_dir):
            if fn.startswith(".") and fn.endswith(".tmp") and (".pth." in fn or fn.startswith(".last_checkpoint.")):
                try:
                    os.unlink(os.path.join(self.save_dir, fn))
                except OSError:
                    pass

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        _atomic_write(os.path.join(self.save_dir, "last_checkpoint"),
                      lambda f: f.write(last_filename_basename.encode("utf-8")))
