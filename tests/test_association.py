"""Association tests: effect size, permutation p-value, bootstrap interval, Holm, and the demo.

Expected numbers come from hand computations, an exhaustive enumeration written here, scipy's
``permutation_test`` and statsmodels' ``multipletests``, independently of the module under test.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import permutation_test
from statsmodels.stats.multitest import multipletests

from audit.metrics.association import (
    association_scores,
    association_test,
    bootstrap_interval,
    comparison_rows,
    comparisons,
    effect_size,
    holm,
    holm_rows,
    permutation_p,
)
from audit.spec.models import StatsSpec

KEY = {"dataset": "d", "model": "m", "variant": "default"}


def test_scores_are_mean_cosine_to_a_minus_mean_cosine_to_b() -> None:
    images = np.array([[2.0, 0.0], [0.0, 3.0], [1.0, 1.0]])
    a = np.array([[1.0, 0.0]])
    b = np.array([[0.0, 5.0], [1.0, 1.0]])
    # by hand: cos(image, a) - mean(cos(image, b1), cos(image, b2))
    r = 1 / math.sqrt(2)
    expected = [1 - (0 + r) / 2, 0 - (1 + r) / 2, r - (r + 1) / 2]
    np.testing.assert_allclose(association_scores(images, a, b), expected)


def test_effect_size_matches_a_hand_computation() -> None:
    s_x, s_y = np.array([1.0, 2.0, 3.0]), np.array([4.0, 6.0])
    pooled = [1.0, 2.0, 3.0, 4.0, 6.0]
    mean = sum(pooled) / 5
    sd = math.sqrt(sum((v - mean) ** 2 for v in pooled) / 4)  # sample std of X u Y, as in WEAT
    assert effect_size(s_x, s_y) == pytest.approx((2.0 - 5.0) / sd)
    assert math.isnan(effect_size(np.array([1.0]), np.array([1.0])))  # zero spread: undefined
    assert math.isnan(effect_size(np.array([]), s_y))


def _exhaustive(s_x: list[float], s_y: list[float], alternative: str) -> float:
    pooled = s_x + s_y
    observed = sum(s_x) / len(s_x) - sum(s_y) / len(s_y)
    hits = total = 0
    for chosen in itertools.combinations(range(len(pooled)), len(s_x)):
        x = [pooled[i] for i in chosen]
        y = [pooled[i] for i in range(len(pooled)) if i not in chosen]
        stat = sum(x) / len(x) - sum(y) / len(y)
        total += 1
        if alternative == "greater":
            hits += stat >= observed - 1e-12
        elif alternative == "less":
            hits += stat <= observed + 1e-12
        else:
            hits += abs(stat) >= abs(observed) - 1e-12
    return hits / total


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_small_cases_are_exact_and_match_the_exhaustive_distribution(alternative: str) -> None:
    s_x, s_y = [3.0, 5.0, 4.0, 0.7], [1.0, 2.0, 0.5, 2.5, 4.5]
    p, exact = permutation_p(np.array(s_x), np.array(s_y), alternative, 1000, np.random.default_rng(0))  # type: ignore[arg-type]
    assert exact
    assert p == pytest.approx(_exhaustive(s_x, s_y, alternative))
    if alternative != "two-sided":  # scipy doubles the one-sided p; ours counts |difference| >= |observed|
        ref = permutation_test((s_x, s_y), lambda x, y: np.mean(x) - np.mean(y), permutation_type="independent",
                               alternative=alternative, n_resamples=10**6)
        assert p == pytest.approx(ref.pvalue)


def test_large_cases_are_sampled_close_to_scipys_test() -> None:
    rng = np.random.default_rng(1)
    s_x, s_y = rng.normal(0.3, 1, 40), rng.normal(0, 1, 50)
    p, exact = permutation_p(s_x, s_y, "greater", 20_000, np.random.default_rng(2))
    assert not exact
    ref = permutation_test((s_x, s_y), lambda x, y: np.mean(x) - np.mean(y), permutation_type="independent",
                           alternative="greater", n_resamples=20_000, random_state=3)
    assert p == pytest.approx(ref.pvalue, abs=0.01)
    assert p > 0  # (1 + hits) / (1 + draws): never zero


def test_null_simulation_rejects_at_about_alpha() -> None:
    rng = np.random.default_rng(123)
    sims, alpha = 400, 0.05
    rejected = 0
    for _ in range(sims):
        s = rng.normal(size=40)  # no planted difference
        p, _ = permutation_p(s[:20], s[20:], "greater", 200, rng)
        rejected += p < alpha
    # a binomial(400, 0.05) lands in [8, 34] with probability > 0.999
    assert 8 <= rejected <= 34, rejected / sims


def test_bootstrap_interval_covers_the_estimate_and_is_seeded() -> None:
    rng = np.random.default_rng(5)
    s_x, s_y = rng.normal(1, 1, 60), rng.normal(0, 1, 80)
    d = effect_size(s_x, s_y)
    low, high = bootstrap_interval(s_x, s_y, 2000, 0.05, np.random.default_rng(0))
    assert low < d < high
    assert (low, high) == bootstrap_interval(s_x, s_y, 2000, 0.05, np.random.default_rng(0))
    assert all(math.isnan(v) for v in bootstrap_interval(s_x, s_y, 0, 0.05, np.random.default_rng(0)))


def test_holm_matches_statsmodels_and_keeps_nan() -> None:
    raw = [0.01, 0.04, float("nan"), 0.03]
    expected = multipletests([0.01, 0.04, 0.03], method="holm")[1]
    out = holm(raw)
    assert math.isnan(out[2])
    np.testing.assert_allclose([out[0], out[1], out[3]], expected)


def test_each_group_against_the_rest_leaves_missing_groups_out() -> None:
    groups = pd.Series(["a", "b", None, "a", "c"])
    found = {label: (list(x), list(y)) for label, x, y in comparisons(groups, ["a", "b", "c"], None)}
    assert found["a"] == ([True, False, False, True, False], [False, True, False, False, True])
    (label, x, y), = comparisons(groups, ["a", "b", "c"], ("b", "c"))
    assert label == "b vs c" and list(x) == [False, True, False, False, False] and y.sum() == 1


def test_rows_carry_effect_size_interval_and_holm_adjusted_p() -> None:
    rng = np.random.default_rng(9)
    groups = pd.Series(["p"] * 40 + ["q"] * 40 + ["r"] * 40)
    scores = np.concatenate([rng.normal(1.0, 1, 40), rng.normal(0, 1, 40), rng.normal(0, 1, 40)])
    stats = StatsSpec(alpha=0.05, min_n=30, n_bootstrap=500)
    rows = comparison_rows(scores, groups, ["p", "q", "r"], name="t", group_col="g", named=None,
                           alternative="greater", n_permutations=2000, stats=stats,
                           rng=np.random.default_rng(0), key=KEY)
    adjusted = holm_rows(rows)
    by_group = {r.group: r for r in adjusted}
    mask = (groups == "p").to_numpy()
    assert by_group["p"].value == pytest.approx(effect_size(scores[mask], scores[~mask]))
    assert by_group["p"].n == 40 and by_group["p"].metric == "association_test" and by_group["p"].category == "t"
    assert by_group["p"].p_value < 0.05 < by_group["q"].p_value
    np.testing.assert_allclose([r.p_value for r in adjusted], multipletests([r.p_value for r in rows], method="holm")[1])
    small = comparison_rows(scores[:50], groups[:50], ["p", "q"], name="t", group_col="g", named=None,
                            alternative="greater", n_permutations=200, stats=stats,
                            rng=np.random.default_rng(0), key=KEY)
    assert [r.flag for r in small] == ["small_n", "small_n"]  # q has 10 images


def test_association_test_bundles_the_parts() -> None:
    res = association_test(np.array([2.0, 3.0, 4.0]), np.array([0.0, 1.0, 1.5]), alternative="greater",
                           n_bootstrap=100, rng=np.random.default_rng(0))
    assert res.exact and res.n_x == 3 and res.n_y == 3
    assert res.p_value == pytest.approx(_exhaustive([2.0, 3.0, 4.0], [0.0, 1.0, 1.5], "greater"))
