"""The effective-robustness interval includes the model's own sampling error (simulation)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit, logit
from statsmodels.stats.proportion import proportion_confint

from audit.robustness import effective_robustness
from audit.robustness.effective import NOTE_NO_N

SHIFT = "imagenet_r"
SLOPE, INTERCEPT = 1.1, -0.6


def _baseline(models: int = 40) -> pd.DataFrame:
    """Baseline models exactly on a known line, so the true baseline prediction is known."""
    x = np.linspace(0.55, 0.85, models)
    return pd.DataFrame({"model": [f"b{i}" for i in range(models)], "imagenet": x,
                         SHIFT: expit(INTERCEPT + SLOPE * logit(x))})


def _simulated_runs(reps: int, n_shift: int, n_imagenet: int, seed: int) -> tuple[pd.DataFrame, float]:
    """``reps`` independent runs of one model (true top-1 0.76 / 0.45), as if on fresh test sets."""
    rng = np.random.default_rng(seed)
    x0, y0 = 0.76, 0.45
    true_er = 100 * (y0 - expit(INTERCEPT + SLOPE * logit(x0)))
    x = rng.binomial(n_imagenet, x0, reps) / n_imagenet
    y = rng.binomial(n_shift, y0, reps) / n_shift
    models = [f"run{i}" for i in range(reps)]
    rows = pd.DataFrame({
        "model": models * 2, "dataset": ["imagenet"] * reps + [SHIFT] * reps,
        "top1": np.concatenate([x, y]), "n": [n_imagenet] * reps + [n_shift] * reps,
    })
    return rows, true_er


def test_interval_covers_the_true_effective_robustness_at_n_700() -> None:
    reps = 400
    rows, true_er = _simulated_runs(reps, n_shift=700, n_imagenet=10_000, seed=5)
    table = effective_robustness(rows, _baseline(), n_bootstrap=1000, rng=1)
    covered = ((table["eff_rob_low_pts"] <= true_er) & (true_er <= table["eff_rob_high_pts"])).mean()
    # Nominal 95%; 3 standard errors of a 400-run coverage estimate is 0.033.
    se = math.sqrt(0.95 * 0.05 / reps)
    assert abs(covered - 0.95) <= 3 * se, covered
    # The baseline-only band (the old interval) misses most of the time: the fit here is exact.
    base = ((table["eff_rob_baseline_low_pts"] <= true_er) & (true_er <= table["eff_rob_baseline_high_pts"])).mean()
    assert base < 0.5
    # Its width is about the accuracy's own: Wilson at n=700 is +-3.7 points around 0.45.
    lo, hi = proportion_confint(315, 700, method="wilson")
    width = (table["eff_rob_high_pts"] - table["eff_rob_low_pts"]).median()
    assert width == pytest.approx(100 * (hi - lo), rel=0.15)


def test_without_n_the_interval_is_the_baseline_band() -> None:
    rows, _ = _simulated_runs(3, n_shift=700, n_imagenet=10_000, seed=2)
    table = effective_robustness(rows.drop(columns="n"), _baseline(), n_bootstrap=200, rng=1)
    assert table["eff_rob_low_pts"].to_numpy() == pytest.approx(table["eff_rob_baseline_low_pts"].to_numpy())
    assert (table["note"] == "").all()  # a published table has no n: nothing to flag
    partial = rows.assign(n=[10_000, None, 10_000, 700, 700, 700])  # run1's ImageNet n is missing
    notes = effective_robustness(partial, _baseline(), n_bootstrap=200, rng=1).set_index("model")["note"]
    assert NOTE_NO_N in notes["run1"] and notes["run0"] == notes["run2"] == ""
