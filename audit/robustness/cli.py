"""``python -m audit robustness TABLE.csv [--out FILE.csv] [--baseline FILE.csv]``.

Thin: read and validate the tables, call :func:`effective_robustness`, print a readable report,
write the CSV atomically. Errors are raised as :class:`~audit.errors.UserError` (exit 2) for
the CLI's error handler to print without a traceback.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from audit.errors import EXIT_OK
from audit.results import write_csv
from audit.robustness.effective import effective_robustness
from audit.robustness.fit import DEFAULT_SEED, LEVEL, LOW_R, NOTE_LEFT_OUT, fits_table
from audit.robustness.tables import (
    DEFAULT_BASELINE_NAME, SHIFTS, load_baseline, read_table, validate_rows,
)

#: Flag codes of the printed report: code -> (prefix of the note it stands for, legend).
FLAGS = {
    "r": ("low fit r", "low fit r (< {low_r:.2f}): the baseline models are not one line in logit "
                       "space on this shift; read effective robustness there as indicative only"),
    "x": ("ImageNet top-1", "the model's ImageNet top-1 is outside the baseline's range: the fit "
                            "is extrapolated"),
}


def _flags(note: str) -> str:
    return "".join(code for code, (prefix, _) in FLAGS.items()
                   if any(part.startswith(prefix) for part in note.split("; ")))


def _acc(v: float) -> str:
    """An accuracy already in points (robustness.csv's ``*_top1_pts``)."""
    return "" if pd.isna(v) else f"{v:.1f}"


def _pts(v: float) -> str:
    return "" if pd.isna(v) else f"{v:+.1f}"


def format_report(table: pd.DataFrame, fits: pd.DataFrame, *, baseline: str, n_bootstrap: int,
                  level: float = LEVEL, low_r: float = LOW_R, seed: Any = DEFAULT_SEED) -> str:
    """The printed form of a robustness table and its fits (accuracies in percent)."""
    lines = [f"Baseline: {baseline}",
             f"Bands: {level:.0%} percentile over {n_bootstrap} bootstrap resamples of the "
             f"baseline models (seed {seed})", "",
             "Baseline fits: logit(shift top-1) = intercept + slope * logit(ImageNet top-1)"]
    fit_view = pd.DataFrame({
        "dataset": fits["dataset"], "slope": fits["slope"].map("{:.3f}".format),
        "intercept": fits["intercept"].map("{:.3f}".format), "r": fits["r"].map("{:.3f}".format),
        "n": fits["n"], "ImageNet range %": [f"{100 * a:.1f}-{100 * b:.1f}" for a, b in
                                             zip(fits["imagenet_min"], fits["imagenet_max"])],
        "flags": fits["note"].map(_flags),
    })
    lines += [fit_view.to_string(index=False), ""]
    view = pd.DataFrame({
        "model": table["model"], "dataset": table["dataset"],
        "top1 %": table["top1_pts"].map(_acc), "baseline %": table["baseline_top1_pts"].map(_acc),
        "eff. rob.": table["effective_robustness_pts"].map(_pts),
        f"{level:.0%} band": [f"[{_pts(a)}, {_pts(b)}]" if not pd.isna(a) else ""
                              for a, b in zip(table["eff_rob_low_pts"], table["eff_rob_high_pts"])],
        "rel. rob.": table["relative_robustness_pts"].map(_pts),
        "flags": table["note"].map(_flags),
    })
    lines += ["Robustness (points; eff. rob. = top1 - baseline, rel. rob. = top1 - ImageNet top1)",
              view.to_string(index=False) if len(view) else "(no model has a shift row)"]
    used = {c for flags in (*view["flags"], *fit_view["flags"]) for c in flags}
    legend = [f"  {code}: {text.format(low_r=low_r)}" for code, (_, text) in FLAGS.items()
              if code in used]
    left_out_prefix = NOTE_LEFT_OUT.split(" (")[0]
    for shift, note in zip(fits["dataset"], fits["note"]):
        legend += [f"  {shift}: {part}" for part in note.split("; ")
                   if part.startswith(left_out_prefix)]
    if legend:
        lines += ["", "Flags and notes:", *legend]
    return "\n".join(lines)


def robustness_main(table: Path, out: Path | None = None, baseline: Path | None = None, *,
                    n_bootstrap: int = 1000, seed: int = DEFAULT_SEED) -> int:
    """Compute, print and optionally write the effective-robustness table of ``table``.

    Args:
        table: CSV with columns ``model, dataset, top1`` (fractions), one row per model and
            dataset, every model with an ``imagenet`` row.
        out: where to write the result CSV (atomically; columns
            :data:`~audit.robustness.tables.ROBUSTNESS_COLUMNS`, all numbers in accuracy
            points); None to only print.
        baseline: a baseline CSV like ``audit/reference/testbed_baseline.csv``; None for the
            shipped testbed standard models.
        n_bootstrap: resamples of the baseline models for the bands.
        seed: seed of the bootstrap generator.

    Returns:
        0 (success). Invalid input raises :class:`~audit.errors.UserError` (exit code 2).
    """
    rows = validate_rows(read_table(Path(table), "robustness"), str(table))
    wide = load_baseline(None if baseline is None else Path(baseline))
    result = effective_robustness(rows, wide, n_bootstrap=n_bootstrap, rng=seed)
    shifts = tuple(s for s in SHIFTS if s in set(rows["dataset"]))
    fits = fits_table(wide, shifts)
    label = (f"{DEFAULT_BASELINE_NAME} ({len(wide)} standard ImageNet models of the "
             "imagenet-testbed, Taori et al. 2020)" if baseline is None
             else f"{baseline} ({len(wide)} models)")
    print(format_report(result, fits, baseline=label, n_bootstrap=n_bootstrap, seed=seed))
    if out is not None:
        write_csv(Path(out), result)
        print(f"\nwrote {out}")
    return EXIT_OK


def add_robustness_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``robustness`` subcommand; its ``func`` default maps parsed args to the call."""
    parser = subparsers.add_parser(
        "robustness", help="effective robustness of models on ImageNet shifts",
        description="Effective robustness (Taori et al. 2020) of each model on "
        f"{', '.join(SHIFTS)}, against a logit-linear fit over standard ImageNet models.")
    parser.add_argument("table", type=Path,
                        help="CSV with columns model,dataset,top1 (top1 a fraction 0-1)")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the result CSV here (accuracy points, *_pts columns)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help=f"baseline CSV (default: {DEFAULT_BASELINE_NAME})")
    parser.add_argument("--n-bootstrap", type=int, default=1000,
                        help="baseline resamples for the bands (default 1000)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="bootstrap seed")
    parser.set_defaults(func=lambda args: robustness_main(
        args.table, args.out, args.baseline, n_bootstrap=args.n_bootstrap, seed=args.seed))
    return parser
