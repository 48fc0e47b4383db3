"""A planted model for class-index datasets (ImageNet and its shifts), registered in tests as the
``planted_classes:`` scheme.

It reads the class names an image carries from its pixels (:func:`tests.robust_fixtures.read_codes`)
and embeds the image as the normalized sum of those names' one-hot directions; a prompt is
embedded as the one-hot direction of the class name in it. Only names some image carries get a
direction of their own; every other name shares one "unused" direction that no image points
along, so its score is 0. Scores are therefore exactly ``logit_scale / sqrt(k)`` or 0.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audit.models.base import ModelInfo
from tests import robust_fixtures as rf

LOGIT_SCALE = 100.0


class PlantedClassModel:
    def __init__(self, model_id: str, *, name: str | None = None, device: str = "cpu", seed: int = 0,
                 resolve: Callable[[str], Path] | None = None) -> None:
        self.device = "cpu"
        self.book = rf.codebook()
        self.dim = len(self.book) + 1  # the last direction: names no image carries
        self.info = ModelInfo(id=model_id, name=name or model_id, scheme="planted_classes",
                              weights="planted", cache_key=f"planted_classes:{model_id}",
                              logit_scale=LOGIT_SCALE, logit_bias=None, random_weights=False,
                              preprocess="codes read from the pixels", device="cpu", precision="fp32")

    @staticmethod
    def preprocess(img: Any) -> torch.Tensor:
        return torch.tensor(rf.read_codes(img), dtype=torch.int64)

    def direction(self, name: str) -> int:
        return self.book.index(name) if name in self.book else self.dim - 1

    def embed_names(self, names: Sequence[str]) -> np.ndarray:
        v = np.zeros(self.dim, np.float32)
        v[sorted({self.direction(n) for n in names})] = 1.0
        return v / np.linalg.norm(v)

    def encode_images(self, batch: Any) -> np.ndarray:
        codes = np.asarray(batch).reshape(-1, 2)
        return np.stack([self.embed_names([self.book[c] for c in row]) for row in codes])

    @cached_property
    def _prompt_to_name(self) -> dict[str, str]:
        """Every prompt the fixtures can produce -> its class name (open_clip's two template sets)."""
        from audit.labels import fill, resolve_templates

        templates = dict.fromkeys((*resolve_templates("openai_imagenet"), *resolve_templates("simple_imagenet")))
        out: dict[str, str] = {}
        for name in rf.prompt_universe():
            for t in templates:
                prompt = fill(t, name)
                if out.setdefault(prompt, name) != name:
                    raise AssertionError(f"prompt {prompt!r} is ambiguous: {out[prompt]!r} or {name!r}")
        return out

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        lookup = self._prompt_to_name
        unknown = [t for t in texts if t not in lookup]
        if unknown:
            raise AssertionError(f"planted model cannot read prompts such as {unknown[:3]}")
        return np.stack([self.embed_names([lookup[t]]) for t in texts])


__all__ = ["LOGIT_SCALE", "PlantedClassModel"]
