"""The run-directory contract: fixed file names and columns, typed manifest and gates file, one reader.

A run directory holds ``manifest.json`` (provenance and file checksums, written last),
``predictions.parquet`` (one row per dataset x model x variant x image), ``metrics.csv`` (one tidy
long table, the same columns for every probe), ``gates.json`` and, when reports are on,
``report.ipynb``/``report.html`` and ``model_card.md``. Every file is written atomically.

- :mod:`audit.results.schema`: names, columns, flags, format version, atomic table writers.
- :mod:`audit.results.manifest`: :class:`Manifest` and its one writer :func:`write_manifest`.
- :mod:`audit.results.gates`: :class:`GatesFile`.
- :mod:`audit.results.rundir`: :func:`read_run`, the one reader.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from audit.fileio import atomic_write
from audit.results.gates import GateResultRecord, GatesFile, GateVerdictRecord
from audit.results.manifest import FileRecord, Manifest, ModelRecord, write_manifest
from audit.results.rundir import RunDir, check_run_dir, read_run
from audit.results.schema import (
    BY_TEMPLATE, FLAG_EMPTY, FLAG_SMALL_N, FLAG_UNDEFINED, FORMAT_VERSION, GATES, MANIFEST, METRIC_COLUMNS, METRICS,
    NUMERIC_METRIC_COLUMNS, PREDICTION_LEAD, PREDICTION_TAIL, PREDICTIONS, READABLE_VERSIONS, ROBUSTNESS,
    ROBUSTNESS_REQUIRED, empty_metrics, write_csv, write_json, write_parquet,
)


def read_manifest(run_dir: Path) -> dict[str, Any]:
    """The manifest of a run directory as JSON data, validated (see :func:`read_run`)."""
    return read_run(run_dir).manifest_dict


def read_metrics(run_dir: Path) -> pd.DataFrame:
    """``metrics.csv`` of a run directory, columns checked and typed."""
    return read_run(run_dir, METRICS).metrics


def read_predictions(run_dir: Path) -> pd.DataFrame:
    """``predictions.parquet`` of a run directory."""
    return read_run(run_dir, PREDICTIONS).predictions


__all__ = [
    "BY_TEMPLATE", "FLAG_EMPTY", "FLAG_SMALL_N", "FLAG_UNDEFINED", "FORMAT_VERSION", "GATES", "MANIFEST",
    "METRICS", "METRIC_COLUMNS", "NUMERIC_METRIC_COLUMNS", "PREDICTIONS", "PREDICTION_LEAD", "PREDICTION_TAIL",
    "READABLE_VERSIONS", "ROBUSTNESS", "ROBUSTNESS_REQUIRED",
    "FileRecord", "GateResultRecord", "GateVerdictRecord", "GatesFile", "Manifest", "ModelRecord", "RunDir",
    "atomic_write", "check_run_dir", "empty_metrics", "read_manifest", "read_metrics", "read_predictions",
    "read_run", "write_csv", "write_json", "write_manifest", "write_parquet",
]
