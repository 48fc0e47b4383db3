"""compute_metrics as a whole: the results contract, the registry, errors, randomness, imports."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from audit.errors import UserError
from audit.metrics import MetricDef, compute_metrics
from audit.registries import METRICS
from audit.results import METRIC_COLUMNS
from tests.test_metrics_support import CATEGORY, predictions, probe

ALL_METRICS = METRICS.names()


def _everything() -> tuple[pd.DataFrame, pd.DataFrame]:
    target = ["F", "M"] * 5 + [None]
    correct = [True, False, True] * 3 + [True, None]
    base = predictions(target=target, correct=correct, top5_correct=correct)
    strict = predictions(["race_gender"] * 11, variant="strict", target=target, correct=correct,
                         top5_correct=correct)
    frame = pd.concat([base, strict], ignore_index=True)
    by_template = pd.concat([frame.assign(template=t) for t in ("a {}", "b {}")], ignore_index=True)
    return frame, by_template


def _spec(metrics: list[str] = ALL_METRICS) -> object:
    return probe(metrics=metrics, dataset={"target": "gender"},
                 variants={"default": {}, "strict": {"exclude": ["crime"]}})


def test_registry_targets_are_metric_defs_with_their_names() -> None:
    for name in ALL_METRICS:
        metric = METRICS.get(name)
        assert isinstance(metric, MetricDef) and metric.name == name
        assert metric.description and isinstance(metric.higher_is_better, bool)


def test_results_have_exactly_the_contract_columns_and_no_unflagged_nan() -> None:
    frame, by_template = _everything()
    result = compute_metrics(frame, _spec(), np.random.default_rng(0), by_template=by_template)
    assert tuple(result.columns) == METRIC_COLUMNS
    expected = {
        "category_rate", "disparity_ratio", "disparity_difference", "independence_test",
        "pairwise_test", "variant_change", "template_sensitivity", "accuracy",
        "balanced_accuracy", "top5_accuracy", "mean_per_class_recall",
        "worst_group_accuracy", "worst_group_top5_accuracy", "accuracy_test",
        "class_recall", "recall_disparity",
    }
    assert set(result.metric) == expected
    unexplained = result[result["value"].isna() & (result["flag"] == "")]
    assert unexplained.empty, unexplained
    assert (result["n"] >= 0).all()
    assert set(result.loc[result.group_col == "overall", "group"]) == {"all"}
    rates = result[result.metric == "category_rate"]
    assert set(rates.category) == {"crime", "crime|non_human"}
    assert set(result.loc[result.metric == "accuracy", "category"]) == {""}


def test_a_metric_may_narrow_the_categories() -> None:
    spec = probe(metrics=[{"name": "category_rate", "categories": ["non_human"]}])
    result = compute_metrics(predictions(), spec, np.random.default_rng(0))
    assert set(result.category) == {"non_human"}


def test_category_metric_without_categories_is_a_user_error() -> None:
    spec = probe(metrics=["accuracy", "disparity"], categories=[])
    with pytest.raises(UserError) as err:
        compute_metrics(predictions(), spec, np.random.default_rng(0))
    assert "metrics[1]: metric 'disparity' reports category rates but no category is named" in str(err.value)
    assert "fix: list categories in the probe" in str(err.value)


def test_adding_a_metric_leaves_other_intervals_unchanged() -> None:
    frame = predictions(CATEGORY * 5, race=list(np.repeat(["Black", "White", "East Asian"], 19))[:55],
                        gender=["Female", "Male"] * 27 + ["Female"])
    alone = compute_metrics(frame, probe(metrics=["disparity"]), np.random.default_rng(9))
    both = compute_metrics(frame, probe(metrics=["category_rate", "disparity"]), np.random.default_rng(9))
    pd.testing.assert_frame_equal(alone, both[both.metric.str.startswith("disparity")].reset_index(drop=True))


def test_missing_contract_column_names_it() -> None:
    with pytest.raises(ValueError, match="top5_correct"):
        compute_metrics(predictions(target=["F"] * 11, correct=[True] * 11),
                        probe(metrics=["top5_accuracy"], dataset={"target": "gender"}),
                        np.random.default_rng(0))


def test_metrics_import_no_torch() -> None:
    code = ("import sys, audit.metrics, audit.metrics.fairness, audit.metrics.accuracy; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
