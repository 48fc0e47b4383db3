"""The terminal summary of a run: what to look at first, computed from the run's own tables."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

from audit.spec import Probe

if TYPE_CHECKING:
    from audit.run import RunOutcome


def _pct(x: float) -> str:
    return "   n/a" if pd.isna(x) else f"{100 * x:5.1f}%"


def rate_lines(metrics: pd.DataFrame, max_groups: int = 4) -> list[str]:
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
            more = int((block["group_col"] == col).sum()) - len(grp)
            lines.append(f"      by {col}, highest: {cells}" + (f" (+{more} more)" if more > 0 else ""))
    return lines


def accuracy_lines(metrics: pd.DataFrame) -> list[str]:
    acc = metrics[(metrics["metric"] == "accuracy") & (metrics["group_col"] == "overall")]
    return [f"  accuracy {r.model} | {r.variant} | {r.dataset}: {_pct(r.value)} "
            f"[{_pct(r.ci_low).strip()}-{_pct(r.ci_high).strip()}] n={int(r.n)}" for r in acc.itertuples()]


def gate_lines(results: list[object]) -> list[str]:
    """One line per gate x model x variant: its status and the deciding number."""
    from audit.gates import verdicts

    lines = []
    for v in verdicts(results):  # type: ignore[arg-type]
        lines.append(f"  [{v.label}] {v.gate_id} | {v.model} | {v.variant}: {v.message}")
    return lines


def print_summary(probe: Probe, outcome: RunOutcome) -> None:
    metrics = outcome.metrics
    print(f"\naudit: probe '{probe.spec.name}' -> {outcome.run_dir}")
    if probe.spec.notice:
        print(f"\nNOTICE: {' '.join(probe.spec.notice.split())}")
    lines = accuracy_lines(metrics) + rate_lines(metrics)
    if lines:
        print("\nresults (rate [95% CI], n; * = fewer than min_n images):")
        print("\n".join(lines))
    if outcome.gate_results:
        print("\ngates (details: gates.json, or python -m audit check RUN_DIR):")
        print("\n".join(gate_lines(outcome.gate_results)))
        from audit.gates import verdict

        print(f"verdict: {verdict(outcome.gate_results)}")  # type: ignore[arg-type]
    for name, why in outcome.model_failures.items():
        print(f"\nmodel {name} failed to load:\n{why}")
    skipped = outcome.skipped_images
    if skipped:
        counts = ", ".join(f"{n} in {name}" for name, n in skipped.items())
        print(f"\nskipped {sum(skipped.values())} unreadable image(s) ({counts}); "
              f"listed with the reason in {outcome.run_dir / 'manifest.json'} under \"skipped\"")
    if outcome.report_error:
        print(f"\nreport failed (results are written): {outcome.report_error}")
    written = "manifest.json, predictions.parquet, metrics.csv, gates.json"
    if (outcome.run_dir / "report.html").exists():
        written += ", report.html, model_card.md"
    print(f"\nwrote {outcome.run_dir}/: {written}")
    print(f"exit code {outcome.exit_code}")
