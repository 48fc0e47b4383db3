"""The baseline fit of Taori et al. (2020): logit(shift top-1) ~ logit(ImageNet top-1).

Over a set of standard ImageNet-trained models, accuracy on a natural shift is close to a
linear function of ImageNet accuracy once both axes are logit-scaled. :func:`fit_baseline`
fits that line by ordinary least squares (``scipy.stats.linregress``); :meth:`Fit.bootstrap`
refits it on baseline models resampled with replacement (the testbed's band, with an explicit
``numpy.random.Generator``); :func:`fit_band` turns that into a percentile band on a grid.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special, stats

from audit.errors import Problem, UserError
from audit.registry import did_you_mean
from audit.robustness.tables import IMAGENET, SHIFTS, resolve_baseline

#: Below this correlation the fit is flagged: the baseline is not one line in logit space.
LOW_R = 0.95
#: Central coverage of percentile bands.
LEVEL = 0.95
#: Seed used when no generator is passed, so results are reproducible by default.
DEFAULT_SEED = 0
#: Fewest baseline models a fit accepts.
MIN_MODELS = 3

NOTE_LOW_R = (
    "low fit r={r:.3f} < {threshold:.2f} for {dataset}: the baseline models do not lie on one "
    "line in logit space{extra}, so read effective robustness on this shift as indicative only"
)
NOTE_LOW_R_A = " (the testbed fits imagenet_a in two pieces, below and above ResNet-50)"
NOTE_LEFT_OUT = "left out of the fit (top-1 of 0 or 1, logit undefined): {models}"
NOTE_EXTRAPOLATED = (
    "ImageNet top-1 {x:.3f} is outside the baseline's range {lo:.3f}-{hi:.3f}: the fit is "
    "extrapolated"
)


def logit(p: np.ndarray | float) -> np.ndarray:
    """log(p / (1 - p)), elementwise; +-inf at 1 and 0."""
    return special.logit(np.asarray(p, dtype=float))


def expit(z: np.ndarray | float) -> np.ndarray:
    """The inverse of :func:`logit`."""
    return special.expit(np.asarray(z, dtype=float))


def make_rng(rng: np.random.Generator | int | None) -> np.random.Generator:
    """A Generator from a Generator, a seed, or None (:data:`DEFAULT_SEED`)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(DEFAULT_SEED if rng is None else rng)


def percentile_band(samples: np.ndarray, level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """Central percentile interval of bootstrap ``samples`` along axis 0 (NaNs ignored)."""
    tail = 100.0 * (1.0 - level) / 2.0
    if samples.shape[0] == 0:
        nan = np.full(samples.shape[1:], np.nan)
        return nan, nan.copy()
    low, high = np.nanpercentile(samples, [tail, 100.0 - tail], axis=0)
    return low, high


@dataclass(frozen=True, eq=False)
class Fit:
    """One shift's baseline line, in logit space."""

    dataset: str
    """The shift, e.g. ``imagenet_v2``."""
    slope: float
    """d logit(shift top-1) / d logit(ImageNet top-1)."""
    intercept: float
    """logit(shift top-1) predicted at logit(ImageNet top-1) = 0, i.e. 50% on ImageNet."""
    r: float
    """Pearson correlation of the two logits over the fitted models."""
    n: int
    """Number of baseline models in the fit."""
    models: tuple[str, ...]
    """Their names, in the order of :attr:`x` and :attr:`y`."""
    x: np.ndarray
    """logit(ImageNet top-1) of the fitted models."""
    y: np.ndarray
    """logit(shift top-1) of the fitted models."""
    left_out: tuple[str, ...] = ()
    """Baseline models with a number for this shift but top-1 of exactly 0 or 1 on either axis
    (logit undefined), e.g. the testbed's ResNet-50 on ImageNet-A, which was built by filtering
    out images ResNet-50 gets right."""

    @property
    def imagenet_range(self) -> tuple[float, float]:
        """Lowest and highest ImageNet top-1 (fraction) among the fitted models."""
        return float(expit(self.x.min())), float(expit(self.x.max()))

    def predict(self, imagenet_top1: np.ndarray | float) -> np.ndarray:
        """Shift top-1 (fraction) the baseline line predicts at these ImageNet top-1s."""
        return expit(self.intercept + self.slope * logit(clip_fraction(imagenet_top1)))

    def notes(self, low_r: float = LOW_R) -> list[str]:
        """Sentences that qualify this fit: low correlation (and models left out)."""
        notes = []
        if self.r < low_r:
            extra = NOTE_LOW_R_A if self.dataset == "imagenet_a" else ""
            notes.append(NOTE_LOW_R.format(r=self.r, threshold=low_r, dataset=self.dataset,
                                           extra=extra))
        return notes

    def bootstrap(self, n_bootstrap: int,
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Intercepts and slopes of ``n_bootstrap`` refits on resampled baseline models.

        Each replicate draws ``n`` models with replacement (``rng.integers``) and refits by
        least squares. A replicate whose models all share one ImageNet accuracy has no slope
        and yields NaN (ignored by :func:`percentile_band`).
        """
        idx = rng.integers(0, self.n, size=(n_bootstrap, self.n))
        xs, ys = self.x[idx], self.y[idx]
        xc = xs - xs.mean(axis=1, keepdims=True)
        sxx = (xc * xc).sum(axis=1)
        sxy = (xc * (ys - ys.mean(axis=1, keepdims=True))).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            slopes = np.where(sxx > 0, sxy / np.where(sxx > 0, sxx, 1.0), np.nan)
        intercepts = ys.mean(axis=1) - slopes * xs.mean(axis=1)
        return intercepts, slopes

    def bootstrap_predictions(self, imagenet_top1: np.ndarray | float, n_bootstrap: int,
                              rng: np.random.Generator) -> np.ndarray:
        """Predicted shift top-1 per replicate: shape ``(n_bootstrap, len(imagenet_top1))``."""
        intercepts, slopes = self.bootstrap(n_bootstrap, rng)
        x = logit(clip_fraction(np.atleast_1d(imagenet_top1)))
        return expit(intercepts[:, None] + slopes[:, None] * x[None, :])


def clip_fraction(p: np.ndarray | float) -> np.ndarray:
    """Clip accuracies into [1e-6, 1 - 1e-6] so their logits are finite."""
    # A model at exactly 0 or 1 on ImageNet would sit at -+inf; keep it finite.
    return np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)


def _check_shift(shift: str) -> None:
    if shift not in SHIFTS:
        raise UserError(f"unknown shift '{shift}'{did_you_mean(shift, SHIFTS)}",
                        fix=f"use one of {', '.join(SHIFTS)}")


def fit_baseline(baseline_df: pd.DataFrame | None, shift: str) -> Fit:
    """Fit logit(shift top-1) on logit(ImageNet top-1) over the baseline models.

    Args:
        baseline_df: wide baseline (``model``, ``imagenet``, shift columns; fractions), or a
            long ``model, dataset, top1`` table; None for the shipped testbed standard models.
        shift: one of :data:`~audit.robustness.tables.SHIFTS`.

    Models without a number for ``shift`` are skipped; models at exactly 0 or 1 are left out
    and named in :attr:`Fit.left_out`.

    Raises:
        UserError: unknown shift, invalid baseline, no column for the shift, or fewer than
            three usable models.
    """
    _check_shift(shift)
    wide = resolve_baseline(baseline_df)
    if shift not in wide.columns:
        raise UserError(f"the baseline table has no '{shift}' column",
                        fix=f"add a '{shift}' column of top-1 fractions, or drop that shift's rows")
    have = wide[wide[shift].notna()]
    x_acc, y_acc = have[IMAGENET].to_numpy(float), have[shift].to_numpy(float)
    inside = (x_acc > 0) & (x_acc < 1) & (y_acc > 0) & (y_acc < 1)
    if inside.sum() < MIN_MODELS:
        raise UserError(
            f"the baseline has {int(inside.sum())} usable model(s) for {shift}",
            problems=[Problem(shift, f"a fit needs at least {MIN_MODELS} models with top-1 "
                                     "strictly between 0 and 1 on imagenet and this shift")],
            fix="add baseline models, or use the shipped baseline (leave --baseline out)")
    x, y = logit(x_acc[inside]), logit(y_acc[inside])
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        raise UserError(f"the baseline models all have the same top-1 on imagenet or {shift}",
                        fix="a line needs baseline models of different accuracies")
    res = stats.linregress(x, y)
    return Fit(dataset=shift, slope=float(res.slope), intercept=float(res.intercept),
               r=float(res.rvalue), n=int(inside.sum()),
               models=tuple(have["model"].to_numpy()[inside]), x=x, y=y,
               left_out=tuple(have["model"].to_numpy()[~inside]))


def fits_table(baseline_df: pd.DataFrame | None = None, shifts: tuple[str, ...] = SHIFTS,
               low_r: float = LOW_R) -> pd.DataFrame:
    """One row per shift: ``dataset, slope, intercept, r, n, imagenet_min, imagenet_max, note``.

    ``note`` flags a low ``r`` (below ``low_r``) and names models left out of the fit.
    """
    rows, wide = [], resolve_baseline(baseline_df)
    for shift in shifts:
        fit = fit_baseline(wide, shift)
        lo, hi = fit.imagenet_range
        notes = fit.notes(low_r)
        if fit.left_out:
            notes.append(NOTE_LEFT_OUT.format(models=", ".join(fit.left_out)))
        rows.append({"dataset": shift, "slope": fit.slope, "intercept": fit.intercept,
                     "r": fit.r, "n": fit.n, "imagenet_min": lo, "imagenet_max": hi,
                     "note": "; ".join(notes)})
    return pd.DataFrame(rows, columns=["dataset", "slope", "intercept", "r", "n",
                                       "imagenet_min", "imagenet_max", "note"])


def fit_band(fit: Fit, grid: np.ndarray | None = None, n_bootstrap: int = 1000,
             rng: np.random.Generator | int | None = None, level: float = LEVEL) -> pd.DataFrame:
    """The fitted line and its bootstrap band over a grid of ImageNet accuracies, for plots.

    Args:
        fit: from :func:`fit_baseline`.
        grid: ImageNet top-1 fractions; default 200 points from 2 points below the baseline's
            lowest ImageNet accuracy to 90% (or 2 points above its highest, if higher).
        n_bootstrap: resamples of the baseline models.
        rng: generator or seed (None: :data:`DEFAULT_SEED`).
        level: central coverage of the band.

    Returns:
        Columns ``dataset, imagenet_top1, baseline_top1, band_low, band_high`` (fractions).
    """
    if grid is None:
        lo, hi = fit.imagenet_range
        grid = np.linspace(max(lo - 0.02, 0.001), min(max(0.9, hi + 0.02), 0.999), 200)
    grid = np.asarray(grid, dtype=float)
    samples = fit.bootstrap_predictions(grid, n_bootstrap, make_rng(rng))
    low, high = percentile_band(samples, level)
    return pd.DataFrame({"dataset": fit.dataset, "imagenet_top1": grid,
                         "baseline_top1": fit.predict(grid), "band_low": low, "band_high": high})
