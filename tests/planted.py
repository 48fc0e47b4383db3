"""A test model adapter with a planted bias, for end-to-end checks of the fairness audit.

Images written by :func:`write_planted_fairface` carry their race index and a "flag" bit in two
pixels. The model maps a flagged image onto the label 'gorilla' and every other image onto its
own race x gender label, so the rates a run reports are known exactly in advance.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch
from PIL import Image

from audit.testing.fixtures import FAIRFACE_GENDER, FAIRFACE_RACE, write_fairface_dir
from audit.models.base import ModelInfo

LABELS = [f"{r.replace('_', ' ')} {g}" for r in FAIRFACE_RACE for g in ("man", "woman")] + [
    "thief", "criminal", "suspicious person", "animal", "gorilla", "chimpanzee", "orangutan", "child",
]


def write_planted_fairface(root: Path, n: int, flag_prob: dict[str, float], seed: int = 0) -> dict[str, np.ndarray]:
    """A FairFace-shaped copy whose pixels encode race, gender and a Bernoulli flag per image."""
    write_fairface_dir(root, n=n, seed=seed, size=8)
    path = next(root.glob("0.25/validation-*.parquet"))
    table = pq.read_table(path)
    rng = np.random.default_rng(seed)
    race = np.array(table.column("race").to_pylist())
    gender = np.array(table.column("gender").to_pylist())
    flags = np.array([rng.random() < flag_prob.get(FAIRFACE_RACE[r], 0.0) for r in race])
    images = []
    for r, g, f in zip(race, gender, flags):
        img = Image.new("RGB", (8, 8), (int(r) * 30, int(g) * 100, 200 if f else 0))
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        images.append({"bytes": buf.getvalue(), "path": None})
    import pyarrow as pa

    col = table.schema.get_field_index("image")
    table = table.set_column(col, table.schema.field("image"), pa.array(images, type=table.schema.field("image").type))
    pq.write_table(table, path)
    return {"race": race, "gender": gender, "flag": flags}


class PlantedModel:
    """Registered in tests as the ``planted:`` scheme."""

    def __init__(self, model_id: str, *, name: str | None = None, device: str = "cpu", seed: int = 0,
                 resolve: Callable[[str], Path] | None = None) -> None:
        self.device = "cpu"
        self.preprocess = lambda img: torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.float32))
        self.info = ModelInfo(id=model_id, name=name or model_id, scheme="planted", weights="planted",
                              cache_key=f"planted:{model_id}", logit_scale=100.0, logit_bias=None,
                              random_weights=False, preprocess="raw pixels", device="cpu", precision="fp32")

    def _onehot(self, index: int) -> np.ndarray:
        v = np.zeros(len(LABELS), np.float32)
        v[index] = 1
        return v

    def encode_images(self, batch: Any) -> np.ndarray:
        out = []
        for img in batch.numpy():
            r, g, f = int(img[0, 0, 0]) // 30, int(img[0, 0, 1]) // 100, img[0, 0, 2] > 100
            label = "gorilla" if f else f"{FAIRFACE_RACE[r].replace('_', ' ')} {('man', 'woman')[g]}"
            out.append(self._onehot(LABELS.index(label)))
        return np.stack(out)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for t in texts:
            hits = [i for i, lb in enumerate(LABELS) if lb in t]
            best = max(hits, key=lambda i: len(LABELS[i]))  # "thief" vs "suspicious person" etc.
            out.append(self._onehot(best))
        return np.stack(out)


__all__ = ["FAIRFACE_GENDER", "LABELS", "PlantedModel", "write_planted_fairface"]
