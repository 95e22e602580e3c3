"""A cache of values computed from parameters, valid while those parameters are unchanged.

FastTCM computes some things once at inference that training must recompute every step: the text embeddings T
(``prompting.CachedTextEmbeddings``) and the folded value-path weights of CLIP's attention pool
(``clip.image_encoder``). :class:`ParameterCache` holds one such value and knows when it is stale.
"""
from typing import Any, Callable, Hashable, Iterable, Optional

import torch
from torch import nn

__all__ = ["ParameterCache", "gradient_needed"]


def gradient_needed(params: Iterable[nn.Parameter]) -> bool:
    """True when autograd is on and one of ``params`` wants a gradient: then a cached value must not be used."""
    return torch.is_grad_enabled() and any(p.requires_grad for p in params)


class ParameterCache:
    """One value derived from ``params``, recomputed only when one of them changed.

    A change is an in-place update (an optimizer step, ``load_state_dict``'s ``copy_``: the tensor's version
    counter moves) or a new storage (``.to()``, ``.half()``: the data pointer moves). A value made under
    ``torch.inference_mode()`` is an inference tensor, which autograd may not save; it is recomputed when
    asked for outside inference mode.

    The value is computed under ``torch.no_grad()``: callers use it only when no gradient must reach ``params``.
    """

    def __init__(self):
        self._value: Optional[Any] = None  # a tensor or a tuple of tensors
        self._key = None

    @staticmethod
    def _state_key(params: Iterable[nn.Parameter], extra: Hashable):
        return (torch.is_inference_mode_enabled(), extra) + tuple((p.data_ptr(), p._version) for p in params)

    def get(self, params: Iterable[nn.Parameter], compute: Callable[[], object], extra: Hashable = None):
        """The cached value if ``params`` (and ``extra``, e.g. a size) are unchanged since it was computed, else
        ``compute()`` (stored in its place: one value at a time)."""
        key = self._state_key(params, extra)
        if self._value is None or key != self._key:
            with torch.no_grad():
                self._value = compute()
            self._key = key
        return self._value

    @property
    def has_value(self) -> bool:
        return self._value is not None

    def clear(self):
        self._value = None
        self._key = None
