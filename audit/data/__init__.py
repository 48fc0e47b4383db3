"""Dataset adapters, and the row table every adapter builds.

Each adapter (``fairface``, ``hf``, ``imagefolder``, the ImageNet family, ``synthetic_fairface``;
see :data:`audit.registries.DATASETS`) turns a :class:`~audit.spec.DatasetSpec` into a
:class:`Table` (metadata + a row -> image-bytes fetcher) and hands it to :func:`build_dataset`,
the one place that subsamples (``limit``/``stratify``), fingerprints and decodes images. The
result is a :class:`TableDataset`, which implements :class:`~audit.data.base.LoadedDataset`.

Importing this package imports no ``datasets``, torch or open_clip.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image, UnidentifiedImageError

from audit.data.base import (
    IMAGE_ID,
    TARGET_INDEX,
    DatasetAdapter,
    DatasetInfo,
    LoadedDataset,
    Option,
    UnreadableImage,
)
from audit.errors import UserError
from audit.spec import DatasetSpec

__all__ = [
    "IMAGE_ID", "SUBSAMPLE_SEED", "TARGET", "TARGET_INDEX", "DatasetAdapter", "DatasetInfo",
    "ImageFetch", "LoadedDataset", "Table", "TableDataset", "UnreadableImage", "build_dataset",
    "check_options", "decode_image", "local_signature", "open_dataset", "select_rows", "to_rgb",
]

#: Metadata column holding the target's label string (``target_index`` holds its int index).
TARGET = "target"
#: Fixed base seed of subsampling; the spec's dataset fields are hashed into it.
SUBSAMPLE_SEED = 20240607

#: Row of the underlying store -> (encoded bytes or None, file path or None).
ImageFetch = Callable[[int], tuple[bytes | None, str | None]]


def open_dataset(spec: DatasetSpec, resolve: Callable[[str], Path]) -> LoadedDataset:
    """Look up ``spec.adapter`` in the registry, construct it and load."""
    from audit.registries import DATASETS

    if spec.adapter not in DATASETS:
        raise UserError(DATASETS.unknown_message(spec.adapter))
    adapter: Any = DATASETS.get(spec.adapter)(spec, resolve)
    return adapter.load()  # type: ignore[no-any-return]


# --------------------------------------------------------------------------- images


def to_rgb(img: Image.Image) -> Image.Image:
    """Any PIL mode -> RGB. 16-bit and float grayscale are rescaled (a plain ``convert`` would
    clip them to white); palette images with transparency go through RGBA; alpha is dropped, as
    open_clip's own ``convert('RGB')`` does."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I", "F") or img.mode.startswith("I;16"):
        arr = np.asarray(img, dtype=np.float64)
        wide = img.mode.startswith("I;16") or (arr.size > 0 and float(arr.max()) > 255)
        img = Image.fromarray(np.clip(arr / 257.0 if wide else arr, 0, 255).astype(np.uint8), "L")
    elif img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    return img.convert("RGB")


def decode_image(data: bytes | None, path: str | None, *, image_id: str = "",
                 border_crop: int = 0) -> Image.Image:
    """Decode encoded bytes (or read ``path``) into an RGB image, fully loaded.

    Raises:
        UnreadableImage: missing, zero-byte, truncated or non-image data.
    """
    where = image_id or path or "image"
    if data is None:
        if not path:
            raise UnreadableImage(f"{where}: no image data")
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            raise UnreadableImage(f"{where}: cannot read {path}: {err}") from err
    if not data:
        raise UnreadableImage(f"{where}: zero-byte image")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # decodes now, so truncation shows here and not later in a transform
            rgb = to_rgb(img)
    except UnidentifiedImageError as err:
        raise UnreadableImage(f"{where}: not an image in any format PIL reads") from err
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError) as err:
        raise UnreadableImage(f"{where}: {type(err).__name__}: {err}") from err
    if border_crop > 0 and rgb.width > 2 * border_crop and rgb.height > 2 * border_crop:
        b = border_crop
        rgb = rgb.crop((b, b, rgb.width - b, rgb.height - b))
    return rgb


# --------------------------------------------------------------------------- the row table


@dataclass
class Table:
    """What an adapter produces before subsampling: one metadata row per stored image."""

    metadata: pd.DataFrame
    fetch: ImageFetch
    #: Fingerprint of the underlying store (``datasets``' ``_fingerprint``, or a file listing hash).
    base_fingerprint: str = ""
    class_names: tuple[str, ...] | None = None
    templates: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: Pixels cropped from each border after decoding (ObjectNet, the testbed's way).
    border_crop: int = 0


class TableDataset:
    """A :class:`~audit.data.base.LoadedDataset`: metadata row ``i`` -> stored row ``rows[i]``."""

    def __init__(self, info: DatasetInfo, metadata: pd.DataFrame, fetch: ImageFetch,
                 rows: np.ndarray, border_crop: int = 0) -> None:
        self.info = info
        self.metadata = metadata
        self._fetch = fetch
        self._rows = rows
        self._border_crop = border_crop

    def __len__(self) -> int:
        return len(self.metadata)

    def load_image(self, row: int) -> Image.Image:
        """The RGB image at metadata row ``row``; raises :class:`UnreadableImage`."""
        if not 0 <= row < len(self.metadata):
            raise IndexError(f"row {row} out of range for {len(self.metadata)} images")
        data, path = self._fetch(int(self._rows[row]))
        return decode_image(data, path, image_id=str(self.metadata[IMAGE_ID].iat[row]),
                            border_crop=self._border_crop)


def check_options(spec: DatasetSpec, declared: Mapping[str, Option], resolve: Callable[[str], Path]) -> None:
    """``dataset.options`` judged by the same rule as the probe loader
    (:func:`audit.data.base.option_problems`), for adapters built without it (in code); a
    :class:`UserError` lists every problem."""
    from audit.data.base import option_help, option_problems
    from audit.errors import Problem

    problems = option_problems(spec.options, declared, resolve)
    if problems:
        known = ", ".join(f"{k} ({v})" for k, v in option_help(declared).items()) or "none"
        raise UserError(f"invalid options for dataset adapter '{spec.adapter}'",
                        problems=[Problem(f"dataset.options.{k}", msg) for k, msg in problems],
                        fix=f"options of {spec.adapter}: {known}")


def local_signature(root: Path) -> str:
    """Hash of the relative paths, sizes and mtimes of the files under ``root`` (hidden skipped)."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(f for f in filenames if not f.startswith(".")):
            p = os.path.join(dirpath, name)
            st = os.stat(p)
            h.update(f"{os.path.relpath(p, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _quota(sizes: np.ndarray, limit: int, rng: np.random.Generator) -> np.ndarray:
    """Spread ``limit`` over strata of ``sizes`` as evenly as capacity allows (water-filling);
    the last few units, which cannot be split evenly, go to randomly chosen strata."""
    quota = np.zeros_like(sizes)
    remaining = int(min(limit, sizes.sum()))
    while remaining > 0:
        open_ = np.flatnonzero(quota < sizes)
        share = remaining // len(open_)
        if share == 0:
            quota[rng.choice(open_, size=remaining, replace=False)] += 1
            break
        add = np.minimum(share, sizes[open_] - quota[open_])
        quota[open_] += add
        remaining -= int(add.sum())
    return quota


def select_rows(metadata: pd.DataFrame, limit: int | None, stratify: Sequence[str],
                seed_key: str) -> tuple[np.ndarray, dict[str, Any] | None]:
    """Deterministic subsample: the first ``limit`` rows, or with ``stratify`` rows spread evenly
    over the strata (random within each, seeded by ``SUBSAMPLE_SEED`` and ``seed_key``).
    Returns the chosen row positions (in original order) and what to record in ``extra``."""
    n = len(metadata)
    if limit is None:
        return np.arange(n), None
    record: dict[str, Any] = {"limit": limit, "stratify": list(stratify), "rows_before": n}
    if limit >= n:
        return np.arange(n), {**record, "method": "all"}
    if not stratify:
        return np.arange(limit), {**record, "method": "first"}
    seed = int.from_bytes(hashlib.sha256(f"{SUBSAMPLE_SEED}|{seed_key}".encode()).digest()[:8], "big") >> 1
    rng = np.random.default_rng(seed)
    groups = metadata.groupby(list(stratify), sort=False, dropna=False).indices
    keys = sorted(groups, key=lambda k: json.dumps(k if isinstance(k, tuple) else (k,), default=str))
    sizes = np.asarray([len(groups[k]) for k in keys], dtype=np.int64)
    quota = _quota(sizes, limit, rng)
    pairs = list(zip(keys, quota, strict=True))
    chosen = [rng.choice(np.sort(groups[k]), size=int(q), replace=False) for k, q in pairs]
    rows = np.sort(np.concatenate(chosen)) if chosen else np.arange(0)
    strata = {"|".join(map(str, k if isinstance(k, tuple) else (k,))): int(q) for k, q in pairs}
    return rows, {**record, "method": "stratified", "seed": seed, "strata": strata}


def build_dataset(spec: DatasetSpec, table: Table, *, source: str, config: str | None,
                  split: str, revision: str | None) -> TableDataset:
    """Subsample, fingerprint and wrap a :class:`Table` into a :class:`TableDataset`."""
    meta = table.metadata
    missing = [c for c in spec.stratify if c not in meta.columns]
    if missing:
        raise UserError(f"dataset.stratify: column(s) {missing} are not in dataset '{spec.display_name}' "
                        f"(columns: {', '.join(meta.columns)})", fix="stratify by declared subgroups")
    seed_key = json.dumps([spec.adapter, source, config, split, revision, spec.limit, list(spec.stratify)])
    rows, sub = select_rows(meta, spec.limit, spec.stratify, seed_key)
    meta = meta.iloc[rows].reset_index(drop=True)
    parts = {"adapter": spec.adapter, "source": source, "config": config, "split": split,
             "revision": revision, "base": table.base_fingerprint, "options": dict(spec.options),
             "limit": spec.limit, "stratify": list(spec.stratify), "extra": table.extra,
             "border_crop": table.border_crop}
    h = hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode())
    h.update(np.ascontiguousarray(rows, dtype=np.int64).tobytes())
    h.update("\0".join(map(str, meta[IMAGE_ID])).encode())
    info = DatasetInfo(
        name=spec.display_name, adapter=spec.adapter, source=source, config=config, split=split,
        revision=revision, num_rows=len(meta), fingerprint=h.hexdigest()[:32],
        class_names=table.class_names, templates=table.templates,
        extra={**table.extra, "rows_total": len(table.metadata), "subsample": sub},
    )
    return TableDataset(info, meta, table.fetch, rows, table.border_crop)
