"""Retrieval-bias metrics against hand-computed values, the formulas' bounds, a naive
resample-and-re-rank bootstrap, and a planted bias."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audit.metrics.base import percentile_interval
from audit.metrics.retrieval import (
    FLAG_ABSENT, FLAG_K_EXCEEDS_N, MEAN, _LOOP_GROUPS, desired_distribution, max_skew_at_k,
    min_skew_at_k, ndkl, rank_images, retrieval_metrics, skew_at_k,
)
from audit.results import METRIC_COLUMNS
from audit.spec.load import load_label_set
from tests.conftest import LABEL_SETS

UNIFORM3 = {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}
HALF = {"a": 0.5, "b": 0.5}
LN = math.log


def _z(k: int) -> float:
    return sum(1 / math.log2(i + 1) for i in range(1, k + 1))


def _run(image_emb: np.ndarray, groups: pd.DataFrame, query_emb: np.ndarray, ks: list[int], *,
         queries: list[str] | None = None, desired: str = "uniform", n_bootstrap: int = 0,
         seed: int = 0) -> pd.DataFrame:
    queries = queries or [f"q{i}" for i in range(len(query_emb))]
    return retrieval_metrics(image_emb, groups, query_emb, queries, ks, desired, n_bootstrap,
                             np.random.default_rng(seed), "ds", "m", "default")


def _one(frame: pd.DataFrame, metric: str, category: str = "q0", group_col: str | None = None,
         group: str | None = None) -> pd.Series:
    sel = (frame.metric == metric) & (frame.category == category)
    if group_col is not None:
        sel &= frame.group_col == group_col
    if group is not None:
        sel &= frame.group == group
    rows = frame[sel]
    assert len(rows) == 1, rows
    return rows.iloc[0]


# --------------------------------------------------------------------------- single rankings


def test_skew_hand_values_with_absent_groups() -> None:
    ranked = ["a", "a", "b", "a", "c"]
    at2 = skew_at_k(ranked, UNIFORM3, 2)
    assert at2["a"] == pytest.approx(LN(3))  # share 1 against 1/3
    assert at2["b"] == -math.inf and at2["c"] == -math.inf  # absent from the top 2: ln 0
    at4 = skew_at_k(ranked, UNIFORM3, 4)
    assert at4.to_dict() == pytest.approx({"a": LN(9 / 4), "b": LN(3 / 4), "c": -math.inf})
    assert max_skew_at_k(ranked, UNIFORM3, 2) == pytest.approx(LN(3))
    assert max_skew_at_k(ranked, UNIFORM3, 4) == pytest.approx(LN(9 / 4))
    assert min_skew_at_k(ranked, UNIFORM3, 2) == -math.inf
    assert min_skew_at_k(ranked, UNIFORM3, 5) == pytest.approx(LN(3 / 5))
    # Against a marginal: a is 3/5 of the images, so an all-a top 2 has skew ln(5/3).
    assert max_skew_at_k(ranked, {"a": 0.6, "b": 0.2, "c": 0.2}, 2) == pytest.approx(LN(5 / 3))


def test_ndkl_hand_values() -> None:
    # Prefix 1 = (1, 0): KL = ln 2; prefix 2 = (1/2, 1/2): KL = 0.
    assert ndkl(["a", "b"], HALF, 2) == pytest.approx(LN(2) / _z(2))
    # a b a b: prefixes (1,0), (1/2,1/2), (2/3,1/3), (1/2,1/2).
    kl3 = 2 / 3 * LN(4 / 3) + 1 / 3 * LN(2 / 3)
    assert ndkl(["a", "b", "a", "b"], HALF, 4) == pytest.approx(
        (LN(2) / 1 + kl3 / math.log2(4)) / _z(4))
    # All a against uniform over three: every prefix has KL = ln 3.
    assert ndkl(["a"] * 6, UNIFORM3, 6) == pytest.approx(LN(3))
    assert ndkl(["a", "a", "b"], HALF, 1) == pytest.approx(LN(2))


def test_k_larger_than_the_ranking_uses_all_of_it() -> None:
    ranked = ["b", "a", "a", "c"]
    assert skew_at_k(ranked, UNIFORM3, 10).equals(skew_at_k(ranked, UNIFORM3, 4))
    assert ndkl(ranked, UNIFORM3, 10) == ndkl(ranked, UNIFORM3, 4)
    assert max_skew_at_k(ranked, UNIFORM3, 100) == pytest.approx(LN(2 / 4 * 3))


def test_ndkl_is_zero_when_every_prefix_matches_the_desired_distribution() -> None:
    assert ndkl(["a"] * 50, {"a": 1.0}, 50) == 0.0
    assert max_skew_at_k(["a"] * 5, {"a": 1.0}, 3) == 0.0
    # Through the vectorized engine as well: one group, any embeddings.
    rng = np.random.default_rng(0)
    frame = _run(rng.normal(size=(40, 5)), pd.DataFrame({"g": ["x"] * 40}), rng.normal(size=(2, 5)),
                 [1, 7, 40])
    assert (frame.loc[frame.metric.str.startswith("ndkl"), "value"].abs() < 1e-12).all()
    assert (frame.loc[frame.metric.str.startswith("max_skew"), "value"].abs() < 1e-12).all()


@pytest.mark.parametrize("mode", ["uniform", "marginal"])
def test_bounds_on_random_rankings(mode: str) -> None:
    rng = np.random.default_rng(1)
    for _ in range(200):
        n, g = int(rng.integers(1, 40)), int(rng.integers(1, 5))
        ranked = [f"g{v}" for v in rng.integers(0, g, n)]
        desired = desired_distribution(ranked, mode)
        k = int(rng.integers(1, 50))
        assert ndkl(ranked, desired, k) >= 0
        assert max_skew_at_k(ranked, desired, k) >= 0
        assert min_skew_at_k(ranked, desired, k) <= 0


def test_desired_distribution() -> None:
    groups = pd.Series(["b", "a", "b", "c", "b", "a"])
    assert desired_distribution(groups).to_dict() == pytest.approx({"a": 1 / 3, "b": 1 / 3, "c": 1 / 3})
    marginal = desired_distribution(groups, "marginal")
    assert list(marginal.index) == ["a", "b", "c"]
    assert marginal.to_dict() == pytest.approx({"a": 2 / 6, "b": 3 / 6, "c": 1 / 6})
    # A categorical keeps its level order and leaves out levels nobody has.
    cat = pd.Series(pd.Categorical(["Male", "Female", "Male"], categories=["Male", "Female", "Other"]))
    assert list(desired_distribution(cat).index) == ["Male", "Female"]
    with pytest.raises(ValueError, match="desired must be one of"):
        desired_distribution(groups, "equal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="missing values"):
        desired_distribution(pd.Series(["a", None]))
    with pytest.raises(ValueError, match="positive and sum to 1"):
        skew_at_k(["a"], {"a": 0.5}, 1)
    with pytest.raises(ValueError, match="not in the desired distribution"):
        skew_at_k(["a", "z"], {"a": 1.0}, 2)


def test_rank_images_is_cosine_with_ties_to_the_lower_index() -> None:
    images = np.array([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [1.0, 1.0], [5.0, 0.0]])
    order = rank_images(images, np.array([[3.0, 0.0], [0.0, 1.0]]))
    # Rows 0, 2, 4 are the same direction (cosine 1): tie, kept in index order.
    assert order.tolist() == [[0, 2, 4, 3, 1], [1, 3, 0, 2, 4]]
    with pytest.raises(ValueError, match="expected image_emb"):
        rank_images(images, np.ones((1, 3)))


# --------------------------------------------------------------------------- the engine


def _world(n: int = 60, seed: int = 3) -> tuple[np.ndarray, pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    images = rng.normal(size=(n, 4)).round(0)  # coarse values: many exact ties in similarity
    groups = pd.DataFrame({"race": rng.choice(["A", "B", "C"], n, p=[0.5, 0.3, 0.2]),
                           "gender": rng.choice(["F", "M"], n)})
    return images, groups, rng.normal(size=(3, 4))


@pytest.mark.parametrize("mode", ["uniform", "marginal"])
def test_point_estimates_match_the_reference_functions(mode: str) -> None:
    images, groups, queries = _world()
    ks = [1, 5, 20, 100]
    frame = _run(images, groups, queries, ks, desired=mode)
    assert list(frame.columns) == list(METRIC_COLUMNS)
    # per group column: ks x (3 queries + mean) x (max, min, ndkl, one skew per group)
    assert len(frame) == len(ks) * 4 * (3 + 3) + len(ks) * 4 * (3 + 2)
    order = rank_images(images, queries)
    for col in groups.columns:
        desired = desired_distribution(groups[col], mode)
        for q in range(3):
            ranked = groups[col].to_numpy()[order[q]]
            for k in ks:
                skews = skew_at_k(ranked, desired, k)
                top = _one(frame, f"max_skew@{k}", f"q{q}", col)
                assert top.value == pytest.approx(skews.max()) and top.group == skews.idxmax()
                low = _one(frame, f"min_skew@{k}", f"q{q}", col)
                assert low.value == pytest.approx(skews.min()) and low.group == skews.idxmin()
                assert _one(frame, f"ndkl@{k}", f"q{q}", col, "all").value == pytest.approx(
                    ndkl(ranked, desired, k))
                for group, value in skews.items():
                    assert _one(frame, f"skew@{k}", f"q{q}", col, group).value == pytest.approx(value)
    assert (frame.n == 60).all() and frame.p_value.isna().all() and frame.ci_low.isna().all()


def test_mean_rows_average_the_queries() -> None:
    images, groups, queries = _world()
    frame = _run(images, groups, queries, [10])
    for metric in ("max_skew@10", "min_skew@10", "ndkl@10"):
        per_query = frame[(frame.metric == metric) & (frame.group_col == "race") & (frame.category != MEAN)]
        mean = _one(frame, metric, MEAN, "race")
        assert mean.value == pytest.approx(per_query.value.mean()) and mean.group == "all"
    per_query = frame[(frame.metric == "skew@10") & (frame.group == "C") & (frame.category != MEAN)]
    assert _one(frame, "skew@10", MEAN, "race", "C").value == pytest.approx(per_query.value.mean())


def test_ties_in_similarity_break_toward_the_lower_row_index() -> None:
    images = np.ones((4, 3))  # every image has the same similarity to the query
    groups = pd.DataFrame({"g": ["b", "a", "a", "b"]})
    frame = _run(images, groups, np.array([[1.0, 0.0, 0.0]]), [1, 2, 3])
    top1 = _one(frame, "max_skew@1")
    assert (top1.group, top1.value) == ("b", pytest.approx(LN(2)))  # row 0 (b) ranks first
    low = _one(frame, "min_skew@1")
    assert (low.group, low.value, low.flag) == ("a", -math.inf, FLAG_ABSENT)
    assert _one(frame, "skew@1", group="a").flag == FLAG_ABSENT
    assert _one(frame, "max_skew@3").group == "a"  # b a a: a has 2/3
    assert _one(frame, "ndkl@2").value == pytest.approx(LN(2) / _z(2))  # b, a


def test_k_larger_than_the_dataset_uses_all_images_and_is_flagged() -> None:
    images, groups, queries = _world(n=8)
    frame = _run(images, groups, queries, [3, 8, 50])
    big = frame[frame.metric.str.endswith("@50")]
    assert (big.flag == FLAG_K_EXCEEDS_N).all() and (big.n == 8).all()
    assert (frame[frame.metric.str.endswith("@3") | frame.metric.str.endswith("@8")].flag
            != FLAG_K_EXCEEDS_N).all()
    at_n = frame[frame.metric.str.endswith("@8")].value.to_numpy()
    np.testing.assert_allclose(big.value.to_numpy(), at_n)
    # All images are in: every group is present, max skew against the marginal is 0.
    marginal = _run(images, groups, queries, [50], desired="marginal")
    assert marginal[marginal.metric == "max_skew@50"].value.abs().max() < 1e-12


@pytest.mark.parametrize("mode, expected", [("uniform", LN(3)), ("marginal", LN(90 / 20))])
def test_planted_bias_gives_max_skew_of_one_over_the_desired_share(mode: str, expected: float) -> None:
    rng = np.random.default_rng(5)
    sizes = {"A": 20, "B": 30, "C": 40}
    labels = rng.permutation(np.repeat(list(sizes), list(sizes.values())))
    groups = pd.DataFrame({"race": labels})
    # A images point along the query (first axis), the others along the second axis.
    images = np.eye(8)[np.where(labels == "A", 0, 1)] + rng.normal(scale=0.1, size=(90, 8))
    query = np.eye(8)[:1]
    frame = _run(images, groups, query, [1, 5, 20, 90], desired=mode, n_bootstrap=200)
    for k in (1, 5, 20):  # k <= size of A: the top k is all A
        row = _one(frame, f"max_skew@{k}")
        assert (row.group, row.value) == ("A", pytest.approx(expected))
        assert row.ci_low <= row.value <= row.ci_high
        assert _one(frame, f"ndkl@{k}").value > 0.5
    assert _one(frame, "max_skew@1").ci_low == pytest.approx(expected)  # A is first in every resample
    assert _one(frame, "min_skew@5").value == -math.inf
    assert _one(frame, "max_skew@90").value < expected  # everyone is in: A's share is 20/90


def test_bootstrap_matches_a_naive_resample_and_rerank() -> None:
    images, groups, queries = _world()
    n, b, alpha = 60, 40, 0.1
    frame = retrieval_metrics(images, groups, queries, ["x", "y", "z"], [3, 20], "uniform", b,
                              np.random.default_rng(11), "ds", "m", "default", alpha=alpha)
    # Mirrors the documented draw: resample r is rng.integers(0, n, size=(b, n))[r] (one chunk).
    draws = np.random.default_rng(11).integers(0, n, size=(b, n))
    unit_q = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    unit_i = images / np.maximum(np.linalg.norm(images, axis=1, keepdims=True), 1e-12)
    scores = unit_q @ unit_i.T
    desired = desired_distribution(groups.race)
    for q, text in enumerate(["x", "y", "z"]):
        for k in (3, 20):
            samples: dict[str, list[float]] = {"max_skew": [], "ndkl": [], "skew_C": []}
            for r in range(b):
                drawn = np.sort(draws[r])  # ties then break by original row index
                ranked = groups.race.to_numpy()[drawn[np.argsort(-scores[q, drawn], kind="stable")]]
                samples["max_skew"].append(max_skew_at_k(ranked, desired, k))
                samples["ndkl"].append(ndkl(ranked, desired, k))
                samples["skew_C"].append(skew_at_k(ranked, desired, k)["C"])
            for key, metric, group, bounds in (
                ("max_skew", f"max_skew@{k}", None, (0, LN(3))),
                ("ndkl", f"ndkl@{k}", None, (0, math.inf)),
                ("skew_C", f"skew@{k}", "C", (-math.inf, LN(3))),
            ):
                row = _one(frame, metric, text, "race", group)
                s = np.array(samples[key])
                low, high = percentile_interval(s, alpha)
                shift = np.median(s) - row.value
                if np.isfinite(shift):
                    low, high = low - shift, high - shift
                assert row.ci_low == pytest.approx(np.clip(low, *bounds))
                assert row.ci_high == pytest.approx(np.clip(high, *bounds))


def test_many_groups_take_the_sorting_path() -> None:
    rng = np.random.default_rng(8)
    n_groups = _LOOP_GROUPS + 4
    groups = pd.DataFrame({"g": [f"g{v:02d}" for v in rng.integers(0, n_groups, 300)]})
    images, queries = rng.normal(size=(300, 6)), rng.normal(size=(2, 6))
    frame = _run(images, groups, queries, [10, 150], n_bootstrap=30)
    order = rank_images(images, queries)
    desired = desired_distribution(groups.g)
    for q in range(2):
        ranked = groups.g.to_numpy()[order[q]]
        for k in (10, 150):
            assert _one(frame, f"ndkl@{k}", f"q{q}").value == pytest.approx(ndkl(ranked, desired, k))
            assert _one(frame, f"max_skew@{k}", f"q{q}").value == pytest.approx(
                max_skew_at_k(ranked, desired, k))


def test_bootstrap_is_deterministic_given_the_seed() -> None:
    images, groups, queries = _world()
    first = _run(images, groups, queries, [5, 30], n_bootstrap=100, seed=42)
    again = _run(images, groups, queries, [5, 30], n_bootstrap=100, seed=42)
    pd.testing.assert_frame_equal(first, again)
    other = _run(images, groups, queries, [5, 30], n_bootstrap=100, seed=43)
    pd.testing.assert_frame_equal(first.drop(columns=["ci_low", "ci_high"]),
                                  other.drop(columns=["ci_low", "ci_high"]))
    assert not first.ci_high.equals(other.ci_high)
    finite = first[np.isfinite(first.value)]
    assert ((finite.ci_low <= finite.value + 1e-12) | finite.ci_low.isna()).all()


def test_input_problems_are_reported_together() -> None:
    images, groups, queries = _world()
    with pytest.raises(ValueError) as err:
        retrieval_metrics(images, groups.iloc[:10], queries, ["x", "x"], [0, 5], "equal", 10,
                          np.random.default_rng(0), "ds", "m", "default")
    text = str(err.value)
    for part in ("2 queries for 3 query embeddings", "query texts must be unique",
                 "groups must have one row per image (60)", "ks must be distinct positive integers",
                 "desired must be one of ('uniform', 'marginal')"):
        assert part in text
    with pytest.raises(ValueError, match=r"group columns \['race'\] have missing values"):
        _run(images, groups.assign(race=groups.race.where(groups.index > 0)), queries, [5])


def test_retrieval_query_sets_load_as_label_sets() -> None:
    adjectives = load_label_set(LABEL_SETS / "retrieval_adjectives.yaml")
    texts = [label.text for label in adjectives.labels]
    assert {"good", "evil", "trustworthy", "untrustworthy", "hard-working", "lazy"} <= set(texts)
    assert {label.category for label in adjectives.labels} == {"positive", "negative"}
    assert len(texts) % 2 == 0
    for name in ("crime.yaml", "non_human.yaml"):
        assert load_label_set(Path(LABEL_SETS) / name).labels


@pytest.mark.slow
def test_ten_thousand_images_thirty_queries_thousand_resamples_in_seconds() -> None:
    rng = np.random.default_rng(0)
    images, queries = rng.normal(size=(10_000, 32)), rng.normal(size=(30, 32))
    groups = pd.DataFrame({"race": rng.choice(list("ABCDEFG"), 10_000)})
    start = time.perf_counter()
    frame = _run(images, groups, queries, [10, 100, 1000], n_bootstrap=1000)
    assert time.perf_counter() - start < 60
    assert len(frame) == 3 * 31 * (3 + 7)
