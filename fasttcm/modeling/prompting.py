"""Text prompting and cross-modal modules of TCM / FastTCM.

Shapes use B = batch, K = number of prompts (classes; 1 for text), N = learnable context vectors, L = text context
length (tokens), W = text-transformer width (512 for RN50), E = CLIP embedding width (1024 for RN50),
h x w = res5 grid (H/32 x W/32).

Pieces, one responsibility each:

* :func:`tokenize_prompts`: CLIP BPE tokens laid out as [start, N context slots, prompt words, end, padding].
* :class:`LanguagePromptGenerator`: 2-layer MLP, (B, E) -> (B, W) cue added to the text-encoder input tokens.
* :class:`PromptTextEncoder`: prompts + learnable context + cue -> frozen CLIP text encoder -> (B, K, E).
* :class:`CachedTextEmbeddings` (FastTCM): the cue comes from a learned meta-query, so T (K, E) depends only on
  parameters; cached in eval mode. :class:`OfflineTextEmbeddings`: the same T read from a file.
* :class:`BimodalSimilarityMatching` (BSM): T_bsm = <t, g'> g' + t with g' = normalize(P g), t = normalize(T).
* :class:`CrossModalDecoder`, :class:`VisualPromptGenerator`, :class:`TextContextDecoder`: the two decoders.
* :func:`cosine_score_map`: S = cosine(I', T') per pixel and prompt.
"""
import functools
import logging
from typing import Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..checkpoint import read_checkpoint_file
from .clip.text_encoder import CLIPTextEncoder
from .param_cache import ParameterCache, gradient_needed

logger = logging.getLogger(__name__)

__all__ = [
    "DEFAULT_TEXT_PROMPT",
    "class_name_prompts",
    "tokenize_prompts",
    "LanguagePromptGenerator",
    "PromptTextEncoder",
    "CachedTextEmbeddings",
    "OfflineTextEmbeddings",
    "save_text_embeddings",
    "load_text_embeddings",
    "BimodalSimilarityMatching",
    "CrossModalDecoder",
    "VisualPromptGenerator",
    "TextContextDecoder",
    "cosine_score_map",
]

DEFAULT_TEXT_PROMPT = "the pixels of many arbitrary-shape text instances."


def class_name_prompts(class_names: Sequence[str], template: str = "{}.") -> List[str]:
    """One prompt per class, e.g. DOTA's names: ``["plane.", "ship.", ...]``; underscores become spaces."""
    return [template.format(str(n).replace("_", " ").replace("-", " ")) for n in class_names]


@functools.lru_cache(maxsize=1)
def _tokenizer():
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer()


def tokenize_prompts(prompts: Sequence[str], num_context: int, context_length: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """Tokenize prompts with CLIP's BPE and leave ``num_context`` slots after the start token.

    Returns:
        tokens: (K, L) long; row k is [start, 0 x N (slots for the context vectors), BPE(prompt k), end, 0...].
        eot_index: (K,) long, position of each end token (where CLIP reads the text embedding).
    Raises ``ValueError`` for an empty list, an empty prompt, or a prompt that needs more than ``context_length``
    tokens (the message says how many it needs).
    """
    if not prompts:
        raise ValueError("MODEL.FASTTCM.PROMPTS is empty: give at least one prompt")
    if num_context < 0:
        raise ValueError(f"NUM_CONTEXT must be >= 0, got {num_context}")
    tok = _tokenizer()
    rows, eots = [], []
    for p in prompts:
        words = tok.encode(p)
        if not words:
            raise ValueError(f"prompt {p!r} has no tokens")
        need = 2 + num_context + len(words)
        if need > context_length:
            raise ValueError(
                f"prompt {p!r} is {len(words)} BPE tokens long and needs {need} text positions (start + "
                f"{num_context} context vectors + {len(words)} + end), but MODEL.FASTTCM.CONTEXT_LENGTH is "
                f"{context_length}; raise CONTEXT_LENGTH to at least {need} (CLIP allows 77) or shorten the prompt")
        row = [tok.sot_token_id] + [0] * num_context + words + [tok.eot_token_id]
        eots.append(len(row) - 1)
        rows.append(row + [0] * (context_length - len(row)))
    return torch.tensor(rows, dtype=torch.long), torch.tensor(eots, dtype=torch.long)


class LanguagePromptGenerator(nn.Module):
    """Two-layer MLP producing the language-prompt cue: (B, E) -> (B, W).

    TCM feeds it the global image embedding g; FastTCM feeds it a learned meta-query.
    """

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: Optional[int] = None):
        super().__init__()
        hidden_dim = hidden_dim or out_dim
        self.fc1 = nn.Linear(in_dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class PromptTextEncoder(nn.Module):
    """Prompts with learnable context vectors and a language-prompt cue, encoded by CLIP's frozen text encoder.

    Input tokens per prompt: [start, c_1..c_N, prompt words, end, pad]; c_i are learnable (N, W) vectors shared by
    all prompts. The cue (B, W) from :class:`LanguagePromptGenerator` is added to every input token embedding
    (padding after the end token cannot affect the result: the attention is causal).

    Args:
        text_encoder: the frozen :class:`CLIPTextEncoder`.
        prompts: K predefined prompts.
        num_context: N. context_length: L (tokens per sequence, <= 77).
        cue_in_dim: input width of the language prompt generator (E: g or the meta-query).
    """

    def __init__(self, text_encoder: CLIPTextEncoder, prompts: Sequence[str], num_context: int,
                 context_length: int, cue_in_dim: int):
        super().__init__()
        if context_length > text_encoder.max_context_length:
            raise ValueError(f"CONTEXT_LENGTH {context_length} exceeds CLIP's {text_encoder.max_context_length}")
        tokens, eot = tokenize_prompts(prompts, num_context, context_length)
        self.prompts = list(prompts)
        self.num_context = num_context
        self.text_encoder = text_encoder
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("eot_index", eot, persistent=False)
        self.context = nn.Parameter(torch.randn(num_context, text_encoder.width) * 0.02)
        self.prompt_generator = LanguagePromptGenerator(cue_in_dim, text_encoder.width)

    @property
    def num_prompts(self) -> int:
        return self.tokens.shape[0]

    def input_embeddings(self, cue: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Text-encoder inputs: (K, L, W) without a cue, (B, K, L, W) with a (B, W) cue."""
        base = self.text_encoder.embed_tokens(self.tokens)  # (K, L, W)
        k = base.shape[0]
        ctx = self.context.to(base.dtype).unsqueeze(0).expand(k, -1, -1)
        x = torch.cat([base[:, :1], ctx, base[:, 1 + self.num_context:]], dim=1)
        if cue is not None:
            x = x.unsqueeze(0) + cue[:, None, None, :].to(x.dtype)
        return x

    def forward(self, cue_source: torch.Tensor) -> torch.Tensor:
        """(B, E) cue source (g or the meta-query) -> (B, K, E) text embeddings."""
        x = self.input_embeddings(self.prompt_generator(cue_source))  # (B, K, L, W)
        b, k = x.shape[:2]
        out = self.text_encoder(x.flatten(0, 1), self.eot_index.repeat(b))
        return out.view(b, k, -1)


class CachedTextEmbeddings(nn.Module):
    """FastTCM's text branch: T = PromptTextEncoder(meta-query), (K, E), a function of parameters only.

    In training mode T is recomputed every call (gradients reach the context vectors, the generator and the
    meta-query). In eval mode it is computed once and kept (a :class:`ParameterCache`, not part of the state dict);
    the cache is dropped by ``train()``, by loading weights (``load_state_dict``), and whenever any parameter of the
    branch changed since (detected through tensor version counters and storage addresses, so ``.to()`` counts).
    With gradients enabled in eval mode and trainable parameters present, T is recomputed so that gradients stay
    correct; inference under ``torch.no_grad()`` / ``torch.inference_mode()`` (as Detectron2 runs it) uses the
    cache.
    """

    def __init__(self, prompt_encoder: PromptTextEncoder, embed_dim: int):
        super().__init__()
        self.prompt_encoder = prompt_encoder
        self.meta_query = nn.Parameter(torch.randn(1, embed_dim) * embed_dim ** -0.5)
        self._cache = ParameterCache()

    @property
    def prompts(self) -> List[str]:
        return self.prompt_encoder.prompts

    def compute(self) -> torch.Tensor:
        """(K, E), always recomputed."""
        return self.prompt_encoder(self.meta_query)[0]

    @property
    def is_cached(self) -> bool:
        """True when a cached T is held (eval mode, after a call without gradients)."""
        return self._cache.has_value

    def clear_cache(self):
        self._cache.clear()

    def forward(self) -> torch.Tensor:
        """(K, E) text embeddings; cached in eval mode (see class doc)."""
        if self.training or gradient_needed(self.parameters()):
            self.clear_cache()
            return self.compute()
        return self._cache.get(self.parameters(), self.compute)

    def train(self, mode: bool = True):
        self.clear_cache()
        return super().train(mode)

    def _load_from_state_dict(self, *args, **kwargs):
        self.clear_cache()
        return super()._load_from_state_dict(*args, **kwargs)


def save_text_embeddings(path: str, embeddings: torch.Tensor, prompts: Sequence[str], **meta) -> None:
    """Write (K, E) text embeddings with their prompts and metadata (ints/strings) to ``path`` (torch.save)."""
    if embeddings.dim() != 2 or embeddings.shape[0] != len(prompts):
        raise ValueError(f"expected ({len(prompts)}, E) embeddings for {len(prompts)} prompts, got "
                         f"{tuple(embeddings.shape)}")
    torch.save({"text_embeddings": embeddings.detach().float().cpu().contiguous(), "prompts": list(prompts),
                **meta}, path)


def load_text_embeddings(path: str) -> Dict:
    """Read a file written by :func:`save_text_embeddings` (through :func:`fasttcm.checkpoint.read_checkpoint_file`:
    ``weights_only=True``, named errors)."""
    obj = read_checkpoint_file(path)
    if not isinstance(obj, dict) or "text_embeddings" not in obj or "prompts" not in obj:
        raise ValueError(f"{path} is not a text-embedding file (expected keys 'text_embeddings' and 'prompts'; "
                         f"write one with tools/export_text_embeddings.py)")
    return obj


class OfflineTextEmbeddings(nn.Module):
    """Fixed text embeddings (K, E) read from a file: FastTCM inference without any text encoder.

    The embeddings are a non-persistent buffer: model checkpoints neither contain nor overwrite them.
    """

    def __init__(self, embeddings: torch.Tensor, prompts: Sequence[str]):
        super().__init__()
        self.prompts = list(prompts)
        self.register_buffer("embeddings", embeddings.float(), persistent=False)

    @classmethod
    def from_file(cls, path: str, prompts: Sequence[str], embed_dim: int) -> "OfflineTextEmbeddings":
        """Load ``path`` and check it was made for these ``prompts`` (same list, same order) and width E."""
        obj = load_text_embeddings(path)
        emb, file_prompts = obj["text_embeddings"], list(obj["prompts"])
        if file_prompts != list(prompts):
            raise ValueError(f"{path} holds embeddings of the prompts {file_prompts} (K={len(file_prompts)}), "
                             f"but MODEL.FASTTCM.PROMPTS is {list(prompts)} (K={len(prompts)})")
        if emb.shape != (len(prompts), embed_dim):
            raise ValueError(f"{path}: embeddings of shape {tuple(emb.shape)}, expected ({len(prompts)}, "
                             f"{embed_dim}) for this CLIP model")
        return cls(emb, file_prompts)

    def forward(self) -> torch.Tensor:
        return self.embeddings


class BimodalSimilarityMatching(nn.Module):
    """BSM: make the fixed text embeddings image-aware at the cost of one projection per image.

    g' = normalize(P g), t = normalize(T), T_bsm = <t, g'> g' + t. P is a learned E x E projection initialised to
    the identity (so at start g' is CLIP's own normalized image embedding).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, dim, bias=False)
        nn.init.eye_(self.proj.weight)

    def forward(self, text: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
        """text: (K, E); g: (B, E) -> T_bsm: (B, K, E)."""
        gp = F.normalize(self.proj(g), dim=-1)  # (B, E)
        t = F.normalize(text, dim=-1)  # (K, E)
        sim = gp @ t.t()  # (B, K)
        return sim.unsqueeze(-1) * gp.unsqueeze(1) + t.unsqueeze(0)


class _DecoderLayer(nn.Module):
    """Pre-norm transformer decoder layer: self-attention, cross-attention to memory, MLP."""

    def __init__(self, width: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.self_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(width)
        self.cross_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm3 = nn.LayerNorm(width)
        hidden = int(width * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, x: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        y = self.norm1(x)
        x = x + self.self_attn(y, y, y, need_weights=False)[0]
        x = x + self.cross_attn(self.norm2(x), memory, memory, need_weights=False)[0]
        return x + self.mlp(self.norm3(x))


class CrossModalDecoder(nn.Module):
    """Queries of one modality attend to the other modality's tokens: (B, Nq, E), (B, Nm, E) -> (B, Nq, E).

    Both inputs are projected E -> ``width`` (LayerNorm + Linear), run through ``layers`` decoder layers with
    ``heads`` heads, and the result is projected back to E.
    """

    def __init__(self, dim: int, width: int = 256, layers: int = 3, heads: int = 4):
        super().__init__()
        if width % heads:
            raise ValueError(f"decoder width {width} is not divisible by its {heads} heads")
        self.query_in = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, width))
        self.memory_in = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, width), nn.LayerNorm(width))
        self.layers = nn.ModuleList(_DecoderLayer(width, heads) for _ in range(layers))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, dim))

    def forward(self, queries: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        x = self.query_in(queries)
        mem = self.memory_in(memory)
        for layer in self.layers:
            x = layer(x, mem)
        return self.out(x)


class VisualPromptGenerator(nn.Module):
    """I' = I + gamma_v * Decoder(queries = pixels of I, keys/values = text embeddings); gamma_v is a scalar."""

    def __init__(self, dim: int, width: int = 256, layers: int = 3, heads: int = 4, gamma_init: float = 1e-3):
        super().__init__()
        self.decoder = CrossModalDecoder(dim, width, layers, heads)
        self.gamma = nn.Parameter(torch.tensor(float(gamma_init)))

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """image: (B, E, h, w); text: (B, K, E) -> (B, E, h, w)."""
        b, e, h, w = image.shape
        pixels = image.flatten(2).transpose(1, 2)  # (B, hw, E)
        out = self.decoder(pixels, text).transpose(1, 2).reshape(b, e, h, w)
        return image + self.gamma * out


class TextContextDecoder(nn.Module):
    """T' = T + gamma_t * Decoder(queries = text, keys/values = [g; pixels of I]); gamma_t is an E-vector."""

    def __init__(self, dim: int, width: int = 256, layers: int = 3, heads: int = 4, gamma_init: float = 1e-3):
        super().__init__()
        self.decoder = CrossModalDecoder(dim, width, layers, heads)
        self.gamma = nn.Parameter(torch.full((dim,), float(gamma_init)))

    def forward(self, text: torch.Tensor, g: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """text: (B, K, E); g: (B, E); image: (B, E, h, w) -> (B, K, E)."""
        context = torch.cat([g.unsqueeze(1), image.flatten(2).transpose(1, 2)], dim=1)  # (B, 1+hw, E)
        return text + self.gamma * self.decoder(text, context)


def cosine_score_map(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """S[b, k, y, x] = cos(image[b, :, y, x], text[b, k]); image (B, E, h, w), text (B, K, E) -> (B, K, h, w)."""
    return torch.einsum("behw,bke->bkhw", F.normalize(image, dim=1), F.normalize(text, dim=-1))
