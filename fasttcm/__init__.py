"""fasttcm: FastTCM on Detectron2. Importing this package registers its backbones, heads, datasets and evaluators."""
__version__ = "0.1.0"

from .layers import _C as _ops  # noqa: E402  (first: provides detectron2._C before detectron2.layers loads)

_ops.install_as_detectron2_C()

import warnings as _warnings  # noqa: E402

with _warnings.catch_warnings():
    # fvcore and detectron2.modeling call torch.jit.script at import time, which recent torch deprecates
    _warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated", category=FutureWarning)
    import detectron2.layers  # noqa: F401
    import detectron2.modeling  # noqa: F401

from . import config, data, evaluation, modeling  # noqa: E402,F401  (registers datasets, backbones, heads)


def detectron2_ops_source() -> str:
    """Say where detectron2's ops come from: its compiled extension or fasttcm's PyTorch implementations."""
    import sys

    mod = sys.modules.get("detectron2._C")
    if mod is None:
        import detectron2._C as mod  # noqa: F401
    if getattr(mod, "__fasttcm_ops__", False):
        return "detectron2._C supplied by fasttcm (PyTorch ops)"
    return f"detectron2._C compiled ({getattr(mod, '__file__', '?')})"
