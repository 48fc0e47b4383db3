"""The ``no_significant_difference`` gate: no group flagged significantly more (or less) than the rest.

The gate tests the run's ``category_rate`` counts (flagged k of n per group, exact in
metrics.csv as ``value * n``) with :func:`audit.metrics.pairwise.group_tests`, the same
function that writes the ``pairwise_test`` rows, under the gate's own ``alternative``: by
default ``greater``, so a group flagged *less* often than the rest never fails a harm gate.
Each result records the alternative and which test ran (z-test, or Fisher's exact test where
expected counts are small).
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd

from audit.gates.evaluators import make_rule
from audit.gates.judge import GateContext, Rule, fmt_signed, num, where_group
from audit.gates.result import GateResult
from audit.metrics.base import Proportion
from audit.metrics.pairwise import ALTERNATIVE_TEXT, group_tests
from audit.spec.models import NoSignificantDifferenceGate

RATE_METRIC = "category_rate"


def eval_no_significant_difference(gate: NoSignificantDifferenceGate, ctx: GateContext) -> list[GateResult]:
    """No group's rate may differ from the rest's, in the direction ``gate.alternative``, with
    Holm-adjusted p < stats.alpha."""
    alpha = ctx.stats.alpha
    what = f"difference in {gate.category} rate vs the rest"
    rule = make_rule(gate, ctx, metric=RATE_METRIC, what=what, op=">=", threshold=alpha,
                     category=gate.category, fmt=fmt_signed, judge_p=True, threshold_text=f"alpha {alpha:g}",
                     compared_to="alpha", alternative=gate.alternative)
    out: list[GateResult] = []
    for model, variant in ctx.targets(gate):
        rates = ctx.select(RATE_METRIC, model, variant, category=gate.category, group_col=gate.group_col)
        if rates.empty:
            why = ctx.explain_missing(RATE_METRIC, model, variant, category=gate.category,
                                      group_col=gate.group_col)
            fix = (f"add category_rate (the gate tests its counts) for category '{gate.category}' with "
                   f"subgroup '{gate.group_col}' to the probe's metrics and re-run, or correct the gate")
            out.append(rule.missing(model, variant, why, fix, group_col=gate.group_col))
            continue
        parts = rates.groupby("dataset", sort=False) if "dataset" in rates else [("", rates)]
        n_datasets = rates["dataset"].nunique() if "dataset" in rates else 1
        for _, part in parts:
            out += _judge_column(rule, ctx, part, n_datasets)
    return out


def _judge_column(rule: Rule, ctx: GateContext, rates: pd.DataFrame, n_datasets: int) -> list[GateResult]:
    """Test every group of one column (one dataset) against the rest, Holm over the column."""
    records = rates.to_dict("records")
    counts = [(str(r["group"]), _proportion(r)) for r in records]
    alternative = rule.alternative or "greater"
    out = []
    for r, t in zip(records, group_tests(counts, ctx.stats, alternative), strict=True):  # type: ignore[arg-type]
        row = {**r, "value": t.difference, "ci_low": t.ci[0], "ci_high": t.ci[1],
               "p_value": t.p_adjusted, "n": t.n, "flag": t.flag}
        note = f" ({t.test}, {ALTERNATIVE_TEXT[alternative]})" if t.test else ""
        result = rule.check(row, where_group(row, n_datasets), note=note)
        out.append(replace(result, test=t.test or None))
    return out


def _proportion(row: dict[str, object]) -> Proportion:
    """Flagged k of n from a category_rate row (``value = k / n``; an empty group has no value)."""
    n = num(row.get("n"))
    rate = num(row.get("value"))
    size = 0 if n is None else int(n)
    return Proportion(0 if rate is None or size == 0 else round(rate * size), size)
