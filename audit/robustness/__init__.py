"""Effective robustness of zero-shot classifiers on ImageNet's natural distribution shifts.

Taori et al. (2020) found that, over standard ImageNet-trained models, top-1 on a natural shift
is close to a linear function of ImageNet top-1 once both are logit-scaled. A model's
*effective robustness* on a shift is how far (in accuracy points) it sits above that line at
its own ImageNet accuracy; *relative robustness* is simply shift minus ImageNet top-1.

* :func:`fit_baseline`, :func:`fits_table`, :func:`fit_band` -- the per-shift baseline line,
  its correlation, and a bootstrap band (resampling baseline models) for plots;
* :func:`effective_robustness` -- the table for a long ``model, dataset, top1`` input (top1 a
  fraction); the table it returns (robustness.csv) is in accuracy points, ``*_pts`` columns;
* :func:`robustness_from_metrics` -- the same from a run's metrics.csv rows;
* :func:`compare_models` -- an interval on the difference between two models;
* :func:`robustness_main`, :func:`add_robustness_parser` -- the ``audit robustness`` command.

The default baseline is the imagenet-testbed's standard models
(``audit/reference/testbed_baseline.csv``); pass your own table with the same columns.
"""

from audit.robustness.cli import add_robustness_parser, format_report, robustness_main
from audit.robustness.compare import COMPARE_COLUMNS, compare_models
from audit.robustness.effective import (
    effective_robustness, empty_robustness, robustness_from_metrics,
)
from audit.robustness.fit import (
    DEFAULT_SEED, LEVEL, LOW_R, Fit, expit, fit_band, fit_baseline, fits_table, logit,
)
from audit.robustness.tables import (
    DATASETS, IMAGENET, ROBUSTNESS_COLUMNS, SHIFTS, load_baseline, validate_baseline,
    validate_rows,
)

__all__ = [
    "COMPARE_COLUMNS",
    "DATASETS",
    "DEFAULT_SEED",
    "IMAGENET",
    "LEVEL",
    "LOW_R",
    "ROBUSTNESS_COLUMNS",
    "SHIFTS",
    "Fit",
    "add_robustness_parser",
    "compare_models",
    "effective_robustness",
    "empty_robustness",
    "expit",
    "fit_band",
    "fit_baseline",
    "fits_table",
    "format_report",
    "load_baseline",
    "logit",
    "robustness_from_metrics",
    "robustness_main",
    "validate_baseline",
    "validate_rows",
]
