"""Which of two models is more robust: an interval on the difference of effective robustness.

The difference ``ER(a) - ER(b)`` on a shift is uncertain for two reasons: the baseline line is
estimated from a finite set of models, and each model's accuracies are estimated from finite
test sets. The bootstrap here resamples both, in the same replicate:

* baseline models, with replacement, and the line is refit (shared by both models, since they
  are judged against the same line);
* when per-image correctness is given, the images of each dataset, with replacement and
  *paired* (the same resampled images for both models). For two models on N shared images
  that is a multinomial draw over the four outcomes (both right, only a, only b, neither),
  so no N-sized index arrays are built.

Without per-image results only the baseline is resampled; the interval then leaves out test
set noise, which pairing would largely cancel anyway for models scored on the same images.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.errors import Problem, UserError
from audit.registry import did_you_mean
from audit.robustness.effective import row_notes
from audit.robustness.fit import (
    LEVEL, LOW_R, clip_fraction, expit, fit_baseline, logit, make_rng, percentile_band,
)
from audit.robustness.tables import IMAGENET, SHIFTS, resolve_baseline, validate_rows

COMPARE_COLUMNS = (
    "dataset", "model_a", "model_b", "eff_rob_a", "eff_rob_b", "difference", "diff_low",
    "diff_high", "more_robust", "resampled", "note",
)
CORRECT_COLUMNS = ("dataset", "model", "image_id", "correct")
UNDECIDED = "undecided"
#: Largest gap allowed between a table's top1 and the mean of the per-image results.
TOP1_TOLERANCE = 5e-4


def _paired(correct: pd.DataFrame, a: str, b: str, dataset: str,
            top1: dict[str, float]) -> tuple[int, np.ndarray] | None:
    """``(N, p)`` with p the shares of (both, only a, only b, neither), or None if absent."""
    sub = correct[(correct["dataset"] == dataset) & correct["model"].isin([a, b])]
    if set(sub["model"]) != {a, b}:
        return None
    field = f"correct[dataset={dataset}]"
    dup = sub.duplicated(["model", "image_id"])
    if dup.any():
        raise UserError("per-image results have duplicate images", problems=[Problem(
            field, f"image_id {sub.loc[dup, 'image_id'].iloc[0]!r} appears twice for one model")],
            fix="pass one row per dataset, model and image (filter to one variant)")
    wide = sub.pivot(index="image_id", columns="model", values="correct")
    if wide.isna().any().any():
        raise UserError("per-image results are not paired", problems=[Problem(
            field, f"{int(wide.isna().any(axis=1).sum())} image(s) scored for only one model")],
            fix="score both models on the same images")
    ca, cb = wide[a].astype(bool).to_numpy(), wide[b].astype(bool).to_numpy()
    for model, c in ((a, ca), (b, cb)):
        if abs(c.mean() - top1[model]) > TOP1_TOLERANCE:
            raise UserError("per-image results disagree with the table", problems=[Problem(
                f"{field}, model {model}",
                f"mean correct {c.mean():.4f} but top1 {top1[model]:.4f}")],
                fix="pass the per-image results behind the table's accuracies")
    counts = np.array([(ca & cb).sum(), (ca & ~cb).sum(), (~ca & cb).sum(), (~ca & ~cb).sum()])
    return len(ca), counts / len(ca)


def _draws(paired: tuple[int, np.ndarray] | None, top1_a: float, top1_b: float, n_bootstrap: int,
           gen: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Replicates of (top1_a, top1_b): resampled images, or the fixed values."""
    if paired is None:
        return np.full(n_bootstrap, top1_a), np.full(n_bootstrap, top1_b)
    n, p = paired
    c = gen.multinomial(n, p, size=n_bootstrap)
    return (c[:, 0] + c[:, 1]) / n, (c[:, 0] + c[:, 2]) / n


def compare_models(rows_df: pd.DataFrame, model_a: str, model_b: str,
                   baseline_df: pd.DataFrame | None = None, *,
                   correct: pd.DataFrame | None = None, n_bootstrap: int = 1000,
                   rng: np.random.Generator | int | None = None, level: float = LEVEL,
                   low_r: float = LOW_R) -> pd.DataFrame:
    """Compare the effective robustness of two models on every shift both have.

    Args:
        rows_df: long ``model, dataset, top1`` table holding both models.
        model_a, model_b: the two models.
        baseline_df: baseline table; None for the shipped testbed standard models.
        correct: optional per-image results, columns ``dataset, model, image_id, correct``
            (e.g. predictions.parquet filtered to one variant). Datasets where both models
            have them are resampled by image as well; their mean must match ``top1``.
        n_bootstrap: bootstrap replicates.
        rng: generator or seed (None: seed 0).
        level: central coverage of the interval on the difference.
        low_r: fits with a correlation below this are flagged in ``note``.

    Returns:
        One row per shift, columns :data:`COMPARE_COLUMNS`: ``eff_rob_a``, ``eff_rob_b``,
        ``difference`` (a - b) and its interval ``diff_low``, ``diff_high`` in points;
        ``more_robust`` names the model whose lead the interval supports (it excludes 0), else
        ``"undecided"``; ``resampled`` says what the bootstrap resampled; ``note`` as in
        :func:`~audit.robustness.effective.effective_robustness`, for both models.
    """
    rows = validate_rows(rows_df)
    known = list(dict.fromkeys(rows["model"]))
    problems = [Problem(arg, f"model '{m}' is not in the table{did_you_mean(m, known)}")
                for arg, m in (("model_a", model_a), ("model_b", model_b)) if m not in known]
    if model_a == model_b:
        problems.append(Problem("model_b", "is the same model as model_a"))
    if problems:
        raise UserError("cannot compare these models", problems=problems,
                        fix=f"name two different models of the table ({', '.join(known)})")
    if correct is not None:
        missing = [c for c in CORRECT_COLUMNS if c not in correct.columns]
        if missing:
            raise UserError("per-image results lack columns", problems=[
                Problem("correct", f"missing {', '.join(missing)}")],
                fix="pass columns dataset, model, image_id, correct (as in predictions.parquet)")
    top1 = {d: dict(zip(g["model"], g["top1"])) for d, g in rows.groupby("dataset")}
    shifts = [s for s in SHIFTS if s in top1 and {model_a, model_b} <= set(top1[s])]
    if not shifts:
        raise UserError(f"'{model_a}' and '{model_b}' share no shift",
                        fix=f"give both models a top1 on one of {', '.join(SHIFTS)}")
    wide, gen = resolve_baseline(baseline_df), make_rng(rng)
    x = top1[IMAGENET]

    def paired(dataset: str) -> tuple[int, np.ndarray] | None:
        return None if correct is None else _paired(correct, model_a, model_b, dataset,
                                                    top1[dataset])

    x_pair = paired(IMAGENET)
    xa_s, xb_s = _draws(x_pair, x[model_a], x[model_b], n_bootstrap, gen)
    out = []
    for shift in shifts:
        fit = fit_baseline(wide, shift)
        y = top1[shift]
        er_a = 100.0 * (y[model_a] - float(fit.predict(x[model_a])))
        er_b = 100.0 * (y[model_b] - float(fit.predict(x[model_b])))
        icpt, slope = fit.bootstrap(n_bootstrap, gen)
        y_pair = paired(shift)
        ya_s, yb_s = _draws(y_pair, y[model_a], y[model_b], n_bootstrap, gen)
        diff_s = 100.0 * ((ya_s - expit(icpt + slope * logit(clip_fraction(xa_s))))
                          - (yb_s - expit(icpt + slope * logit(clip_fraction(xb_s)))))
        low, high = percentile_band(diff_s[:, None], level)
        low_f, high_f = float(low[0]), float(high[0])
        winner = model_a if low_f > 0 else model_b if high_f < 0 else UNDECIDED
        images = [d for d, p in ((IMAGENET, x_pair), (shift, y_pair)) if p is not None]
        resampled = "baseline models" + (f", images ({', '.join(images)})" if images else "")
        notes = dict.fromkeys(row_notes(fit, x[model_a], low_r) + row_notes(fit, x[model_b], low_r))
        out.append({"dataset": shift, "model_a": model_a, "model_b": model_b,
                    "eff_rob_a": er_a, "eff_rob_b": er_b, "difference": er_a - er_b,
                    "diff_low": low_f, "diff_high": high_f, "more_robust": winner,
                    "resampled": resampled, "note": "; ".join(notes)})
    return pd.DataFrame(out, columns=list(COMPARE_COLUMNS))
