"""Worst-group accuracy: the lowest accuracy of any group of a subgroup column, which group it
is, and that group's Wilson interval.

DataComp's headline numbers for Dollar Street (top-5 accuracy of the worst ``income_ds`` group)
and GeoDE (top-1 accuracy of the worst ``region``) are this metric. As in WILDS
(``Metric.compute_group_wise``), groups without images are not candidates; unlike WILDS, a group
below ``stats.min_n`` stays a candidate and the row is flagged ``small_n``, so a gate on it
never passes silently. One row per (dataset, model, variant, subgroup column or intersection):
``group`` names the worst group (ties: the first in level order), ``n`` is its size.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from audit.metrics.base import NAN, MetricDef, MetricInput, MetricRow, require_columns, size_flag, wilson
from audit.metrics.breakdown import Split, plan, splits
from audit.metrics.fairness import independence_row

CORRECT = "correct"
TOP5_CORRECT = "top5_correct"
#: ``group`` of a worst-group row when no group has any image.
NO_GROUP = "none"


def worst_group_row(split: Split, column: str, metric: str, alpha: float, min_n: int) -> MetricRow:
    """The worst group of one split: its accuracy on ``column``, its Wilson interval and size."""
    counts = [(g, p) for g, p in split.counts(split.frame[column].astype("boolean")) if p.n > 0]
    if not counts:
        return split.row(metric=metric, group=NO_GROUP, n=0, value=NAN, flag=size_flag(0, min_n))
    group, worst = min(counts, key=lambda item: item[1].rate)  # min keeps the first of ties
    return split.row(metric=metric, group=group, n=worst.n, value=worst.rate,
                     ci=wilson(worst.k, worst.n, alpha), flag=size_flag(worst.n, min_n))


def _worst_group(column: str, metric: str) -> Callable[[MetricInput], list[MetricRow]]:
    def compute(inp: MetricInput) -> list[MetricRow]:
        require_columns(inp.predictions, [column], metric)
        return [
            worst_group_row(split, column, metric, inp.stats.alpha, inp.stats.min_n)
            for split in splits(inp.predictions, plan(inp.datasets, overall=False))
        ]

    return compute


WORST_GROUP_ACCURACY = MetricDef(
    name="worst_group_accuracy", higher_is_better=True, needs_target=True,
    description="Top-1 accuracy of the worst group of each subgroup column (group = which one), "
                "with its Wilson interval.",
    compute=_worst_group(CORRECT, "worst_group_accuracy"))
WORST_GROUP_TOP5_ACCURACY = MetricDef(
    name="worst_group_top5_accuracy", higher_is_better=True, needs_target=True,
    description="Top-5 accuracy of the worst group of each subgroup column (group = which one), "
                "with its Wilson interval.",
    compute=_worst_group(TOP5_CORRECT, "worst_group_top5_accuracy"))


def _accuracy_test(inp: MetricInput) -> list[MetricRow]:
    """Chi-square test of group x correct, for top-1 (category ``top1``) and, where predictions
    have it, top-5 (``top5``): the same test as ``independence_test``, on hits instead of flags."""
    require_columns(inp.predictions, [CORRECT], "accuracy_test")
    columns = [("top1", CORRECT)] + ([("top5", TOP5_CORRECT)] if TOP5_CORRECT in inp.predictions else [])
    return [
        replace(independence_row(split, split.counts(split.frame[col].astype("boolean")), name, inp.stats),
                metric="accuracy_test")
        for split in splits(inp.predictions, plan(inp.datasets, overall=False))
        for name, col in columns
    ]


ACCURACY_TEST = MetricDef(
    name="accuracy_test", higher_is_better=False, needs_target=True,
    description="Pearson chi-square test that top-1 (category top1) and top-5 (top5) accuracy "
                "do not depend on the group (groups with n >= min_n); value = statistic.",
    compute=_accuracy_test)
