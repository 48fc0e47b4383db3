"""One evaluation function per gate type, dispatched by name through :data:`audit.registries.GATES`.

Each has the signature ``eval_<type>(gate, ctx: GateContext) -> list[GateResult]`` and returns
one result per group it judged, plus an ``error`` result for every (model, variant) whose rows
are missing. The row-per-group gates live here; :mod:`audit.gates.disparity` and
:mod:`audit.gates.robustness` hold the two that read more than one table. :func:`evaluate`
stamps each result with the gate's position and unique label.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd

from audit.gates.judge import Direction, GateContext, Rule, fmt_signed, where_group
from audit.gates.result import GateResult
from audit.spec.models import (
    base_variant,
    GateBase, MaxRateGate, MinAccuracyGate, ProbeSpec, VariantNoIncreaseGate,
)


def _by(col: str) -> str:
    return "overall" if col == "overall" else f"by {col}"


#: The readable part of a gate's default label: ``max_rate[crime|non_human by race]``.
_DETAIL: dict[str, Callable[[Any], str]] = {
    "max_rate": lambda g: f"{g.category} {_by(g.group_col)}",
    "max_disparity": lambda g: f"{g.category} {g.measure} {_by(g.group_col)}",
    "no_significant_difference": lambda g: f"{g.category} {_by(g.group_col)}",
    "min_accuracy": lambda g: f"{g.metric} {_by(g.group_col)}",
    "min_effective_robustness": lambda g: g.shift,
    "variant_no_increase": lambda g: f"{g.category} {_by(g.group_col)}, {g.base}->{g.compare}",
    "max_retrieval_skew": lambda g: f"{g.measure}@{g.k} {g.query_set} {_by(g.group_col)}",
    "max_association": lambda g: g.test,
    "max_recall_disparity": lambda g: _by(g.group_col),
    "no_regression": lambda g: f"{g.category or g.metric} {_by(g.group_col)}",
}


def gate_label(gate: GateBase) -> str:
    """The gate's ``id``, or ``type[detail]``."""
    gate_type = getattr(gate, "type")
    return gate.id or f"{gate_type}[{_DETAIL[gate_type](gate)}]"


def gate_labels(gates: Sequence[GateBase]) -> list[str]:
    """Labels made unique by suffixing repeats with their position: ``max_rate[crime overall]#3``."""
    seen: set[str] = set()
    out = []
    for i, gate in enumerate(gates):
        label = gate_label(gate)
        out.append(label if label not in seen else f"{label}#{i}")
        seen.add(label)
    return out


def _fix(metric: str, category: str | None = None, group_col: str | None = None) -> str:
    parts = [f"make sure the probe computes '{metric}'"]
    if category:
        parts.append(f"for category '{category}'")
    if group_col and group_col != "overall":
        parts.append(f"with subgroup '{group_col}'")
    return " ".join(parts) + " and re-run, or correct the gate"


def make_rule(gate: GateBase, ctx: GateContext, **kw: Any) -> Rule:
    return Rule(gate=gate, label=gate_label(gate), min_n=ctx.min_n(gate), ci_level=ctx.ci_level, **kw)


def scan(rule: Rule, ctx: GateContext, *, spec_metric: str, group_col: str, category: str | None = None,
          variants: tuple[str, ...] | None = None, datasets: Iterable[str | None] = (None,),
          judge: Callable[[Mapping[str, Any], int], list[GateResult]] | None = None) -> list[GateResult]:
    """Judge every selected row of every (model, variant[, dataset]) the gate covers."""
    judge = judge or (lambda row, nds: [rule.check(row, where_group(row, nds))])
    out: list[GateResult] = []
    for model, variant in ctx.targets(rule.gate, variants):
        for dataset in datasets:
            sel = dict(category=category, group_col=group_col, dataset=dataset)
            rows = ctx.select(rule.metric, model, variant, **sel)
            if rows.empty:
                why = ctx.explain_missing(rule.metric, model, variant, **sel)
                out.append(rule.missing(model, variant, why, _fix(spec_metric, category, group_col),
                                        dataset or "", group_col))
                continue
            n_datasets = rows["dataset"].nunique() if "dataset" in rows else 1
            for row in rows.to_dict("records"):
                out += judge(row, n_datasets)
    return out


def metric_op(metric: str) -> Direction:
    """The passing comparison for a registered metric, from its declared ``higher_is_better``:
    ``>=`` (a floor) when higher is better, ``<=`` (a ceiling) when lower is better."""
    from audit.registries import METRICS

    return ">=" if getattr(METRICS.get(metric), "higher_is_better") else "<="


def eval_max_rate(gate: MaxRateGate, ctx: GateContext) -> list[GateResult]:
    """Every group's rate of ``gate.category`` must stay on the good side of the threshold:
    category_rate is lower-is-better, so a rate above it fails (judged on ``gate.judge``)."""
    rule = make_rule(gate, ctx, metric="category_rate", what=f"rate of {gate.category}",
                     op=metric_op("category_rate"), threshold=gate.threshold, category=gate.category)
    return scan(rule, ctx, spec_metric="category_rate", category=gate.category, group_col=gate.group_col)


def eval_min_accuracy(gate: MinAccuracyGate, ctx: GateContext) -> list[GateResult]:
    """Every group's ``gate.metric`` must reach the floor, on each listed dataset (default: all).

    A floor needs a higher-is-better metric; a lower-is-better one gives an ``error`` per model
    and variant rather than a gate that passes for the wrong reason.
    """
    op = metric_op(gate.metric)
    rule = make_rule(gate, ctx, metric=gate.metric, what=gate.metric.replace("_", " "), op=op,
                     threshold=gate.threshold)
    if op != ">=":
        why = f"metric '{gate.metric}' is lower-is-better, so a minimum on it means nothing"
        fix = "use min_accuracy with accuracy, balanced_accuracy, top5_accuracy or mean_per_class_recall"
        return [rule.missing(m, v, why, fix, group_col=gate.group_col) for m, v in ctx.targets(gate)]
    return scan(rule, ctx, spec_metric=gate.metric, group_col=gate.group_col, datasets=gate.datasets or (None,))


def eval_variant_no_increase(gate: VariantNoIncreaseGate, ctx: GateContext) -> list[GateResult]:
    """Going from ``base`` to ``compare`` must not raise any group's rate by more than ``margin``.

    One-sided: variant_change is lower-is-better, so only an increase above the margin fails;
    a decrease (the compare variant flags fewer images) always passes.
    """
    rule = make_rule(gate, ctx, metric="variant_change",
                     what=f"change in {gate.category} rate from {gate.base} to {gate.compare}",
                     op=metric_op("variant_change"), threshold=gate.margin, category=gate.category,
                     fmt=fmt_signed, threshold_text=f"margin {gate.margin:g}", compared_to="margin")
    run_base = base_variant(ctx.variants)
    if gate.base != run_base:
        why = (f"metrics.csv compares every variant with the run's base variant '{run_base}', "
               f"not with '{gate.base}'")
        fix = f"set base: {run_base}, or declare variant '{gate.base}' first (or name it 'default')"
        return [rule.missing(m, v, why, fix, group_col=gate.group_col) for m, v in ctx.targets(gate, (gate.compare,))]
    return scan(rule, ctx, spec_metric="variant_change", category=gate.category, group_col=gate.group_col,
                 variants=(gate.compare,))


def evaluate(gates: Sequence[GateBase], ctx: GateContext) -> list[GateResult]:
    """Run each gate's registered evaluation function; results carry gate position and label."""
    from audit import registries

    labels = gate_labels(gates)
    out: list[GateResult] = []
    for i, gate in enumerate(gates):
        fn = registries.GATES.get(getattr(gate, "type"))
        results = fn(gate, ctx) or [_nothing_to_judge(gate, ctx)]  # type: ignore[operator]
        out += [replace(r, gate_index=i, gate_id=labels[i]) for r in results]
    return out


def _nothing_to_judge(gate: GateBase, ctx: GateContext) -> GateResult:
    """A gate that judged no group must not pass: e.g. an empty metrics.csv and no declared models."""
    rule = make_rule(gate, ctx, metric=getattr(gate, "metric", "") or "", what=gate_label(gate), op="<=",
                 threshold=float(getattr(gate, "threshold", 0.0)))
    why = f"models {list(gate.models or ctx.models)}, variants {list(gate.variants or ctx.variants)}"
    row = {"model": "", "variant": "", "dataset": "", "group_col": getattr(gate, "group_col", "overall"), "group": ""}
    return rule.result(row, "error", f"cannot judge {gate_label(gate)}: no model and variant to judge ({why}); "
                                     "check that metrics.csv has rows and the gate's models/variants exist")


def evaluate_gates(probe_spec: ProbeSpec, metrics_df: pd.DataFrame, robustness_df: pd.DataFrame | None = None,
                   *, run_spec: ProbeSpec | None = None) -> list[GateResult]:
    """Judge ``probe_spec.gates`` on a run's tables.

    Args:
        probe_spec: Supplies the gates and the stats policy (min_n, alpha).
        metrics_df: The run's metrics.csv (:func:`audit.results.read_metrics`).
        robustness_df: The run's robustness.csv, if any.
        run_spec: The probe the run was made with, when judging it by another policy probe: it
            supplies the models and variants that must have rows, and the interval level.
    """
    return evaluate(probe_spec.gates, GateContext.from_probe(probe_spec, metrics_df, robustness_df, run_spec=run_spec))
