"""What every dataset adapter provides.

An adapter turns a :class:`~audit.spec.DatasetSpec` into a :class:`LoadedDataset`: a metadata
table with one row per image (``image_id`` plus subgroup and target columns as label strings)
and random access to the decoded images. Adapters do not batch, embed or compute metrics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

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


@dataclass(frozen=True)
class Option:
    """One declared dataset-adapter option (``dataset.options.NAME`` in a probe).

    Attributes:
        type: ``int`` (a whole number, within ``bounds`` when given), ``str``, ``choice`` (one of
            ``choices``) or ``dir`` (a directory that must exist; relative to the probe file).
        help: What the option means and its default, for ``audit list`` and messages.
        choices: The allowed values of a ``choice`` option.
        bounds: Inclusive ``(low, high)`` of an ``int`` option.
    """

    type: Literal["int", "str", "choice", "dir"]
    help: str
    choices: tuple[str, ...] = ()
    bounds: tuple[int, int] | None = None

    def problem(self, value: object, resolve: Callable[[str], Path]) -> str | None:
        """Why ``value`` is not valid for this option, or None."""
        if self.type == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                return f"must be a whole number, not {value!r}"
            if self.bounds and not self.bounds[0] <= value <= self.bounds[1]:
                return f"must be a whole number in [{self.bounds[0]}, {self.bounds[1]}], not {value}"
            return None
        if not isinstance(value, str):
            return f"must be a string, not {value!r}"
        if self.type == "choice" and value not in self.choices:
            from audit.registry import did_you_mean

            return f"'{value}' is not one of {', '.join(self.choices)}{did_you_mean(value, self.choices)}"
        if self.type == "dir":
            try:
                found = resolve(value).is_dir()
            except (OSError, ValueError) as exc:
                return f"not a usable path: {exc}"
            if not found:
                return f"directory not found: {resolve(value)} (relative paths resolve against the probe file)"
        return None


def option_help(options: Mapping[str, Option]) -> dict[str, str]:
    """Name -> help text of declared options (what ``audit list`` and run-time checks show)."""
    return {name: opt.help for name, opt in options.items()}


def option_problems(given: Mapping[str, object], declared: Mapping[str, Option],
                    resolve: Callable[[str], Path]) -> list[tuple[str, str]]:
    """``(option name, problem)`` for every unknown or invalid entry of ``dataset.options``."""
    from audit.registry import did_you_mean

    out: list[tuple[str, str]] = []
    for key, value in given.items():
        opt = declared.get(key)
        if opt is None:
            known = did_you_mean(key, list(declared)) if declared else ""
            out.append((key, f"unknown option '{key}'{known}"))
        elif (problem := opt.problem(value, resolve)) is not None:
            out.append((key, problem))
    return out


class DatasetAdapter(Protocol):
    #: Declared ``dataset.options`` (the loader checks them before anything runs).
    options: ClassVar[Mapping[str, Option]]
    #: Columns the adapter always provides (validation checks subgroups against them), or
    #: None when only the data can tell (generic hf/imagefolder).
    columns: ClassVar[tuple[str, ...] | None]
    default_source: ClassVar[str | None]
    default_split: ClassVar[str]

    def __init__(self, spec: DatasetSpec, resolve: Callable[[str], Path]) -> None: ...

    def load(self) -> LoadedDataset: ...


class AdapterBase:
    """What every concrete adapter stores: its dataset spec and the probe's path resolver."""

    #: ``dataset`` fields this adapter takes no value for (a generated dataset has no ``source``);
    #: the probe loader refuses them. An adapter without ``default_source`` and without
    #: ``source`` here needs one in the probe.
    not_applicable: ClassVar[tuple[str, ...]] = ()

    def __init__(self, spec: DatasetSpec, resolve: Callable[[str], Path]) -> None:
        self.spec = spec
        self.resolve = resolve
