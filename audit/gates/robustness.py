"""The ``min_effective_robustness`` gate, read from the run's robustness.csv."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd

from audit.gates.evaluators import make_rule
from audit.gates.judge import GateContext, Rule, fmt_points, num
from audit.gates.result import GateResult
from audit.spec.models import MinEffectiveRobustnessGate, base_variant


#: robustness.csv columns holding each bound of effective robustness.
ROBUSTNESS_BOUNDS = {"lower": "eff_rob_low_pts", "upper": "eff_rob_high_pts"}
ROBUSTNESS_REQUIRED = ("model", "dataset", "effective_robustness_pts")


def eval_min_effective_robustness(gate: MinEffectiveRobustnessGate, ctx: GateContext) -> list[GateResult]:
    """Effective robustness (accuracy points above the baseline fit) on ``gate.shift`` >= threshold.

    Effective robustness is higher-is-better: only a value (or bound) below the floor fails.
    It reads robustness.csv's ``effective_robustness_pts`` column; its bounds
    (``eff_rob_low_pts``/``eff_rob_high_pts``, points like every number there) include the
    model's own sampling error as well as the baseline fit's
    (:func:`audit.robustness.effective.effective_robustness`), so ``judge: lower`` fails a model
    whose test sets are too small to show the floor is met.

    robustness.csv carries no n unless it has an ``n`` column, so min_n applies only then. Without
    a ``variant`` column its rows stand for the run's first variant.
    """
    rule = make_rule(gate, ctx, metric="effective_robustness", what=f"effective robustness on {gate.shift}",
                     op=">=", threshold=gate.threshold, fmt=fmt_points,
                     threshold_text=f"{gate.threshold:+g} points")
    df = ctx.robustness
    has_variant = df is not None and "variant" in df
    variants = None if has_variant else (base_variant(ctx.variants),)
    out: list[GateResult] = []
    for model, variant in ctx.targets(gate, variants):
        problem = _robustness_problem(df, gate, model, variant if has_variant else None)
        if problem:
            out.append(rule.missing(model, variant, problem[0], problem[1], gate.shift))
            continue
        assert df is not None
        rows = df[(df["model"].astype(str) == model) & (df["dataset"].astype(str) == gate.shift)]
        if has_variant:
            rows = rows[rows["variant"].astype(str) == variant]
        out += [_judge_robustness(rule, df, r, model, variant) for r in rows.to_dict("records")]
    return out


def _robustness_problem(df: pd.DataFrame | None, gate: MinEffectiveRobustnessGate, model: str,
                        variant: str | None) -> tuple[str, str] | None:
    if df is None:
        return "the run has no robustness.csv", "add a robustness probe's accuracy metrics and re-run"
    lacking = [c for c in ROBUSTNESS_REQUIRED if c not in df]
    if lacking:
        return f"robustness.csv lacks column(s) {', '.join(lacking)}", "re-run to rewrite robustness.csv"
    for col, want in (("dataset", gate.shift), ("model", model), ("variant", variant)):
        if want is not None and not (df[col].astype(str) == want).any():
            found = ", ".join(sorted({str(v) for v in df[col]}))
            return f"no {col} '{want}' in robustness.csv (found: {found})", "correct the gate's shift or re-run"
        if want is not None:
            df = df[df[col].astype(str) == want]
    return None


def _judge_robustness(rule: Rule, df: pd.DataFrame, r: Mapping[str, Any], model: str, variant: str) -> GateResult:
    bound = ROBUSTNESS_BOUNDS.get(rule.gate.judge)
    row = {
        "model": model, "variant": variant, "dataset": getattr(rule.gate, "shift"),
        "group_col": "overall", "group": "all", "value": r.get("effective_robustness_pts"),
        "ci_low": r.get("eff_rob_low_pts"), "ci_high": r.get("eff_rob_high_pts"), "n": r.get("n"),
    }
    if bound is not None and bound not in df:
        msg = (f"cannot judge {rule.what}: its {rule.gate.judge} bound is unavailable (robustness.csv has no "
               f"{bound} column); use judge: point or re-run with intervals")
        return rule.result(row, "error", msg)
    top1, base = num(r.get("top1_pts")), num(r.get("baseline_top1_pts"))
    note = f" (top-1 {_pct(top1)} vs baseline fit {_pct(base)})" if top1 is not None and base is not None else ""
    fit_note = r.get("note")
    if isinstance(fit_note, str) and fit_note.strip():
        note += f"; note: {fit_note.strip()}"
    return rule.check(row, "", check_n="n" in df, note=note)


def _pct(x: float) -> str:
    """Top-1 as a percentage; robustness.csv holds accuracy points (format-1 runs are mapped on
    reading, :attr:`audit.results.RunDir.robustness`)."""
    return f"{x:.1f}%"
