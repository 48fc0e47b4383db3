"""``demo_world``: held-out images of the generated demo world, made in memory on demand.

Columns: ``kin`` (zorbin, quellan, ostravi), ``age_band`` (sprout, elder), ``object`` (ball,
book, leaf, star) and ``caption`` (what the world would have written under the image; not used
by the audit). Rows come in balanced blocks of 36 (every kin x object once as a sprout and twice
as an elder), so any ``n`` that is a multiple of 36 is exactly balanced. Images come from split
``test`` of :mod:`audit.demo.world`, whose random streams the training split never uses.

Options: ``n`` (number of images, default 432) and ``seed`` (default 0).
"""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import ClassVar

import pandas as pd

from audit.data import TARGET, Table, TableDataset, build_dataset, check_options
from audit.data.base import IMAGE_ID, TARGET_INDEX, AdapterBase, Option, option_help
from audit.demo import world
from audit.errors import UserError
from audit.spec import DatasetSpec

DEFAULT_N = 432
DEFAULT_SEED = 0
#: Upper bound on ``n``: generation is fast, but the point is a small demo.
MAX_N = 100_000
SOURCE = "audit.demo.world"


def world_signature() -> str:
    """Hash of the generator's source: any change to how images or captions are made changes it."""
    return hashlib.sha256(Path(world.__file__).read_bytes()).hexdigest()[:16]


def _int_option(spec: DatasetSpec, key: str, default: int, low: int, high: int) -> int:
    value = spec.options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise UserError(f"dataset.options.{key}: must be an integer from {low} to {high}, got {value!r}",
                        fix=f"e.g. options: {{{key}: {default}}}")
    return value


class _Render:
    """Row -> PNG bytes of that sample, drawn on demand (a class, so DataLoader workers can pickle it)."""

    def __init__(self, split: str, seed: int) -> None:
        self.split, self.seed = split, seed

    def __call__(self, row: int) -> tuple[bytes, None]:
        _, img = world.render(self.split, self.seed, row)
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        return buf.getvalue(), None


class DemoWorldAdapter(AdapterBase):
    """The demo world's held-out figures (see :mod:`audit.demo.world`)."""

    columns: ClassVar[tuple[str, ...] | None] = ("kin", "age_band", "object")
    default_source: ClassVar[str | None] = None
    default_split: ClassVar[str] = "test"
    not_applicable: ClassVar[tuple[str, ...]] = ("source", "columns")
    options: ClassVar[dict[str, Option]] = {
        "n": Option("int", f"number of images (default {DEFAULT_N}; multiples of {world.BLOCK} are exactly "
                           "balanced)", bounds=(1, MAX_N)),
        "seed": Option("int", f"seed of the generated world (default {DEFAULT_SEED})", bounds=(0, 2**31 - 1)),
    }
    options_help: ClassVar[dict[str, str]] = option_help(options)

    def load(self) -> TableDataset:
        spec = self.spec
        check_options(spec, self.options, self.resolve)
        n = _int_option(spec, "n", DEFAULT_N, 1, MAX_N)
        seed = _int_option(spec, "seed", DEFAULT_SEED, 0, 2**31 - 1)
        split = spec.split or self.default_split
        if split not in world.SPLITS:
            raise UserError(f"dataset.split: demo_world has no split '{split}'",
                            fix=f"use one of: {', '.join(world.SPLITS)} (the audit uses 'test')")
        if spec.source is not None or spec.columns:
            raise UserError("dataset: demo_world generates its images and has fixed columns; "
                            "'source' and 'columns' do not apply", fix="remove dataset.source / dataset.columns")
        if spec.target is not None and spec.target not in (self.columns or ()):
            raise UserError(f"dataset.target: column '{spec.target}' is not a demo_world trait",
                            fix="use target: object (or kin, age_band)")
        meta = pd.DataFrame([
            {IMAGE_ID: f"{split}-{seed}-{s.index:06d}", "kin": s.kin, "age_band": s.age_band,
             "object": s.object, "caption": s.caption}
            for s in world.samples(split, seed, n)
        ])
        class_names = None
        if spec.target is not None:
            names = {"kin": world.KINS, "age_band": world.AGE_BANDS, "object": world.OBJECTS}[spec.target]
            class_names = tuple(names)
            meta[TARGET] = meta[spec.target]
            meta[TARGET_INDEX] = meta[spec.target].map({c: i for i, c in enumerate(names)}).astype(int)
        table = Table(meta, _Render(split, seed), class_names=class_names,
                      base_fingerprint=f"demo_world:{world_signature()}:n={n}:seed={seed}",
                      extra={"generator": SOURCE, "planted_kin": world.PLANTED_KIN,
                             "flagged_rates": dict(world.FLAGGED_RATES)})
        return build_dataset(spec, table, source=SOURCE, config=None, split=split, revision=None)
