"""``audit compare``: comparison.csv, comparison.html (verdict first) and the console summary."""

from __future__ import annotations

import base64
import html
import io
import sys
from dataclasses import replace
from pathlib import Path
from typing import TextIO

import pandas as pd

from audit.compare.core import FLAG_IMPROVEMENT, FLAG_REGRESSION
from audit.compare.runs import compare_runs, model_pairs, robustness_comparison
from audit.errors import EXIT_OK
from audit.fileio import atomic_write, make_dirs
from audit.gates.result import GateResult, exit_code, verdicts
from audit.results import METRICS, RunDir, read_run, write_csv
from audit.spec.models import ProbeSpec

COMPARISON_CSV = "comparison.csv"
COMPARISON_HTML = "comparison.html"
ROBUSTNESS_COMPARISON_CSV = "robustness_comparison.csv"
#: Rows drawn in the forest plot (regressions first, then by size of the change).
MAX_PLOTTED = 40


def judge_regressions(policy: ProbeSpec, new: RunDir, table: pd.DataFrame) -> list[GateResult]:
    """The policy's ``no_regression`` gates judged on ``table`` (models: the compared new ones)."""
    from audit.gates.evaluators import evaluate
    from audit.gates.judge import GateContext
    from audit.gates.regression import baseline_comparison

    gates = [g for g in policy.gates if getattr(g, "type", "") == "no_regression"]
    if not gates:
        return []
    ctx = GateContext.from_probe(policy, new.metrics, None)
    ctx = replace(ctx, models=tuple(dict.fromkeys(table["model_new"])),
                  variants=tuple(dict.fromkeys(table["variant"])))
    with baseline_comparison(lambda: table):
        return evaluate(gates, ctx)


def _label(r: pd.Series) -> str:
    where = "overall" if r["group_col"] == "overall" else f"{r['group_col']}={r['group']}"
    what = r["category"] or r["metric"]
    return f"{r['model_new']} | {r['variant']} | {what} | {where}"


def _ordered(table: pd.DataFrame) -> pd.DataFrame:
    rank = table["flag"].map({FLAG_REGRESSION: 0}).fillna(1) + (table["direction"] != "worse") * 0.5
    return table.assign(_rank=rank, _size=-table["delta"].abs()).sort_values(["_rank", "_size"]).drop(
        columns=["_rank", "_size"])


def forest_png(table: pd.DataFrame) -> str:
    """A forest plot of deltas with intervals (regressions first), as base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = _ordered(table).head(MAX_PLOTTED).iloc[::-1]
    fig, ax = plt.subplots(figsize=(9, 0.3 * len(rows) + 1.2))
    colour = rows["direction"].map({"worse": "#c0392b", "better": "#1e8449"}).fillna("#555555")
    y = range(len(rows))
    ax.errorbar(rows["delta"], y, xerr=[(rows["delta"] - rows["ci_low"]).clip(lower=0),
                                        (rows["ci_high"] - rows["delta"]).clip(lower=0)],
                fmt="none", ecolor="#999999")
    ax.scatter(rows["delta"], y, c=list(colour), zorder=3)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(list(y), [_label(r) for _, r in rows.iterrows()], fontsize=7)
    ax.set_xlabel("new - base (interval per row; red: worse, green: better)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def verdict_lines(table: pd.DataFrame, results: list[GateResult]) -> list[str]:
    """The summary a release manager reads first: gates, then significant changes."""
    reg = table[table["flag"] == FLAG_REGRESSION]
    imp = table[table["flag"] == FLAG_IMPROVEMENT]
    paired = "paired" if table["paired"].all() else "unpaired" if not table["paired"].any() else "partly paired"
    lines = [f"{len(table)} row(s) compared ({paired}): {len(reg)} significant regression(s), "
             f"{len(imp)} significant improvement(s) (Holm-adjusted)"]
    for v in verdicts(results):
        lines.append(f"{v.label} {v.gate_id} {v.model} {v.variant}: {v.message}")
    for _, r in _ordered(reg).head(10).iterrows():
        lines.append(f"regression {_label(r)}: {r['base']:.3f} -> {r['new']:.3f} "
                     f"({r['delta']:+.3f}, 95% CI {r['ci_low']:+.3f} to {r['ci_high']:+.3f}, p_holm {r['p_holm']:.2g})")
    return lines


def comparison_html(table: pd.DataFrame, results: list[GateResult], title: str) -> str:
    """Self-contained page: verdict, forest plot, table. Every user string is escaped."""
    code = exit_code(results)
    head = "FAIL" if code else "PASS"
    verdict = "".join(f"<li>{html.escape(line)}</li>" for line in verdict_lines(table, results))
    img = f'<img alt="forest plot of changes, regressions first" src="data:image/png;base64,{forest_png(table)}">' \
        if len(table) else ""
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head><body>"
            f"<h1>{html.escape(title)}</h1><h2>Verdict: {head}</h2><ul>{verdict}</ul>{img}"
            f"<h2>All rows</h2>{_ordered(table).to_html(index=False, escape=True, na_rep='')}</body></html>\n")


def compare_main(base_dir: str | Path, new_dir: str | Path | None = None, *, out: str | Path | None = None,
                 probe: str | Path | None = None, junit: str | Path | None = None, base_model: str | None = None,
                 new_model: str | None = None, stream: TextIO | None = None) -> int:
    """``python -m audit compare``: write comparison.csv/.html, print the verdict, return the exit code.

    Returns:
        1 when a fail-severity ``no_regression`` gate of the policy (``--probe``, else the new
        run's probe) blocks, else 0.

    Raises:
        UserError: a run directory is not one, or the runs cannot be compared (exit 2).
        DataError: a file cannot be read or written (exit 3).
    """
    from audit.check import check_junit_target, write_junit
    from audit.gates.rundir import run_probe_spec

    stream = stream or sys.stdout
    if junit is not None:
        check_junit_target(junit)
    base = read_run(base_dir, METRICS)
    new = read_run(new_dir, METRICS) if new_dir is not None else None
    judged = new or base
    if probe is not None:
        from audit.spec.load import load_probe

        policy = load_probe(probe, check_names=False).spec
    else:
        policy = run_probe_spec(judged.path, judged.manifest)
    model_pairs(base, new, base_model, new_model)  # name problems before reading predictions
    table = compare_runs(base, new, base_model=base_model, new_model=new_model, stats=policy.stats)
    results = judge_regressions(policy, judged, table)
    folder = Path(out) if out is not None else judged.path.parent / "compare"
    make_dirs(folder)
    write_csv(folder / COMPARISON_CSV, table)
    title = f"{policy.name}: {base.path.name} -> {judged.path.name}"
    page = comparison_html(table, results, title)
    atomic_write(folder / COMPARISON_HTML, lambda p: p.write_text(page, encoding="utf-8"))
    robustness = robustness_comparison(base, new, policy, base_model=base_model, new_model=new_model)
    if robustness is not None:
        write_csv(folder / ROBUSTNESS_COMPARISON_CSV, robustness)
        print(f"effective robustness, new - base: {folder / ROBUSTNESS_COMPARISON_CSV}", file=stream)
    if junit is not None:
        write_junit(junit, results, suite=f"audit.compare.{policy.name}")
    for line in verdict_lines(table, results):
        print(line, file=stream)
    print(f"wrote {folder / COMPARISON_CSV} and {folder / COMPARISON_HTML}", file=stream)
    return exit_code(results) if results else EXIT_OK


__all__ = ["COMPARISON_CSV", "COMPARISON_HTML", "compare_main", "comparison_html", "judge_regressions"]
