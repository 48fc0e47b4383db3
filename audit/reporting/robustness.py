"""Figures and tables of the robustness report, read from ``robustness.csv`` and ``metrics.csv``.

The baseline models (grey points), the fitted line and its bootstrap band come from
:mod:`audit.reference` and :mod:`audit.robustness.fit`, the same code the run used; when those
are not installed the scatter still shows the audited models and the run's own line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from audit.reporting.display import count, interval, new_figure, pct
from audit.reporting.fairness import _legend, bars, model_colors
from audit.reporting.escape import mpl_text
from audit.reporting.load import ACCURACY_METRICS, RunData
from audit.reporting.tables import ordered, pick_variant

IMAGENET = "imagenet"
LOGIT_TICKS = (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98, 0.99)


def accuracy_table(run: RunData, metric: str = "accuracy") -> pd.DataFrame:
    """One row per model, one column per dataset: 'top-1 (95% CI), n' on the base variant."""
    if metric not in ACCURACY_METRICS:
        raise ValueError(f"metric must be one of {ACCURACY_METRICS}, not {metric!r}")
    variant = pick_variant(run.metrics, metric, None)
    rows = run.rows(metric, group_col="overall", variant=variant)
    if rows.empty:
        return pd.DataFrame()
    cell = [f"{pct(v)} ({interval(lo, hi)}), n={count(n)}"
            for v, lo, hi, n in zip(rows["value"], rows["ci_low"], rows["ci_high"], rows["n"])]
    wide = rows.assign(cell=cell).pivot(index="model", columns="dataset", values="cell")
    wide = wide.reindex(index=ordered(rows["model"], run.models), columns=ordered(rows["dataset"]))
    return wide.reset_index().rename_axis(columns=None)


def robustness_table(run: RunData) -> pd.DataFrame:
    """robustness.csv for reading: accuracies in %, robustness in points with its band (the file
    holds accuracy points throughout, ``*_pts``)."""
    df = run.robustness
    if df is None or df.empty:
        return pd.DataFrame()
    out = pd.DataFrame({"model": df["model"], "shift": df["dataset"]})
    if "imagenet_top1_pts" in df:
        out["ImageNet top-1"] = (df["imagenet_top1_pts"] / 100).map(pct)
    out["shift top-1"] = (df["top1_pts"] / 100).map(pct)
    if "baseline_top1_pts" in df:
        out["baseline top-1"] = (df["baseline_top1_pts"] / 100).map(pct)
    out["effective robustness (pts)"] = df["effective_robustness_pts"].map(lambda v: f"{v:+.1f}")
    if {"eff_rob_low_pts", "eff_rob_high_pts"} <= set(df.columns):
        out["95% band (pts)"] = [interval(lo, hi, scale=1.0) for lo, hi in
                                 zip(df["eff_rob_low_pts"], df["eff_rob_high_pts"])]
    if "relative_robustness_pts" in df:
        out["relative robustness (pts)"] = df["relative_robustness_pts"].map(lambda v: f"{v:+.1f}")
    for col, name in (("fit_r", "fit r"), ("fit_n", "fit n")):
        if col in df:
            out[name] = df[col].map(lambda v: "\u2013" if pd.isna(v) else f"{v:.3g}")
    if "note" in df:
        out["note"] = df["note"]
    return out


def _imagenet_top1(run: RunData) -> pd.Series:
    """ImageNet top-1 per audited model (a fraction): robustness.csv's column (points), else
    metrics.csv's accuracy."""
    rob = base_rows(run)
    if rob is not None and "imagenet_top1_pts" in rob:
        return rob.drop_duplicates("model").set_index("model")["imagenet_top1_pts"] / 100
    rows = run.rows("accuracy", dataset=IMAGENET, group_col="overall",
                    variant=pick_variant(run.metrics, "accuracy", None))
    return rows.drop_duplicates("model").set_index("model")["value"]


def baseline_models(shift: str) -> pd.DataFrame | None:
    """The shipped baseline models' ``imagenet`` and ``shift`` top-1, or None if unavailable."""
    try:
        from audit.reference import testbed_baseline
    except ImportError:
        return None
    wide = testbed_baseline()
    if shift not in wide or IMAGENET not in wide:
        return None
    return wide.loc[wide[shift].notna(), ["model", IMAGENET, shift]]


def baseline_band(shift: str, grid: np.ndarray, seed: int = 0,
                  slope: float | None = None) -> pd.DataFrame | None:
    """Line and bootstrap band of the shipped baseline's fit for ``shift`` over ``grid``.

    Returns None when :mod:`audit.robustness` is missing or, given the run's ``slope``, the
    shipped baseline is not the one the run used.
    """
    try:
        from audit.robustness.fit import fit_band, fit_baseline
    except ImportError:
        return None
    fit = fit_baseline(None, shift)
    if slope is not None and not np.isclose(fit.slope, slope, rtol=1e-6, atol=1e-9):
        return None
    return fit_band(fit, grid=grid, rng=seed)


def _logit_limits(values: Sequence[float], pad: float = 0.35) -> tuple[float, float]:
    z = np.log(np.clip(values, 1e-3, 1 - 1e-3) / (1 - np.clip(values, 1e-3, 1 - 1e-3)))
    lo, hi = z.min() - pad, z.max() + pad
    return float(1 / (1 + np.exp(-lo))), float(1 / (1 + np.exp(-hi)))


def _logit_axis(axis: object, lo: float, hi: float) -> None:
    ticks = [t for t in LOGIT_TICKS if lo <= t <= hi]
    axis.set_major_locator(FixedLocator(ticks))  # type: ignore[attr-defined]
    axis.set_minor_locator(NullLocator())  # type: ignore[attr-defined]
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{100 * v:g}"))  # type: ignore[attr-defined]


def _scatter_panel(ax: Axes, run: RunData, shift: str, sub: pd.DataFrame, x_of: pd.Series,
                   colors: dict[str, Any]) -> None:
    base = baseline_models(shift)
    # robustness.csv holds points; the logit axes want fractions
    audited = [(r["model"], float(x_of[r["model"]]), float(r["top1_pts"]) / 100,
                None if pd.isna(r.get("baseline_top1_pts", np.nan)) else float(r["baseline_top1_pts"]) / 100)
               for _, r in sub.iterrows() if r["model"] in x_of.index and pd.notna(x_of[r["model"]])]
    xs = [a[1] for a in audited] + ([] if base is None else list(base[IMAGENET]))
    ys = [a[2] for a in audited] + ([] if base is None else list(base[shift]))
    (xlo, xhi), (ylo, yhi) = _logit_limits(xs), _logit_limits(ys)
    grid = np.linspace(xlo, xhi, 200)
    if base is not None:
        ax.scatter(base[IMAGENET], base[shift], color="0.6", s=14, label="baseline models")
    slope = sub["fit_slope"].iloc[0] if "fit_slope" in sub else None
    band = baseline_band(shift, grid, int(run.manifest.get("seed") or 0), slope)
    if band is not None:
        ax.fill_between(band["imagenet_top1"], band["band_low"], band["band_high"], color="0.4",
                        alpha=0.25, lw=0, label="baseline fit, 95% bootstrap band")
        ax.plot(band["imagenet_top1"], band["baseline_top1"], color="0.25", lw=1.5,
                label="baseline fit")
    elif slope is not None and "fit_intercept" in sub:
        z = sub["fit_intercept"].iloc[0] + slope * np.log(grid / (1 - grid))
        ax.plot(grid, 1 / (1 + np.exp(-z)), color="0.25", lw=1.5, label="baseline fit")
    for model, x, y, pred in audited:
        ax.scatter([x], [y], color=colors[model], s=70, edgecolor="black", zorder=5, label=mpl_text(model))
        if pred is not None and pd.notna(pred):
            ax.plot([x, x], [pred, y], color=colors[model], ls=":", lw=1.5)
    lo, hi = min(xlo, ylo), max(xhi, yhi)
    ax.plot([lo, hi], [lo, hi], color="0.6", ls="--", lw=1, label="y = x (no drop)")
    ax.set_xscale("logit")
    ax.set_yscale("logit")
    ax.set_xlim(xlo, xhi)
    ax.set_ylim(ylo, yhi)
    _logit_axis(ax.xaxis, xlo, xhi)
    _logit_axis(ax.yaxis, ylo, yhi)
    ax.set_title(mpl_text(f"{shift} vs ImageNet top-1"))
    ax.set_xlabel("ImageNet top-1 (%, logit scale)")
    ax.set_ylabel(mpl_text(f"{shift} top-1 (%, logit scale)"))


def plot_effective_robustness_scatter(run: RunData, shifts: Sequence[str] | None = None,
                                      ) -> Figure | None:
    """Shift top-1 against ImageNet top-1 in logit axes, one panel per shift.

    Grey: baseline models; line and band: their logit-linear fit and its bootstrap band;
    coloured: the audited models, with a dotted segment from the line to the model whose
    length is its effective robustness.
    """
    rob = base_rows(run)
    if rob is None or rob.empty:
        return None
    x_of = _imagenet_top1(run)
    shifts = [s for s in (shifts or ordered(rob["dataset"])) if (rob["dataset"] == s).any()]
    if not shifts or x_of.empty:
        return None
    colors = model_colors(ordered(rob["model"], run.models))
    ncols = min(3, len(shifts))
    nrows = -(-len(shifts) // ncols)
    fig = new_figure(4.6 * ncols, 4.4 * nrows + 0.6)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax in axes[len(shifts):]:
        ax.set_visible(False)
    labels: dict[str, Artist] = {}
    for ax, shift in zip(axes, shifts):
        _scatter_panel(ax, run, shift, rob[rob["dataset"] == shift], x_of, colors)
        handles, names = ax.get_legend_handles_labels()
        labels.update({n: h for n, h in zip(names, handles) if n not in labels})
    fig.legend(list(labels.values()), list(labels), loc="outside lower center",
               ncols=min(4, len(labels)), frameon=False, fontsize=9)
    fig.suptitle("Effective robustness: shift top-1 vs ImageNet top-1", fontweight="bold")
    return fig


def base_rows(run: RunData) -> pd.DataFrame | None:
    """robustness.csv restricted to the base prompt variant when it has a ``variant`` column."""
    rob = run.robustness
    if rob is None or "variant" not in rob:
        return rob
    variant = pick_variant(run.metrics, "accuracy", None)
    return rob[rob["variant"].astype(str) == str(variant)] if variant else rob


def plot_effective_robustness(robustness: pd.DataFrame | RunData | None,
                              models: Sequence[str] = ()) -> Figure | None:
    """Effective robustness per shift, one bar colour per model, with the run's 95% band."""
    if isinstance(robustness, RunData):
        models = models or robustness.models
        robustness = base_rows(robustness)
    if robustness is None or robustness.empty:
        return None
    rows = robustness.rename(columns={"dataset": "group", "effective_robustness_pts": "value",
                                      "eff_rob_low_pts": "ci_low", "eff_rob_high_pts": "ci_high"})
    for col in ("ci_low", "ci_high"):
        if col not in rows:
            rows[col] = np.nan
    models = ordered(rows["model"], models)
    fig = new_figure(10, 4.0)
    ax = fig.subplots()
    bars(ax, rows.drop(columns=[c for c in ("n", "flag") if c in rows]), hue_order=models,
         colors=model_colors(models), scale=1.0)
    ax.axhline(0, color="black", lw=0.8)
    ax.set_title("Effective robustness per shift (points above the baseline line)")
    ax.set_xlabel("distribution shift")
    ax.set_ylabel("effective robustness (accuracy points)")
    _legend(ax, False)
    return fig
