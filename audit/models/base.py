"""What every model adapter provides: normalized image and text embeddings and its scoring rule."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
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


def write_info(path: Path, info: ModelInfo) -> None:
    """Keep ``info`` as JSON (atomically), for :func:`read_info` to return without the model."""
    from audit.fileio import atomic_write

    text = json.dumps(asdict(info), indent=1, sort_keys=True)
    atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def read_info(path: Path, **override: Any) -> ModelInfo | None:
    """The :class:`ModelInfo` kept at ``path`` (with ``override`` applied), or None when it is
    missing, unreadable or not a complete ModelInfo; the caller then loads the model."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or set(data) != {f.name for f in fields(ModelInfo)}:
        return None
    return ModelInfo(**{**data, **override})


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
