"""Accuracy metrics against hand-made masks and hand-computed per-class recalls."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.proportion import proportion_confint

from audit.metrics import compute_metrics
from audit.results import FLAG_EMPTY
from tests.test_metrics_support import RACE, predictions, probe, row

#: Target (gender classification) and top-1 correctness of the 11 hand-made images; the last
#: image has no target, so its correctness is NA and it counts nowhere.
TARGET = ["F", "M", "F", "M", "F", "M", "F", "M", "F", "F", None]
CORRECT = [True, False, True, True, False, True, True, False, True, False, None]
TOP5 = [True, True, True, True, False, True, True, True, True, True, None]


def _frame() -> pd.DataFrame:
    return predictions(target=TARGET, correct=CORRECT, top5_correct=TOP5)


def _run(*metrics: str, frame: pd.DataFrame | None = None, seed: int = 0) -> pd.DataFrame:
    spec = probe(metrics=list(metrics), dataset={"target": "gender"})
    return compute_metrics(_frame() if frame is None else frame, spec, np.random.default_rng(seed))


@pytest.mark.parametrize(("metric", "column"), [("accuracy", CORRECT), ("top5_accuracy", TOP5)])
def test_hit_rates_match_hand_masks_and_wilson(metric: str, column: list[bool | None]) -> None:
    result = _run(metric)
    for race in ("Black", "White", "all"):
        mask = [r == race or race == "all" for r in RACE]
        kept = [c for m, c in zip(mask, column) if m and c is not None]
        r = row(result, group=race)
        assert r.n == len(kept) and r.value == pytest.approx(sum(kept) / len(kept))
        wilson = proportion_confint(sum(kept), len(kept), method="wilson")
        assert (r.ci_low, r.ci_high) == pytest.approx(wilson)
    assert row(result, group="East Asian x Male").flag == FLAG_EMPTY


def _hand_balanced(mask: list[bool]) -> float:
    recalls = []
    for cls in ("F", "M"):
        hits = [c for m, t, c in zip(mask, TARGET, CORRECT) if m and t == cls]
        if hits:
            recalls.append(sum(hits) / len(hits))
    return sum(recalls) / len(recalls)


@pytest.mark.parametrize("metric", ["balanced_accuracy", "mean_per_class_recall"])
def test_mean_per_class_recall_matches_hand(metric: str) -> None:
    result = _run(metric)
    for race in ("Black", "White", "East Asian", "all"):
        mask = [r == race or race == "all" for r in RACE]
        r = row(result, group=race)
        assert r.value == pytest.approx(_hand_balanced(mask))
        assert r.n == sum(m and t is not None for m, t in zip(mask, TARGET))
    # Overall: F recall 4/6, M recall 2/4.
    assert row(result, group="all").value == pytest.approx((4 / 6 + 2 / 4) / 2)
    empty = row(result, group="East Asian x Male")
    assert empty.flag == FLAG_EMPTY and math.isnan(empty.value)


def test_balanced_accuracy_bootstrap_is_deterministic_and_covers_the_estimate() -> None:
    rng = np.random.default_rng(4)
    n = 600
    target = rng.choice(["a", "b", "c"], n)
    correct = rng.random(n) < np.select([target == "a", target == "b"], [0.9, 0.6], 0.3)
    frame = predictions(["class"] * n, race=rng.choice(["Black", "White"], n), gender=["Female"] * n,
                        target=target, correct=correct, top5_correct=correct)
    a, b = _run("balanced_accuracy", frame=frame, seed=1), _run("balanced_accuracy", frame=frame, seed=1)
    pd.testing.assert_frame_equal(a, b)
    overall = row(a, group="all")
    assert overall.ci_low < overall.value < overall.ci_high
    assert overall.ci_low < 0.6 < overall.ci_high  # the planted mean recall


def test_datasets_without_target_get_no_accuracy_rows() -> None:
    spec = probe(metrics=["accuracy", "category_rate"])  # declares no target, and none in the data
    result = compute_metrics(predictions(), spec, np.random.default_rng(0))
    assert set(result.metric) == {"category_rate"}


def test_class_name_datasets_have_a_target_without_declaring_one() -> None:
    # ImageNet-like adapters give a target (class index) that the probe does not name.
    spec = probe(metrics=["accuracy"])
    result = compute_metrics(_frame(), spec, np.random.default_rng(0))
    assert row(result, group="all").value == pytest.approx(6 / 10)
