"""Report sections without a kernel: the verdict at the top, sections driven by the probe's own
column names, WARN rather than FAIL under warn gates, intervals that read right."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import audit.reporting as rp
from audit.model_card import model_card_text
from audit.reporting import display
from audit.reporting import verdict as vd
from audit.reporting.display import interval
from audit.testing.sample_run import write_sample_run
from audit.reporting.tables import gate_table, variant_rates
from audit.results import GATES, METRICS


@pytest.fixture()
def shown(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What the sections display, in order (instead of a notebook's outputs)."""
    out: list[Any] = []
    monkeypatch.setattr(display, "_display", lambda *objs: out.extend(objs))
    return out


def _text(objs: list[Any]) -> str:
    return "\n".join(str(getattr(o, "alt", None) or getattr(o, "data", "")) for o in objs
                     if not isinstance(getattr(o, "data", ""), bytes) or getattr(o, "alt", None))


def _run_with_column(tmp_path: Path, column: str) -> Path:
    """The sample run with its 'age' column renamed (e.g. to the demo's 'age_band')."""
    run_dir = write_sample_run(tmp_path / column, "fairness", n_images=500)
    metrics = pd.read_csv(run_dir / METRICS, keep_default_na=False, na_values=[""])
    metrics["group_col"] = metrics["group_col"].replace({"age": column})
    metrics.to_csv(run_dir / METRICS, index=False)
    return run_dir


@pytest.mark.parametrize("column", ["age", "age_band", "Altersgruppe"])
def test_variant_sections_follow_the_probe_columns(tmp_path: Path, shown: list[Any],
                                                   column: str) -> None:
    run = rp.load_run(_run_with_column(tmp_path, column))
    rp.show_variant_comparisons(run)
    text = _text(shown)
    assert f"Prompt variants by {column}" in text  # the figures' alt text
    assert f"<th>{column}</th>" in text  # the paired-change table, one row per group
    # one figure per category compared (base vs with_child) on the probe's own column
    figures = [o for o in shown if getattr(o, "alt", None)]
    assert len(figures) == len(run.categories) == 3
    table = variant_rates(run)
    assert set(table["group"].str.split("=").str[0]) == {column}
    # independent check of one cell: the with_child rate of the first group from metrics.csv
    m = run.metrics
    first = m[(m["metric"] == "category_rate") & (m["group_col"] == column)
              & (m["variant"] == "with_child")].iloc[0]
    row = table[(table["model"] == first["model"]) & (table["category"] == first["category"])
                & (table["group"] == f"{column}={first['group']}")].iloc[0]
    assert row["rate, variant"] == f"{100 * first['value']:.1f}%"


def _gates(tmp_path: Path) -> Path:
    """The sample run with one warn gate that fails and one significance gate."""
    run_dir = write_sample_run(tmp_path / "g", "fairness", n_images=500)
    row = {"gate_id": "harm rate", "gate_index": 0, "type": "max_rate", "severity": "warn",
           "model": "m", "variant": "default", "dataset": "d", "metric": "category_rate",
           "category": "crime", "judge": "lower", "op": "<=", "threshold": 0.05, "n": 192}
    results = [
        {**row, "group_col": "kin", "group": "a", "outcome": "fail", "judged": 0.194,
         "value": 0.25, "ci_low": 0.194, "ci_high": 0.316, "blocking": True},
        {**row, "group_col": "kin", "group": "b", "outcome": "pass", "judged": 0.0,
         "value": 0.0, "ci_low": 0.0, "ci_high": 0.02, "blocking": False},
        {**row, "gate_id": "no group stands out", "gate_index": 1,
         "type": "no_significant_difference", "metric": "pairwise_test", "judge": "p_value",
         "op": ">=", "alternative": "greater", "group_col": "kin", "group": "b",
         "outcome": "pass", "judged": 1.0, "value": -0.125, "ci_low": -0.162,
         "ci_high": -0.090, "blocking": False},
    ]
    verdicts = [
        {"gate_id": "harm rate", "gate_index": 0, "model": "m", "variant": "default",
         "severity": "warn", "status": "warn", "passed": False, "outcome": "fail"},
        {"gate_id": "no group stands out", "gate_index": 1, "model": "m", "variant": "default",
         "severity": "warn", "status": "pass", "passed": True, "outcome": "pass"},
    ]
    (run_dir / GATES).write_text(json.dumps({"exit_code": 0, "results": results,
                                             "verdicts": verdicts}))
    return run_dir


def test_verdict_first_says_warn_and_what_was_compared(tmp_path: Path, shown: list[Any]) -> None:
    run = rp.load_run(_gates(tmp_path))
    assert vd.headline(run.gates) == "passed with 1 warning (exit 0)"
    rp.show_verdict(run)
    text = _text(shown)
    assert "## Verdict: passed with 1 warning (exit 0)" in text
    assert ">WARN</span>" in text and ">FAIL<" not in text
    table = vd.verdict_table(run)
    assert table["status"].tolist() == ["WARN", "PASS"]
    assert table["worst group"].tolist() == ["kin=a", "kin=b"]
    assert table["compared"][0] == "lower 95% bound 19.4% <= 5.0%"
    # a difference is never shown under the same heading as an alpha
    assert table["compared"][1] == "adjusted p-value 1 >= alpha 0.05 (alternative: greater)"
    assert table["estimate (95% CI)"][1] == "-12.5% (-16.2% to -9.0%)"
    fig = vd.plot_gate_forest(run)
    assert fig is not None and len(fig.axes) == 2
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["[WARN] harm rate"]
    detail = gate_table(run)
    assert detail["outcome"].tolist() == ["WARN", "PASS", "PASS"]
    assert "threshold" not in detail.columns
    card = model_card_text(run)
    assert "**Release gates: passed with 1 warning (exit 0).**" in card


def test_blocked_headline() -> None:
    gates = {"exit_code": 1, "verdicts": [{"status": "fail"}, {"status": "warn"},
                                          {"status": "fail"}]}
    assert vd.headline(gates) == "blocked: 2 gates failed (exit 1)"
    assert vd.headline({"exit_code": 0, "verdicts": [{"status": "pass"}]}) == "passed (exit 0)"


@pytest.mark.parametrize("lo, hi, expected", [
    (-0.162, -0.090, "-16.2 to -9.0"), (-0.01, 0.02, "-1.0 to 2.0"), (0.1, 0.2, "10.0\u201320.0"),
    (float("nan"), 0.2, "\u2013"), (0.1, float("inf"), "\u2013"),
])
def test_interval_never_double_dash(lo: float, hi: float, expected: str) -> None:
    assert interval(lo, hi) == expected


def test_reading_notes_fairface_only(tmp_path: Path, shown: list[Any]) -> None:
    run = rp.load_run(_run_with_column(tmp_path, "age"))
    rp.show_reading_notes(run)
    assert "perceived" in _text(shown)
    shown.clear()
    metrics = run.metrics.replace({"group_col": {"race": "kin"}})
    manifest = {**run.manifest, "datasets": [{"name": "world", "adapter": "demo"}]}
    rp.show_reading_notes(rp.RunData(run.run_dir, manifest, metrics, run.gates, None))
    assert "perceived" not in _text(shown) and "label vocabulary" in _text(shown)


def test_compared_names_units() -> None:
    er = {"metric": "effective_robustness", "judge": "lower", "judged": 1.25, "op": ">=",
          "threshold": 0.0, "value": 3.5, "ci_low": 1.25, "ci_high": 5.75}
    assert vd.compared(er) == "lower 95% bound +1.2 pts >= +0.0 pts"
    assert vd.estimate(er) == "+3.5 pts (+1.2 pts to +5.8 pts)"
    ratio = {"metric": "disparity_ratio", "judge": "point", "judged": float("inf"), "op": "<=",
             "threshold": 1.25, "value": float("inf")}
    assert vd.compared(ratio) == "estimate undefined <= 1.25"
