"""The ``max_disparity`` gate: the gap (or ratio) between a column's extreme groups."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pandas as pd

from audit.gates.evaluators import make_rule, metric_op, scan
from audit.gates.judge import INSUFFICIENT_TEXT, GateContext, Rule, fmt_rate, fmt_ratio, norm_col, num
from audit.gates.result import GateResult
from audit.spec.models import MaxDisparityGate


def eval_max_disparity(gate: MaxDisparityGate, ctx: GateContext) -> list[GateResult]:
    """The max-vs-min gap (or max/min ratio) across the groups of ``group_col`` must be <= threshold.

    Direction: a gap or ratio is never negative (highest rate vs lowest), and disparity is
    lower-is-better, so only a gap above the threshold fails. A ratio whose lowest rate is 0
    is ``undefined (lowest rate 0)``: insufficient, never an infinite ratio.

    metrics.csv computes a disparity over the groups with ``n >= stats.min_n`` only, so each
    group left out (``n < min_n``) is reported as its own ``insufficient`` result: a small group
    never passes silently. The n of a disparity is the smaller of its two extreme groups; when
    an extreme group is below the gate's min_n (a gate stricter than stats.min_n) the row is
    insufficient, unless the groups large enough already show a point gap above the threshold
    (then it fails, except with ``judge: lower``).
    """
    ratio = gate.measure == "ratio"
    rule = make_rule(gate, ctx, metric=f"disparity_{gate.measure}", op=metric_op("disparity"),
                     threshold=gate.threshold,
                     what=f"ratio of {gate.category} rates" if ratio else f"gap in {gate.category} rate",
                     category=gate.category, fmt=fmt_ratio if ratio else fmt_rate,
                     undefined="undefined (lowest rate 0); judge the difference instead" if ratio else None)
    return scan(rule, ctx, spec_metric="disparity", category=gate.category, group_col=gate.group_col,
                 judge=lambda row, nds: _judge_disparity(rule, ctx, row, nds, ratio))


def _judge_disparity(rule: Rule, ctx: GateContext, row: Mapping[str, Any], n_datasets: int,
                     ratio: bool) -> list[GateResult]:
    col = norm_col(row["group_col"])
    names = [g for g in str(row["group"]).split(" / ") if g]
    suffix = f" in {row['dataset']}" if n_datasets > 1 else ""
    where = ("between " + " and ".join(f"{col}={g}" for g in names) if names else f"across {col}") + suffix
    rates = ctx.select("category_rate", str(row["model"]), str(row["variant"]), category=rule.category,
                       group_col=col, dataset=str(row["dataset"]))
    sizes = {str(g): num(n) for g, n in zip(rates["group"], rates["n"], strict=True)}
    small = {g for g, s in sizes.items() if s is None or s < rule.min_n}
    left_out = [_left_out(rule, r, suffix) for r in rates.to_dict("records") if str(r["group"]) in small
                and str(r["group"]) not in names]
    if names and all(g in sizes for g in names):
        known = [sizes[g] for g in names]
        n_ext = None if None in known else int(min(k for k in known if k is not None))
        if any(g in small for g in names):
            return [_small_extreme(rule, row, rates, where, [g for g in names if g in small], sizes, ratio),
                    *left_out]
        return [rule.check(row, where, n=n_ext), *left_out]
    # No per-group rates to consult (or no extremes named): the row's own n decides.
    return [rule.check(row, where), *left_out]


def _left_out(rule: Rule, rate_row: Mapping[str, Any], suffix: str) -> GateResult:
    """An ``insufficient`` result for a group too small to take part in the disparity."""
    col, group = norm_col(rate_row["group_col"]), str(rate_row["group"])
    n = num(rate_row.get("n"))
    size = "n not recorded" if n is None else f"n={int(n)} < min_n={rule.min_n}"
    rate = Rule(rule.gate, rule.label, "category_rate", f"its rate of {rule.category}", "<=",
                rule.threshold, rule.min_n, rule.ci_level).measured(rate_row, None)
    msg = (f"insufficient data for {col}={group}{suffix}: {size}, so it is left out of the {rule.what} "
           f"({rate}); {INSUFFICIENT_TEXT[rule.gate.insufficient]}")
    return replace(rule.result(rate_row, "insufficient", msg, n=None if n is None else int(n)),
                   metric="category_rate")


def _small_extreme(rule: Rule, row: Mapping[str, Any], rates: pd.DataFrame, where: str,
                   small: list[str], sizes: dict[str, float | None], ratio: bool) -> GateResult:
    col = norm_col(row["group_col"])
    small_txt = ", ".join(f"{col}={g} (n={'?' if sizes[g] is None else int(sizes[g] or 0)})" for g in small)
    big = rates[pd.to_numeric(rates["n"], errors="coerce").ge(rule.min_n) & rates["value"].notna()]
    if len(big) >= 2 and rule.gate.judge != "lower":
        hi, lo = big.loc[big["value"].idxmax()], big.loc[big["value"].idxmin()]
        # A ratio over a zero lowest rate is undefined, not infinite: no failure on it.
        gap = (hi["value"] / lo["value"] if lo["value"] > 0 else None) if ratio else hi["value"] - lo["value"]
        if gap is not None and gap > rule.threshold:
            msg = (f"{rule.what} {rule.fmt(gap)} (point estimate among groups with n >= {rule.min_n}) > "
                   f"{rule.condition()} between {col}={hi['group']} and {col}={lo['group']}; "
                   f"extreme group(s) below min_n: {small_txt}")
            pair = {**row, "group": f"{hi['group']} / {lo['group']}", "value": gap, "ci_low": None, "ci_high": None}
            return rule.result(pair, "fail", msg, judged=gap, n=int(min(hi["n"], lo["n"])))
    msg = (f"insufficient data {where}: extreme group(s) below min_n={rule.min_n}: {small_txt}; "
           f"{rule.measured(row, None)} not judged against <= {rule.condition()}; "
           f"{INSUFFICIENT_TEXT[rule.gate.insufficient]}")
    small_sizes = [s for g in small if (s := sizes[g]) is not None]
    return rule.result(row, "insufficient", msg, n=int(min(small_sizes)) if small_sizes else None)
