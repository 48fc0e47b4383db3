"""The zero-shot head, in pure numpy.

Class weights follow CLIP / open_clip: normalize each prompt embedding, average over templates,
renormalize. Scores use the model's own ``logit_scale`` (and ``logit_bias`` for SigLIP-style
models); top-k ties break toward the lower label index so results are deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from audit.models.base import l2_normalize


def class_weights(prompt_embeddings: np.ndarray) -> np.ndarray:
    """``[labels, templates, dim]`` prompt embeddings -> ``[labels, dim]`` unit class weights."""
    if prompt_embeddings.ndim != 3:
        raise ValueError(f"expected [labels, templates, dim], got shape {prompt_embeddings.shape}")
    return l2_normalize(l2_normalize(prompt_embeddings).mean(axis=1))


def zero_shot_scores(image_embeddings: np.ndarray, weights: np.ndarray, logit_scale: float,
                     logit_bias: float | None = None) -> np.ndarray:
    """``logit_scale * cos(image, class) (+ logit_bias)``, shape ``[images, labels]``."""
    scores = logit_scale * (l2_normalize(image_embeddings) @ weights.T)
    return scores + logit_bias if logit_bias is not None else scores


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best labels per row, best first; ties go to the lower index."""
    k = min(k, scores.shape[1])
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def collapse_max(scores: np.ndarray, groups: Sequence[Sequence[int]]) -> np.ndarray:
    """Collapse ``[images, C]`` scores to ``[images, len(groups)]`` by the max over each group.

    This is how the imagenet-testbed scores ObjectNet: 1000-way ImageNet scores, max over the
    ImageNet classes mapped to each of the 113 ObjectNet classes.
    """
    return np.stack([scores[:, list(g)].max(axis=1) for g in groups], axis=1)
