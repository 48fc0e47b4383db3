"""The breakdown engine: the only place that groups rows by declared subgroups.

A dataset declares its subgroup columns and intersections once; :func:`splits` yields, for every
(dataset, model, variant) cell and every grouping, the cell's rows labelled by group together
with *all* levels of that grouping, so a group with no rows in a cell is reported (and flagged)
rather than silently missing. Metrics only say what to compute on a :class:`Split`.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

from audit.metrics.base import NAN, MetricRow, Proportion, size_flag, wilson
from audit.spec.models import DatasetSpec, StatsSpec

#: ``group_col`` and ``group`` of the whole population.
OVERALL = "overall"
ALL = "all"
#: Joins intersection columns (``race x gender``) and their levels (``Black x Female``).
SEP = " x "
#: Columns that identify one cell of the predictions table.
CELL_KEYS = ("dataset", "model", "variant")


@dataclass(frozen=True)
class Grouping:
    """A way to split a population: no columns (overall), one column, or an intersection."""

    name: str
    columns: tuple[str, ...]

    @property
    def is_overall(self) -> bool:
        return not self.columns


OVERALL_GROUPING = Grouping(OVERALL, ())


def groupings(dataset: DatasetSpec, *, overall: bool = True) -> tuple[Grouping, ...]:
    """Overall, each declared subgroup column, then each intersection (``race x gender``)."""
    out = [OVERALL_GROUPING] if overall else []
    out += [Grouping(col, (col,)) for col in dataset.subgroups]
    out += [Grouping(SEP.join(combo), tuple(combo)) for combo in dataset.intersections]
    return tuple(out)


def plan(datasets: Mapping[str, DatasetSpec], *, overall: bool = True) -> dict[str, tuple[Grouping, ...]]:
    """Dataset display name -> its groupings."""
    return {name: groupings(ds, overall=overall) for name, ds in datasets.items()}


def column_levels(values: pd.Series) -> list[str]:
    """A column's levels: category order for a categorical column, else sorted; NA left out."""
    if isinstance(values.dtype, pd.CategoricalDtype):
        return [str(v) for v in values.cat.categories]
    return sorted({str(v) for v in values.dropna()})


def grouping_levels(frame: pd.DataFrame, grouping: Grouping) -> tuple[str, ...]:
    """Every level of a grouping; an intersection gets the full product of its columns' levels."""
    if grouping.is_overall:
        return (ALL,)
    per_column = [column_levels(frame[col]) for col in grouping.columns]
    return tuple(SEP.join(combo) for combo in itertools.product(*per_column))


def group_labels(frame: pd.DataFrame, grouping: Grouping) -> pd.Series:
    """The group of each row (``Black x Female``); NA where any of the grouping's columns is NA."""
    if grouping.is_overall:
        return pd.Series(ALL, index=frame.index, dtype=object)
    parts = [frame[col] for col in grouping.columns]
    missing = pd.concat([p.isna() for p in parts], axis=1).any(axis=1)
    labels = parts[0].astype(str)
    for part in parts[1:]:
        labels = labels + SEP + part.astype(str)
    return labels.astype(object).where(~missing, None)


@dataclass(frozen=True)
class Split:
    """The rows of one cell under one grouping.

    Attributes:
        key: The cell: ``{"dataset": ..., "model": ..., "variant": ...}``.
        grouping: How the rows are grouped.
        frame: The cell's rows that belong to some group (rows with NA group values left out).
        labels: Group label of each row of ``frame`` (same index).
        levels: Every level of the grouping, including ones with no rows in this cell.
    """

    key: Mapping[str, str]
    grouping: Grouping
    frame: pd.DataFrame
    labels: pd.Series
    levels: tuple[str, ...]

    def counts(self, hits: pd.Series) -> list[tuple[str, Proportion]]:
        """Hits out of rows per level, every level included; rows whose hit is NA don't count.

        Args:
            hits: Boolean (or nullable boolean) Series on the index of :attr:`frame`.
        """
        valid = hits.notna()
        labels = self.labels[valid]
        k = hits[valid].astype(bool).groupby(labels).sum()
        n = labels.value_counts()
        return [(g, Proportion(int(k.get(g, 0)), int(n.get(g, 0)))) for g in self.levels]

    def row(self, *, metric: str, group: str, n: int, value: float, category: str = "",
            ci: tuple[float, float] = (NAN, NAN), p_value: float = NAN, flag: str = "") -> MetricRow:
        """A results row for this cell and grouping."""
        return MetricRow(
            dataset=self.key["dataset"], model=self.key["model"], variant=self.key["variant"],
            metric=metric, category=category, group_col=self.grouping.name, group=group, n=n,
            value=value, ci_low=ci[0], ci_high=ci[1], p_value=p_value, flag=flag,
        )

    def groups(self) -> Iterator[tuple[str, pd.DataFrame]]:
        """``(level, rows)`` for every level, empty frames included."""
        parts = dict(iter(self.frame.groupby(self.labels, sort=False)))
        for level in self.levels:
            yield level, parts.get(level, self.frame.iloc[:0])


def splits(frame: pd.DataFrame, plan_: Mapping[str, Sequence[Grouping]]) -> Iterator[Split]:
    """Every (cell, grouping) of ``frame``; a cell is one (dataset, model, variant).

    Levels come from the whole dataset (all cells), so every cell reports the same groups.

    Raises:
        ValueError: ``frame`` holds a dataset the plan does not know.
    """
    if not frame.index.is_unique:
        frame = frame.reset_index(drop=True)
    for dataset, dframe in frame.groupby("dataset", sort=False, observed=True):
        if dataset not in plan_:
            raise ValueError(f"predictions hold dataset {dataset!r}, not among {sorted(plan_)}")
        labelled = [
            (g, group_labels(dframe, g), grouping_levels(dframe, g)) for g in plan_[str(dataset)]
        ]
        for cell_key, cell in dframe.groupby(list(CELL_KEYS), sort=False, observed=True):
            key = {k: str(v) for k, v in zip(CELL_KEYS, cell_key)}
            for grouping, labels, levels in labelled:
                cell_labels = labels.loc[cell.index]
                has_group = cell_labels.notna()
                yield Split(key, grouping, cell[has_group], cell_labels[has_group], levels)


def proportion_rows(
    split: Split,
    counts: Sequence[tuple[str, Proportion]],
    *,
    metric: str,
    stats: StatsSpec,
    category: str = "",
) -> list[MetricRow]:
    """One row per group: the rate, its Wilson interval, ``n`` and the size flag."""
    return [
        split.row(metric=metric, category=category, group=group, n=p.n, value=p.rate,
                  ci=wilson(p.k, p.n, stats.alpha), flag=size_flag(p.n, stats.min_n))
        for group, p in counts
    ]
