"""The terminal summary of a run: what to look at first, computed from the run's own tables."""

from __future__ import annotations

import pandas as pd

from audit.spec import Probe


def _pct(x: float) -> str:
    return "   n/a" if pd.isna(x) else f"{100 * x:5.1f}%"


def rate_lines(metrics: pd.DataFrame, max_groups: int = 12) -> list[str]:
    """Per dataset/model/variant/category: the overall rate and the highest-rate groups."""
    rates = metrics[metrics["metric"] == "category_rate"]
    lines: list[str] = []
    for (ds, model, variant, cat), block in rates.groupby(["dataset", "model", "variant", "category"], sort=False):
        overall = block[block["group_col"] == "overall"]
        head = f"  {cat:<18} {model} | {variant} | {ds}"
        if len(overall):
            r = overall.iloc[0]
            head += f": overall {_pct(r['value'])} [{_pct(r['ci_low']).strip()}-{_pct(r['ci_high']).strip()}] n={int(r['n'])}"
        lines.append(head)
        for col, grp in block[block["group_col"] != "overall"].groupby("group_col", sort=False):
            if " x " in col or col == "template":
                continue
            grp = grp.sort_values("value", ascending=False).head(max_groups)
            cells = ", ".join(
                f"{g}={_pct(v).strip()}" + ("*" if f else "") for g, v, f in zip(grp["group"], grp["value"], grp["flag"].fillna(""))
            )
            lines.append(f"      by {col}: {cells}")
    return lines


def accuracy_lines(metrics: pd.DataFrame) -> list[str]:
    acc = metrics[(metrics["metric"] == "accuracy") & (metrics["group_col"] == "overall")]
    return [f"  accuracy {r.model} | {r.variant} | {r.dataset}: {_pct(r.value)} "
            f"[{_pct(r.ci_low).strip()}-{_pct(r.ci_high).strip()}] n={int(r.n)}" for r in acc.itertuples()]


def print_summary(probe: Probe, outcome: object) -> None:
    metrics: pd.DataFrame = getattr(outcome, "metrics")
    print(f"\naudit: probe '{probe.spec.name}' -> {getattr(outcome, 'run_dir')}")
    if probe.spec.notice:
        print(f"\nNOTICE: {probe.spec.notice.strip()}")
    lines = accuracy_lines(metrics) + rate_lines(metrics)
    if lines:
        print("\nresults (rate [95% CI], n; * = fewer than min_n images):")
        print("\n".join(lines))
    gates = getattr(outcome, "gate_results", [])
    if gates:
        print("\ngates:")
        for g in gates:
            outcome_txt = getattr(g, "outcome", "?")
            severity = getattr(g, "severity", "fail")
            if outcome_txt != "pass":
                print(f"  [{outcome_txt.upper()}{' (warn)' if severity == 'warn' else ''}] {getattr(g, 'message', g)}")
        passed = sum(getattr(g, "outcome", "") == "pass" for g in gates)
        print(f"  {passed} of {len(gates)} gate checks passed")
    for name, why in getattr(outcome, "model_failures", {}).items():
        print(f"\nmodel {name} failed to load:\n{why}")
    if getattr(outcome, "report_error", None):
        print(f"\nreport failed (results are written): {getattr(outcome, 'report_error')}")
    print(f"\nexit code {getattr(outcome, 'exit_code')}")
