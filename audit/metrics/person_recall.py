"""FACET-style person-class recall by group, and the per-class disparity between groups.

FACET (Gustafson et al., ICCV 2023) asks: for each person class (doctor, nurse, guitarist, ...),
is the model's recall the same for people of different perceived gender presentation, skin tone
or age? Here:

- ``class_recall``: for each target class and group, the share of that class's people the
  model classifies correctly (top-1), with a Wilson interval. ``category`` is the class.
- ``recall_disparity``: for each class and each pair of levels ``A vs B`` of a subgroup column,
  ``recall_A - recall_B`` with Newcombe's hybrid-score interval for two independent proportions
  (statsmodels ``confint_proportions_2indep(method="newcomb")``) and the score test
  (``test_proportions_2indep(method="score")``); p-values are Holm-adjusted over every class
  and pair of the column (one family per dataset x model x variant x column). ``n`` is the
  smaller group. :func:`largest_disparities` lists the classes with the largest significant ones.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Callable
from dataclasses import replace

import pandas as pd
from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

from audit.metrics.association import holm
from audit.metrics.base import NAN, MetricDef, MetricInput, MetricRow, Proportion, require_columns, size_flag, wilson
from audit.metrics.breakdown import Split, plan, splits
from audit.results import FLAG_EMPTY
from audit.spec.models import StatsSpec

TARGET = "target"
CORRECT = "correct"
CLASS_RECALL_METRIC = "class_recall"
RECALL_DISPARITY_METRIC = "recall_disparity"


def class_counts(split: Split) -> dict[str, list[tuple[str, Proportion]]]:
    """Class -> [(group, correct of n)] for every level of the split; rows without a target or a
    verdict (NA ``correct``) are left out."""
    frame = split.frame
    valid = frame[TARGET].notna() & frame[CORRECT].notna()
    frame, labels = frame[valid], split.labels[valid]
    out: dict[str, list[tuple[str, Proportion]]] = {}
    for cls in sorted(frame[TARGET].astype(str).unique()):
        in_class = (frame[TARGET].astype(str) == cls).to_numpy()
        hits = frame.loc[in_class, CORRECT].astype(bool).groupby(labels[in_class]).agg(["sum", "count"])
        out[cls] = [(g, Proportion(int(hits["sum"].get(g, 0)), int(hits["count"].get(g, 0))))
                    for g in split.levels]
    return out


def recall_rows(split: Split, stats: StatsSpec) -> list[MetricRow]:
    """Recall per class and group, with Wilson intervals."""
    return [split.row(metric=CLASS_RECALL_METRIC, category=cls, group=g, n=p.n, value=p.rate,
                      ci=wilson(p.k, p.n, stats.alpha), flag=size_flag(p.n, stats.min_n))
            for cls, counts in class_counts(split).items() for g, p in counts]


def difference(a: Proportion, b: Proportion, alpha: float) -> tuple[float, float, float, float]:
    """``(rate_a - rate_b, ci_low, ci_high, raw p)``; NaN where a group is empty."""
    if a.n == 0 or b.n == 0:
        return NAN, NAN, NAN, NAN
    with warnings.catch_warnings():  # statsmodels warns on 0/1 rates, where we define p ourselves
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = confint_proportions_2indep(a.k, a.n, b.k, b.n, method="newcomb", compare="diff", alpha=alpha)
        p = float(test_proportions_2indep(a.k, a.n, b.k, b.n, method="score", compare="diff").pvalue)
    if math.isnan(p) and a.rate == b.rate:
        p = 1.0  # both all-correct or all-wrong: no evidence of a difference
    return a.rate - b.rate, float(low), float(high), p


def disparity_rows(split: Split, stats: StatsSpec) -> list[MetricRow]:
    """Every class x pair of levels of a (non-overall) split, Holm-adjusted within the split."""
    if split.grouping.is_overall:
        return []
    rows = []
    for cls, counts in class_counts(split).items():
        for (ga, a), (gb, b) in itertools.combinations(counts, 2):
            diff, low, high, p = difference(a, b, stats.alpha)
            n = min(a.n, b.n)
            rows.append(split.row(metric=RECALL_DISPARITY_METRIC, category=cls, group=f"{ga} vs {gb}", n=n,
                                  value=diff, ci=(low, high), p_value=p,
                                  flag=FLAG_EMPTY if n == 0 else size_flag(n, stats.min_n)))
    adjusted = holm([r.p_value for r in rows])
    return [replace(r, p_value=p) for r, p in zip(rows, adjusted)]


def _compute(fn: Callable[[Split, StatsSpec], list[MetricRow]], metric: str) -> Callable[[MetricInput], list[MetricRow]]:
    def compute(inp: MetricInput) -> list[MetricRow]:
        require_columns(inp.predictions, [TARGET, CORRECT], metric)
        return [row for split in splits(inp.predictions, plan(inp.datasets)) for row in fn(split, inp.stats)]

    return compute


def largest_disparities(metrics: pd.DataFrame, alpha: float, k: int = 10) -> pd.DataFrame:
    """The ``k`` class x pair rows with the largest |recall difference| among those significant
    after Holm (p < ``alpha``), per model, variant and column; largest first."""
    rows = metrics[(metrics["metric"] == RECALL_DISPARITY_METRIC) & (metrics["p_value"] < alpha)]
    rows = rows.assign(abs_difference=rows["value"].abs()).sort_values("abs_difference", ascending=False)
    return rows.groupby(["dataset", "model", "variant", "group_col"], sort=False).head(k).reset_index(drop=True)


CLASS_RECALL = MetricDef(
    name=CLASS_RECALL_METRIC, higher_is_better=True, needs_target=True, compute=_compute(recall_rows, CLASS_RECALL_METRIC),
    description="Top-1 recall of each target (person) class within each group, with a Wilson interval (FACET).")
RECALL_DISPARITY = MetricDef(
    name=RECALL_DISPARITY_METRIC, higher_is_better=False, needs_target=True,
    compute=_compute(disparity_rows, RECALL_DISPARITY_METRIC),
    description="Per class, recall difference between each pair of groups with Newcombe's interval and a "
                "score test, Holm-adjusted over classes and pairs (FACET).")

__all__ = ["CLASS_RECALL", "RECALL_DISPARITY", "class_counts", "difference", "disparity_rows",
           "largest_disparities", "recall_rows"]
