"""fasttcm: FastTCM on Detectron2. Importing this package registers its backbones, heads, datasets and evaluators."""
__version__ = "0.1.0"

from .layers import _C as _ops  # noqa: E402  (first: provides detectron2._C before detectron2.layers loads)

_ops.install_as_detectron2_C()

from . import config, data  # noqa: E402,F401  (registers datasets)


def detectron2_ops_source() -> str:
    """Say where detectron2's ops come from: its compiled extension or fasttcm's PyTorch implementations."""
    import sys

    mod = sys.modules.get("detectron2._C")
    if mod is None:
        import detectron2._C as mod  # noqa: F401
    if getattr(mod, "__fasttcm_ops__", False):
        return "detectron2._C supplied by fasttcm (PyTorch ops)"
    return f"detectron2._C compiled ({getattr(mod, '__file__', '?')})"
