"""Counts, intervals, tests and the metric definition type shared by every metric.

Metrics return counts (:class:`Proportion`, :class:`PairedCounts`); the helpers here turn
counts into intervals and p-values, so each statistical method lives in exactly one place.
Library code never seeds anything: bootstraps draw from the ``numpy.random.Generator`` passed in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from audit.results import FLAG_EMPTY, FLAG_SMALL_N, METRIC_COLUMNS
from audit.spec.models import (
    DEFAULT_ALTERNATIVE, DEFAULT_BASE_VARIANT, Alternative, DatasetSpec, StatsSpec, base_variant,
)

NAN = math.nan
#: McNemar uses the exact binomial test below this many discordant pairs (the usual rule).
MCNEMAR_EXACT_BELOW = 25


@dataclass(frozen=True)
class Proportion:
    """``k`` hits out of ``n``; the rate of an empty group is NaN (and the row is flagged)."""

    k: int
    n: int

    @property
    def rate(self) -> float:
        return self.k / self.n if self.n else NAN


@dataclass(frozen=True)
class PairedCounts:
    """A paired 2x2 table: the same images under a base and a compare condition."""

    both: int
    base_only: int
    compare_only: int
    neither: int

    @property
    def n(self) -> int:
        return self.both + self.base_only + self.compare_only + self.neither

    @property
    def base(self) -> Proportion:
        return Proportion(self.both + self.base_only, self.n)

    @property
    def compare(self) -> Proportion:
        return Proportion(self.both + self.compare_only, self.n)

    @property
    def difference(self) -> float:
        """Compare rate minus base rate."""
        return (self.compare_only - self.base_only) / self.n if self.n else NAN


def wilson(k: int, n: int, alpha: float) -> tuple[float, float]:
    """Wilson score interval for ``k`` of ``n`` (statsmodels); ``(nan, nan)`` when ``n == 0``."""
    if n == 0:
        return NAN, NAN
    low, high = proportion_confint(k, n, alpha=alpha, method="wilson")
    return float(low), float(high)


def percentile_interval(samples: np.ndarray, alpha: float) -> tuple[float, float]:
    """Percentile bootstrap interval: the ``alpha/2`` and ``1 - alpha/2`` order statistics.

    ``inverted_cdf`` never interpolates, so resamples whose statistic is infinite (a ratio with a
    zero denominator) give an infinite bound instead of ``inf - inf``. NaN resamples are dropped.
    """
    finite = samples[~np.isnan(samples)]
    if finite.size == 0:
        return NAN, NAN
    low, high = np.quantile(finite, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
    return float(low), float(high)


def paired_difference_interval(t: PairedCounts, alpha: float) -> tuple[float, float]:
    """Interval for ``compare rate - base rate`` on paired data (Newcombe 1998, method 10).

    The hybrid score interval built from the two marginal Wilson intervals, corrected for the
    correlation ``phi`` of the paired outcomes. With ``phi == 0`` it equals Newcombe's interval
    for independent proportions (statsmodels ``confint_proportions_2indep(method="newcomb")``).
    Unlike the Wald interval it neither collapses to a point nor leaves [-1, 1] when few pairs
    are discordant.
    """
    if t.n == 0:
        return NAN, NAN
    p1, p2 = t.compare.rate, t.base.rate
    l1, u1 = wilson(t.compare.k, t.n, alpha)
    l2, u2 = wilson(t.base.k, t.n, alpha)
    phi = _paired_phi(t)
    theta = p1 - p2
    delta = math.sqrt(max((p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2) + (u2 - p2) ** 2, 0.0))
    eps = math.sqrt(max((u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2) + (p2 - l2) ** 2, 0.0))
    return max(theta - delta, -1.0), min(theta + eps, 1.0)


def _paired_phi(t: PairedCounts) -> float:
    # Newcombe's phi, with his correction of n/2 towards zero when the association is positive.
    a, b, c, d = t.both, t.base_only, t.compare_only, t.neither
    margins = float(a + b) * (c + d) * (a + c) * (b + d)
    if margins == 0:
        return 0.0
    cross = float(a * d - b * c)
    if cross > 0:
        cross = max(cross - t.n / 2, 0.0)
    return cross / math.sqrt(margins)


def mcnemar_p(t: PairedCounts) -> float:
    """McNemar's test of equal marginal rates (statsmodels), exact below 25 discordant pairs.

    No discordant pair means no evidence of a change: p = 1.
    """
    discordant = t.base_only + t.compare_only
    if discordant == 0:
        return 1.0
    table = [[t.both, t.base_only], [t.compare_only, t.neither]]
    result = mcnemar(table, exact=discordant < MCNEMAR_EXACT_BELOW, correction=True)
    return float(result.pvalue)


def size_flag(n: int, min_n: int) -> str:
    """``empty`` for no rows, ``small_n`` below ``min_n``, else no flag."""
    if n == 0:
        return FLAG_EMPTY
    return FLAG_SMALL_N if n < min_n else ""


@dataclass(frozen=True)
class MetricRow:
    """One row of ``metrics.csv`` (:data:`audit.results.METRIC_COLUMNS`)."""

    dataset: str
    model: str
    variant: str
    metric: str
    group_col: str
    group: str
    n: int
    value: float
    category: str = ""
    ci_low: float = NAN
    ci_high: float = NAN
    p_value: float = NAN
    flag: str = ""


def rows_to_frame(rows: Iterable[MetricRow]) -> pd.DataFrame:
    """Rows -> a frame with exactly :data:`METRIC_COLUMNS`, in order, with stable dtypes."""
    frame = pd.DataFrame([asdict(r) for r in rows], columns=list(METRIC_COLUMNS))
    frame["n"] = frame["n"].astype("int64")
    for col in ("value", "ci_low", "ci_high", "p_value"):
        frame[col] = frame[col].astype("float64")
    return frame


def require_columns(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    """Fail with the missing column names when a frame breaks the predictions contract."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{what} needs column(s) {missing}; the frame has {list(frame.columns)}")


@dataclass(frozen=True)
class MetricInput:
    """Everything a metric may look at. Built once per metric by :func:`compute_metrics`.

    Attributes:
        predictions: One row per dataset x model x variant x image (the template ensemble).
        by_template: The same rows per prompt template (column ``template``), or None.
        datasets: Dataset display name -> its spec (subgroups, intersections, target).
        categories: Categories or unions (``crime|non_human``) the rate metrics report.
        stats: Confidence level, ``min_n`` and bootstrap size.
        variants: Declared variant names, in order.
        rng: The only source of randomness (bootstrap resamples).
        alternative: Direction of group-vs-rest tests (``pairwise_test``'s ``alternative``).
    """

    predictions: pd.DataFrame
    by_template: pd.DataFrame | None
    datasets: Mapping[str, DatasetSpec]
    categories: tuple[str, ...]
    stats: StatsSpec
    variants: tuple[str, ...]
    rng: np.random.Generator
    alternative: Alternative = DEFAULT_ALTERNATIVE


@dataclass(frozen=True)
class MetricDef:
    """A registered metric.

    Attributes:
        name: Registry name, e.g. ``category_rate``.
        higher_is_better: Direction of ``value`` (gates and reports read it).
        needs_target: Only datasets with a ``target`` column are passed in.
        needs_categories: The probe must name categories for it.
        description: One sentence for reports and ``audit list``.
        compute: Pure function from :class:`MetricInput` to rows of ``metrics.csv``.
    """

    name: str
    higher_is_better: bool
    needs_target: bool
    description: str
    compute: Callable[[MetricInput], list[MetricRow]]
    needs_categories: bool = False
