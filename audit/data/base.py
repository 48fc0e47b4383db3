"""What every dataset adapter provides.

An adapter turns a :class:`~audit.spec.DatasetSpec` into a :class:`LoadedDataset`: a metadata
table with one row per image (``image_id`` plus subgroup and target columns as label strings)
and random access to the decoded images. Adapters do not batch, embed or compute metrics.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import pandas as pd

from audit.spec import DatasetSpec

#: Written into the ``image_id`` column.
IMAGE_ID = "image_id"
#: Integer class index of the target (for class-name label sets), when the dataset has one.
TARGET_INDEX = "target_index"


@dataclass(frozen=True)
class DatasetInfo:
    """Provenance of a loaded dataset; ``fingerprint`` enters the embedding-cache key."""

    name: str
    adapter: str
    source: str
    config: str | None
    split: str
    revision: str | None
    num_rows: int
    fingerprint: str
    class_names: tuple[str, ...] | None = None
    templates: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class LoadedDataset(Protocol):
    info: DatasetInfo
    #: One row per image, in row order: ``image_id``, subgroup columns, ``target`` (label
    #: string) and ``target_index`` (int) where the dataset has a target.
    metadata: pd.DataFrame

    def __len__(self) -> int: ...

    def load_image(self, row: int) -> Any:
        """The PIL image (RGB) at metadata row ``row``; raises :class:`UnreadableImage`."""
        ...


class UnreadableImage(Exception):
    """An image that cannot be decoded. The run skips it, counts it and lists its id."""


class DatasetAdapter(Protocol):
    #: Columns the adapter always provides (validation checks subgroups against them), or
    #: None when only the data can tell (generic hf/imagefolder).
    columns: ClassVar[tuple[str, ...] | None]
    default_source: ClassVar[str | None]
    default_split: ClassVar[str]

    def __init__(self, spec: DatasetSpec, resolve: Callable[[str], Path]) -> None: ...

    def load(self) -> LoadedDataset: ...


class AdapterBase:
    """What every concrete adapter stores: its dataset spec and the probe's path resolver."""

    def __init__(self, spec: DatasetSpec, resolve: Callable[[str], Path]) -> None:
        self.spec = spec
        self.resolve = resolve
