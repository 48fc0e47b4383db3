"""What every model adapter provides: normalized image and text embeddings and its scoring rule."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class ModelInfo:
    """Provenance of a loaded model; ``cache_key`` enters the embedding-cache key."""

    id: str
    name: str
    scheme: str
    weights: str
    cache_key: str
    logit_scale: float
    logit_bias: float | None
    random_weights: bool
    preprocess: str
    device: str
    precision: str
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def scoring(self) -> str:
        if self.logit_bias is not None:
            return "sigmoid(logit_scale * cos(image, text) + logit_bias)"
        return "softmax(logit_scale * cos(image, text))"


class ImageTextModel(Protocol):
    info: ModelInfo
    #: PIL image -> tensor for :meth:`encode_images`.
    preprocess: Callable[[Any], Any]

    def encode_images(self, batch: Any) -> np.ndarray:
        """A batch of preprocessed images -> L2-normalized float32 embeddings [B, D]."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Prompts -> L2-normalized float32 embeddings [T, D]."""
        ...


def l2_normalize(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
