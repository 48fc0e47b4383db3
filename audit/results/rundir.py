"""The one reader of run directories: :func:`read_run` -> :class:`RunDir`.

``check``, ``report``, the pytest plugin, ``compare`` and ``history`` all read runs through here,
so a run directory that is not one (missing, truncated, the wrong JSON type, a newer format) is a
clear :class:`~audit.errors.UserError` (exit 2) or :class:`~audit.errors.DataError` (exit 3)
everywhere, never a traceback. Tables are read on first use.
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd
from pydantic import BaseModel, ValidationError

from audit.errors import DataError, Problem, UserError
from audit.results.gates import GatesFile
from audit.results.manifest import Manifest, changed_files
from audit.results.schema import (
    GATES, MANIFEST, METRIC_COLUMNS, METRICS, NUMERIC_METRIC_COLUMNS, PREDICTIONS, READABLE_VERSIONS,
    ROBUSTNESS, ROBUSTNESS_REQUIRED, ROBUSTNESS_V1_COLUMNS, ROBUSTNESS_V1_FRACTIONS, TEXT_METRIC_COLUMNS,
)

_RERUN = "re-run the probe to rewrite it"
_TABLE_ERRORS = (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError, pd.errors.EmptyDataError)


def check_run_dir(run_dir: Path, *need: str) -> Path:
    """``run_dir`` if it is a directory holding the manifest and ``need``; else UserError (exit 2)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        what = "is a file, not a run directory" if run_dir.exists() else "not found"
        raise UserError(f"run directory {what}: {run_dir}",
                        fix="pass the directory a run wrote (runs/<probe>/<timestamp>)")
    missing = [n for n in (MANIFEST, *need) if not (run_dir / n).is_file()]
    if missing:
        raise UserError(
            f"{run_dir} is not a complete run directory: missing {', '.join(missing)}",
            fix="re-run the probe; an interrupted run leaves no manifest",
        )
    return run_dir


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise DataError(f"cannot read {path}: {exc}", fix=_RERUN + " (the file is truncated or not JSON)") from None
    if not isinstance(data, dict):
        raise DataError(f"{path} holds a JSON {type(data).__name__}, not an object", fix=_RERUN)
    version = data.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool):
        data["format_version"] = version = str(version)
    if version is not None and version not in READABLE_VERSIONS:
        newer = isinstance(version, str) and version.isdigit() and int(version) > int(READABLE_VERSIONS[-1])
        raise DataError(
            f"{path} has format_version {version!r}; this audit reads versions {', '.join(READABLE_VERSIONS)}",
            fix="upgrade audit (pip install -U audit) to read it" if newer else _RERUN)
    return data


def _validated(model: type[BaseModel], data: dict[str, Any], path: Path) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = [Problem(".".join(map(str, e["loc"])) or "(file)", e["msg"]) for e in err.errors()]
        raise DataError(f"{path} is not a valid {path.name}", problems=problems, fix=_RERUN) from None


def read_manifest_file(path: Path) -> Manifest:
    """Read and type one ``manifest.json``."""
    return _validated(Manifest, _read_json_object(path), path)  # type: ignore[no-any-return]


def coerce_metrics(df: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Check metrics.csv's columns; text columns to str ('' for empty), numbers to float."""
    missing = [c for c in METRIC_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"{path} lacks column(s): missing columns {', '.join(missing)}",
                        fix=f"{_RERUN} (expected columns: {', '.join(METRIC_COLUMNS)})")
    df = df.copy()
    for col in TEXT_METRIC_COLUMNS:
        df[col] = df[col].astype(object).where(df[col].notna(), "").astype(str)
    for col in NUMERIC_METRIC_COLUMNS:
        numbers = pd.to_numeric(df[col], errors="coerce")
        bad = numbers.isna() & df[col].notna()
        if bad.any():
            row = int(bad.to_numpy().argmax()) + 2  # header is line 1
            raise DataError(f"{path} line {row}: column '{col}' holds {df[col][bad].iloc[0]!r}, not a number",
                            fix=_RERUN)
        df[col] = numbers.astype(float)
    return df


def robustness_v1_to_v2(df: pd.DataFrame) -> pd.DataFrame:
    """A format-1 robustness.csv in today's columns: ``top1``, ``baseline_top1`` and
    ``imagenet_top1`` (fractions) become ``*_pts`` (points, x100); the robustness columns, already
    in points, gain the ``_pts`` suffix. Columns that already have today's name are left alone,
    and a top-1 column with a value above 1 (the earliest tables wrote points) is not rescaled."""
    df = df.copy()
    for old in ROBUSTNESS_V1_FRACTIONS:
        if old in df and ROBUSTNESS_V1_COLUMNS[old] not in df:
            values = pd.to_numeric(df[old], errors="coerce")
            df[old] = values if (values.abs() > 1).any() else 100.0 * values
    return df.rename(columns={old: new for old, new in ROBUSTNESS_V1_COLUMNS.items()
                              if old in df and new not in df})


class RunDir:
    """A run directory read through the one reader.

    Attributes:
        path: The directory.
        manifest: ``manifest.json``, typed.
    """

    def __init__(self, path: Path, manifest: Manifest) -> None:
        self.path = path
        self.manifest = manifest

    @cached_property
    def manifest_dict(self) -> dict[str, Any]:
        """The manifest as plain JSON data (for notebooks and old callers)."""
        return self.manifest.model_dump(mode="json")

    @cached_property
    def metrics(self) -> pd.DataFrame:
        """``metrics.csv``, columns checked and typed (DataError when it cannot be read)."""
        path = check_run_dir(self.path, METRICS) / METRICS
        try:
            df = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={c: str for c in TEXT_METRIC_COLUMNS})
        except _TABLE_ERRORS as exc:
            raise DataError(f"cannot read {path}: {exc}", fix=_RERUN) from None
        return coerce_metrics(df, path)

    @cached_property
    def predictions(self) -> pd.DataFrame:
        """``predictions.parquet`` (one row per dataset x model x variant x image)."""
        path = check_run_dir(self.path, PREDICTIONS) / PREDICTIONS
        try:
            return pd.read_parquet(path)
        except (*_TABLE_ERRORS, ImportError) as exc:  # pyarrow raises ArrowInvalid, a ValueError
            raise DataError(f"cannot read {path}: {exc}", fix=_RERUN) from None

    @cached_property
    def gates_raw(self) -> dict[str, Any] | None:
        """``gates.json`` as validated JSON data, or None when the run wrote none."""
        path = self.path / GATES
        if not path.exists():
            return None
        data = _read_json_object(path)
        _validated(GatesFile, data, path)
        return data

    @cached_property
    def gates(self) -> GatesFile | None:
        """``gates.json``, typed, or None when the run wrote none."""
        raw = self.gates_raw
        return None if raw is None else GatesFile.model_validate(raw)

    @cached_property
    def robustness(self) -> pd.DataFrame | None:
        """``robustness.csv``, or None when the run computed no effective robustness.

        Every number is in accuracy points, in ``*_pts`` columns; a format-1 run's table (top-1s
        as fractions, names without the unit) is mapped to that on reading
        (:func:`robustness_v1_to_v2`)."""
        path = self.path / ROBUSTNESS
        if not path.exists():
            return None
        try:
            df = pd.read_csv(path, keep_default_na=False, na_values=[""])
        except _TABLE_ERRORS as exc:
            raise DataError(f"cannot read {path}: {exc}", fix=_RERUN) from None
        if self.manifest.format_version == "1":
            df = robustness_v1_to_v2(df)
        missing = [c for c in ROBUSTNESS_REQUIRED if c not in df.columns]
        if missing:
            raise DataError(f"{path} lacks column(s) {', '.join(missing)}", fix=_RERUN)
        for col in ("model", "dataset", "note"):
            if col in df:
                df[col] = df[col].astype(object).fillna("").astype(str)
        return df

    def load_all(self) -> RunDir:
        """Read and check metrics, gates and robustness now (raise their errors here, not later)."""
        _ = self.metrics, self.gates, self.robustness
        return self

    def changed_files(self) -> list[str]:
        """Recorded output files that are missing or no longer match their SHA-256."""
        return changed_files(self.path, self.manifest)

    def integrity(self, strict: bool = False) -> list[str]:
        """Warning lines for edited files (empty when all match); with ``strict``, DataError instead."""
        changed = self.changed_files()
        if changed and strict:
            raise DataError(f"{self.path}: {len(changed)} file(s) differ from the manifest's record",
                            problems=[Problem("", line) for line in changed],
                            fix="re-run the probe, or drop --strict to read the files as they are")
        lines = [f"warning: {self.path / line}" for line in changed]
        if not self.manifest.files and self.manifest.format_version == "1":
            lines.append(f"note: {self.path} predates file checksums (format 1): edits cannot be detected")
        return lines


def read_run(path: str | Path, *need: str) -> RunDir:
    """Read a run directory: check it exists with a complete manifest (and ``need`` files), type
    the manifest. Tables are read lazily.

    Raises:
        UserError: not a directory, or the manifest (or a needed file) is missing (exit 2).
        DataError: the manifest is truncated, not an object, of a newer format, or mistyped (exit 3).
    """
    run_dir = check_run_dir(Path(path), *need)
    return RunDir(run_dir, read_manifest_file(run_dir / MANIFEST))


__all__ = ["RunDir", "check_run_dir", "coerce_metrics", "read_manifest_file", "read_run", "robustness_v1_to_v2"]
