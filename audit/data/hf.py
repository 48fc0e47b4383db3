"""Loading through Hugging Face ``datasets``: hub ids and local copies of hub repos, one code path.

``source`` is a hub id or a local directory laid out like the hub repo; both go through
``datasets.load_dataset(source, config, split=..., revision=...)``. Images are cast to
``Image(decode=False)`` and decoded here with PIL (:func:`audit.data.decode_image`), so one bad
file raises :class:`~audit.data.base.UnreadableImage` for its row instead of crashing the run.

Offline behaviour: ``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE`` are honoured when set at call time
(the libraries read them once, at import), and a dataset that is not available becomes a
:class:`~audit.errors.DataError` that says how to get it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import yaml

from audit.data import (
    TARGET,
    Table,
    TableDataset,
    build_dataset,
    check_options,
    local_signature,
)
from audit.data.base import IMAGE_ID, TARGET_INDEX, AdapterBase, Option, option_help
from audit.errors import DataError, UserError
from audit.registry import did_you_mean
from audit.spec import DatasetSpec
from audit.spec.load import looks_like_path

_TRUE = {"1", "ON", "YES", "TRUE"}

#: How to make a hub dataset available offline; ``{id}``, ``{rev}`` are filled in.
OFFLINE_FIX = (
    "run once with network access to fill the Hugging Face cache, then set HF_HUB_OFFLINE=1; "
    "or download the repo with `hf download --repo-type dataset {id}{rev} --local-dir DIR` "
    "(`huggingface-cli download ...` with huggingface_hub < 1.0) and set `source: DIR` in the probe"
)


@dataclass(frozen=True)
class Source:
    """Where a dataset lives: ``id`` is the hub id, or the absolute path of a local directory."""

    id: str
    local: Path | None = None

    @property
    def is_local(self) -> bool:
        return self.local is not None


def resolve_source(source: str | None, default: str | None, resolve: Callable[[str], Path],
                   adapter: str) -> Source:
    """Decide hub id vs local directory: an existing directory wins; a path-like string that
    does not exist is a :class:`UserError`; anything else of the form ``org/name`` is a hub id."""
    if source is None:
        if default is None:
            raise UserError(f"dataset adapter '{adapter}' needs `source`",
                            fix="set dataset.source to a hub id (org/name) or a local directory")
        return Source(default)
    path = resolve(source)
    if path.is_dir():
        return Source(str(path), path)
    if path.exists():
        raise UserError(f"dataset source {path} is a file, not a directory",
                        fix="point dataset.source at the dataset's root directory")
    if looks_like_path(source):
        raise UserError(
            f"dataset source directory not found: {path} (written as '{source}')",
            fix="fix the path (relative paths resolve against the probe file), or give a hub id "
                "of the form org/name",
        )
    return Source(source)


# --------------------------------------------------------------------------- offline handling


def offline_requested() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` is set now (not just at import)."""
    return any(os.environ.get(k, "").upper() in _TRUE for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


@contextlib.contextmanager
def hub_mode() -> Iterator[None]:
    """Apply an offline request made after ``datasets``/``huggingface_hub`` were imported.

    Both libraries read the variables once at import; without this a variable set later would be
    ignored and a missing dataset would take ~25 s of retries before failing.
    """
    if not offline_requested():
        yield
        return
    import datasets.config
    from huggingface_hub import constants

    saved = (datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE, constants.HF_HUB_OFFLINE)
    datasets.config.HF_HUB_OFFLINE = datasets.config.HF_DATASETS_OFFLINE = True
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        (datasets.config.HF_HUB_OFFLINE, datasets.config.HF_DATASETS_OFFLINE,
         constants.HF_HUB_OFFLINE) = saved


def not_available(repo: str, config: str | None, split: str, revision: str | None,
                  cause: BaseException, file: str | None = None) -> DataError:
    """The :class:`DataError` for a hub dataset (or one of its files) that cannot be had."""
    where = f"config {config!r}, split {split!r}" if config else f"split {split!r}"
    if revision:
        where += f", revision {revision!r}"
    what = f"dataset '{repo}' ({where})" + (f": file {file}" if file else "")
    mode = " (offline mode is on)" if offline_requested() else ""
    rev = f" --revision {revision}" if revision else ""
    return DataError(
        f"{what} is not available{mode}: {type(cause).__name__}: {str(cause)[:200]}",
        fix=OFFLINE_FIX.format(id=repo, rev=rev),
    )


def hub_file(repo: str, filename: str, revision: str | None, *, split: str,
             required: bool = True) -> str | None:
    """Text of a file of a hub dataset repo (through the HF cache); None if optional and missing."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        with hub_mode():
            path = hf_hub_download(repo, filename, repo_type="dataset", revision=revision)
    except EntryNotFoundError as err:  # not in the repo, or (Local...) not cached while offline
        if not required:
            return None
        raise not_available(repo, None, split, revision, err, file=filename) from err
    except OSError as err:  # ConnectionError, HTTP errors
        raise not_available(repo, None, split, revision, err, file=filename) from err
    return Path(path).read_text(encoding="utf-8")


# --------------------------------------------------------------------------- opening a split


def _config_files(root: Path, config: str | None, split: str) -> tuple[str | None, Any]:
    """``data_files`` of ``config``/``split`` from a local README's ``configs`` front matter.

    Passing them explicitly makes ``datasets`` key its Arrow cache on the files' mtimes; with the
    README route alone a regenerated directory would silently load the stale cache.
    """
    readme = root / "README.md"
    if not readme.is_file():
        return config, None
    from huggingface_hub import DatasetCard

    try:
        configs = DatasetCard.load(readme).data.to_dict().get("configs") or []
    except (ValueError, yaml.YAMLError) as err:
        raise DataError(f"cannot read the front matter of {readme}: {err}",
                        fix="fix the YAML between the leading '---' lines") from err
    if not configs:
        return config, None
    by_name = {str(c.get("config_name", "default")): c for c in configs}
    if config is None:
        defaults = [n for n, c in by_name.items() if c.get("default")]
        config = defaults[0] if defaults else next(iter(by_name))
    if config not in by_name:
        raise UserError(
            f"config '{config}' is not in {root}{did_you_mean(config, list(by_name))}",
            fix=f"set dataset.config to one of {sorted(by_name)}")
    files = by_name[config].get("data_files")
    if files is None:
        return config, None
    if isinstance(files, list) and files and isinstance(files[0], dict):
        splits: dict[str, Any] = {str(d["split"]): d["path"] for d in files}
    else:  # a bare pattern or list of patterns is the train split
        splits = {"train": files}
    if split not in splits:
        raise UserError(
            f"split '{split}' is not in config '{config}' of {root}{did_you_mean(split, list(splits))}",
            fix=f"set dataset.split to one of {sorted(splits)}")
    return config, {split: splits[split]}


def open_split(source: Source, *, config: str | None, split: str, revision: str | None,
               data_files: Mapping[str, Any] | None = None) -> Any:
    """``datasets.load_dataset`` with errors turned into :class:`UserError`/:class:`DataError`."""
    import datasets

    if source.local is not None:
        if revision:
            raise UserError(f"dataset.revision ('{revision}') applies to hub ids, not to the local "
                            f"directory {source.local}", fix="remove dataset.revision")
        if data_files is None:
            config, data_files = _config_files(source.local, config, split)
    try:
        with hub_mode():
            return datasets.load_dataset(source.id, config, split=split, data_files=data_files,
                                         revision=None if source.is_local else revision)
    except ValueError as err:
        msg = str(err)
        if "BuilderConfig" in msg or "Unknown split" in msg or "Bad split" in msg:
            raise UserError(f"dataset '{source.id}': {msg}",
                            fix="set dataset.config / dataset.split to one listed") from err
        raise DataError(f"cannot read dataset '{source.id}': {msg[:300]}") from err
    except OSError as err:  # ConnectionError, FileNotFoundError, LocalEntryNotFoundError, ...
        if source.is_local:
            raise DataError(
                f"cannot read the local dataset {source.id} (split {split!r}): "
                f"{type(err).__name__}: {str(err)[:300]}",
                fix="check that the directory is laid out like the hub repo (data files, and a "
                    "README.md whose front matter lists the configs)",
            ) from err
        raise not_available(source.id, config, split, revision, err) from err


# --------------------------------------------------------------------------- tables from datasets


def image_columns(features: Mapping[str, Any]) -> list[str]:
    """Columns whose feature type is ``datasets.Image``, in feature order."""
    import datasets

    return [name for name, f in features.items() if isinstance(f, datasets.Image)]


class HFImages:
    """Picklable fetcher: row -> (bytes, path) of the first non-empty image column."""

    def __init__(self, ds: Any, columns: list[str]) -> None:
        import datasets

        ds = ds.select_columns(columns)
        for col in columns:
            ds = ds.cast_column(col, datasets.Image(decode=False))
        self._ds = ds
        self._columns = columns

    def __call__(self, row: int) -> tuple[bytes | None, str | None]:
        record = self._ds[row]
        for col in self._columns:
            value = record[col]
            if value is not None and (value.get("bytes") is not None or value.get("path")):
                return value.get("bytes"), value.get("path")
        return None, None


def class_names_of(feature: Any) -> list[str] | None:
    """The names of a ClassLabel feature, else None."""
    import datasets

    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def label_strings(values: pd.Series, names: list[str] | None) -> pd.Series:
    """ClassLabel ints -> the feature's own names (-1 -> None); anything else -> str."""
    if names is not None:
        lookup = np.asarray([*names, None], dtype=object)
        codes = values.fillna(-1).to_numpy(dtype=np.int64)
        return pd.Series(lookup[np.where(codes < 0, len(names), codes)], dtype=object)
    return pd.Series([None if v is None or pd.isna(v) else str(v) for v in values], dtype=object)


def hf_table(ds: Any, spec: DatasetSpec, *, split: str, attributes: tuple[str, ...],
             image_column: str | None = None, id_column: str | None = None,
             allow_many_images: bool = False) -> Table:
    """Metadata and image access for a loaded ``datasets.Dataset``.

    ``attributes`` are output column names; ``spec.columns`` maps each to its source column.
    ``spec.target`` (one of them) also yields ``target`` and ``target_index``.
    """
    features = ds.features
    images = [image_column] if image_column else image_columns(features)
    if image_column and image_column not in features:
        raise UserError(
            f"image column '{image_column}' is not in dataset{did_you_mean(image_column, list(features))}",
            fix=f"set dataset.options.image_column to one of {list(features)}")
    if not images:
        raise DataError(f"dataset has no Image column (columns: {', '.join(features)})",
                        fix="set dataset.options.image_column to the column holding the images")
    if len(images) > 1 and not allow_many_images:
        raise UserError(f"dataset has several Image columns ({', '.join(images)})",
                        fix="set dataset.options.image_column to the one to audit")
    wanted = {out: spec.columns.get(out, out) for out in attributes}
    missing = [f"'{out}'" + (f" (source column '{src}')" if src != out else "")
               for out, src in wanted.items() if src not in features]
    if missing:
        raise UserError(f"column(s) {', '.join(missing)} not in dataset '{spec.display_name}' "
                        f"(columns: {', '.join(c for c in features if c not in images)})",
                        fix="fix dataset.subgroups/target, or map names with dataset.columns")
    key_col = id_column or ("__key__" if "__key__" in features else None)
    if key_col is not None and key_col not in features:
        raise UserError(f"id column '{key_col}' is not in dataset{did_you_mean(key_col, list(features))}")
    sources = sorted({*wanted.values(), *([key_col] if key_col else [])})
    raw = ds.select_columns(sources).to_pandas() if sources else pd.DataFrame(index=range(len(ds)))
    meta = pd.DataFrame({IMAGE_ID: (raw[key_col].astype(str).to_numpy() if key_col else
                                    [f"{split}/{i:06d}" for i in range(len(ds))])})
    names: dict[str, list[str] | None] = {}
    for out, src in wanted.items():
        names[out] = class_names_of(features[src])
        meta[out] = label_strings(raw[src], names[out]).to_numpy()
    class_names = None
    if spec.target is not None:
        meta[TARGET] = meta[spec.target]
        values = raw[wanted[spec.target]]
        if names[spec.target] is None and pd.api.types.is_integer_dtype(values) and len(values):
            # Plain int labels: the int is the index; names are its digits ("10" is class 10).
            class_names = [str(i) for i in range(int(values.max()) + 1)]
        else:
            class_names = names[spec.target] or sorted({v for v in meta[TARGET] if v is not None})
        index = {n: i for i, n in enumerate(class_names)}
        meta[TARGET_INDEX] = np.asarray([index.get(v, -1) for v in meta[TARGET]], dtype=np.int64)
    return Table(meta, HFImages(ds, images), base_fingerprint=str(getattr(ds, "_fingerprint", "")),
                 class_names=tuple(class_names) if class_names else None,
                 extra={"image_columns": images,
                        # the dataset's own label order (FairFace's age bins), kept for results
                        "label_order": {c: list(v) for c, v in names.items() if v is not None}})


def declared_columns(spec: DatasetSpec) -> tuple[str, ...]:
    """Subgroup, intersection, stratify and target columns of a spec, first-seen order."""
    cols = [*spec.subgroups, *(c for combo in spec.intersections for c in combo), *spec.stratify]
    if spec.target:
        cols.append(spec.target)
    return tuple(dict.fromkeys(cols))


class HFAdapter(AdapterBase):
    """Any hub id or local hub-layout directory (``source`` is required).

    Metadata columns are the declared subgroups/target (renamed through ``dataset.columns``);
    ClassLabel columns become their label names, other columns ``str``.
    """

    columns: ClassVar[tuple[str, ...] | None] = None
    default_source: ClassVar[str | None] = None
    default_split: ClassVar[str] = "train"
    options: ClassVar[dict[str, Option]] = {
        "image_column": Option("str", "column holding the images (default: the one column of type Image)"),
        "id_column": Option("str", "column holding a stable image id (default: __key__, else split/row)"),
        "data_files": Option("str", "glob of the split's files in the repo, e.g. 'test/*.tar' (default: "
                                    "the README's configs, else datasets' inference)"),
    }
    options_help: ClassVar[dict[str, str]] = option_help(options)

    def load(self) -> TableDataset:
        spec = self.spec
        check_options(spec, self.options, self.resolve)
        source = resolve_source(spec.source, self.default_source, self.resolve, spec.adapter)
        split = spec.split or self.default_split
        opt = spec.options
        data_files = {split: str(opt["data_files"])} if "data_files" in opt else None
        ds = open_split(source, config=spec.config, split=split, revision=spec.revision,
                        data_files=data_files)
        table = hf_table(ds, spec, split=split, attributes=declared_columns(spec),
                         image_column=str(opt["image_column"]) if "image_column" in opt else None,
                         id_column=str(opt["id_column"]) if "id_column" in opt else None)
        if source.local is not None:
            table.extra["local_signature"] = local_signature(source.local)
        return build_dataset(spec, table, source=source.id, config=spec.config, split=split,
                             revision=spec.revision)
