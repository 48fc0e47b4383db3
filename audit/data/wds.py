"""Any clip_benchmark or DataComp webdataset: hub id (``clip-benchmark/wds_cars``,
``djghosh/wds_geode_test``) or a local directory in the same layout.

Layout: ``classnames.txt`` (line i = class i), ``zeroshot_classification_templates.txt``
(placeholder ``{c}``), ``<split>/0.tar ...``; each sample holds an image (``webp``/``png``/
``jpg``/``jpeg``), ``cls`` and, in DataComp's fairness sets, ``npy``: a vector of integer
metadata codes. The probe names the vector's fields (``dataset.metadata: [region, country]``)
and may name their codes (``dataset.metadata_names: {region: [Africa, ...]}``); the fields then
are ordinary columns (subgroups, stratify, target).

DataComp's FairFace/UTKFace repos prefix every class name and template with an objective
(``race:``, ``gender:``, ``age:``, ``toxic:``); ``options.objective`` picks one, and the class
names and templates become that objective's, prefix removed (one label set per objective).
With an objective the target is a metadata field (``dataset.target: gender``: code i = class i);
``options.one_vs_rest`` scores one class against all others (max over each side), DataComp's
white vs non-white race accuracy. ``dataset.class_categories`` puts class-index ranges into
categories (``{non_human: '14-17', crime: '18-'}``) for rate metrics.

``image_id`` is the webdataset key. ``DatasetInfo.extra`` records ``metadata_fields``,
``metadata_names``, ``objective`` and ``class_categories``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from audit.data import TARGET, Table, TableDataset, build_dataset, check_options, local_signature
from audit.data.base import IMAGE_ID, TARGET_INDEX, AdapterBase, Option, option_help
from audit.data.hf import HFImages, Source, hub_file, image_columns, open_split, resolve_source
from audit.errors import DataError, UserError
from audit.spec import DatasetSpec

CLASSNAMES_FILE = "classnames.txt"
TEMPLATES_FILE = "zeroshot_classification_templates.txt"
#: Names of the columns the class and the metadata vector come from in ``datasets``' builder.
CLS, NPY, KEY = "cls", "npy", "__key__"
_PREFIX_RE = re.compile(r"^([A-Za-z_]+):")
_RANGE_RE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d*)\s*)?$")


def lines_of(text: str | None) -> list[str]:
    """Non-empty stripped lines (line i of classnames.txt is class i)."""
    return [s.strip() for s in (text or "").splitlines() if s.strip()]


def split_objectives(entries: Sequence[str]) -> dict[str, list[str]]:
    """``["race:white", "gender:male", ...]`` -> ``{"race": ["white"], "gender": ["male"]}``.

    Split at the first ``:``, as DataComp does; empty when any entry has no prefix."""
    out: dict[str, list[str]] = {}
    for entry in entries:
        m = _PREFIX_RE.match(entry)
        if m is None:
            return {}
        out.setdefault(m.group(1), []).append(entry[m.end():])
    return out


def parse_ranges(spec: str, n: int, where: str) -> list[int]:
    """``'14-17'``, ``'18-'`` (to the end), ``'3'`` or comma-separated ones -> indices < ``n``."""
    out: list[int] = []
    for part in spec.split(","):
        m = _RANGE_RE.match(part)
        if m is None:
            raise UserError(f"{where}: '{part.strip()}' is not an index range",
                            fix="write e.g. '14-17', '18-' (to the last class) or '3'")
        lo = int(m.group(1))
        hi = n - 1 if m.group(2) == "" else int(m.group(2) or lo)
        if lo > hi or hi >= n:
            raise UserError(f"{where}: range '{part.strip()}' is outside the {n} classes 0-{n - 1}",
                            fix="fix the range")
        out += range(lo, hi + 1)
    return out


def class_categories(ranges: dict[str, str], n: int) -> list[str] | None:
    """Category of each class from ``{category: ranges}``; unlisted classes are ``class``."""
    if not ranges:
        return None
    cats = ["class"] * n
    for cat, spec in ranges.items():
        for i in parse_ranges(spec, n, f"dataset.class_categories.{cat}"):
            if cats[i] != "class":
                raise UserError(f"dataset.class_categories: class {i} is in both '{cats[i]}' and '{cat}'",
                                fix="make the ranges disjoint")
            cats[i] = cat
    return cats


class WdsAdapter(AdapterBase):
    """Generic webdataset adapter (``source`` is required: a hub id or a local directory)."""

    columns: ClassVar[tuple[str, ...] | None] = None
    default_source: ClassVar[str | None] = None
    default_split: ClassVar[str] = "test"
    options: ClassVar[dict[str, Option]] = {
        "objective": Option("str", "for objective-prefixed repos (race:, gender:, age:, toxic:): the "
                                   "objective whose class names and templates are used"),
        "one_vs_rest": Option("int", "index of the class scored against all other classes (max over each "
                                     "side); the target field's codes are 0 = that class, 1 = the rest",
                              bounds=(0, 1_000_000)),
    }
    options_help: ClassVar[dict[str, str]] = option_help(options)

    def load(self) -> TableDataset:
        spec = self.spec
        check_options(spec, self.options, self.resolve)
        self.check_spec()
        source = resolve_source(spec.source, self.default_source, self.resolve, spec.adapter)
        split = spec.split or self.default_split
        names, templates = self.read_texts(source, split)
        ds = open_split(source, config=None, split=split, revision=spec.revision,
                        data_files={split: f"{split}/*.tar"})
        images = image_columns(ds.features)
        if not images:
            raise DataError(f"'{source.id}' split {split} has no image in its samples "
                            f"(columns: {', '.join(ds.features)})",
                            fix="each sample needs a webp, png, jpg or jpeg file")
        wanted = [KEY] + [c for c in (CLS, NPY) if c in ds.features]
        raw = ds.select_columns(wanted).to_pandas()
        meta, extra, codes = self.metadata_table(raw, source.id)
        extra.update(self.targets(meta, raw, codes, names, source.id), image_columns=images)
        table = Table(meta, HFImages(ds, images), base_fingerprint=str(ds._fingerprint),
                      class_names=tuple(names), templates=tuple(templates) if templates else None,
                      extra=extra)
        if source.local is not None:
            table.extra["local_signature"] = local_signature(source.local)
        return build_dataset(spec, table, source=source.id, config=None, split=split,
                             revision=spec.revision)

    # -- checks and texts ------------------------------------------------------------------

    def check_spec(self) -> None:
        """Columns come only from the npy metadata: without declared fields there are none.
        (With fields declared, :class:`~audit.spec.DatasetSpec` checks the names at load.)"""
        spec = self.spec
        used = [*spec.subgroups, *(c for combo in spec.intersections for c in combo), *spec.stratify]
        used += [spec.target] if spec.target not in (None, TARGET) else []
        if used and not spec.metadata:
            raise UserError(f"dataset '{spec.display_name}': column(s) {', '.join(dict.fromkeys(used))} "
                            "need the npy metadata fields declared",
                            fix="declare the npy vector's fields in order: metadata: [field, ...]")

    def read_texts(self, source: Source, split: str) -> tuple[list[str], list[str]]:
        """Class names and templates; with ``options.objective``, that objective's, unprefixed."""
        if source.local is not None:
            path = source.local / CLASSNAMES_FILE
            if not path.is_file():
                raise DataError(f"{path} not found", fix="the webdataset layout needs classnames.txt "
                                "(one class name per line, line i = label i)")
            names = lines_of(path.read_text(encoding="utf-8"))
            tpl = source.local / TEMPLATES_FILE
            templates = lines_of(tpl.read_text(encoding="utf-8")) if tpl.is_file() else []
        else:
            rev = self.spec.revision
            names = lines_of(hub_file(source.id, CLASSNAMES_FILE, rev, split=split))
            templates = lines_of(hub_file(source.id, TEMPLATES_FILE, rev, split=split, required=False))
        by_names, by_templates = split_objectives(names), split_objectives(templates)
        objective = self.spec.options.get("objective")
        if objective is None:
            if by_names and by_templates:
                raise UserError(f"'{source.id}' prefixes its class names and templates with objectives "
                                f"({', '.join(by_names)})", fix="set dataset.options.objective to one of them")
            return names, templates
        if str(objective) not in by_names:
            raise UserError(f"dataset.options.objective: '{objective}' is not an objective of "
                            f"'{source.id}' (objectives: {', '.join(by_names) or 'none, not prefixed'})",
                            fix="use one of the prefixes of classnames.txt")
        return by_names[str(objective)], by_templates.get(str(objective), templates)

    # -- metadata --------------------------------------------------------------------------

    def metadata_table(self, raw: pd.DataFrame, source: str) -> tuple[pd.DataFrame, dict[str, Any], np.ndarray]:
        """``image_id`` plus one column per declared metadata field (names or code strings)."""
        spec = self.spec
        meta = pd.DataFrame({IMAGE_ID: raw[KEY].astype(str).to_numpy()})
        extra: dict[str, Any] = {"metadata_fields": list(spec.metadata),
                                 "metadata_names": {k: list(v) for k, v in spec.metadata_names.items()},
                                 "objective": spec.options.get("objective")}
        if not spec.metadata:
            return meta, extra, np.empty((len(raw), 0), dtype=np.int64)
        if NPY not in raw:
            raise DataError(f"'{source}' has no npy metadata in its samples, but dataset.metadata "
                            f"declares {list(spec.metadata)}", fix="remove dataset.metadata, or use "
                            "a DataComp fairness webdataset")
        codes = self.codes(raw, source)
        order: dict[str, list[str]] = {}
        for j, name in enumerate(spec.metadata):
            col = codes[:, j]
            labels = spec.metadata_names.get(name)
            if labels is not None:
                bad = np.flatnonzero((col < 0) | (col >= len(labels)))
                if bad.size:
                    raise DataError(f"sample {raw[KEY].iat[bad[0]]} of '{source}': {name} code "
                                    f"{col[bad[0]]} has no name in dataset.metadata_names.{name} "
                                    f"({len(labels)} names, codes 0-{len(labels) - 1}); "
                                    f"{bad.size} samples affected",
                                    fix=f"list a name for every code of {name}")
                meta[name] = np.asarray(labels, dtype=object)[col]
                order[name] = list(labels)
            else:
                meta[name] = col.astype(str).astype(object)
                order[name] = [str(v) for v in np.unique(col)]
        extra["label_order"] = order
        return meta, extra, codes

    def codes(self, raw: pd.DataFrame, source: str) -> np.ndarray:
        """The ``[samples, fields]`` integer code matrix; a vector of the wrong length or a
        non-integer value is a :class:`DataError` naming the sample."""
        n = len(self.spec.metadata)
        out = np.empty((len(raw), n), dtype=np.int64)
        for i, vec in enumerate(raw[NPY]):
            arr = np.asarray(vec if vec is not None else [], dtype=np.float64).reshape(-1)
            if arr.size != n:
                raise DataError(f"sample {raw[KEY].iat[i]} of '{source}': its npy metadata has "
                                f"{arr.size} values, but dataset.metadata declares {n} "
                                f"({', '.join(self.spec.metadata)})",
                                fix="declare one name per value of the vector, in order")
            if not np.all(np.isfinite(arr) & (arr == np.round(arr))):
                raise DataError(f"sample {raw[KEY].iat[i]} of '{source}': npy metadata {arr.tolist()} "
                                "holds values that are not integer codes")
            out[i] = arr.astype(np.int64)
        return out

    # -- target ----------------------------------------------------------------------------

    def targets(self, meta: pd.DataFrame, raw: pd.DataFrame, codes: np.ndarray, names: list[str],
                source: str) -> dict[str, Any]:
        """Add ``target``/``target_index`` to ``meta``: the class (``cls``), or a metadata field's
        code. Returns the entries for ``DatasetInfo.extra`` (class categories, collapse groups)."""
        spec = self.spec
        cats = class_categories(spec.class_categories, len(names))
        extra: dict[str, Any] = {"class_categories": cats}
        field = spec.target if spec.target not in (None, TARGET) else None
        if field is None and "one_vs_rest" in spec.options:
            raise UserError("dataset.options.one_vs_rest needs dataset.target: the metadata field "
                            "coding the class (0) against the rest (1)", fix="set dataset.target")
        if field is None and spec.options.get("objective") is not None:
            if spec.target == TARGET:
                raise UserError("dataset.target: with an objective the target is a metadata field",
                                fix="set dataset.target to e.g. gender, or remove it")
            return extra
        if field is None:
            if CLS not in raw:
                raise DataError(f"'{source}' has no cls in its samples", fix="each sample needs a .cls")
            index = raw[CLS].to_numpy(dtype=np.int64)
            labels = list(names)
        else:
            index = codes[:, list(spec.metadata).index(field)]
            labels, groups = self.one_vs_rest(names, field)
            if groups is not None:
                extra.update(collapse_groups=groups, collapse_names=labels)
        bad = np.flatnonzero((index < 0) | (index >= len(labels)))
        if bad.size:
            raise DataError(f"sample {raw[KEY].iat[bad[0]]} of '{source}': target {index[bad[0]]} is "
                            f"outside the {len(labels)} classes; {bad.size} samples affected",
                            fix="check classnames.txt, options.objective and dataset.target")
        meta[TARGET] = np.asarray(labels, dtype=object)[index]
        meta[TARGET_INDEX] = index
        return extra

    def one_vs_rest(self, names: list[str], field: str) -> tuple[list[str], list[list[int]] | None]:
        """Target labels and, with ``options.one_vs_rest``, the two collapse groups."""
        chosen = self.spec.options.get("one_vs_rest")
        if chosen is None:
            return list(names), None
        i = int(chosen)
        if not 0 <= i < len(names):
            raise UserError(f"dataset.options.one_vs_rest: {i} is not a class index (the objective has "
                            f"{len(names)} classes: {', '.join(names[:10])})", fix=f"use 0-{len(names) - 1}")
        labels = list(self.spec.metadata_names.get(field, (names[i], f"not {names[i]}")))
        if len(labels) != 2:
            raise UserError(f"dataset.metadata_names.{field}: one_vs_rest needs exactly 2 names "
                            "(the class, the rest)", fix="list two names")
        return labels, [[i], [j for j in range(len(names)) if j != i]]
