"""Group-vs-rest tests: which test runs, direction, and the family-wise error rate at small counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import fisher_exact
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import proportions_ztest

from audit.metrics.base import Proportion
from audit.metrics.pairwise import (
    EXACT_BELOW, FISHER, NO_VARIATION, Z_TEST, fisher_p, group_tests, group_vs_rest_p, holm,
)
from audit.spec.models import StatsSpec

ALPHA = 0.05


def test_small_counts_run_fishers_exact_test_in_the_asked_direction() -> None:
    a, b = Proportion(4, 150), Proportion(12, 1200)  # expected flagged in a: 150 * 16 / 1350 = 1.8
    for alternative in ("greater", "less", "two-sided"):
        p, test = group_vs_rest_p(a, b, alternative)  # type: ignore[arg-type]
        assert test == FISHER
        assert p == pytest.approx(fisher_exact([[4, 146], [12, 1188]], alternative=alternative).pvalue)


def test_large_counts_run_the_z_test_in_the_asked_direction() -> None:
    a, b = Proportion(60, 300), Proportion(150, 1000)
    for alternative, sm in (("greater", "larger"), ("less", "smaller"), ("two-sided", "two-sided")):
        p, test = group_vs_rest_p(a, b, alternative)  # type: ignore[arg-type]
        assert test == Z_TEST
        assert p == pytest.approx(proportions_ztest([60, 150], [300, 1000], alternative=sm)[1])


def test_no_flagged_image_anywhere_is_no_evidence() -> None:
    assert group_vs_rest_p(Proportion(0, 50), Proportion(0, 500)) == (1.0, NO_VARIATION)


def test_a_group_below_the_rest_is_never_significant_one_sided() -> None:
    # Group A is flagged far LESS than the rest: evidence for "less", none for "greater".
    counts = [("A", Proportion(2, 400)), ("B", Proportion(60, 400)), ("C", Proportion(60, 400))]
    greater = {t.group: t for t in group_tests(counts, StatsSpec(), "greater")}
    two_sided = {t.group: t for t in group_tests(counts, StatsSpec(), "two-sided")}
    assert greater["A"].difference < 0 and greater["A"].p_adjusted > 0.5
    assert two_sided["A"].p_adjusted < 1e-6
    assert {t.group: t for t in group_tests(counts, StatsSpec(), "less")}["A"].p_adjusted < 1e-6


def test_vectorised_fisher_matches_scipy() -> None:
    for k, n, rk, rn in ((0, 120, 9, 900), (3, 150, 10, 1200), (7, 100, 5, 1300), (12, 40, 1, 30)):
        for alternative in ("greater", "less", "two-sided"):
            expected = fisher_exact([[k, n - k], [rk, rn - rk]], alternative=alternative).pvalue
            assert fisher_p(k, n, rk, rn, alternative)[()] == pytest.approx(expected)  # type: ignore[arg-type]


def test_family_wise_false_positive_rate_stays_at_or_below_alpha() -> None:
    # Null: 7 groups, one base rate of 1-2% per replicate, 100-300 images per group. Holm-adjusted
    # one-sided z-tests flag some group about 12% of the time here; the exact test must stay <= alpha.
    reps = 2000
    rng = np.random.default_rng(16)
    sizes = rng.integers(100, 301, size=(reps, 7))
    flagged = rng.binomial(sizes, rng.uniform(0.01, 0.02, size=(reps, 1)))
    total_k, total_n = flagged.sum(axis=1, keepdims=True), sizes.sum(axis=1, keepdims=True)
    # The smallest expected cell is the group's flagged one: every test here is the exact one.
    assert (sizes * total_k / total_n < EXACT_BELOW).all()
    p = fisher_p(flagged, sizes, total_k - flagged, total_n - sizes, "greater")
    p[total_k[:, 0] == 0] = 1.0  # no flagged image at all: group_vs_rest_p says p = 1
    hits = int((holm(p) < ALPHA).any(axis=1).sum())
    rate = hits / reps
    # If the true rate were alpha, the simulated one would exceed alpha + 2 standard errors
    # (0.060 at 2000 reps) in about 2.5% of seeds; a valid test clears it.
    se = math.sqrt(ALPHA * (1 - ALPHA) / reps)
    assert rate <= ALPHA + 2 * se, (rate, se)


def test_null_simulation_through_group_tests() -> None:
    # A few replicates through the real per-column path (decision, Holm): no group flagged.
    rng = np.random.default_rng(3)
    for _ in range(20):
        sizes = rng.integers(100, 301, size=7)
        flagged = rng.binomial(sizes, 0.015)
        counts = [(str(g), Proportion(int(k), int(n))) for g, (k, n) in enumerate(zip(flagged, sizes))]
        tests = group_tests(counts, StatsSpec(alpha=ALPHA), "greater")
        assert {t.test for t in tests} <= {FISHER, NO_VARIATION}


def test_holm_adjustment_matches_statsmodels_and_skips_empty_groups() -> None:
    counts = [("A", Proportion(9, 100)), ("B", Proportion(2, 120)), ("C", Proportion(0, 0)),
              ("D", Proportion(3, 90))]
    tests = group_tests(counts, StatsSpec(min_n=30), "greater")
    tested = [t for t in tests if t.test]
    assert [t.group for t in tested] == ["A", "B", "D"]
    assert [t.p_adjusted for t in tested] == pytest.approx(
        list(multipletests([t.p_raw for t in tested], method="holm")[1]))
    empty = next(t for t in tests if t.group == "C")
    assert math.isnan(empty.p_adjusted) and empty.flag == "empty"


def test_holm_matches_statsmodels_row_by_row() -> None:
    p = np.random.default_rng(5).uniform(0, 0.2, size=(6, 7))
    p[3, :2] = p[3, 2]  # ties
    expected = [multipletests(row, method="holm")[1] for row in p]
    assert holm(p) == pytest.approx(np.array(expected))


def test_alternative_is_a_pairwise_test_option_only() -> None:
    from pydantic import ValidationError

    from tests.test_metrics_support import probe

    spec = probe(metrics=[{"name": "pairwise_test", "alternative": "two-sided"}])
    assert spec.metrics[0].alternative == "two-sided"
    with pytest.raises(ValidationError, match="'alternative' applies to pairwise_test only"):
        probe(metrics=[{"name": "accuracy", "alternative": "less"}])
