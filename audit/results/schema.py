"""The fixed names of a run directory: file names, table columns, flags, the format version.

Nothing here imports anything of ``audit`` but :mod:`audit.fileio`, so every layer can read these
facts without importing upward.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from audit.fileio import atomic_write

#: Version of the run-directory format (manifest.json and gates.json). 2 added ``files`` (SHA-256
#: of every output file) and a top-level ``scoring`` to the manifest; tables are unchanged, so
#: readers accept every version up to this one.
FORMAT_VERSION = "2"
#: Versions a reader of this package understands.
READABLE_VERSIONS = ("1", "2")

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
#: metrics.csv columns that hold numbers (empty cells are NaN).
NUMERIC_METRIC_COLUMNS = ("n", "value", "ci_low", "ci_high", "p_value")
#: metrics.csv columns that hold text (empty cells are "").
TEXT_METRIC_COLUMNS = ("dataset", "model", "variant", "metric", "category", "group_col", "group", "flag")

#: The columns of robustness.csv every reader needs (the writer's full list is
#: :data:`audit.robustness.ROBUSTNESS_COLUMNS`; older runs may lack the rest). Every number in
#: robustness.csv is in accuracy points, named ``*_pts``.
ROBUSTNESS_REQUIRED = ("model", "dataset", "top1_pts", "effective_robustness_pts")

#: robustness.csv of a format-1 run: its column names, mapped to today's on reading.
ROBUSTNESS_V1_COLUMNS = {
    "top1": "top1_pts", "baseline_top1": "baseline_top1_pts", "imagenet_top1": "imagenet_top1_pts",
    "effective_robustness": "effective_robustness_pts", "relative_robustness": "relative_robustness_pts",
    "eff_rob_low": "eff_rob_low_pts", "eff_rob_high": "eff_rob_high_pts",
    "eff_rob_baseline_low": "eff_rob_baseline_low_pts", "eff_rob_baseline_high": "eff_rob_baseline_high_pts",
}
#: Format-1 robustness.csv columns that held fractions (today: points, so scaled by 100).
ROBUSTNESS_V1_FRACTIONS = ("top1", "baseline_top1", "imagenet_top1")

#: Values of the ``flag`` column.
FLAG_SMALL_N = "small_n"      # group below stats.min_n: estimate shown, not trusted
FLAG_EMPTY = "empty"          # no images: value is NaN by construction
FLAG_UNDEFINED = "undefined"  # e.g. a ratio with a zero denominator


def write_json(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON, atomically."""
    atomic_write(path, lambda p: p.write_text(json.dumps(data, indent=2, default=str) + "\n"))


def write_csv(path: Path, df: pd.DataFrame) -> None:
    """Write a table without its index, atomically."""
    atomic_write(path, lambda p: df.to_csv(p, index=False))


def write_parquet(path: Path, df: pd.DataFrame) -> None:
    """Write a table as parquet without its index, atomically."""
    atomic_write(path, lambda p: df.to_parquet(p, index=False))


def empty_metrics() -> pd.DataFrame:
    """A metrics table with no rows and exactly :data:`METRIC_COLUMNS`."""
    return pd.DataFrame({c: pd.Series(dtype="object") for c in METRIC_COLUMNS})
