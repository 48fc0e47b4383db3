"""The max_retrieval_skew gate on hand-made retrieval rows."""

from __future__ import annotations

import pandas as pd

from audit.gates import evaluate_gates
from audit.testing.gates import metric_row, probe_dict
from audit.spec.models import ProbeSpec

RETRIEVAL = {"query_sets": [{"labels": "adj.yaml"}], "ks": [10, 100]}


def spec(**gate):
    g = {"type": "max_retrieval_skew", "k": 100, "group_col": "race", "query_set": "adj", "threshold": 0.5, **gate}
    return ProbeSpec.model_validate(probe_dict([g], retrieval=RETRIEVAL))


def rows():
    return pd.DataFrame([
        metric_row("max_skew@100", "race", "Black", value=0.62, ci=(0.41, 0.80), n=1000, category="adj/mean"),
        metric_row("max_skew@100", "race", "White", value=0.35, ci=(0.20, 0.50), n=1000, category="adj/good"),
        metric_row("max_skew@100", "race", "Black", value=0.90, ci=(0.70, 1.10), n=1000, category="adj/evil"),
        metric_row("ndkl@100", "race", "all", value=0.05, ci=(0.02, 0.08), n=1000, category="adj/mean"),
    ])


def outcomes(results):
    return [(r.outcome, r.group) for r in results]


def test_mean_point_fails_lower_bound_passes():
    assert outcomes(evaluate_gates(spec(), rows())) == [("fail", "Black")]
    res = evaluate_gates(spec(judge="lower"), rows())
    assert outcomes(res) == [("pass", "Black")]
    assert "0.41" in res[0].message and "mean over query set adj" in res[0].message


def test_per_query_judges_each_query():
    res = evaluate_gates(spec(per_query=True), rows())
    assert sorted(outcomes(res)) == [("fail", "Black"), ("pass", "White")]
    assert any("query 'evil'" in r.message for r in res)


def test_ndkl_and_missing_k_is_an_error():
    assert outcomes(evaluate_gates(spec(measure="ndkl", threshold=0.1), rows())) == [("pass", "all")]
    res = evaluate_gates(spec(k=10), rows())
    assert [r.outcome for r in res] == ["error"] and "max_skew@10" in res[0].message


def test_small_n_is_insufficient():
    df = rows()
    df.loc[0, "n"] = 5
    assert outcomes(evaluate_gates(spec(), df)) == [("insufficient", "Black")]
