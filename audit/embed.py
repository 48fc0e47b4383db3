"""The one batching loop: images and prompts -> normalized embeddings, through the cache."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from audit.cache import ImageStore, Shard, TextStore
from audit.data.base import LoadedDataset, UnreadableImage
from audit.distributed import Dist
from audit.models.base import ImageTextModel
from audit.progress import counter


@dataclass(frozen=True)
class ImageEmbeddings:
    embeddings: np.ndarray  # [N, D], rows of unreadable images are zero
    ok: np.ndarray          # [N] bool
    errors: dict[int, str]  # row -> why it was skipped
    computed_shards: int    # shards encoded in this call (0 = everything came from the cache)


class _Rows(Dataset):  # type: ignore[type-arg]
    """Decoded, preprocessed images of some rows; an unreadable image becomes a flagged zero tensor."""

    def __init__(self, data: LoadedDataset, preprocess: Any, rows: range, shape: tuple[int, ...]) -> None:
        self.data, self.preprocess, self.rows, self.shape = data, preprocess, rows, shape

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> tuple[int, torch.Tensor, bool, str]:
        row = self.rows[i]
        try:
            return row, self.preprocess(self.data.load_image(row)), True, ""
        except UnreadableImage as exc:
            return row, torch.zeros(self.shape), False, str(exc) or "unreadable image"


def default_workers(n_rows: int) -> int:
    if n_rows < 256:
        return 0
    return max(0, min(8, (os.cpu_count() or 1) - 1))


@dataclass(frozen=True)
class EmbedJob:
    """How a run encodes images: batching, workers, progress and torchrun ranks."""

    batch_size: int = 64
    num_workers: int | None = None
    shard_rows: int = 1024
    quiet: bool = False
    dist: Dist = field(default_factory=Dist)


def embed_through_cache(model: ImageTextModel, data: LoadedDataset, store: ImageStore, job: EmbedJob,
                        desc: str) -> ImageEmbeddings | None:
    """Every image's features through ``store``. Under torchrun every rank first fills its own
    shards and all meet at a barrier; then rank 0 reads everything back and the others get None."""
    if job.dist.enabled:
        embed_images(model, data, store, batch_size=job.batch_size, num_workers=job.num_workers,
                     quiet=job.quiet or not job.dist.is_main, desc=desc, rank=job.dist.rank,
                     world_size=job.dist.world_size, read_back=False)
        job.dist.barrier()
        if not job.dist.is_main:
            return None
    return embed_images(model, data, store, batch_size=job.batch_size, num_workers=job.num_workers,
                        quiet=job.quiet, desc=desc)


def embed_images(model: ImageTextModel, data: LoadedDataset, store: ImageStore, *,
                 batch_size: int = 64, num_workers: int | None = None, quiet: bool = False,
                 desc: str = "images", rank: int = 0, world_size: int = 1,
                 read_back: bool = True) -> ImageEmbeddings:
    """Encode every image not yet in ``store``, shard by shard, then read all shards back.

    With ``world_size > 1`` this process encodes only shards ``i % world_size == rank``; with
    ``read_back=False`` it returns after encoding (other ranks under torchrun).
    """
    n = len(data)
    todo = [i for i in range(store.n_shards(n)) if not store.has(i) and i % world_size == rank]
    computed = 0
    if todo:
        from PIL import Image

        shape = tuple(model.preprocess(Image.new("RGB", (8, 8))).shape)
        workers = default_workers(n) if num_workers is None else num_workers
        bar = counter(sum(len(store.rows(i, n)) for i in todo), desc, "images", quiet=quiet)
        for i in todo:
            with store.lock(i):
                if store.has(i):  # another process finished it while we waited
                    bar.update(len(store.rows(i, n)))
                    continue
                store.write(i, _encode_rows(model, data, store.rows(i, n), shape, batch_size, workers, bar))
                computed += 1
        bar.close()
    if not read_back:
        return ImageEmbeddings(np.zeros((0, 0), np.float32), np.zeros(0, bool), {}, computed)
    shards = [store.read(i) for i in range(store.n_shards(n))]
    if not shards:
        return ImageEmbeddings(np.zeros((0, 0), np.float32), np.zeros(0, bool), {}, computed)
    errors = {k: v for s in shards for k, v in s.errors.items()}
    return ImageEmbeddings(np.concatenate([s.embeddings for s in shards]),
                           np.concatenate([s.ok for s in shards]), errors, computed)


def _encode_rows(model: ImageTextModel, data: LoadedDataset, rows: range, shape: tuple[int, ...],
                 batch_size: int, workers: int, bar: Any) -> Shard:
    loader = DataLoader(_Rows(data, model.preprocess, rows, shape), batch_size=batch_size,
                        num_workers=workers, pin_memory=getattr(model, "device", "cpu") == "cuda",
                        persistent_workers=False)
    embs: list[np.ndarray] = []
    oks: list[np.ndarray] = []
    errors: dict[int, str] = {}
    for row_ids, images, ok, why in loader:
        emb = model.encode_images(images)
        ok_np = ok.numpy().astype(bool)
        emb[~ok_np] = 0.0
        embs.append(emb)
        oks.append(ok_np)
        errors.update({int(r): str(w) for r, w, good in zip(row_ids, why, ok_np) if not good})
        bar.update(len(ok_np))
    return Shard(np.concatenate(embs), np.concatenate(oks), errors)


def embed_texts(model: ImageTextModel, prompts: Sequence[str], store: TextStore, *,
                batch_size: int = 256, quiet: bool = False) -> tuple[np.ndarray, int]:
    """Embeddings of ``prompts`` in order; only prompts missing from the cache are encoded.

    Returns the embeddings and how many prompts were encoded in this call.
    """
    unique = list(dict.fromkeys(prompts))
    cached = store.lookup(unique)
    # Shortest first: a batch then holds prompts of similar length, and a text tower that skips
    # trailing padding (audit.models.text_trim) runs each batch at about its own prompts' length.
    missing = sorted((p for p in unique if p not in cached), key=len)
    if missing:
        parts = []
        bar = counter(len(missing), "encoding prompts", "prompts", quiet=quiet)
        for start in range(0, len(missing), batch_size):
            parts.append(model.encode_texts(missing[start:start + batch_size]))
            bar.update(len(parts[-1]))
        bar.close()
        new = np.concatenate(parts)
        store.add(missing, new)
        cached.update(zip(missing, new))
    return np.stack([cached[p] for p in prompts]).astype(np.float32), len(missing)
