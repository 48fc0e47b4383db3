"""Cross-checks of a probe that pydantic alone cannot do: files, registry names, columns,
categories, variants, gate references, adapter options, model ids and notebook paths.

Every check appends located problems (``gates[1].compare``) instead of raising, so a probe's
problems come in one message. A check that depends on something that failed to load (a label-set
file) is skipped rather than repeated as follow-on errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from audit.errors import Problem, UserError
from audit.registry import did_you_mean
from audit.spec.load import (
    CLASSNAMES,
    NAMED_TEMPLATES,
    LoadedLabelSet,
    file_hash,
    load_label_set,
    resolve_from,
    unusable_path,
)
from audit.spec.models import Label, ProbeSpec, VariantSpec, split_categories


@dataclass
class Checked:
    """What the cross-checks found and loaded."""

    problems: list[Problem] = field(default_factory=list)
    label_sets: tuple[LoadedLabelSet, ...] = ()
    query_sets: tuple[LoadedLabelSet, ...] = ()
    notebooks: tuple[Path, ...] = ()


@dataclass
class _Ctx:
    spec: ProbeSpec
    probe_dir: Path
    check_names: bool
    problems: list[Problem]
    #: Categories of the merged label sets; None when a label set failed to load (skip checks).
    categories: set[str] | None = None
    #: Merged labels (``classnames`` stands for one label of category ``class``); None as above.
    labels: tuple[Label, ...] | None = None

    def add(self, where: str, message: str) -> None:
        self.problems.append(Problem(where, message))

    def resolve(self, relative: str) -> Path:
        return resolve_from(self.probe_dir, relative)


def cross_check(spec: ProbeSpec, probe_dir: Path, *, check_names: bool = True,
                allow_notebooks_outside: bool = False) -> Checked:
    """Run every cross-check of ``spec`` (a probe file in ``probe_dir``).

    ``check_names=False`` judges a policy probe whose gates apply to another run's results
    (``audit check --probe``): registry names, adapters, model ids, dataset sources, notebooks
    and the metrics the probe itself would compute are not checked."""
    ctx = _Ctx(spec, probe_dir, check_names, [])
    label_sets = _load_label_sets(ctx)
    queries = _load_query_sets(ctx)
    _check_templates(ctx)
    _check_variants(ctx)
    for i, expr in enumerate(spec.categories):
        _check_category(ctx, f"categories[{i}]", expr)
    _check_datasets(ctx)
    if check_names:
        _check_models(ctx)
        _check_metrics(ctx)
    _check_gates(ctx)
    _check_retrieval(ctx, [q.spec.name for q in queries])
    _run_contributed_checks(ctx, label_sets)
    notebooks = _check_notebooks(ctx, allow_notebooks_outside) if check_names else ()
    return Checked(ctx.problems, label_sets, queries, notebooks)


# --------------------------------------------------------------------------- label sets


def _load_listed(ctx: _Ctx, entry: str, where: str) -> LoadedLabelSet | None:
    """Load one label-set file named in the probe; a problem under ``where`` if it fails."""
    bad = unusable_path(entry)
    if bad:
        ctx.add(where, bad)
        return None
    path = ctx.resolve(entry)
    if not path.exists():
        ctx.add(where, f"label-set file not found: {path} (relative paths resolve against the probe file)")
        return None
    try:
        ls = load_label_set(path)
    except UserError as err:
        ctx.problems += [Problem(f"{where} ({path})", p.render()) for p in err.problems] or [
            Problem(where, err.message)]
        return None
    return LoadedLabelSet(path.resolve(), ls, file_hash(path))


def _load_label_sets(ctx: _Ctx) -> tuple[LoadedLabelSet, ...]:
    loaded: list[LoadedLabelSet] = []
    failed = False
    for i, entry in enumerate(ctx.spec.label_sets):
        if entry == CLASSNAMES:
            continue
        found = _load_listed(ctx, entry, f"label_sets[{i}]")
        failed |= found is None
        loaded += [found] if found is not None else []
    if failed:
        return tuple(loaded)  # categories stay unknown: no follow-on 'unknown category' errors
    seen: dict[str, str] = {}
    labels: list[Label] = []
    for ls in loaded:
        for label in ls.spec.labels:
            if label.text in seen:
                ctx.add("label_sets", f"label {label.text!r} is in both {seen[label.text]} and {ls.spec.name}")
            seen[label.text] = ls.spec.name
        labels += ls.spec.labels
    if CLASSNAMES in ctx.spec.label_sets:
        labels.append(Label(text="(the dataset's class names)", category="class"))
        # datasets that split their own class names into categories (a wds `class_categories` map)
        labels += [Label(text=f"({ds.display_name} class names: {cat})", category=cat)
                   for ds in ctx.spec.datasets for cat in getattr(ds, "class_categories", None) or {}]
    ctx.labels = tuple(labels)
    ctx.categories = {label.category for label in labels}
    return tuple(loaded)


def _load_query_sets(ctx: _Ctx) -> tuple[LoadedLabelSet, ...]:
    sets = ctx.spec.retrieval.query_sets if ctx.spec.retrieval else ()
    found = [_load_listed(ctx, qs.labels, f"retrieval.query_sets[{i}].labels") for i, qs in enumerate(sets)]
    return tuple(f for f in found if f is not None)


# --------------------------------------------------------------------------- vocabulary


def _check_category(ctx: _Ctx, where: str, expr: str) -> None:
    if ctx.categories is None:
        return
    for cat in split_categories(expr):
        if cat not in ctx.categories:
            ctx.add(where, f"unknown category '{cat}'{did_you_mean(cat, sorted(ctx.categories))}")


def _check_templates(ctx: _Ctx) -> None:
    t = ctx.spec.templates
    if isinstance(t, str) and t not in NAMED_TEMPLATES:
        ctx.add("templates", f"unknown template set '{t}'{did_you_mean(t, NAMED_TEMPLATES)}")


def _check_variants(ctx: _Ctx) -> None:
    from audit.labels import apply_variant

    for name, variant in ctx.spec.variants.items():
        for key in ("include", "exclude"):
            for j, cat in enumerate(getattr(variant, key) or ()):
                _check_category(ctx, f"variants.{name}.{key}[{j}]", cat)
        if ctx.labels is not None and not apply_variant(ctx.labels, variant):
            ctx.add(f"variants.{name}", f"leaves no labels: {_describe(variant)} removes every category of "
                                        f"the label sets ({', '.join(sorted(ctx.categories or ()))})")


def _describe(variant: VariantSpec) -> str:
    parts = [f"include {list(variant.include)}"] if variant.include is not None else []
    parts += [f"exclude {list(variant.exclude)}"] if variant.exclude else []
    return " and ".join(parts) or "it"


# --------------------------------------------------------------------------- datasets


def _check_datasets(ctx: _Ctx) -> None:
    from audit.spec.cross_check_parts import check_dataset

    names = [d.display_name for d in ctx.spec.datasets]
    for i, ds in enumerate(ctx.spec.datasets):
        where = f"datasets[{i}]"
        if names.count(ds.display_name) > 1:
            ctx.add(f"{where}.name", f"dataset name '{ds.display_name}' is used twice; give each a distinct name")
        for j, v in enumerate(ds.variants or ()):
            if v not in ctx.spec.variants:
                ctx.add(f"{where}.variants[{j}]", f"unknown variant '{v}'{did_you_mean(v, list(ctx.spec.variants))}")
        ctx.problems += check_dataset(ds, where, ctx.resolve, ctx.check_names)


# --------------------------------------------------------------------------- models and metrics


def _check_models(ctx: _Ctx) -> None:
    from audit.registries import check_model_id

    names = [m.display_name for m in ctx.spec.models]
    for i, m in enumerate(ctx.spec.models):
        msg = check_model_id(m.id, ctx.resolve)
        if msg:
            ctx.add(f"models[{i}].id", msg)
        if names.count(m.display_name) > 1 and names.index(m.display_name) != i:
            ctx.add(f"models[{i}]", f"model name '{m.display_name}' is used twice; give one a distinct 'name'")


def _check_metrics(ctx: _Ctx) -> None:
    from audit import registries

    spec = ctx.spec
    has_target = CLASSNAMES in spec.label_sets or any(_has_target(d.adapter, d.target) for d in spec.datasets)
    for i, metric in enumerate(spec.metrics):
        if metric.name not in registries.METRICS:
            ctx.add(f"metrics[{i}].name", registries.METRICS.unknown_message(metric.name))
            continue
        categories = metric.categories if metric.categories is not None else spec.categories
        for j, expr in enumerate(metric.categories or ()):
            _check_category(ctx, f"metrics[{i}].categories[{j}]", expr)
        if metric.name in registries.CATEGORY_METRICS and not categories:
            ctx.add(f"metrics[{i}]", f"metric '{metric.name}' reports category rates but no category is named; "
                                     "list categories in the probe (categories: [crime]) or on the metric "
                                     f"({{name: {metric.name}, categories: [crime]}})")
        if metric.name in registries.TARGET_METRICS and not has_target:
            ctx.add(f"metrics[{i}]", f"metric '{metric.name}' needs a ground truth, but no dataset has one; "
                                     "set dataset.target (or use label_sets: [classnames])")


def _has_target(adapter: str, target: str | None) -> bool:
    from audit import registries

    if target is not None:
        return True
    return adapter in registries.DATASETS and "target" in (registries.dataset_columns(adapter) or ())


# --------------------------------------------------------------------------- gates, retrieval, report


def _check_gates(ctx: _Ctx) -> None:
    from audit.spec.cross_check_parts import gate_problems

    for i, gate in enumerate(ctx.spec.gates):
        where = f"gates[{i}]"
        before = len(ctx.problems)
        if hasattr(gate, "category"):
            _check_category(ctx, f"{where}.category", gate.category)
        unknown_category = len(ctx.problems) > before
        # an unknown category is named once, not again as 'not reported by the metric'
        ctx.problems += [p for p in gate_problems(ctx.spec, gate, where, own_results=ctx.check_names)
                         if not (unknown_category and p.field == f"{where}.category")]


def _check_retrieval(ctx: _Ctx, names: list[str]) -> None:
    from audit.spec.cross_check_parts import subgroup_columns

    spec = ctx.spec
    if spec.retrieval is not None:
        cols = subgroup_columns(spec)
        for j, col in enumerate(spec.retrieval.group_cols or ()):
            if col not in cols:
                ctx.add(f"retrieval.group_cols[{j}]",
                        f"'{col}' is not a declared subgroup or intersection{did_you_mean(col, sorted(cols))}")
        if len(set(names)) != len(names):
            ctx.add("retrieval.query_sets", "two query sets share a label-set name; names must be unique")
    for i, gate in enumerate(spec.gates):
        if getattr(gate, "type", "") != "max_retrieval_skew":
            continue
        if spec.retrieval is None:
            ctx.add(f"gates[{i}]", "max_retrieval_skew needs a 'retrieval:' section in the probe")
            continue
        if gate.k not in spec.retrieval.ks:
            ctx.add(f"gates[{i}].k", f"k={gate.k} is not among retrieval.ks {list(spec.retrieval.ks)}")
        if len(names) == len(spec.retrieval.query_sets) and gate.query_set not in names:
            ctx.add(f"gates[{i}].query_set", f"unknown query set '{gate.query_set}'{did_you_mean(gate.query_set, names)}")


def _run_contributed_checks(ctx: _Ctx, label_sets: tuple[LoadedLabelSet, ...]) -> None:
    """The checks feature modules declare in :data:`audit.registries.PROBE_CHECKS`."""
    from audit.registries import PROBE_CHECKS

    for name in PROBE_CHECKS.names():
        check = PROBE_CHECKS.get(name)
        ctx.problems += check(ctx.spec, [ls.spec for ls in label_sets], ctx.resolve)  # type: ignore[operator]


def _check_notebooks(ctx: _Ctx, allow_outside: bool) -> tuple[Path, ...]:
    from audit.spec.cross_check_parts import builtin_notebooks

    kinds, builtin = builtin_notebooks()
    found: list[Path] = []
    base = ctx.probe_dir.resolve()
    for i, name in enumerate(ctx.spec.report.notebooks or ()):
        if name in builtin:
            continue
        where = f"report.notebooks[{i}]"
        if unusable_path(name):
            ctx.add(where, str(unusable_path(name)))
            continue
        path = ctx.resolve(name).resolve()
        if not path.is_file():
            ctx.add(where, f"notebook not found: {path} (a built-in report {kinds} or a "
                           ".ipynb path relative to the probe file)")
        elif path.suffix != ".ipynb":
            ctx.add(where, f"{path} is not a .ipynb notebook")
        elif not allow_outside and not path.is_relative_to(base):
            ctx.add(where, f"notebook {path} is outside the probe's directory {base}; notebooks run code, "
                           "so pass --allow-notebooks-outside to run one from elsewhere")
        else:
            found.append(path)
    return tuple(found)
