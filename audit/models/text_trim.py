"""Encode prompts on the tokens that can reach the pooled one, not all 77 positions.

open_clip's causal text towers (``CLIP``, and ``CustomTextCLIP`` whose ``TextTransformer`` has no
class token and no padding mask) pool one token per prompt: the end-of-text token (``argmax``
pooling, OpenAI's tokenizer gives it the highest id) or the tokenizer's ``eos`` token. Under the
causal mask a position attends only to itself and earlier positions, so the padding after the last
pooled token of a batch cannot change any pooled feature. open_clip nevertheless runs every prompt
at the full context length (77 for CLIP). Prompts such as "a photo of a tench." are 7-20 tokens,
so the text tower does 4-8x the work it needs; with ImageNet's 1000 classes x 80 templates that is
most of a zero-shot run's compute.

:func:`trimmed_text_encoder` returns an encoder that runs the same modules (token and positional
embeddings, transformer, final LayerNorm, pooling, projection) on ``tokens[:, :L]`` with the
causal mask cut to ``L x L``, where ``L`` is one past the last pooled position in the batch. The
features equal open_clip's up to float summation order (|diff| ~1e-6). Towers this reasoning does
not cover (SigLIP's bidirectional tower with ``last`` pooling, CoCa's appended class token, padding
masks, Hugging Face text encoders) get ``None`` and keep open_clip's own ``encode_text``.
:func:`self_check` compares the two encoders on the loaded weights before the adapter relies on it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

TextEncoder = Callable[[torch.Tensor], torch.Tensor]
#: What the self-check may differ by, relative to the largest feature magnitude.
SELF_CHECK_RTOL = 1e-4
SELF_CHECK_PROMPTS = ("a photo of a dog.", "a bad photo of the large cassette player.")


@dataclass(frozen=True)
class _CausalTower:
    token_embedding: Any
    positional_embedding: torch.Tensor
    attn_mask: torch.Tensor
    transformer: Any
    ln_final: Any
    pool_type: str
    eos_id: int | None
    projection: Any

    def pooled_index(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.pool_type == "argmax":
            return tokens.argmax(dim=-1)
        return (tokens == self.eos_id).int().argmax(dim=-1)

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        length = int(self.pooled_index(tokens).max()) + 1
        tokens = tokens[:, :length]
        cast = self.transformer.get_cast_dtype()
        x = self.token_embedding(tokens).to(cast) + self.positional_embedding[:length].to(cast)
        x = self.transformer(x, attn_mask=self.attn_mask[:length, :length])
        x = self.ln_final(x)
        x = x[torch.arange(x.shape[0], device=x.device), self.pooled_index(tokens)]
        if self.projection is None:
            return x
        return self.projection(x) if isinstance(self.projection, torch.nn.Linear) else x @ self.projection


def _is_causal(mask: Any) -> bool:
    if not isinstance(mask, torch.Tensor) or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        return False
    upper = torch.triu(torch.ones_like(mask, dtype=torch.bool), diagonal=1)
    return bool(torch.isneginf(mask[upper]).all()) and bool((mask[~upper] == 0).all())


def trimmed_text_encoder(model: Any) -> TextEncoder | None:
    """An encoder for ``model``'s text tower that skips trailing padding, or None if its tower
    is not a causal one pooled at a single token (then padding can matter)."""
    import open_clip

    if type(model) is open_clip.CLIP:
        tower, pool, eos = model, model.text_pool_type, getattr(model, "text_eos_id", None)
        projection = model.text_projection
    elif isinstance(model, open_clip.CustomTextCLIP) and isinstance(model.text, open_clip.transformer.TextTransformer):
        tower = model.text
        if tower.cls_emb is not None or getattr(tower, "use_pad_mask", False):
            return None
        pool, eos, projection = tower.pool_type, getattr(tower, "eos_id", None), tower.text_projection
    else:
        return None
    if pool not in ("argmax", "eos") or (pool == "eos" and eos is None) or not _is_causal(tower.attn_mask):
        return None
    return _CausalTower(tower.token_embedding, tower.positional_embedding, tower.attn_mask,
                        tower.transformer, tower.ln_final, pool, eos, projection)


def self_check(model: Any, tokenizer: Any, encoder: TextEncoder, device: str) -> float:
    """Largest |trimmed - full| over :data:`SELF_CHECK_PROMPTS`, relative to the largest |feature|."""
    tokens = tokenizer(list(SELF_CHECK_PROMPTS)).to(device)
    with torch.inference_mode():
        full = model.encode_text(tokens).float()
        trimmed = encoder(tokens).float()
    if full.shape != trimmed.shape:
        return float("inf")
    return float((full - trimmed).abs().max() / full.abs().max().clamp_min(1e-12))
