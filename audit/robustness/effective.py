"""Effective and relative robustness of models against the baseline fit.

For a model with ImageNet top-1 ``x`` and shift top-1 ``y``, and the shift's baseline line
``f`` (logit-linear, :mod:`audit.robustness.fit`):

* ``baseline_top1_pts = 100 * f(x)``, ``f(x) = expit(intercept + slope * logit(x))`` -- what a
  standard ImageNet model as accurate as this one on ImageNet gets on the shift;
* ``effective_robustness_pts = 100 * (y - f(x))`` -- points above (below) that line;
* ``relative_robustness_pts = 100 * (y - x)`` -- points gained (lost) from ImageNet to the shift.

The output table is in accuracy points throughout (``top1_pts = 100 * y``); the input ``top1``
is a fraction. The interval on effective robustness (``eff_rob_low_pts``/``eff_rob_high_pts``)
combines refitting the line on resampled baseline models with the model's own sampling error
(its top-1s redrawn from the number of images behind them); ``eff_rob_baseline_low_pts``/
``_high_pts`` keep the baseline-only band (the testbed's). A gate judged on a bound of effective
robustness is therefore as honest as the test-set size allows.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from audit.errors import Problem, UserError
from audit.robustness.fit import (
    LEVEL, LOW_R, NOTE_EXTRAPOLATED, Fit, clip_fraction, expit, fit_baseline, logit, make_rng,
    percentile_band,
)
from audit.robustness.tables import (
    DATASETS, IMAGENET, ROBUSTNESS_COLUMNS, SHIFTS, resolve_baseline, validate_rows,
)

METRIC_INPUT_COLUMNS = ("dataset", "model", "metric", "group_col", "value")
NOTE_NO_N = ("the interval covers the baseline fit only: the table gives no n for this model's "
             "top-1, so its own sampling error is not included")


def row_notes(fit: Fit, imagenet_top1: float, low_r: float = LOW_R) -> list[str]:
    """Notes qualifying one model's numbers on one shift: low fit r, extrapolation."""
    notes = fit.notes(low_r)
    lo, hi = fit.imagenet_range
    if not lo <= imagenet_top1 <= hi:
        notes.append(NOTE_EXTRAPOLATED.format(x=imagenet_top1, lo=lo, hi=hi))
    return notes


def effective_robustness(rows_df: pd.DataFrame, baseline_df: pd.DataFrame | None = None,
                         n_bootstrap: int = 1000,
                         rng: np.random.Generator | int | None = None, *,
                         level: float = LEVEL, low_r: float = LOW_R) -> pd.DataFrame:
    """Effective and relative robustness of each model on each shift it has a top-1 for.

    Args:
        rows_df: long table ``model, dataset, top1`` (fractions), one row per model and
            dataset; every model needs an ``imagenet`` row. An optional ``n`` column (images
            behind each top-1) puts the model's own sampling error into the interval.
        baseline_df: wide or long baseline table (see :func:`validate_baseline`); None for the
            shipped imagenet-testbed standard models.
        n_bootstrap: resamples of the baseline models for the band (0: no band, NaN).
        rng: generator or seed for the resampling (None: seed 0, reproducible).
        level: central coverage of the band.
        low_r: fits with a correlation below this are flagged in ``note``.

    Returns:
        One row per model x shift, columns :data:`ROBUSTNESS_COLUMNS`, every number in accuracy
        points (``_pts``): ``model, dataset, top1_pts, baseline_top1_pts,
        effective_robustness_pts, relative_robustness_pts``, then ``imagenet_top1_pts``,
        ``eff_rob_low_pts``, ``eff_rob_high_pts`` (percentile interval over baseline resamples
        and the model's own redrawn top-1s), ``eff_rob_baseline_low_pts``,
        ``eff_rob_baseline_high_pts`` (baseline resamples only),
        ``fit_slope``, ``fit_intercept``, ``fit_r``, ``fit_n`` and ``note`` (empty, or
        sentences flagging a low fit r or an extrapolated fit). Models in input order,
        shifts in :data:`SHIFTS` order.

    Raises:
        UserError: an invalid table or baseline (every problem listed), or a shift the
            baseline has no numbers for.
    """
    rows = validate_rows(rows_df)
    sizes = _sizes(rows_df)
    wide = resolve_baseline(baseline_df)
    gen = make_rng(rng)
    imagenet = rows[rows["dataset"] == IMAGENET].set_index("model")["top1"]
    parts = []
    for shift in SHIFTS:
        sub = rows[rows["dataset"] == shift]
        if sub.empty:
            continue
        fit = fit_baseline(wide, shift)
        models = sub["model"].to_numpy()
        x = imagenet.loc[models].to_numpy(float)
        y = sub["top1"].to_numpy(float)
        pred = fit.predict(x)
        n_x = np.array([sizes.get((m, IMAGENET), np.nan) for m in models], dtype=float)
        n_y = np.array([sizes.get((m, shift), np.nan) for m in models], dtype=float)
        band = _bands(fit, x, y, n_x, n_y, n_bootstrap, gen, level)
        notes = [row_notes(fit, xi, low_r) for xi in x]
        if sizes and n_bootstrap > 0:  # a table with n, but not for this row: say so
            for i in np.flatnonzero(np.isnan(n_x) | np.isnan(n_y)):
                notes[i].append(NOTE_NO_N)
        parts.append(pd.DataFrame({
            "model": models, "dataset": shift, "top1_pts": 100.0 * y,
            "baseline_top1_pts": 100.0 * pred, "effective_robustness_pts": 100.0 * (y - pred),
            "relative_robustness_pts": 100.0 * (y - x), "imagenet_top1_pts": 100.0 * x, **band,
            "fit_slope": fit.slope, "fit_intercept": fit.intercept, "fit_r": fit.r,
            "fit_n": fit.n, "note": ["; ".join(n) for n in notes],
        }))
    if not parts:
        return empty_robustness()
    out = pd.concat(parts, ignore_index=True)
    order = {m: i for i, m in enumerate(dict.fromkeys(rows["model"]))}
    out = out.sort_values(
        ["model", "dataset"], kind="mergesort",
        key=lambda s: s.map(order) if s.name == "model" else s.map(SHIFTS.index),
    )
    return out.reset_index(drop=True).loc[:, list(ROBUSTNESS_COLUMNS)]


def _sizes(rows_df: pd.DataFrame) -> dict[tuple[str, str], float]:
    """Images behind each (model, dataset) top-1, from an optional ``n`` column (positive only)."""
    if "n" not in rows_df.columns:
        return {}
    n = pd.to_numeric(rows_df["n"], errors="coerce")
    keys = zip(rows_df["model"].astype(str).str.strip(), rows_df["dataset"].astype(str).str.strip())
    return {k: float(v) for k, v in zip(keys, n) if np.isfinite(v) and v > 0}


def _bands(fit: Fit, x: np.ndarray, y: np.ndarray, n_x: np.ndarray, n_y: np.ndarray,
           n_bootstrap: int, gen: np.random.Generator, level: float) -> dict[str, np.ndarray]:
    """Percentile bands (points) on effective robustness ``100 * (y - f(x))``.

    ``eff_rob_baseline_low_pts/high_pts`` resample the baseline models only (the testbed's band).
    ``eff_rob_low_pts/high_pts`` add the model's own sampling error: in each replicate the model's
    ImageNet and shift top-1 are redrawn as Binomial(n, top1) / n -- a bootstrap over the run's
    images, for a 0/1 outcome -- and judged against that replicate's refit line. A top-1 without
    an n (a published table has none) is held fixed, so the interval is the baseline band; when
    the table has an ``n`` column but not for this row, the row's note says so.
    """
    nan = np.full(len(x), np.nan)
    if n_bootstrap <= 0:
        return {"eff_rob_low_pts": nan, "eff_rob_high_pts": nan, "eff_rob_baseline_low_pts": nan.copy(),
                "eff_rob_baseline_high_pts": nan.copy()}
    intercepts, slopes = fit.bootstrap(n_bootstrap, gen)
    line = lambda top1: expit(intercepts[:, None] + slopes[:, None] * logit(clip_fraction(top1)))  # noqa: E731
    base_low, base_high = percentile_band(line(x[None, :]), level)
    x_star, y_star = _redraw(x, n_x, n_bootstrap, gen), _redraw(y, n_y, n_bootstrap, gen)
    low, high = percentile_band(100.0 * (y_star - line(x_star)), level)
    return {"eff_rob_low_pts": low, "eff_rob_high_pts": high,
            "eff_rob_baseline_low_pts": 100.0 * (y - base_high),
            "eff_rob_baseline_high_pts": 100.0 * (y - base_low)}


def _redraw(top1: np.ndarray, n: np.ndarray, n_bootstrap: int, gen: np.random.Generator) -> np.ndarray:
    """``(n_bootstrap, len(top1))`` resampled accuracies; columns without an n stay fixed."""
    known = np.isfinite(n)
    out = np.broadcast_to(top1, (n_bootstrap, len(top1))).copy()
    if known.any():
        sizes = n[known].astype(np.int64)
        out[:, known] = gen.binomial(sizes, top1[known], size=(n_bootstrap, int(known.sum()))) / sizes
    return out


def empty_robustness() -> pd.DataFrame:
    """A robustness table with no rows and the right columns."""
    return pd.DataFrame({c: pd.Series(dtype="object") for c in ROBUSTNESS_COLUMNS})


def robustness_from_metrics(metrics_df: pd.DataFrame, baseline_df: pd.DataFrame | None = None,
                            *, dataset_names: Mapping[str, str] | None = None,
                            n_bootstrap: int = 1000,
                            rng: np.random.Generator | int | None = None,
                            level: float = LEVEL, low_r: float = LOW_R) -> pd.DataFrame:
    """The robustness table of a run, from its metrics.csv rows.

    Uses the rows with ``metric == "accuracy"`` and ``group_col == "overall"``. Datasets are
    matched by name (``imagenet``, ``imagenet_v2``, ...); ``dataset_names`` maps a probe's own
    dataset names to those (e.g. ``{spec.display_name: spec.adapter}``). Other datasets, rows
    with no value, and models without an ImageNet accuracy are skipped.

    Returns:
        :func:`effective_robustness`'s columns, plus ``variant`` last when ``metrics_df`` has a
        ``variant`` column (each variant is its own set of models); no rows when no model has
        both ImageNet and a shift.
    """
    missing = [c for c in METRIC_INPUT_COLUMNS if c not in metrics_df.columns]
    if missing:
        raise UserError("metrics table lacks columns needed for robustness", file="metrics.csv",
                        problems=[Problem("columns", f"missing {', '.join(missing)}")],
                        fix="pass the rows of a run's metrics.csv (audit.results.read_metrics)")
    names = dict(dataset_names or {})
    acc = metrics_df[(metrics_df["metric"] == "accuracy") & (metrics_df["group_col"] == "overall")]
    acc = acc.assign(dataset=acc["dataset"].map(lambda d: names.get(d, d)))
    acc = acc[acc["dataset"].isin(DATASETS) & acc["value"].notna()]
    has_variant = "variant" in acc.columns
    gen = make_rng(rng)
    wide = resolve_baseline(baseline_df)
    parts = []
    for variant, sub in (acc.groupby("variant", sort=False) if has_variant else [(None, acc)]):
        with_imagenet = set(sub.loc[sub["dataset"] == IMAGENET, "model"])
        sub = sub[sub["model"].isin(with_imagenet)]
        if not (sub["dataset"] != IMAGENET).any():
            continue
        keep = ["model", "dataset", "value"] + (["n"] if "n" in sub.columns else [])
        rows = sub.loc[:, keep].rename(columns={"value": "top1"})
        table = effective_robustness(rows, wide, n_bootstrap, gen, level=level, low_r=low_r)
        if "n" in sub.columns:  # images behind each shift's top-1, so gates can apply min_n
            n = sub.set_index(["model", "dataset"])["n"]
            table["n"] = [n.get((m, d)) for m, d in zip(table["model"], table["dataset"])]
        if has_variant:
            table["variant"] = variant
        parts.append(table)
    if not parts:
        out = empty_robustness()
        return out.assign(variant=pd.Series(dtype="object")) if has_variant else out
    return pd.concat(parts, ignore_index=True)
