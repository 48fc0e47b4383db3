"""Fairness metrics against hand-made masks and direct statsmodels/scipy computations."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency, fisher_exact
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)

from audit.metrics import compute_metrics, moved_labels
from audit.results import FLAG_EMPTY, FLAG_SMALL_N, FLAG_UNDEFINED
from tests.test_metrics_support import (
    CATEGORY,
    GENDER,
    RACE,
    predictions,
    probe,
    row,
    simulated,
)

HAND = pd.DataFrame({"race": RACE, "gender": GENDER, "category": CATEGORY})


def _run(frame: pd.DataFrame, *metrics: str, seed: int = 0, **spec: object) -> pd.DataFrame:
    return compute_metrics(frame, probe(metrics=list(metrics), **spec), np.random.default_rng(seed))


def _hand_mask(group_col: str, group: str) -> pd.Series:
    if group_col == "overall":
        return pd.Series(True, index=HAND.index)
    cols = group_col.split(" x ")
    return pd.concat([HAND[c] == v for c, v in zip(cols, group.split(" x "))], axis=1).all(axis=1)


def test_category_rate_matches_hand_masks_and_wilson() -> None:
    result = _run(predictions(), "category_rate")
    assert len(result) == 2 * (1 + 3 + 2 + 6)  # two categories x (overall, races, genders, pairs)
    for _, r in result.iterrows():
        mask = _hand_mask(r.group_col, r.group)
        hit = HAND["category"].isin(r.category.split("|"))
        k, n = int((mask & hit).sum()), int(mask.sum())
        assert r.n == n
        if n == 0:
            assert math.isnan(r.value) and r.flag == FLAG_EMPTY
            continue
        assert r.value == pytest.approx(k / n)
        assert (r.ci_low, r.ci_high) == pytest.approx(proportion_confint(k, n, alpha=0.05, method="wilson"))
        assert r.flag == (FLAG_SMALL_N if n < 3 else "")


def test_rate_flags_empty_and_small_groups() -> None:
    result = _run(predictions(), "category_rate")
    empty = row(result, category="crime", group="East Asian x Male")
    assert empty.n == 0 and empty.flag == FLAG_EMPTY and math.isnan(empty.ci_low)
    assert row(result, category="crime", group="East Asian").flag == FLAG_SMALL_N
    assert row(result, category="crime", group="Black").flag == ""
    assert row(result, category="crime|non_human", group="all").value == pytest.approx(5 / 11)


def test_disparity_matches_hand_computation() -> None:
    result = _run(predictions(), "disparity")
    # race, n >= 3: Black 2/4 crime, White 1/5 (East Asian, n = 2, is left out).
    ratio = row(result, metric="disparity_ratio", category="crime", group_col="race")
    diff = row(result, metric="disparity_difference", category="crime", group_col="race")
    assert ratio.value == pytest.approx((2 / 4) / (1 / 5)) and ratio.group == "Black / White"
    assert diff.value == pytest.approx(2 / 4 - 1 / 5) and diff.group == "Black / White"
    assert ratio.n == diff.n == 4  # the smaller extreme group
    assert ratio.ci_low <= ratio.value <= ratio.ci_high
    assert "overall" not in set(result.group_col)


def test_disparity_zero_minimum_and_too_few_groups() -> None:
    category = ["crime"] * 3 + ["race_gender"] * 8  # White and East Asian: rate 0
    result = _run(predictions(category), "disparity", categories=["crime", "non_human"])
    ratio = row(result, metric="disparity_ratio", category="crime", group_col="race")
    # No inf ratio (nor an inf band): NaN, flagged undefined.
    assert ratio.flag == FLAG_UNDEFINED and math.isnan(ratio.value)
    assert math.isnan(ratio.ci_low) and math.isnan(ratio.ci_high)
    assert row(result, metric="disparity_difference", category="crime", group_col="race").flag == ""
    nothing = row(result, metric="disparity_ratio", category="non_human", group_col="race")
    assert math.isnan(nothing.value) and nothing.flag == FLAG_UNDEFINED  # 0 / 0
    assert nothing.group == "Black / White"  # a tie still names two groups
    # race x gender: only White x Female (3) reaches min_n = 3.
    few = row(result, metric="disparity_ratio", category="crime", group_col="race x gender")
    assert few.flag == FLAG_SMALL_N and math.isnan(few.value)
    assert few.n == 2  # the second-largest intersection, the one short of min_n


def test_disparity_bootstrap_is_deterministic_per_seed() -> None:
    frame = simulated({"Black": 0.3, "White": 0.2, "East Asian": 0.1}, 50, np.random.default_rng(3))
    a, b, c = (_run(frame, "disparity", seed=s) for s in (5, 5, 6))
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["ci_low"], c["ci_low"], equal_nan=True)


def test_disparity_difference_interval_agrees_with_wald_for_two_large_groups() -> None:
    frame = simulated({"Black": 0.30, "White": 0.15}, 2000, np.random.default_rng(1))
    result = _run(frame, "disparity", stats={"n_bootstrap": 2000, "min_n": 30})
    diff = row(result, metric="disparity_difference", category="crime", group_col="race")
    k1 = int(((frame.race == "Black") & (frame.top1_category == "crime")).sum())
    k2 = int(((frame.race == "White") & (frame.top1_category == "crime")).sum())
    wald = confint_proportions_2indep(k1, 2000, k2, 2000, method="wald", compare="diff")
    assert (diff.ci_low, diff.ci_high) == pytest.approx(wald, abs=0.006)


def test_independence_test_is_scipy_chi_square_on_the_hand_table() -> None:
    result = _run(predictions(), "independence_test")
    r = row(result, category="crime|non_human", group_col="race")
    # Black 3 of 4 flagged, White 2 of 5 (East Asian below min_n).
    expected = chi2_contingency([[3, 1], [2, 3]], correction=False)
    assert (r.value, r.p_value, r.n) == (pytest.approx(expected.statistic), pytest.approx(expected.pvalue), 9)
    no_hits = _run(predictions(["race_gender"] * 11), "independence_test")
    assert (row(no_hits, category="crime", group_col="race")[["value", "p_value"]] == [0.0, 1.0]).all()


def _expected_pairwise_p(k1: int, n1: int, k2: int, n2: int, alternative: str) -> float:
    """Independent computation: Fisher's exact test (scipy) below 10 expected, else the z-test."""
    n, k = n1 + n2, k1 + k2
    if min(r * c / n for r in (n1, n2) for c in (k, n - k)) < 10:
        return fisher_exact([[k1, n1 - k1], [k2, n2 - k2]], alternative=alternative).pvalue
    sm = {"greater": "larger", "less": "smaller", "two-sided": "two-sided"}[alternative]
    return proportions_ztest([k1, k2], [n1, n2], alternative=sm)[1]


@pytest.mark.parametrize(("size", "alternative"), [(40, None), (40, "two-sided"), (400, None), (400, "less")])
def test_pairwise_test_matches_statsmodels_with_holm(size: int, alternative: str | None) -> None:
    frame = simulated({"Black": 0.35, "White": 0.2, "East Asian": 0.15}, size, np.random.default_rng(2))
    metric: object = "pairwise_test" if alternative is None else {"name": "pairwise_test", "alternative": alternative}
    result = _run(frame, metric)  # type: ignore[arg-type]
    rows = result[(result.category == "crime") & (result.group_col == "race")].set_index("group")
    hit = frame.top1_category == "crime"
    raw = {}
    for group in rows.index:
        mask = frame.race == group
        k1, n1 = int((hit & mask).sum()), int(mask.sum())
        k2, n2 = int((hit & ~mask).sum()), int((~mask).sum())
        raw[group] = _expected_pairwise_p(k1, n1, k2, n2, alternative or "greater")
        assert rows.loc[group, "value"] == pytest.approx(k1 / n1 - k2 / n2)
        ci = confint_proportions_2indep(k1, n1, k2, n2, method="newcomb", compare="diff")
        assert (rows.loc[group, "ci_low"], rows.loc[group, "ci_high"]) == pytest.approx(ci)
    adjusted = multipletests(list(raw.values()), method="holm")[1]
    assert list(rows.loc[list(raw), "p_value"]) == pytest.approx(list(adjusted))


def test_pairwise_flags_empty_group_and_leaves_it_out_of_holm() -> None:
    result = _run(predictions(), "pairwise_test")
    empty = row(result, category="crime", group="East Asian x Male")
    assert empty.flag == FLAG_EMPTY and math.isnan(empty.p_value)
    tested = result[(result.category == "crime") & (result.group_col == "race x gender") & (result.n > 0)]
    assert tested["p_value"].notna().all() and len(tested) == 5


def test_planted_bias_is_found() -> None:
    frame = simulated({"Black": 0.30, "White": 0.10, "East Asian": 0.10}, 400, np.random.default_rng(11))
    result = _run(frame, "category_rate", "pairwise_test", "independence_test", stats={"min_n": 30})
    rate = row(result, metric="category_rate", category="crime", group="Black")
    assert rate.ci_low <= 0.30 <= rate.ci_high
    assert row(result, metric="category_rate", category="crime", group="White").ci_high < 0.30
    assert row(result, metric="pairwise_test", category="crime", group="Black").p_value < 1e-6
    assert row(result, metric="independence_test", category="crime", group_col="race").p_value < 1e-6


def test_null_false_positive_rate_is_near_alpha() -> None:
    # 400 simulated models with no planted difference, computed in one call (one cell each).
    rng = np.random.default_rng(2024)
    rates = {"Black": 0.2, "White": 0.2, "East Asian": 0.2}
    frame = pd.concat([simulated(rates, 60, rng, model=f"sim{i}") for i in range(400)], ignore_index=True)
    spec = probe(metrics=["independence_test"], categories=["crime"], stats={"min_n": 30},
                 dataset={"subgroups": ["race"], "intersections": []})
    result = compute_metrics(frame, spec, np.random.default_rng(0))
    assert len(result) == 400
    assert 0.02 <= (result["p_value"] < 0.05).mean() <= 0.09


def _variants(base: list[str], compare: list[str]) -> pd.DataFrame:
    shuffled = predictions(compare[::-1], race=RACE[::-1], gender=GENDER[::-1], variant="strict",
                           image_id=range(len(RACE) - 1, -1, -1))  # pairing must not rely on row order
    return pd.concat([predictions(base), shuffled], ignore_index=True)


def test_variant_change_pairs_images_and_matches_hand_mcnemar() -> None:
    compare = ["race_gender", "race_gender", "crime", "crime", "crime", "race_gender", "race_gender",
               "crime", "non_human", "race_gender", "crime"]
    spec = {"variants": {"default": {}, "strict": {}}}
    result = _run(_variants(CATEGORY, compare), "variant_change", **spec)
    assert set(result.variant) == {"strict"}
    r = row(result, category="crime", group="all")
    b = np.isin(CATEGORY, ["crime"])
    c = np.isin(compare, ["crime"])
    base_only, compare_only = int((b & ~c).sum()), int((~b & c).sum())
    assert r.value == pytest.approx(c.mean() - b.mean())
    assert r.ci_low <= r.value <= r.ci_high
    from scipy.stats import binom

    expected_p = min(1.0, 2 * binom.cdf(min(base_only, compare_only), base_only + compare_only, 0.5))
    assert r.p_value == pytest.approx(expected_p)
    black = row(result, category="crime", group="Black")
    mask = np.array(RACE) == "Black"
    assert black.n == 4 and black.value == pytest.approx(c[mask].mean() - b[mask].mean())


def test_moved_labels_counts_where_flagged_images_went() -> None:
    compare = ["race_gender"] * 2 + ["non_human"] + CATEGORY[3:]
    table = moved_labels(_variants(CATEGORY, compare), "default", "strict", "crime")
    got = {(r.from_label, r.to_label): (r.n, r.share) for r in table.itertuples()}
    assert got == {
        ("crime_label", "race_gender_label"): (1, pytest.approx(1 / 3)),
        ("crime_label", "non_human_label"): (1, pytest.approx(1 / 3)),
        ("crime_label", "crime_label"): (1, pytest.approx(1 / 3)),
    }


def test_template_sensitivity_is_the_rate_per_template() -> None:
    a = predictions().assign(template="a photo of a {}.")
    b = predictions(["crime"] * 11).assign(template="a {}")
    spec = probe(metrics=["template_sensitivity"])
    by_template = pd.concat([a, b], ignore_index=True)
    result = compute_metrics(a, spec, np.random.default_rng(0), by_template=by_template)
    crime = result[result.category == "crime"].set_index("group")
    assert set(result.group_col) == {"template"}
    assert crime.loc["a photo of a {}.", "value"] == pytest.approx(3 / 11)
    assert crime.loc["a {}", "value"] == pytest.approx(1.0)
    assert (crime.loc["a {}", "ci_low"], crime.loc["a {}", "ci_high"]) == pytest.approx(
        proportion_confint(11, 11, method="wilson"))
    # A probe with a single template has no per-template frame: nothing to compare.
    assert compute_metrics(a, spec, np.random.default_rng(0)).empty
