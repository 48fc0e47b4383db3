"""Metrics: predictions table -> the long results table of ``metrics.csv``.

:func:`compute_metrics` looks each metric of the probe up in :data:`audit.registries.METRICS`
and concatenates their rows. Every metric is a :class:`MetricDef` whose ``compute`` is a pure
function over the predictions; grouping by subgroups happens only in
:mod:`audit.metrics.breakdown`. No torch here.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

from audit.errors import Problem, UserError
from audit.metrics.base import (
    MetricDef,
    MetricInput,
    MetricRow,
    PairedCounts,
    Proportion,
    base_variant,
    mcnemar_p,
    paired_difference_interval,
    percentile_interval,
    rows_to_frame,
    wilson,
)
from audit.metrics.breakdown import ALL, OVERALL, SEP, Grouping, Split, groupings, splits
from audit.metrics.fairness import moved_labels, paired_variants
from audit.spec.models import DEFAULT_ALTERNATIVE, DatasetSpec, MetricSpec, ProbeSpec

__all__ = [
    "ALL", "OVERALL", "SEP", "Grouping", "MetricDef", "MetricInput", "MetricRow", "PairedCounts",
    "Proportion", "Split", "base_variant", "compute_metrics", "groupings", "mcnemar_p",
    "moved_labels", "paired_difference_interval", "paired_variants", "percentile_interval",
    "splits", "wilson",
]


def compute_metrics(
    predictions: pd.DataFrame,
    spec: ProbeSpec,
    rng: np.random.Generator,
    *,
    by_template: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Compute every metric the probe declares, in declared order.

    Args:
        predictions: One row per dataset x model x variant x image (template ensemble); columns
            as in :mod:`audit.results` plus ``top5_correct`` for ``top5_accuracy``.
        spec: The probe: datasets (subgroups, intersections, target), metrics, categories,
            variants and stats.
        rng: Source of all bootstrap randomness. One number is drawn from it; each metric then
            gets its own generator keyed by its name, so adding or reordering metrics does not
            change another metric's intervals.
        by_template: Per-template predictions (extra column ``template``), read by
            ``template_sensitivity`` only; None (e.g. a single template) means no such rows.

    Returns:
        A frame with exactly :data:`audit.results.METRIC_COLUMNS`.

    Raises:
        UserError: A metric about categories while the probe names none.
    """
    from audit.registries import METRICS

    _check_categories(spec)
    datasets = {d.display_name: d for d in spec.datasets}
    with_target = {name: d for name, d in datasets.items() if _has_target(predictions, d)}
    rows: list[MetricRow] = []
    root = int(rng.integers(2**63))
    for i, mspec in enumerate(spec.metrics):
        metric: MetricDef = METRICS.get(mspec.name)  # type: ignore[assignment]
        chosen = with_target if metric.needs_target else datasets
        inp = MetricInput(
            predictions=_only(predictions, chosen),
            by_template=None if by_template is None else _only(by_template, chosen),
            datasets=chosen,
            categories=_categories(mspec, spec),
            stats=spec.stats,
            variants=tuple(spec.variants),
            rng=_metric_rng(root, spec, i),
            alternative=mspec.alternative or DEFAULT_ALTERNATIVE,
        )
        rows += metric.compute(inp)
    return rows_to_frame(rows)


def _metric_rng(root: int, spec: ProbeSpec, i: int) -> np.random.Generator:
    name = spec.metrics[i].name
    occurrence = sum(m.name == name for m in spec.metrics[:i])
    return np.random.default_rng([root, zlib.crc32(name.encode()), occurrence])


def _has_target(predictions: pd.DataFrame, dataset: DatasetSpec) -> bool:
    # Class-name datasets (ImageNet and its shifts) carry a target without declaring one.
    if dataset.target is not None:
        return True
    if "correct" not in predictions.columns:
        return False
    return bool(predictions.loc[predictions["dataset"] == dataset.display_name, "correct"].notna().any())


def _only(frame: pd.DataFrame, datasets: dict[str, DatasetSpec]) -> pd.DataFrame:
    return frame[frame["dataset"].isin(list(datasets))].reset_index(drop=True)


def _categories(mspec: MetricSpec, spec: ProbeSpec) -> tuple[str, ...]:
    return tuple(mspec.categories if mspec.categories is not None else spec.categories)


def _check_categories(spec: ProbeSpec) -> None:
    from audit.registries import METRICS

    problems = []
    for i, mspec in enumerate(spec.metrics):
        metric: MetricDef = METRICS.get(mspec.name)  # type: ignore[assignment]
        if metric.needs_categories and not _categories(mspec, spec):
            problems.append(Problem(
                f"metrics[{i}]", f"metric '{mspec.name}' reports category rates but no category is named",
            ))
    if problems:
        raise UserError(
            f"probe '{spec.name}' cannot compute its metrics", problems=problems,
            fix="list categories in the probe (categories: [crime, non_human]) or per metric "
                "(metrics: [{name: category_rate, categories: [crime]}])",
        )
