"""Effective and relative robustness of models against the baseline fit.

For a model with ImageNet top-1 ``x`` and shift top-1 ``y``, and the shift's baseline line
``f`` (logit-linear, :mod:`audit.robustness.fit`):

* ``baseline_top1 = f(x) = expit(intercept + slope * logit(x))`` -- what a standard ImageNet
  model as accurate as this one on ImageNet gets on the shift;
* ``effective_robustness = 100 * (y - f(x))`` -- points above (below) that line;
* ``relative_robustness = 100 * (y - x)`` -- points gained (lost) from ImageNet to the shift.

The band on effective robustness comes from refitting the line on resampled baseline models;
it does not include the sampling noise of the model's own test sets (see
:func:`audit.robustness.compare.compare_models` for that).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from audit.errors import Problem, UserError
from audit.robustness.fit import (
    LEVEL, LOW_R, NOTE_EXTRAPOLATED, Fit, fit_baseline, make_rng, percentile_band,
)
from audit.robustness.tables import (
    DATASETS, IMAGENET, ROBUSTNESS_COLUMNS, SHIFTS, resolve_baseline, validate_rows,
)

METRIC_INPUT_COLUMNS = ("dataset", "model", "metric", "group_col", "value")


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
            dataset; every model needs an ``imagenet`` row.
        baseline_df: wide or long baseline table (see :func:`validate_baseline`); None for the
            shipped imagenet-testbed standard models.
        n_bootstrap: resamples of the baseline models for the band (0: no band, NaN).
        rng: generator or seed for the resampling (None: seed 0, reproducible).
        level: central coverage of the band.
        low_r: fits with a correlation below this are flagged in ``note``.

    Returns:
        One row per model x shift, columns :data:`ROBUSTNESS_COLUMNS`: ``model, dataset, top1,
        baseline_top1, effective_robustness, relative_robustness`` (top1 and baseline_top1 as
        fractions, the robustness columns in accuracy points), then ``imagenet_top1``,
        ``eff_rob_low``, ``eff_rob_high`` (points; percentile band over baseline resamples),
        ``fit_slope``, ``fit_intercept``, ``fit_r``, ``fit_n`` and ``note`` (empty, or
        sentences flagging a low fit r or an extrapolated fit). Models in input order,
        shifts in :data:`SHIFTS` order.

    Raises:
        UserError: an invalid table or baseline (every problem listed), or a shift the
            baseline has no numbers for.
    """
    rows = validate_rows(rows_df)
    wide = resolve_baseline(baseline_df)
    gen = make_rng(rng)
    imagenet = rows[rows["dataset"] == IMAGENET].set_index("model")["top1"]
    parts = []
    for shift in SHIFTS:
        sub = rows[rows["dataset"] == shift]
        if sub.empty:
            continue
        fit = fit_baseline(wide, shift)
        x = imagenet.loc[sub["model"]].to_numpy(float)
        y = sub["top1"].to_numpy(float)
        pred = fit.predict(x)
        if n_bootstrap > 0:
            low, high = percentile_band(fit.bootstrap_predictions(x, n_bootstrap, gen), level)
        else:
            low = high = np.full(len(x), np.nan)
        parts.append(pd.DataFrame({
            "model": sub["model"].to_numpy(), "dataset": shift, "top1": y,
            "baseline_top1": pred, "effective_robustness": 100.0 * (y - pred),
            "relative_robustness": 100.0 * (y - x), "imagenet_top1": x,
            "eff_rob_low": 100.0 * (y - high), "eff_rob_high": 100.0 * (y - low),
            "fit_slope": fit.slope, "fit_intercept": fit.intercept, "fit_r": fit.r,
            "fit_n": fit.n, "note": ["; ".join(row_notes(fit, xi, low_r)) for xi in x],
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
        rows = sub.loc[:, ["model", "dataset", "value"]].rename(columns={"value": "top1"})
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
