"""Makes detectron2 importable for fasttcm's model code; imported (first) by every fasttcm module that uses it.

It supplies ``detectron2._C`` from :mod:`fasttcm.layers._C` when detectron2 is installed without its compiled
extension (``import fasttcm.layers`` does that), then imports ``detectron2.layers`` and ``detectron2.modeling``
once with the ``torch.jit.script`` deprecation notice that fvcore and detectron2.modeling raise at import time
silenced. The light parts of fasttcm (the evaluators, :mod:`fasttcm.data.dota`) never import this module.
"""
import warnings

from . import layers as _layers  # noqa: F401  (first: installs detectron2._C when needed)

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*torch.jit.script.* is deprecated", category=FutureWarning)
    import detectron2.layers  # noqa: F401,E402
    import detectron2.modeling  # noqa: F401,E402
