"""``audit history RUN_DIR...``: the metrics of many runs in one long table, and trend plots per gate.

Every run is read through :func:`audit.results.read_run` (so a directory that is not a run is a
clear exit 2/3) and its metrics.csv gets the run's facts as columns: ``run`` (directory),
``created``, ``weights`` (of the row's model), ``dataset_revision`` and ``dataset_fingerprint``.
The HTML page has one trend plot per gate of the newest run's probe: the gate's metric for every
group, point and interval, per run in time order. Every user string on it is escaped.
"""

from __future__ import annotations

import base64
import html
import io
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

import pandas as pd

from audit.errors import EXIT_OK, UserError
from audit.fileio import atomic_write, make_dirs
from audit.results import METRIC_COLUMNS, METRICS, RunDir, read_run, write_csv

HISTORY_CSV = "history.csv"
HISTORY_HTML = "history.html"
RUN_COLUMNS = ("run", "created", "probe", "weights", "dataset_revision", "dataset_fingerprint")
#: Gate type -> the metrics.csv metric it reads (gates with a ``metric`` field name it themselves).
GATE_METRIC = {"max_rate": "category_rate", "no_significant_difference": "pairwise_test",
               "variant_no_increase": "variant_change"}


def _facts(run: RunDir) -> pd.DataFrame:
    m = run.metrics
    weights = {x.display: x.weights for x in run.manifest.models}
    revision = {d.name: d.revision for d in run.manifest.datasets}
    fingerprint = {d.name: d.fingerprint for d in run.manifest.datasets}
    return m.assign(run=str(run.path), created=run.manifest.created or "", probe=run.manifest.probe.name,
                    weights=m["model"].map(weights), dataset_revision=m["dataset"].map(revision),
                    dataset_fingerprint=m["dataset"].map(fingerprint))


def history_table(runs: Sequence[RunDir]) -> pd.DataFrame:
    """One long table: :data:`RUN_COLUMNS` then metrics.csv's columns, runs in time order."""
    if not runs:
        raise UserError("history needs at least one run directory", fix="pass run directories, e.g. runs/nightly/*")
    table = pd.concat([_facts(r) for r in runs], ignore_index=True)
    table = table.sort_values(["created", "run"], kind="mergesort").reset_index(drop=True)
    return table.loc[:, [*RUN_COLUMNS, *METRIC_COLUMNS]]


def gate_series(gate: Any) -> dict[str, str] | None:
    """The metrics.csv selection a gate reads (metric, category, group_col), or None."""
    kind = getattr(gate, "type", "")
    metric = getattr(gate, "metric", None) or GATE_METRIC.get(kind)
    if kind == "max_disparity":
        metric = f"disparity_{gate.measure}"
    if metric is None or not hasattr(gate, "group_col"):
        return None
    return {"metric": metric, "category": getattr(gate, "category", None) or "", "group_col": gate.group_col}


def trend_png(rows: pd.DataFrame, title: str) -> str:
    """Point and interval per run (x) for every model x group, as base64 PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = list(dict.fromkeys(rows["run"]))
    fig, ax = plt.subplots(figsize=(8, 3.5))
    for (model, group), g in rows.groupby(["model", "group"], sort=False):
        x = [runs.index(r) for r in g["run"]]
        low = (g["value"] - g["ci_low"]).clip(lower=0).fillna(0)
        high = (g["ci_high"] - g["value"]).clip(lower=0).fillna(0)
        ax.errorbar(x, g["value"], yerr=[low, high], marker="o", capsize=3, label=f"{model} {group}")
    ax.set_xticks(range(len(runs)), [Path(r).name for r in runs], rotation=30, ha="right", fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def history_html(table: pd.DataFrame, gates: Sequence[Any], labels: Sequence[str]) -> str:
    """The page: one section per gate with its trend plot, then the runs."""
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>audit history</title></head><body>",
             f"<h1>History of {table['run'].nunique()} run(s)</h1>"]
    for gate, label in zip(gates, labels):
        sel = gate_series(gate)
        if sel is None:
            continue
        rows = table[(table["metric"] == sel["metric"]) & (table["category"] == sel["category"])
                     & (table["group_col"] == sel["group_col"])]
        parts.append(f"<h2>{html.escape(label)}</h2>")
        if rows.empty:
            parts.append("<p>no rows for this gate in these runs</p>")
            continue
        alt = html.escape(f"trend of {sel['metric']} {sel['category']} by {sel['group_col']}", quote=True)
        parts.append(f'<img alt="{alt}" src="data:image/png;base64,{trend_png(rows, label)}">')
    runs = table.drop_duplicates("run")[["run", "created", "probe"]]
    parts.append("<h2>Runs</h2>" + runs.to_html(index=False, escape=True) + "</body></html>\n")
    return "".join(parts)


def history_main(run_dirs: Sequence[str | Path], out: str | Path | None = None, stream: TextIO | None = None) -> int:
    """``python -m audit history``: write history.csv and history.html; return 0.

    Raises:
        UserError: a path is not a run directory (exit 2).
        DataError: a run's files cannot be read (exit 3).
    """
    from audit.gates.evaluators import gate_labels
    from audit.gates.rundir import run_probe_spec

    runs = [read_run(p, METRICS) for p in run_dirs]
    table = history_table(runs)
    newest = max(runs, key=lambda r: (r.manifest.created or "", str(r.path)))
    gates = list(run_probe_spec(newest.path, newest.manifest).gates)
    folder = Path(out) if out is not None else Path("history")
    make_dirs(folder)
    write_csv(folder / HISTORY_CSV, table)
    page = history_html(table, gates, gate_labels(gates))
    atomic_write(folder / HISTORY_HTML, lambda p: p.write_text(page, encoding="utf-8"))
    print(f"{len(runs)} run(s), {len(table)} metric row(s): wrote {folder / HISTORY_CSV} and {folder / HISTORY_HTML}",
          file=stream or sys.stdout)
    return EXIT_OK


__all__ = ["HISTORY_CSV", "HISTORY_HTML", "gate_series", "history_html", "history_main", "history_table"]
