"""CLIP's text transformer, frozen, taking token *embeddings* so that prompts can carry learned vectors."""
import torch
from torch import nn

__all__ = ["CLIPTextEncoder"]


class CLIPTextEncoder(nn.Module):
    """The text tower of an open_clip ``CLIP`` (token embedding, positional embedding, causal transformer,
    final LayerNorm, projection). All its parameters are frozen (``requires_grad=False``); gradients still flow
    through it to its *inputs* (learnable context vectors, language-prompt cue).

    Sequences may be shorter than CLIP's 77 positions: the first L rows of the positional embedding are used.
    Because the attention is causal and the embedding is read at the end-of-text token, padding after that token
    never changes the result: any L that fits the prompt gives the same embedding as 77 (only faster).

    Attributes:
        width: transformer width W (512 for RN50); embed_dim: output width E (1024 for RN50);
        max_context_length: rows of the positional embedding (77).
    """

    def __init__(self, clip_model: nn.Module):
        super().__init__()
        self.token_embedding = clip_model.token_embedding
        self.positional_embedding = clip_model.positional_embedding
        self.transformer = clip_model.transformer
        self.ln_final = clip_model.ln_final
        self.text_projection = clip_model.text_projection
        self.width = self.positional_embedding.shape[1]
        proj = self.text_projection
        self.embed_dim = proj.out_features if isinstance(proj, nn.Linear) else proj.shape[1]
        self.max_context_length = self.positional_embedding.shape[0]
        for p in self.parameters():
            p.requires_grad_(False)
        self._masks = {}

    def embed_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """(..., L) token ids -> (..., L, W) token embeddings (no positional embedding)."""
        return self.token_embedding(tokens)

    def _causal_mask(self, n: int, device, dtype) -> torch.Tensor:
        key = (n, device, dtype)
        mask = self._masks.get(key)
        if mask is None:
            mask = torch.full((n, n), float("-inf"), device=device, dtype=dtype).triu_(1)
            self._masks[key] = mask
        return mask

    def forward(self, x: torch.Tensor, eot_index: torch.Tensor) -> torch.Tensor:
        """Encode prompt embeddings.

        Args:
            x: (N, L, W) input token embeddings, L <= max_context_length.
            eot_index: (N,) long, position of each sequence's end-of-text token (where the embedding is read).
        Returns:
            (N, E) text embeddings (not normalized).
        """
        n, length, _ = x.shape
        if length > self.max_context_length:
            raise ValueError(f"text sequences of {length} tokens exceed CLIP's {self.max_context_length} positions")
        x = x + self.positional_embedding[:length].to(x.dtype)
        x = self.transformer(x, attn_mask=self._causal_mask(length, x.device, x.dtype))
        x = self.ln_final(x[torch.arange(n, device=x.device), eot_index])
        proj = self.text_projection
        return proj(x) if isinstance(proj, nn.Linear) else x @ proj
