"""The top of every report: the verdict a release manager reads in ten seconds.

One headline ("passed", "passed with 2 warnings", "failed: 1 gate"), one row per gate x
model x variant with its status in colour *and* text (so it survives printing in grey), and a
forest plot of each gate's worst group: the estimate, its interval and the threshold it was held
against. Everything is read from ``gates.json``; fields that newer gate results carry
(``alternative``, ``statistic``, ``compared_to``) are shown when present.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from audit.reporting.display import new_figure
from audit.reporting.escape import mpl_text
from audit.reporting.load import RunData

#: Status -> (text, colour); colours from the colour-blind-safe end of Tailwind's palette.
STATUS = {
    "pass": ("PASS", "#15803d"),
    "warn": ("WARN", "#b45309"),
    "fail": ("FAIL", "#b91c1c"),
    "insufficient": ("INSUFFICIENT DATA", "#6b7280"),
    "error": ("ERROR", "#7c2d12"),
}
_OUTCOME_RANK = {"fail": 0, "error": 1, "insufficient": 2, "pass": 3}
#: What a gate's ``judge`` compares with its threshold, in words.
JUDGED = {"point": "estimate", "lower": "lower 95% bound", "upper": "upper 95% bound",
          "p_value": "adjusted p-value"}
PROPORTIONS = frozenset({"category_rate", "accuracy", "balanced_accuracy", "top5_accuracy",
                         "mean_per_class_recall", "disparity_difference", "variant_change",
                         "pairwise_test"})


def verdict_status(verdict: Mapping[str, Any]) -> str:
    """A verdict's status key in :data:`STATUS` (an insufficient-data pass stays a pass)."""
    status = str(verdict.get("status") or verdict.get("outcome") or "")
    if status in STATUS:
        return status
    return "pass" if verdict.get("passed") else "fail"


def headline(gates: Mapping[str, Any] | None) -> str:
    """The verdict :func:`audit.gates.verdict` wrote into gates.json ('passed', 'passed with 2
    warnings', 'failed: 1 gate'), with the exit code; recomputed only for files written before
    gates.json carried it."""
    if gates is None:
        return "no release gates in this run"
    code = gates.get("exit_code")
    stored = gates.get("verdict")
    if isinstance(stored, str) and stored:
        return f"{stored} (exit {code})"
    statuses = [verdict_status(v) for v in gates.get("verdicts") or []]
    fails, warns = statuses.count("fail") + statuses.count("error"), statuses.count("warn")
    if fails or code not in (0, None):
        return f"failed: {fails} gate{'s' * (fails != 1)} (exit {code})"
    if warns:
        return f"passed with {warns} warning{'s' * (warns != 1)} (exit {code})"
    return f"passed (exit {code})"


def _margin(r: Mapping[str, Any]) -> float:
    """How close a passing result came to its threshold (smaller = closer)."""
    judged, threshold = r.get("judged"), r.get("threshold")
    try:
        j, t = float(judged), float(threshold)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.inf
    return t - j if r.get("op") == "<=" else j - t


def worst_results(gates: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """For each verdict (gate x model x variant), its worst group's result: a blocking or
    failing group first, then insufficient data, then the pass closest to its threshold."""
    if gates is None:
        return []
    by_key: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for r in gates.get("results") or []:
        key = (r.get("gate_index", r.get("gate_id")), r.get("model"), r.get("variant"))
        by_key.setdefault(key, []).append(r)
    out = []
    for v in gates.get("verdicts") or []:
        key = (v.get("gate_index", v.get("gate_id")), v.get("model"), v.get("variant"))
        rows = by_key.get(key) or []
        if not rows:
            continue
        worst = min(rows, key=lambda r: (not r.get("blocking", False),
                                         _OUTCOME_RANK.get(str(r.get("outcome")), 4), _margin(r)))
        out.append({**worst, "status": verdict_status(v)})
    return out


#: Gate metrics measured in accuracy points (metric names, as in gates.json; robustness.csv's
#: columns carry a ``_pts`` suffix instead).
POINTS = frozenset({"effective_robustness", "relative_robustness"})


def _num(x: Any, proportion: bool, points: bool = False) -> str:
    try:
        v = float(x)
    except (TypeError, ValueError):
        return "\u2013"
    if not math.isfinite(v):
        return "undefined"
    if proportion:
        return f"{100 * v:.1f}%"
    return f"{v:+.1f} pts" if points else f"{v:.3g}"


def compared(r: Mapping[str, Any]) -> str:
    """What the gate compared with what, e.g. 'lower 95% bound 19.4% <= 5.0%' or
    'adjusted p-value 4.2e-24 >= alpha 0.05 (alternative: greater)'."""
    judge = str(r.get("judge") or "point")
    prop = str(r.get("metric")) in PROPORTIONS and judge != "p_value"
    points = str(r.get("metric")) in POINTS
    what = str(r.get("statistic") or JUDGED.get(judge, judge))
    against = r.get("compared_to")
    limit = _num(r.get("threshold"), prop, points)
    if judge == "p_value":
        limit = f"alpha {limit}"
    judged = r.get("judged") if r.get("judged") is not None else r.get("value")
    text = f"{what} {_num(judged, prop, points)} {r.get('op') or 'vs'} {against or limit}"
    if r.get("alternative"):
        text += f" (alternative: {r['alternative']})"
    return text


def estimate(r: Mapping[str, Any]) -> str:
    """'25.0% (19.4% to 31.6%)', in the metric's unit."""
    prop, points = str(r.get("metric")) in PROPORTIONS, str(r.get("metric")) in POINTS
    lo, hi = r.get("ci_low"), r.get("ci_high")
    text = _num(r.get("value"), prop, points)
    if lo is not None and hi is not None:
        text += f" ({_num(lo, prop, points)} to {_num(hi, prop, points)})"
    return text


def where(r: Mapping[str, Any]) -> str:
    col, group = str(r.get("group_col") or ""), str(r.get("group") or "")
    return "overall" if col in ("", "overall") else f"{col}={group}"


def verdict_table(run: RunData) -> pd.DataFrame:
    """One row per gate x model x variant: status, the worst group, its estimate and what was
    compared with what."""
    rows = worst_results(run.gates)
    if not rows:
        return pd.DataFrame()
    table = pd.DataFrame({
        "status": [STATUS[r["status"]][0] for r in rows],
        "gate": [str(r.get("gate_id") or r.get("type")) for r in rows],
        "model": [str(r.get("model", "")) for r in rows],
        "variant": [str(r.get("variant", "")) for r in rows],
        "worst group": [where(r) + (f" (insufficient data: n={r.get('n')})"
                                    if r.get("outcome") == "insufficient" else "") for r in rows],
        "estimate (95% CI)": [estimate(r) for r in rows],
        "compared": [compared(r) for r in rows],
    })
    return table


def plot_gate_forest(run: RunData) -> Figure | None:
    """Each gate's worst group: estimate and interval, the threshold (when it is in the same
    unit as the estimate; a significance gate shows zero difference instead), coloured by
    the gate's status. One row per gate x model x variant, each on its own scale."""
    rows = worst_results(run.gates)
    rows = [r for r in rows if r.get("value") is not None]
    if not rows:
        return None
    fig = new_figure(9, 0.75 * len(rows) + 0.9)
    axes = fig.subplots(len(rows), 1, squeeze=False)[:, 0]
    for ax, r in zip(axes, rows):
        text, colour = STATUS[r["status"]]
        prop = str(r.get("metric")) in PROPORTIONS
        scale = 100.0 if prop else 1.0
        v = scale * float(r["value"])
        lo = scale * float(r["ci_low"]) if r.get("ci_low") is not None else v
        hi = scale * float(r["ci_high"]) if r.get("ci_high") is not None else v
        ax.errorbar([v], [0], xerr=[[max(v - lo, 0)], [max(hi - v, 0)]], fmt="o", color=colour,
                    ecolor=colour, elinewidth=2.5, capsize=4, markersize=7)
        if r.get("judge") == "p_value":
            ref, ref_label = 0.0, "no difference"
        else:
            ref, ref_label = scale * float(r.get("threshold") or 0.0), "threshold"
        ax.axvline(ref, color="#111827", ls="--", lw=1.2)
        ax.annotate(ref_label, (ref, 0.55), fontsize=8, ha="left", xytext=(3, 0),
                    textcoords="offset points")
        label = f"[{text}] {r.get('gate_id') or r.get('type')}"
        ax.set_yticks([0], [mpl_text(label if len(label) <= 60 else label[:57] + "...")],
                      color=colour, fontweight="bold", fontsize=9)
        ax.set_ylim(-0.8, 0.8)
        ax.set_title(mpl_text(f"{r.get('model')} | {r.get('variant')} | worst group {where(r)}"),
                     fontsize=8, loc="right", fontweight="normal", color="#374151")
        lo_x, hi_x = min(lo, ref), max(hi, ref)
        pad = 0.12 * (hi_x - lo_x or 1.0)
        ax.set_xlim(lo_x - pad, hi_x + pad)
        ax.tick_params(axis="x", labelsize=8)
        ax.grid(axis="y", visible=False)
    axes[-1].set_xlabel("estimate and 95% interval (% for rates and accuracies; "
                        "the gate's own unit otherwise)", fontsize=9)
    return fig
