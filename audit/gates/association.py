"""Gates on association tests (``max_association``) and on FACET-style per-class recall
disparities (``max_recall_disparity``).

``max_association`` judges the effect size d of every comparison of a test (``category`` = the
test's name in metrics.csv): ``value`` with ``judge: point``, ``ci_low``/``ci_high`` otherwise.
``max_recall_disparity`` judges ``|recall difference|`` of every class and pair of groups of a
column: the point, the interval bound nearest zero (``lower``: "at least this large", 0 when the
interval covers 0) or the farthest (``upper``). With ``significant_only`` a row whose
Holm-adjusted p is at or above ``stats.alpha`` passes as "not significant".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from audit.gates.evaluators import make_rule
from audit.gates.judge import GateContext, Rule, fmt_signed, num, where_group
from audit.gates.result import GateResult
from audit.spec.models import MaxAssociationGate, MaxRecallDisparityGate

ASSOCIATION_METRIC = "association_test"
RECALL_DISPARITY_METRIC = "recall_disparity"


def _variants(ctx: GateContext, metric: str) -> tuple[str, ...]:
    # rows of these metrics belong to one variant (association rows: the run's base variant)
    found = tuple(dict.fromkeys(ctx.metrics.loc[ctx.metrics["metric"] == metric, "variant"].astype(str)))
    return found or ctx.variants[:1]


def _judge_row(rule: Rule, row: Mapping[str, Any], where: str, alpha: float, significant_only: bool) -> GateResult:
    p, n = num(row.get("p_value")), _n(row)
    big_enough = n is not None and n >= rule.min_n  # a small group never passes as "not significant"
    if significant_only and big_enough and p is not None and p >= alpha and num(row.get("value")) is not None:
        msg = f"{rule.measured(row, _n(row))} not significant (Holm p={p:.2g} >= alpha {alpha:g}) {where}"
        return rule.result(row, "pass", msg, judged=None, n=_n(row))
    return rule.check(row, where)


def _n(row: Mapping[str, Any]) -> int | None:
    v = num(row.get("n"))
    return None if v is None else int(v)


def eval_max_association(gate: MaxAssociationGate, ctx: GateContext) -> list[GateResult]:
    """Every comparison of test ``gate.test`` must have effect size d <= threshold."""
    rule = make_rule(gate, ctx, metric=ASSOCIATION_METRIC, what=f"association effect size d ({gate.test})",
                     op="<=", threshold=gate.threshold, category=gate.test, fmt=fmt_signed)
    out: list[GateResult] = []
    for model, variant in ctx.targets(gate, _variants(ctx, ASSOCIATION_METRIC)):
        rows = ctx.select(ASSOCIATION_METRIC, model, variant)
        rows = rows.loc[rows["category"].astype(str) == gate.test]
        if rows.empty:
            why = ctx.explain_missing(ASSOCIATION_METRIC, model, variant)
            out.append(rule.missing(model, variant, why, f"declare association test '{gate.test}' and re-run"))
            continue
        n_datasets = rows["dataset"].nunique()
        for row in rows.to_dict("records"):
            out.append(_judge_row(rule, row, where_group(row, n_datasets), ctx.stats.alpha, gate.significant_only))
    return out


def abs_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A disparity row with ``|difference|`` as value and the interval of ``|difference|``:
    ``[0, max|bound|]`` when the interval covers 0, else ``[min|bound|, max|bound|]``."""
    out = dict(row)
    v, lo, hi = num(row.get("value")), num(row.get("ci_low")), num(row.get("ci_high"))
    out["value"] = math.nan if v is None else abs(v)
    if lo is not None and hi is not None:
        out["ci_low"] = 0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))
        out["ci_high"] = max(abs(lo), abs(hi))
    return out


def eval_max_recall_disparity(gate: MaxRecallDisparityGate, ctx: GateContext) -> list[GateResult]:
    """Every class's |recall difference| between two groups of ``gate.group_col`` <= threshold."""
    rule = make_rule(gate, ctx, metric=RECALL_DISPARITY_METRIC, what="|recall difference|", op="<=",
                     threshold=gate.threshold)
    out: list[GateResult] = []
    for model, variant in ctx.targets(gate):
        rows = ctx.select(RECALL_DISPARITY_METRIC, model, variant, group_col=gate.group_col)
        if rows.empty:
            why = ctx.explain_missing(RECALL_DISPARITY_METRIC, model, variant, group_col=gate.group_col)
            fix = f"add metric '{RECALL_DISPARITY_METRIC}' and subgroup '{gate.group_col}' to the probe and re-run"
            out.append(rule.missing(model, variant, why, fix, group_col=gate.group_col))
            continue
        n_datasets = rows["dataset"].nunique()
        for row in rows.to_dict("records"):
            where = f"for class '{row['category']}', {gate.group_col} {row['group']}"
            where += f" in {row['dataset']}" if n_datasets > 1 else ""
            result = _judge_row(rule, abs_row(row), where, ctx.stats.alpha, gate.significant_only)
            out.append(replace(result, category=str(row["category"])))  # the class judged
    return out


__all__ = ["abs_row", "eval_max_association", "eval_max_recall_disparity"]
