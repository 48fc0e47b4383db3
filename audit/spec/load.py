"""YAML -> validated :class:`ProbeSpec` / :class:`LabelSet`, with every problem located.

The same loader serves ``validate`` and ``run``; it imports no torch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from audit.errors import Problem, UserError
from audit.registry import did_you_mean
from audit.spec.models import LabelSet, ProbeSpec, split_categories

M = TypeVar("M", bound=BaseModel)

#: Special ``label_sets`` entry: use the dataset's own class names.
CLASSNAMES = "classnames"
#: Named template sets, resolved from open_clip's shipped metadata.
NAMED_TEMPLATES = ("openai_imagenet", "simple_imagenet", "dataset")


def format_loc(loc: tuple[Any, ...]) -> str:
    """``('dataset', 'subgroups', 1)`` -> ``dataset.subgroups[1]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


def _problems_from_validation(err: ValidationError, model: type[BaseModel],
                              single_dataset: bool = False) -> list[Problem]:
    problems = []
    errors = err.errors()
    failed_inside = {tuple(e["loc"][:1]) for e in errors if len(e["loc"]) > 1}
    for e in errors:
        if e["type"] == "too_short" and tuple(e["loc"]) in failed_inside:
            continue  # pydantic's echo of an item that failed itself: already reported
        loc = model_loc = tuple(p for p in e["loc"] if not _is_union_tag(p))
        if single_dataset and loc[:2] == ("datasets", 0):
            loc = ("dataset", *loc[2:])  # report in the user's own spelling
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            known = _fields_at(model, model_loc[:-1])
            msg = f"unknown key '{loc[-1]}'{did_you_mean(str(loc[-1]), known) if known else ''}"
        elif e["type"] == "missing":
            msg = "required field is missing"
        elif e["type"] == "union_tag_invalid":
            msg = f"unknown gate type {e['input'].get('type')!r}" if isinstance(e["input"], dict) else msg
        problems.append(Problem(format_loc(loc), msg))
    return problems


def _is_union_tag(part: Any) -> bool:
    # pydantic puts the discriminator value ('max_rate') into loc for tagged unions.
    from audit.spec.models import GATE_TYPES

    return isinstance(part, str) and part in GATE_TYPES


def _fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The field names valid at ``loc`` inside ``model`` (best effort, for did-you-mean)."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = _inner_model(field.annotation, typing)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _inner_model(annotation: Any, typing: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _inner_model(arg, typing)
        if found is not None:
            return found
    return None


def read_yaml(path: Path, what: str) -> Any:
    """Read a YAML file, turning I/O and syntax problems into located user errors."""
    if not path.exists():
        raise UserError(f"{what} file not found: {path}", fix="check the path")
    if path.is_dir():
        raise UserError(f"{what} path is a directory, not a YAML file: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {what} file {path}: {exc}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = getattr(exc, "problem", None) or str(exc)
        raise UserError(
            f"{path} is not valid YAML",
            problems=[Problem(where, str(problem))],
            fix="fix the YAML syntax (indentation, quotes, colons)",
        ) from None
    if data is None:
        raise UserError(f"{path} is empty", fix=f"write a {what} as a YAML mapping (see probes/)")
    if not isinstance(data, dict):
        raise UserError(
            f"{path} is not a valid {what}",
            problems=[Problem("(top level)", f"expected a mapping of keys, got {type(data).__name__}")],
        )
    return data


def parse(model: type[M], data: dict[str, Any], path: Path, what: str) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        single = "dataset" in data and "datasets" not in data
        raise UserError(
            f"{path} is not a valid {what}", problems=_problems_from_validation(err, model, single)
        ) from None


def load_label_set(path: Path) -> LabelSet:
    return parse(LabelSet, read_yaml(path, "label set"), path, "label set")


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class LoadedLabelSet:
    path: Path
    spec: LabelSet
    sha256: str


@dataclass(frozen=True)
class Probe:
    """A validated probe plus what the loader resolved: its path, hash and label sets."""

    path: Path
    spec: ProbeSpec
    sha256: str
    label_sets: tuple[LoadedLabelSet, ...]
    query_sets: tuple[LoadedLabelSet, ...] = ()

    def resolve(self, relative: str) -> Path:
        """Resolve a path written in the probe relative to the probe file."""
        return _resolve_from(self.path.parent, relative)

    def resolved_dict(self) -> dict[str, Any]:
        return json.loads(self.spec.model_dump_json())


def looks_like_path(source: str) -> bool:
    return source.startswith((".", "/", "~")) or source.count("/") != 1


def load_probe(path: str | Path, *, check_names: bool = True) -> Probe:
    """Load, validate and cross-check a probe file; raise :class:`UserError` listing all problems."""
    path = Path(path)
    data = read_yaml(path, "probe")
    spec = parse(ProbeSpec, data, path, "probe")
    probe_dir = path.parent
    problems: list[Problem] = []
    loaded: list[LoadedLabelSet] = []
    for i, entry in enumerate(spec.label_sets):
        if entry == CLASSNAMES:
            continue
        found = _load_listed(probe_dir, entry, f"label_sets[{i}]", problems)
        if found is not None:
            loaded.append(found)
    queries: list[LoadedLabelSet] = []
    for i, qs in enumerate(spec.retrieval.query_sets if spec.retrieval else ()):
        found = _load_listed(probe_dir, qs.labels, f"retrieval.query_sets[{i}].labels", problems)
        if found is not None:
            queries.append(found)
    problems += _cross_check(spec, loaded, check_names, probe_dir)
    problems += _check_retrieval(spec, queries)
    problems += _check_associations(spec, loaded, probe_dir)
    if problems:
        raise UserError(f"{path} is not a valid probe", problems=problems)
    return Probe(path.resolve(), spec, file_hash(path), tuple(loaded), tuple(queries))


def _resolve_from(base: Path, relative: str) -> Path:
    p = Path(relative).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _load_listed(probe_dir: Path, entry: str, field: str, problems: list[Problem]) -> LoadedLabelSet | None:
    """Load one label-set file named in a probe; record problems under ``field``."""
    ls_path = Path(entry) if Path(entry).is_absolute() else (probe_dir / entry)
    if not ls_path.exists():
        problems.append(Problem(field, f"label-set file not found: {ls_path}"))
        return None
    try:
        ls = load_label_set(ls_path)
    except UserError as err:
        problems += [Problem(f"{field} ({ls_path})", p.render()) for p in err.problems] or [
            Problem(field, err.message)
        ]
        return None
    return LoadedLabelSet(ls_path.resolve(), ls, file_hash(ls_path))


def _check_retrieval(spec: ProbeSpec, queries: list[LoadedLabelSet]) -> list[Problem]:
    problems: list[Problem] = []
    cols = {c for d in spec.datasets for c in d.subgroups}
    cols |= {" x ".join(c) for d in spec.datasets for c in d.intersections}
    names = [q.spec.name for q in queries]
    if spec.retrieval is not None:
        for j, col in enumerate(spec.retrieval.group_cols or ()):
            if col not in cols:
                problems.append(Problem(f"retrieval.group_cols[{j}]", f"'{col}' is not a declared subgroup or intersection{did_you_mean(col, sorted(cols))}"))
        if len(set(names)) != len(names):
            problems.append(Problem("retrieval.query_sets", "two query sets share a label-set name; names must be unique"))
    for i, gate in enumerate(spec.gates):
        if getattr(gate, "type", "") != "max_retrieval_skew":
            continue
        if spec.retrieval is None:
            problems.append(Problem(f"gates[{i}]", "max_retrieval_skew needs a 'retrieval:' section in the probe"))
            continue
        if gate.k not in spec.retrieval.ks:
            problems.append(Problem(f"gates[{i}].k", f"k={gate.k} is not among retrieval.ks {list(spec.retrieval.ks)}"))
        if gate.query_set not in names:
            problems.append(Problem(f"gates[{i}].query_set", f"unknown query set '{gate.query_set}'{did_you_mean(gate.query_set, names)}"))
    return problems


def _cross_check(spec: ProbeSpec, label_sets: list[LoadedLabelSet], check_names: bool,
                 probe_dir: Path = Path(".")) -> list[Problem]:
    from audit import registries

    problems: list[Problem] = []
    # Duplicate labels across merged label sets.
    seen: dict[str, str] = {}
    categories: set[str] = set()
    for ls in label_sets:
        for label in ls.spec.labels:
            if label.text in seen:
                problems.append(Problem(
                    "label_sets", f"label {label.text!r} is in both {seen[label.text]} and {ls.spec.name}"
                ))
            seen[label.text] = ls.spec.name
            categories.add(label.category)
    uses_classnames = CLASSNAMES in spec.label_sets
    if uses_classnames:
        categories.add("class")

    if isinstance(spec.templates, str) and spec.templates not in NAMED_TEMPLATES:
        problems.append(Problem(
            "templates", f"unknown template set '{spec.templates}'{did_you_mean(spec.templates, NAMED_TEMPLATES)}"
        ))

    for name, variant in spec.variants.items():
        for key in ("include", "exclude"):
            for j, cat in enumerate(getattr(variant, key) or ()):
                if cat not in categories:
                    problems.append(Problem(
                        f"variants.{name}.{key}[{j}]",
                        f"unknown category '{cat}'{did_you_mean(cat, categories)}",
                    ))

    def check_category_expr(field: str, expr: str) -> None:
        for cat in split_categories(expr):
            if cat not in categories:
                problems.append(Problem(field, f"unknown category '{cat}'{did_you_mean(cat, categories)}"))

    for i, expr in enumerate(spec.categories):
        check_category_expr(f"categories[{i}]", expr)

    names = [d.display_name for d in spec.datasets]
    for i, ds in enumerate(spec.datasets):
        field = f"datasets[{i}]" if len(spec.datasets) > 1 else "dataset"
        if names.count(ds.display_name) > 1:
            problems.append(Problem(f"{field}.name", f"dataset name '{ds.display_name}' is used twice; give each a distinct name"))
        if check_names and ds.adapter not in registries.DATASETS:
            problems.append(Problem(f"{field}.adapter", registries.DATASETS.unknown_message(ds.adapter)))
            continue
        known_cols = registries.dataset_columns(ds.adapter) if check_names else None
        declared = list(ds.subgroups) + [c for combo in ds.intersections for c in combo] + list(ds.stratify)
        if known_cols is not None:
            extra = set(ds.columns)
            available = sorted(set(known_cols) | extra)
            for j, col in enumerate(ds.subgroups):
                if col not in available:
                    problems.append(Problem(
                        f"{field}.subgroups[{j}]",
                        f"column '{col}' is not in dataset {ds.adapter}{did_you_mean(col, available)} "
                        f"(columns: {', '.join(available)})",
                    ))
            if ds.target is not None and ds.target not in available:
                problems.append(Problem(f"{field}.target", f"column '{ds.target}' is not in dataset {ds.adapter}{did_you_mean(ds.target, available)}"))
        for j, combo in enumerate(ds.intersections):
            for col in combo:
                if col not in ds.subgroups:
                    problems.append(Problem(f"{field}.intersections[{j}]", f"column '{col}' is not among the declared subgroups {list(ds.subgroups)}"))
        for j, v in enumerate(ds.variants or ()):
            if v not in spec.variants:
                problems.append(Problem(f"{field}.variants[{j}]", f"unknown variant '{v}'{did_you_mean(v, list(spec.variants))}"))
        for j, col in enumerate(ds.stratify):
            if col not in ds.subgroups and col != ds.target:
                problems.append(Problem(f"{field}.stratify[{j}]", f"column '{col}' must be a declared subgroup or the target"))
        del declared

    if check_names:
        for i, m in enumerate(spec.models):
            msg = registries.check_model_id(m.id, lambda p: _resolve_from(probe_dir, p))
            if msg:
                problems.append(Problem(f"models[{i}].id", msg))
        for i, metric in enumerate(spec.metrics):
            if metric.name not in registries.METRICS:
                problems.append(Problem(f"metrics[{i}].name", registries.METRICS.unknown_message(metric.name)))
            for j, expr in enumerate(metric.categories or ()):
                check_category_expr(f"metrics[{i}].categories[{j}]", expr)
    model_names = [m.display_name for m in spec.models]
    subgroup_cols = {c for d in spec.datasets for c in d.subgroups}
    subgroup_cols |= {" x ".join(c) for d in spec.datasets for c in d.intersections}
    from audit.robustness.tables import SHIFTS

    for i, gate in enumerate(spec.gates):
        field = f"gates[{i}]"
        shift = getattr(gate, "shift", None)
        if shift is not None and shift not in SHIFTS:
            problems.append(Problem(f"{field}.shift", f"unknown shift '{shift}'{did_you_mean(shift, SHIFTS)}"))
        if hasattr(gate, "category"):
            check_category_expr(f"{field}.category", gate.category)
        col = getattr(gate, "group_col", None)
        if col is not None and col != "overall" and col not in subgroup_cols:
            problems.append(Problem(f"{field}.group_col", f"'{col}' is not a declared subgroup{did_you_mean(col, sorted(subgroup_cols))}; use 'overall' or one of {sorted(subgroup_cols)}"))
        for v in list(gate.variants or ()) + [getattr(gate, "base", None), getattr(gate, "compare", None)]:
            if v is not None and v not in spec.variants:
                problems.append(Problem(f"{field}", f"unknown variant '{v}'{did_you_mean(v, list(spec.variants))}"))
        for m in gate.models or ():
            if m not in model_names:
                problems.append(Problem(f"{field}.models", f"unknown model '{m}'{did_you_mean(m, model_names)}"))
    return problems


def _check_associations(spec: ProbeSpec, label_sets: list[LoadedLabelSet], probe_dir: Path) -> list[Problem]:
    """Association tests and their gates (see :mod:`audit.association`)."""
    from audit.association import check_associations

    return check_associations(spec, [ls.spec for ls in label_sets], lambda p: _resolve_from(probe_dir, p))
