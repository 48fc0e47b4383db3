"""Input tables of the robustness step: names, columns, and validation at the edge.

Two shapes come in. A *rows* table is long: ``model, dataset, top1`` with one row per model and
dataset, ``top1`` a fraction. A *baseline* table is wide: ``model`` plus one column per dataset
(``imagenet`` and any of the shifts), fractions; a long baseline is accepted and pivoted. Both
are checked once, here, and every problem is reported at once as a :class:`UserError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from audit.errors import Problem, UserError
from audit.reference import TESTBED_BASELINE, testbed_baseline
from audit.registry import did_you_mean

IMAGENET = "imagenet"
#: The natural distribution shifts of ImageNet, in report order.
SHIFTS = ("imagenet_v2", "imagenet_sketch", "imagenet_r", "imagenet_a", "objectnet")
DATASETS = (IMAGENET, *SHIFTS)

ROW_COLUMNS = ("model", "dataset", "top1")
DEFAULT_BASELINE_NAME = f"audit/reference/{TESTBED_BASELINE}"

#: Columns of the effective-robustness table (robustness.csv), in order. The first six are the
#: contract; the rest explain them. One unit for the whole table: every accuracy and robustness
#: column is in accuracy points (0-100) and says so with a ``_pts`` suffix; the fit's slope and
#: intercept are in logit space, ``fit_r``/``fit_n`` are unitless. (The *input* table's ``top1``,
#: :data:`ROW_COLUMNS`, stays a fraction in [0, 1].)
ROBUSTNESS_COLUMNS = (
    "model", "dataset", "top1_pts", "baseline_top1_pts", "effective_robustness_pts",
    "relative_robustness_pts", "imagenet_top1_pts", "eff_rob_low_pts", "eff_rob_high_pts",
    "eff_rob_baseline_low_pts", "eff_rob_baseline_high_pts",
    "fit_slope", "fit_intercept", "fit_r", "fit_n", "note",
)

# Error texts (asserted verbatim by the tests).
NOT_A_TABLE = "{what} is not a valid {kind} table"
MISSING_COLUMNS = "missing column(s) {missing}; found: {found}"
NOT_A_NUMBER = "{value!r} is not a number"
OUT_OF_RANGE = "{value} is outside [0, 1]"
EMPTY_VALUE = "empty value"
UNKNOWN_DATASET = "unknown dataset '{name}'{hint}"
DUPLICATE = "duplicate of {first}: model '{model}', dataset '{dataset}'"
DUPLICATE_MODEL = "duplicate model '{model}'"
NO_IMAGENET = "has no '{imagenet}' row; effective robustness needs the model's ImageNet top-1"
EMPTY_TABLE = "the table has no rows"
BASELINE_NO_SHIFT = "no shift column; expected at least one of {shifts}"
FIX_ROWS = (
    "give one row per model and dataset with columns model,dataset,top1; top1 is a fraction "
    "in [0, 1]; dataset is one of " + ", ".join(DATASETS) + "; every model needs an "
    "'imagenet' row"
)
FIX_BASELINE = (
    "give one row per baseline model with columns model,imagenet and any of "
    + ", ".join(SHIFTS) + " (top-1 as fractions in [0, 1]), like audit/reference/"
    "testbed_baseline.csv; or a long table model,dataset,top1"
)
FIX_PERCENT = "top1 looks like a percent; divide it by 100 (fractions in [0, 1] are expected)"
MAX_PROBLEMS = 20


def _where(i: int, from_file: bool) -> str:
    """``line N`` (header is line 1) for a file, ``row N`` (0-based) for a DataFrame."""
    return f"line {i + 2}" if from_file else f"row {i}"


def _by_row(problem: Problem) -> tuple[int, int]:
    """Sort key: problems of line/row N in column order, then whole-table problems."""
    head, _, column = problem.field.partition(", column ")
    kind, _, number = head.partition(" ")
    if kind not in ("line", "row") or not number.isdigit():
        return (1 << 30, 0)
    order = ROW_COLUMNS.index(column) if column in ROW_COLUMNS else len(ROW_COLUMNS)
    return (int(number), order)


def _raise(problems: list[Problem], what: str, kind: str, fix: str, file: str | None) -> None:
    if not problems:
        return
    shown = problems[:MAX_PROBLEMS]
    if len(problems) > MAX_PROBLEMS:
        shown.append(Problem("", f"... and {len(problems) - MAX_PROBLEMS} more"))
    raise UserError(NOT_A_TABLE.format(what=what, kind=kind), file=file, problems=shown, fix=fix)


def _check_fractions(values: pd.Series, where: list[str], column: str,
                     problems: list[Problem]) -> tuple[np.ndarray, bool]:
    """Parse ``values`` as numbers in [0, 1]; return them and whether they look like percents."""
    numeric = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    bad_range = []
    for pos, (raw, num) in enumerate(zip(values.tolist(), numeric)):
        field = f"{where[pos]}, column {column}"
        if raw is None or (isinstance(raw, float) and np.isnan(raw)) or str(raw).strip() == "":
            problems.append(Problem(field, EMPTY_VALUE))
        elif np.isnan(num):
            problems.append(Problem(field, NOT_A_NUMBER.format(value=str(raw))))
        elif not 0.0 <= num <= 1.0:
            problems.append(Problem(field, OUT_OF_RANGE.format(value=raw)))
            bad_range.append(num)
    finite = numeric[np.isfinite(numeric)]
    # Percents: everything in [0, 100] and most values above 1.
    looks_percent = (bool(bad_range) and bool(np.all((finite >= 0) & (finite <= 100)))
                     and float(np.mean(finite > 1)) > 0.5)
    return numeric, looks_percent


def _missing_columns(df: pd.DataFrame, need: Iterable[str]) -> Problem | None:
    missing = [c for c in need if c not in df.columns]
    if not missing:
        return None
    return Problem("columns", MISSING_COLUMNS.format(
        missing=", ".join(repr(c) for c in missing),
        found=", ".join(str(c) for c in df.columns) or "(none)"))


def validate_rows(df: pd.DataFrame, file: str | None = None) -> pd.DataFrame:
    """Check a long ``model, dataset, top1`` table; return a clean copy of those columns.

    Args:
        df: the table; extra columns are ignored.
        file: where it came from, for messages (rows are then named by CSV line).

    Raises:
        UserError: listing every problem: missing columns, empty or non-numeric values, top1
            outside [0, 1] (with a hint when the column looks like percents), unknown datasets
            (with did-you-mean), duplicate model x dataset rows, models without an
            ``imagenet`` row.
    """
    what, from_file = file or "the robustness table", file is not None
    problem = _missing_columns(df, ROW_COLUMNS)
    if problem:
        _raise([problem], what, "robustness", FIX_ROWS, file)
    if df.empty:
        _raise([Problem("", EMPTY_TABLE)], what, "robustness", FIX_ROWS, file)
    df = df.reset_index(drop=True)
    where = [_where(i, from_file) for i in range(len(df))]
    problems: list[Problem] = []
    models = df["model"].astype("string").str.strip()
    datasets = df["dataset"].astype("string").str.strip()
    for col, values in (("model", models), ("dataset", datasets)):
        for i in np.flatnonzero(values.fillna("").eq("").to_numpy(dtype=bool)):
            problems.append(Problem(f"{where[i]}, column {col}", EMPTY_VALUE))
    for i, name in enumerate(datasets):
        if not pd.isna(name) and name and name not in DATASETS:
            hint = did_you_mean(name.lower().replace("-", "_").replace(" ", "_"), DATASETS)
            problems.append(Problem(f"{where[i]}, column dataset",
                                    UNKNOWN_DATASET.format(name=name, hint=hint)))
    top1, looks_percent = _check_fractions(df["top1"], where, "top1", problems)
    seen: dict[tuple[str, str], int] = {}
    for i, key in enumerate(zip(models, datasets)):
        if pd.isna(key[0]) or pd.isna(key[1]):
            continue
        if key in seen:
            problems.append(Problem(where[i], DUPLICATE.format(
                first=where[seen[key]], model=key[0], dataset=key[1])))
        else:
            seen[key] = i
    with_imagenet = {m for m, d in seen if d == IMAGENET}
    for model in dict.fromkeys(m for m, _ in seen):
        if model not in with_imagenet:
            problems.append(Problem(f"model '{model}'", NO_IMAGENET.format(imagenet=IMAGENET)))
    problems.sort(key=_by_row)
    _raise(problems, what, "robustness", FIX_PERCENT if looks_percent else FIX_ROWS, file)
    return pd.DataFrame({"model": models.astype(str), "dataset": datasets.astype(str),
                         "top1": top1})


def validate_baseline(df: pd.DataFrame, file: str | None = None) -> pd.DataFrame:
    """Check a baseline table; return it wide: ``model`` + ``imagenet`` + shift columns.

    A long table (``model, dataset, top1``) is validated like a rows table and pivoted.
    Shift values may be empty (that model is left out of that shift's fit); ``imagenet``
    may not. Columns that are not dataset names (e.g. ``citation``) are dropped.

    Raises:
        UserError: listing every problem, as :func:`validate_rows`.
    """
    what, from_file = file or "the baseline table", file is not None
    if {"dataset", "top1"} <= set(df.columns):
        rows = validate_rows(df, file)
        wide = rows.pivot(index="model", columns="dataset", values="top1")
        if not any(s in wide.columns for s in SHIFTS):
            _raise([Problem("dataset", BASELINE_NO_SHIFT.format(shifts=", ".join(SHIFTS)))],
                   what, "baseline", FIX_BASELINE, file)
        return wide.reindex(columns=[c for c in DATASETS if c in wide.columns]).reset_index()
    problems: list[Problem] = []
    problem = _missing_columns(df, ("model", IMAGENET))
    if problem:
        problems.append(problem)
    if not any(s in df.columns for s in SHIFTS):
        problems.append(Problem("columns", BASELINE_NO_SHIFT.format(shifts=", ".join(SHIFTS))))
    if problems:
        _raise(problems, what, "baseline", FIX_BASELINE, file)
    if df.empty:
        _raise([Problem("", EMPTY_TABLE)], what, "baseline", FIX_BASELINE, file)
    df = df.reset_index(drop=True)
    where = [_where(i, from_file) for i in range(len(df))]
    out = pd.DataFrame({"model": df["model"].astype(str).str.strip()})
    looks_percent = False
    for col in (c for c in DATASETS if c in df.columns):
        values = df[col]
        present = values.notna() if col != IMAGENET else pd.Series(True, index=values.index)
        parsed, percent = _check_fractions(values[present].reset_index(drop=True),
                                           [w for w, p in zip(where, present) if p], col, problems)
        column = np.full(len(df), np.nan)
        column[present.to_numpy()] = parsed
        out[col] = column
        looks_percent |= percent
    for i in np.flatnonzero(out["model"].duplicated().to_numpy()):
        problems.append(Problem(f"{where[i]}, column model",
                                DUPLICATE_MODEL.format(model=out["model"][i])))
    _raise(problems, what, "baseline", FIX_PERCENT if looks_percent else FIX_BASELINE, file)
    return out


def read_table(path: Path, kind: str) -> pd.DataFrame:
    """Read a CSV given on the command line; a missing or unreadable file is a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{kind} table not found: {path}",
                        fix=f"pass the path of an existing CSV file ({FIX_ROWS})")
    try:
        return pd.read_csv(path)
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path} as CSV: {exc}", file=str(path),
                        fix="save the table as comma-separated text with a header row") from None


def load_baseline(path: Path | None = None) -> pd.DataFrame:
    """The baseline as a validated wide table: a user CSV, or the shipped testbed standard set."""
    if path is None:
        return validate_baseline(testbed_baseline(), DEFAULT_BASELINE_NAME)
    return validate_baseline(read_table(path, "baseline"), str(path))


def resolve_baseline(baseline_df: pd.DataFrame | None) -> pd.DataFrame:
    """A validated wide baseline: ``baseline_df`` checked, or the shipped one when None."""
    return load_baseline(None) if baseline_df is None else validate_baseline(baseline_df)
