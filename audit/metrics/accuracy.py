"""Accuracy metrics for datasets with a target, overall and per declared subgroup.

Top-1 and top-5 accuracy are proportions (Wilson intervals). Balanced accuracy / mean
per-class recall average the recall of each target class present in the group; their intervals
are percentile bootstraps stratified by class. Rows whose ``correct`` is NA (no target) are left
out of ``n``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from audit.metrics.base import (
    NAN,
    MetricDef,
    MetricInput,
    MetricRow,
    percentile_interval,
    require_columns,
    size_flag,
)
from audit.metrics.breakdown import Split, plan, proportion_rows, splits
from audit.spec.models import StatsSpec

TARGET = "target"
CORRECT = "correct"
TOP5_CORRECT = "top5_correct"
TARGET_INDEX = "target_index"


def _hit_rate(column: str, metric: str) -> Callable[[MetricInput], list[MetricRow]]:
    """A metric that is the share of rows where ``column`` is true."""

    def compute(inp: MetricInput) -> list[MetricRow]:
        require_columns(inp.predictions, [column], metric)
        return [
            row
            for split in splits(inp.predictions, plan(inp.datasets))
            for row in proportion_rows(split, split.counts(_as_bool(split.frame[column])),
                                       metric=metric, stats=inp.stats)
        ]

    return compute


def _as_bool(values: pd.Series) -> pd.Series:
    return values.astype("boolean")


def class_recall_counts(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Correct predictions and rows per target class (rows with NA ``correct`` left out)."""
    correct = _as_bool(frame[CORRECT])
    # by class index where there is one: class names may repeat (OpenAI's ImageNet names do)
    key = frame[TARGET_INDEX] if TARGET_INDEX in frame and frame[TARGET_INDEX].notna().any() else frame[TARGET]
    valid = correct.notna() & key.notna()
    per_class = correct[valid].astype(int).groupby(key[valid].astype(str)).agg(["sum", "count"])
    return per_class["sum"].to_numpy(), per_class["count"].to_numpy()


def mean_recall(hits: np.ndarray, sizes: np.ndarray) -> float:
    """Unweighted mean of ``hits / sizes`` over the classes present; NaN with no class."""
    return float(np.mean(hits / sizes)) if sizes.size else np.nan


def per_class_recall_rows(split: Split, metric: str, stats: StatsSpec,
                          rng: np.random.Generator) -> list[MetricRow]:
    """Mean per-class recall per group, with a class-stratified percentile bootstrap.

    Each class's correct count is redrawn as Binomial(n_c, recall_c): resampling the class's
    rows with replacement, done in closed form.
    """
    rows = []
    for group, frame in split.groups():
        hits, sizes = class_recall_counts(frame)
        n = int(sizes.sum())
        ci = (NAN, NAN)
        if n and stats.n_bootstrap:
            draws = rng.binomial(sizes, hits / sizes, size=(stats.n_bootstrap, sizes.size))
            ci = percentile_interval((draws / sizes).mean(axis=1), stats.alpha)
        rows.append(split.row(metric=metric, group=group, n=n, value=mean_recall(hits, sizes),
                              ci=ci, flag=size_flag(n, stats.min_n)))
    return rows


def _per_class_recall(metric: str) -> Callable[[MetricInput], list[MetricRow]]:
    def compute(inp: MetricInput) -> list[MetricRow]:
        require_columns(inp.predictions, [TARGET, CORRECT], metric)
        return [
            row
            for split in splits(inp.predictions, plan(inp.datasets))
            for row in per_class_recall_rows(split, metric, inp.stats, inp.rng)
        ]

    return compute


def _accuracy_metric(name: str, compute: Callable[[MetricInput], list[MetricRow]],
                     description: str) -> MetricDef:
    return MetricDef(name=name, higher_is_better=True, needs_target=True,
                     description=description, compute=compute)


ACCURACY = _accuracy_metric(
    "accuracy", _hit_rate(CORRECT, "accuracy"),
    "Top-1 accuracy, with a Wilson interval.")
TOP5_ACCURACY = _accuracy_metric(
    "top5_accuracy", _hit_rate(TOP5_CORRECT, "top5_accuracy"),
    "Share of images whose target is among the top-5 labels, with a Wilson interval.")
BALANCED_ACCURACY = _accuracy_metric(
    "balanced_accuracy", _per_class_recall("balanced_accuracy"),
    "Unweighted mean over target classes of top-1 recall within the group (sklearn's "
    "balanced_accuracy_score), with a class-stratified bootstrap interval.")
MEAN_PER_CLASS_RECALL = _accuracy_metric(
    "mean_per_class_recall", _per_class_recall("mean_per_class_recall"),
    "Mean per-class top-1 recall as CLIP_benchmark reports it (numerically the same as "
    "balanced_accuracy), with a class-stratified bootstrap interval.")
