"""Counts, intervals and tests in audit.metrics.base against statsmodels/scipy and hand math."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import binom, chi2
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint

from audit.metrics.base import (
    MetricRow,
    PairedCounts,
    Proportion,
    base_variant,
    mcnemar_p,
    paired_difference_interval,
    percentile_interval,
    rows_to_frame,
    size_flag,
    wilson,
)
from audit.results import FLAG_EMPTY, FLAG_SMALL_N, METRIC_COLUMNS


@pytest.mark.parametrize(("k", "n"), [(0, 5), (3, 11), (11, 11), (40, 1000)])
def test_wilson_is_statsmodels_wilson(k: int, n: int) -> None:
    for alpha in (0.05, 0.1):
        expected = proportion_confint(k, n, alpha=alpha, method="wilson")
        assert wilson(k, n, alpha) == pytest.approx(expected, abs=1e-12)


def test_empty_proportion_is_nan_not_an_error() -> None:
    assert math.isnan(Proportion(0, 0).rate)
    assert all(math.isnan(x) for x in wilson(0, 0, 0.05))
    assert Proportion(3, 12).rate == 0.25


def test_size_flag() -> None:
    assert size_flag(0, 30) == FLAG_EMPTY
    assert size_flag(29, 30) == FLAG_SMALL_N
    assert size_flag(30, 30) == ""


def test_base_variant_is_default_else_first() -> None:
    assert base_variant(["strict", "default"]) == "default"
    assert base_variant(["strict", "loose"]) == "strict"


def test_paired_counts_margins() -> None:
    t = PairedCounts(both=4, base_only=2, compare_only=6, neither=3)
    assert t.n == 15
    assert t.base == Proportion(6, 15) and t.compare == Proportion(10, 15)
    assert t.difference == pytest.approx(10 / 15 - 6 / 15)


@pytest.mark.parametrize("cells", [(4, 2, 6, 3), (10, 10, 10, 10), (2, 6, 4, 12)])
def test_paired_interval_without_correlation_is_newcombe_independent(cells: tuple[int, ...]) -> None:
    # With a*d == b*c the estimated correlation is 0 and Newcombe's paired method 10 reduces to
    # his hybrid score interval for independent proportions, which statsmodels implements.
    t = PairedCounts(*cells)
    assert t.both * t.neither == t.base_only * t.compare_only
    expected = confint_proportions_2indep(t.compare.k, t.n, t.base.k, t.n, method="newcomb", compare="diff")
    assert paired_difference_interval(t, 0.05) == pytest.approx(expected, abs=1e-12)


def test_paired_interval_covers_about_95_percent() -> None:
    # Correlated pairs: P(base) = 0.30, P(compare) = 0.20, strong positive dependence.
    rng = np.random.default_rng(7)
    probs = np.array([0.18, 0.12, 0.02, 0.68])  # both, base_only, compare_only, neither
    truth = (probs[0] + probs[2]) - (probs[0] + probs[1])
    hits = 0
    sims = 1000
    for cells in rng.multinomial(120, probs, size=sims):
        low, high = paired_difference_interval(PairedCounts(*map(int, cells)), 0.05)
        hits += low <= truth <= high
    assert 0.93 <= hits / sims <= 0.975


def test_paired_interval_with_no_discordant_pairs_keeps_a_width() -> None:
    low, high = paired_difference_interval(PairedCounts(3, 0, 0, 17), 0.05)
    assert -1 <= low < 0 < high <= 1
    assert all(math.isnan(x) for x in paired_difference_interval(PairedCounts(0, 0, 0, 0), 0.05))


def test_mcnemar_exact_for_few_discordant_pairs() -> None:
    t = PairedCounts(both=10, base_only=3, compare_only=9, neither=30)
    assert mcnemar_p(t) == pytest.approx(min(1.0, 2 * binom.cdf(3, 12, 0.5)))


def test_mcnemar_chi2_with_continuity_correction_otherwise() -> None:
    t = PairedCounts(both=50, base_only=20, compare_only=40, neither=90)
    statistic = (abs(20 - 40) - 1) ** 2 / (20 + 40)
    assert mcnemar_p(t) == pytest.approx(chi2.sf(statistic, 1))


def test_mcnemar_without_discordant_pairs_is_one() -> None:
    assert mcnemar_p(PairedCounts(5, 0, 0, 5)) == 1.0


def test_percentile_interval_order_statistics_and_infinities() -> None:
    samples = np.arange(1, 1001, dtype=float)
    assert percentile_interval(samples, 0.05) == (25.0, 975.0)
    with_inf = np.array([1.0, 2.0, np.nan] + [np.inf] * 5)
    assert percentile_interval(with_inf, 0.05) == (1.0, np.inf)
    assert all(math.isnan(x) for x in percentile_interval(np.array([np.nan]), 0.05))


def test_rows_to_frame_has_exactly_the_results_columns() -> None:
    frame = rows_to_frame([MetricRow("d", "m", "v", "x", "overall", "all", 3, 0.5)])
    assert tuple(frame.columns) == METRIC_COLUMNS
    assert frame.loc[0, "category"] == "" and frame.loc[0, "flag"] == ""
    assert tuple(rows_to_frame([]).columns) == METRIC_COLUMNS
