"""Cross-checks of one dataset entry and one gate (see :mod:`audit.spec.cross_check`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from audit.errors import Problem
from audit.registry import did_you_mean
from audit.spec.load import looks_like_path, unusable_path
from audit.spec.models import DatasetSpec, ProbeSpec


def subgroup_columns(spec: ProbeSpec) -> set[str]:
    """Declared subgroup columns and intersections (``race x gender``) over all datasets."""
    cols = {c for d in spec.datasets for c in d.subgroups}
    return cols | {" x ".join(c) for d in spec.datasets for c in d.intersections}


def builtin_notebooks() -> tuple[list[str], set[str]]:
    """The shipped report kinds (``fairness``, ...) and every name that selects a shipped notebook
    (also ``fairness_report.ipynb`` and ``fairness_report``)."""
    from audit.report import TEMPLATES

    files = set(TEMPLATES.values())
    return sorted(TEMPLATES), set(TEMPLATES) | files | {f.removesuffix(".ipynb") for f in files}


def check_dataset(ds: DatasetSpec, where: str, resolve: Callable[[str], Path], check_names: bool) -> list[Problem]:
    """Adapter, columns, options and local source of one ``datasets[i]`` entry."""
    from audit import registries
    from audit.data.base import option_problems

    out: list[Problem] = []
    if check_names and ds.adapter not in registries.DATASETS:
        return [Problem(f"{where}.adapter", registries.DATASETS.unknown_message(ds.adapter))]
    out += _column_problems(ds, where, registries.dataset_columns(ds.adapter) if check_names else None)
    if check_names:
        adapter = registries.DATASETS.get(ds.adapter)
        declared = getattr(adapter, "options", {})
        out += [Problem(f"{where}.options.{key}", f"{msg} (options of {ds.adapter}: "
                        f"{', '.join(declared) or 'none'}; see `python -m audit list`)")
                for key, msg in option_problems(ds.options, declared, resolve)]
        out += _field_problems(ds, where, adapter)
    else:  # judging gates only (check --probe): the data need not be on this machine
        return out
    if ds.source is not None and unusable_path(ds.source):
        out.append(Problem(f"{where}.source", str(unusable_path(ds.source))))
    elif ds.source is not None:
        path = resolve(ds.source)
        if path.exists() and not path.is_dir():
            out.append(Problem(f"{where}.source", f"{path} is a file; point source at the dataset's root directory"))
        elif not path.exists() and looks_like_path(ds.source):
            out.append(Problem(f"{where}.source", f"dataset directory not found: {path} (relative paths resolve "
                                                  "against the probe file; a hub id is written org/name)"))
    return out


def _field_problems(ds: DatasetSpec, where: str, adapter: Any) -> list[Problem]:
    """Fields the adapter takes no value for, and a missing ``source`` it needs."""
    not_applicable = getattr(adapter, "not_applicable", ())
    out = [Problem(f"{where}.{name}", f"dataset adapter '{ds.adapter}' takes no '{name}'; remove it")
           for name in not_applicable if getattr(ds, name)]
    if ds.source is None and getattr(adapter, "default_source", "") is None and "source" not in not_applicable:
        out.append(Problem(f"{where}.source", f"dataset adapter '{ds.adapter}' needs a source: a hub id "
                                              "(org/name) or a local directory"))
    return out


def _column_problems(ds: DatasetSpec, where: str, known: tuple[str, ...] | None) -> list[Problem]:
    out: list[Problem] = []
    if known is not None:
        available = sorted(set(known) | set(ds.columns))
        for j, col in enumerate(ds.subgroups):
            if col not in available:
                close = did_you_mean(col, available) if col else ""
                close = close if close.startswith(" --") else ""  # the column list follows anyway
                out.append(Problem(f"{where}.subgroups[{j}]", f"column '{col}' is not in dataset {ds.adapter}"
                                   f"{close} (columns: {', '.join(available)})"))
        if ds.target is not None and ds.target not in available:
            out.append(Problem(f"{where}.target", f"column '{ds.target}' is not in dataset {ds.adapter}"
                               f"{did_you_mean(ds.target, available)}"))
    for j, combo in enumerate(ds.intersections):
        for k, col in enumerate(combo):
            if col not in ds.subgroups:
                out.append(Problem(f"{where}.intersections[{j}][{k}]",
                                   f"column '{col}' is not among the declared subgroups {list(ds.subgroups)}"))
    for j, col in enumerate(ds.stratify):
        if col not in ds.subgroups and col != ds.target:
            out.append(Problem(f"{where}.stratify[{j}]", f"column '{col}' must be a declared subgroup or the target"))
    return out


def gate_problems(spec: ProbeSpec, gate: Any, where: str, own_results: bool = True) -> list[Problem]:
    """References of one gate: variants, models, datasets, shift, group column and, when the gate
    judges this probe's own results (not a policy applied to another run), the metric it judges."""
    out: list[Problem] = []
    variants = list(spec.variants)
    for key in ("base", "compare"):
        v = getattr(gate, key, None)
        if v is not None and v not in variants:
            out.append(Problem(f"{where}.{key}", f"unknown variant '{v}'{did_you_mean(v, variants)}"))
    if getattr(gate, "base", None) is not None and gate.base == getattr(gate, "compare", None):
        out.append(Problem(f"{where}.compare", f"compares variant '{gate.base}' with itself; name another variant"))
    for key, known in (("variants", variants), ("models", [m.display_name for m in spec.models]),
                       ("datasets", [d.display_name for d in spec.datasets])):
        for j, name in enumerate(getattr(gate, key, None) or ()):
            if name not in known:
                out.append(Problem(f"{where}.{key}[{j}]", f"unknown {key[:-1]} '{name}'{did_you_mean(name, known)}"))
    out += _group_col_problems(spec, gate, where)
    out += _judged_metric_problems(spec, gate, where) if own_results else []
    shift = getattr(gate, "shift", None)
    if shift is not None:
        from audit.robustness.tables import SHIFTS

        if shift not in SHIFTS:
            out.append(Problem(f"{where}.shift", f"unknown shift '{shift}'{did_you_mean(shift, SHIFTS)}"))
        out += _robustness_problems(spec, where)
    return out


def _robustness_problems(spec: ProbeSpec, where: str) -> list[Problem]:
    """Effective robustness is read from robustness.csv, which only robustness probes write. (A
    probe may leave out the shift's dataset on purpose: the gate then reports it cannot judge.)"""
    if spec.kind != "robustness":
        return [Problem(where, "min_effective_robustness needs kind: robustness (only robustness probes "
                               "write robustness.csv)")]
    return []


def _group_col_problems(spec: ProbeSpec, gate: Any, where: str) -> list[Problem]:
    col = getattr(gate, "group_col", None)
    cols = subgroup_columns(spec)
    if col is None or col == "overall" or col in cols or getattr(gate, "type", "") == "max_retrieval_skew":
        return []
    return [Problem(f"{where}.group_col", f"'{col}' is not a declared subgroup{did_you_mean(col, sorted(cols))}; "
                                          f"use 'overall' or one of {sorted(cols)}")]


def _judged_metric_problems(spec: ProbeSpec, gate: Any, where: str) -> list[Problem]:
    """A gate judges rows of one metric: the probe must compute it, for the gate's category."""
    from audit import registries

    metric = gate.judged_metric()
    if metric is None:
        return []
    if metric not in registries.METRICS:
        return [Problem(f"{where}.metric", registries.METRICS.unknown_message(metric))]
    computed = [m for m in spec.metrics if m.name == metric]
    if not computed:
        at = f"{where}.metric" if getattr(gate, "metric", None) else where
        return [Problem(at, f"{gate.type} judges the metric '{metric}', which the probe does not compute; "
                            f"add it to metrics")]
    category = getattr(gate, "category", None)
    if category is None:
        return []
    reported = {c for m in computed for c in (m.categories if m.categories is not None else spec.categories)}
    if reported and category not in reported:  # no categories at all: reported on the metric
        return [Problem(f"{where}.category", f"'{category}' is not among the categories '{metric}' reports "
                                             f"{sorted(reported)}; add it to categories")]
    return []
