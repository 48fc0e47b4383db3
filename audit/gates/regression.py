"""The ``no_regression`` gate: judged on the comparison of a run with a baseline run.

The baseline reaches the gate through :func:`baseline_comparison`, a context in which
:func:`eval_no_regression` finds the comparison table (:mod:`audit.compare`) of the judged run
against its baseline; ``audit check --baseline``, ``audit compare`` and the pytest plugin open it.
Without a baseline every (model, variant) is ``insufficient``: the gate's ``insufficient`` policy
decides, and the message says to pass ``--baseline``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import pandas as pd

from audit.gates.judge import GateContext, Rule, fmt_signed, where_group
from audit.gates.result import GateResult
from audit.spec.models import NoRegressionGate

#: The comparison of the judged run with its baseline, computed on first use.
_COMPARISON: ContextVar[Callable[[], pd.DataFrame] | None] = ContextVar("audit_baseline_comparison", default=None)


@contextmanager
def baseline_comparison(table: Callable[[], pd.DataFrame]) -> Iterator[None]:
    """Within this context, ``no_regression`` gates read ``table()`` (comparison.csv rows)."""
    token = _COMPARISON.set(table)
    try:
        yield
    finally:
        _COMPARISON.reset(token)


def worsening(row: pd.Series, alternative: str) -> tuple[float, float, float]:
    """``(value, ci_low, ci_high)`` of the change in the bad direction (two-sided: its size)."""
    delta, lo, hi = float(row["delta"]), float(row["ci_low"]), float(row["ci_high"])
    if alternative == "two-sided":
        low = 0.0 if lo <= 0 <= hi else min(abs(lo), abs(hi))
        return abs(delta), low, max(abs(lo), abs(hi))
    if row["higher_is_better"]:
        return -delta, -hi, -lo
    return delta, lo, hi


def _row(r: pd.Series, alternative: str) -> dict[str, Any]:
    value, lo, hi = worsening(r, alternative)
    n = min(r["n_base"], r["n_new"])
    return {"model": r["model_new"], "variant": r["variant"], "dataset": r["dataset"], "group_col": r["group_col"],
            "group": r["group"], "value": value, "ci_low": lo, "ci_high": hi, "p_value": r["p_holm"],
            "n": None if math.isnan(n) else int(n), "flag": ""}


def _note(r: pd.Series) -> str:
    test = "paired, McNemar" if r["paired"] else "unpaired, z-test"
    return (f" (baseline {r['base']:.3f} [{r['model_base']}] -> {r['new']:.3f}; {test} Holm p="
            f"{r['p_holm']:.2g})")


def eval_no_regression(gate: NoRegressionGate, ctx: GateContext) -> list[GateResult]:
    """No group may get worse than in the baseline by more than ``margin`` (judged on ``gate.judge``)."""
    from audit.compare.core import higher_is_better
    from audit.gates.evaluators import gate_label

    what = f"worsening of {gate.metric}" + (f" of {gate.category}" if gate.category else "")
    if gate.alternative == "two-sided":
        what = what.replace("worsening", "change")
    rule = Rule(gate=gate, label=gate_label(gate), metric=gate.metric, what=what, op="<=", threshold=gate.margin,
                min_n=ctx.min_n(gate), ci_level=ctx.ci_level, category=gate.category or "", fmt=fmt_signed,
                threshold_text=f"margin {gate.margin:g}")
    table = _COMPARISON.get()
    if table is None:
        return [rule.result({"model": m, "variant": v, "group_col": gate.group_col, "group": ""}, "insufficient",
                            f"not judged: no baseline run to compare with; pass --baseline RUN_DIR "
                            f"(policy insufficient: {gate.insufficient})")
                for m, v in ctx.targets(gate)]
    t = table()
    sel = t[(t["metric"] == gate.metric) & (t["group_col"] == gate.group_col)
            & (t["category"] == (gate.category or ""))]
    out: list[GateResult] = []
    for model, variant in ctx.targets(gate):
        rows = sel[(sel["model_new"] == model) & (sel["variant"] == variant)]
        if rows.empty:
            out.append(rule.missing(model, variant, "the baseline comparison has no such rows",
                                    "check that both runs computed this metric for this group column",
                                    group_col=gate.group_col))
            continue
        n_datasets = rows["dataset"].nunique()
        for _, r in rows.assign(higher_is_better=rows["metric"].map(higher_is_better)).iterrows():
            out.append(rule.check(_row(r, gate.alternative), where_group(r.to_dict(), n_datasets), note=_note(r)))
    return out


__all__ = ["baseline_comparison", "eval_no_regression", "worsening"]
