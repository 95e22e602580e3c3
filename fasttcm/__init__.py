"""fasttcm: FastTCM on Detectron2.

``import fasttcm`` is light: it imports neither torch nor detectron2, so the evaluators
(:mod:`fasttcm.evaluation.text_eval`, :mod:`fasttcm.evaluation.dota_eval`) and the DOTA file tools
(:mod:`fasttcm.data.dota`) start in a fraction of a second.

Registration contract (what puts fasttcm's parts into Detectron2's registries and catalogs):

* ``import fasttcm.modeling`` registers the backbones and meta-architectures;
* ``import fasttcm.data.datasets`` registers the built-in datasets;
* ``import fasttcm.engine`` (the trainer and config setup) registers everything;
* :func:`register_all` registers everything, and so does the first use of ``fasttcm.add_fasttcm_config`` or
  :func:`detectron2_ops_source` (lazy attributes, PEP 562);
* ``fasttcm.config`` / ``fasttcm.modeling`` / ... as attributes import that subpackage, as ``import fasttcm.X``
  would (``fasttcm.modeling`` therefore registers the models; ``fasttcm.evaluation`` and ``fasttcm.data`` stay
  light).

Every one of these supplies ``detectron2._C`` (fasttcm's PyTorch ops, :mod:`fasttcm.layers._C`) when detectron2 was
installed without its compiled extension, before ``detectron2.layers`` is imported.
"""
__version__ = "0.1.0"

__all__ = [
    "__version__",
    "register_all",
    "add_fasttcm_config",
    "detectron2_ops_source",
    "config",
    "data",
    "engine",
    "evaluation",
    "layers",
    "modeling",
]

_SUBMODULES = ("config", "data", "engine", "evaluation", "layers", "modeling")


def register_all() -> None:
    """Import and register everything: detectron2's ops (``detectron2._C``), fasttcm's config keys, datasets,
    backbones and meta-architectures. Idempotent; costs the torch + detectron2 import the first time."""
    import importlib

    importlib.import_module("fasttcm._detectron2")  # first: supplies detectron2._C, imports detectron2.layers
    for name in ("config", "data.datasets", "modeling"):
        importlib.import_module(f"fasttcm.{name}")


def detectron2_ops_source() -> str:
    """Say where detectron2's ops come from: its compiled extension or fasttcm's PyTorch implementations."""
    import sys

    register_all()
    mod = sys.modules.get("detectron2._C")
    if mod is None:
        import detectron2._C as mod  # noqa: F401
    if getattr(mod, "__fasttcm_ops__", False):
        return "detectron2._C supplied by fasttcm (PyTorch ops)"
    return f"detectron2._C compiled ({getattr(mod, '__file__', '?')})"


def __getattr__(name):  # PEP 562: the heavy parts load (and register) on first use
    if name == "add_fasttcm_config":
        register_all()
        from .config import add_fasttcm_config

        return add_fasttcm_config
    if name in _SUBMODULES:
        import importlib

        return importlib.import_module(f"fasttcm.{name}")
    raise AttributeError(f"module 'fasttcm' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
