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


class LazyWeights:
    """Shared by the adapters that keep their :class:`ModelInfo` in the info cache
    (:class:`~audit.models.openclip.OpenClipModel`, :class:`~audit.models.hf_transformers.TransformersModel`).

    A subclass sets ``_id``, ``_name`` and ``_loaded = None``, implements :meth:`_load` (load the
    weights, set ``_loaded`` to a tuple whose first three items are model, preprocess and
    tokenizer, and return the :class:`ModelInfo`), then calls :meth:`_init_info`. The weights then
    load on first use of :attr:`model`, :attr:`preprocess` or :attr:`tokenizer`, so a re-run
    whose embeddings are all cached never loads them.
    """

    _id: str
    _name: str
    _card: Path | None
    _loaded: Any
    info: ModelInfo

    def _load(self) -> ModelInfo:
        raise NotImplementedError

    def _init_info(self, card: Path | None) -> None:
        """Read the description kept at ``card``, or load the model and keep its description."""
        self._card = card
        known = None if card is None else read_info(card, id=self._id, name=self._name)
        self.info = known or self._load()
        if known is None and card is not None:
            write_info(card, self.info)

    @property
    def model(self) -> Any:
        return self._ensure_loaded()[0]

    @property
    def preprocess(self) -> Any:
        return self._ensure_loaded()[1]

    @property
    def tokenizer(self) -> Any:
        return self._ensure_loaded()[2]

    @property
    def loaded(self) -> bool:
        """Whether the weights are in memory (not yet, after a cached info, until first use)."""
        return self._loaded is not None

    @property
    def precision(self) -> str:
        return self.info.precision

    def _ensure_loaded(self) -> Any:
        if self._loaded is None:
            from audit.errors import DataError

            fresh = self._load()
            if (fresh.cache_key, fresh.logit_scale, fresh.logit_bias) != (
                    self.info.cache_key, self.info.logit_scale, self.info.logit_bias):
                raise DataError(f"model '{self._id}' no longer matches its cached description {self._card} "
                                "(its cache key, logit scale or logit bias changed)",
                                fix=f"delete {self._card} and re-run")
        assert self._loaded is not None
        return self._loaded


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
