"""The fixed output contract of a run directory.

A run directory holds ``manifest.json`` (provenance), ``predictions.parquet`` (one row per
dataset x model x variant x image), ``metrics.csv`` (one tidy long table, the same columns for
every probe), ``gates.json`` and, when reports are on, ``report.ipynb``/``report.html`` and
``model_card.md``. Every file is written atomically: a temp file in the same directory, then
``os.replace``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from audit.errors import DataError, UserError
from audit.fileio import atomic_write

FORMAT_VERSION = "1"

MANIFEST = "manifest.json"
PREDICTIONS = "predictions.parquet"
METRICS = "metrics.csv"
GATES = "gates.json"
ROBUSTNESS = "robustness.csv"
BY_TEMPLATE = "predictions_by_template.parquet"

#: Columns of predictions.parquet, in order; subgroup columns go between ``image_id`` and
#: ``target`` under their dataset names.
PREDICTION_LEAD = ("dataset", "model", "variant", "image_id")
PREDICTION_TAIL = (
    "target", "target_index", "top1_label", "top1_category", "top5_labels", "top1_score", "correct",
    "top5_correct",
)

#: Columns of metrics.csv, in order.
METRIC_COLUMNS = (
    "dataset", "model", "variant", "metric", "category", "group_col", "group",
    "n", "value", "ci_low", "ci_high", "p_value", "flag",
)

#: Values of the ``flag`` column.
FLAG_SMALL_N = "small_n"      # group below stats.min_n: estimate shown, not trusted
FLAG_EMPTY = "empty"          # no images: value is NaN by construction
FLAG_UNDEFINED = "undefined"  # e.g. a ratio with a zero denominator


def write_json(path: Path, data: Any) -> None:
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2, default=str) + "\n"))


def write_csv(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, lambda p: df.to_csv(p, index=False))


def write_parquet(path: Path, df: pd.DataFrame) -> None:
    atomic_write(path, lambda p: df.to_parquet(p, index=False))


def empty_metrics() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype="object") for c in METRIC_COLUMNS})


def check_run_dir(run_dir: Path, *need: str) -> Path:
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run directory not found: {run_dir}", fix="pass the directory a run wrote (runs/<probe>/<timestamp>)")
    missing = [n for n in (MANIFEST, *need) if not (run_dir / n).exists()]
    if missing:
        raise UserError(
            f"{run_dir} is not a complete run directory: missing {', '.join(missing)}",
            fix="re-run the probe; an interrupted run leaves no manifest",
        )
    return run_dir


def read_manifest(run_dir: Path) -> dict[str, Any]:
    path = check_run_dir(run_dir) / MANIFEST
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read {path}: {exc}") from None


def read_metrics(run_dir: Path) -> pd.DataFrame:
    path = check_run_dir(run_dir, METRICS) / METRICS
    df = pd.read_csv(path, keep_default_na=False, na_values=[""])
    for col in ("category", "group", "flag", "variant", "model", "dataset", "group_col", "metric"):
        if col in df:
            df[col] = df[col].astype(object).fillna("").astype(str)
    return df


def read_predictions(run_dir: Path) -> pd.DataFrame:
    return pd.read_parquet(check_run_dir(run_dir, PREDICTIONS) / PREDICTIONS)
