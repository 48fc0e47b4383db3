"""Verdicts, the exit code and gates.json."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from audit.errors import EXIT_GATE_FAILED, EXIT_OK
from audit.gates import GateResult, exit_code, format_interval, summarize, verdict, verdicts, write_gates_json
from audit.gates.judge import fmt_ratio, fmt_signed
from audit.results import FORMAT_VERSION, GATES


def result(outcome: str = "pass", *, gate_index: int = 0, severity: str = "fail", insufficient: str = "fail",
           group: str = "Black", model: str = "m", variant: str = "default", judged: float | None = 0.03,
           **kw: object) -> GateResult:
    fields = dict(
        gate_id=f"max_rate[crime by race]#{gate_index}", gate_index=gate_index, type="max_rate", severity=severity,
        model=model, variant=variant, dataset="fairface", group_col="race", group=group, outcome=outcome,
        metric="category_rate", category="crime", judge="point", judged=judged, op="<=", threshold=0.05,
        value=judged, ci_low=math.nan, ci_high=None, n=100, p_value=None, min_n=30, insufficient=insufficient,
        message=f"{group} {outcome}",
    )
    fields.update(kw)
    return GateResult(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(("outcome", "policy", "blocking"), [
    ("pass", "fail", False), ("fail", "fail", True), ("error", "pass", True),
    ("insufficient", "fail", True), ("insufficient", "pass", False),
])
def test_blocking(outcome: str, policy: str, blocking: bool) -> None:
    assert result(outcome, insufficient=policy).blocking is blocking


def test_verdicts_group_by_gate_model_variant_in_order() -> None:
    rs = [result(group="A"), result("fail", group="B"), result(variant="v2"), result(gate_index=1, model="m2")]
    vs = verdicts(rs)
    assert [(v.gate_index, v.model, v.variant, len(v.results)) for v in vs] == [
        (0, "m", "default", 2), (0, "m", "v2", 1), (1, "m2", "default", 1)]
    assert [v.status for v in vs] == ["fail", "pass", "pass"]
    assert vs[0].message == "1 fail of 2 group(s); B fail"
    assert vs[0].details() == ["FAIL B fail"]


def test_passing_verdict_names_the_closest_group() -> None:
    [v] = verdicts([result(group="A", judged=0.01), result(group="B", judged=0.049), result(group="C", judged=0.0)])
    assert v.message == "all 3 group(s) pass; closest: B pass"


def test_failing_verdict_names_the_worst_failure() -> None:
    rs = [result("insufficient", group="A"), result("fail", group="B", judged=0.06),
          result("fail", group="C", judged=0.09), result(group="D")]
    assert verdicts(rs)[0].message == "2 fail, 1 insufficient of 4 group(s); C fail"


@pytest.mark.parametrize(("results", "label"), [
    ([result()], "PASS"),
    ([result("fail")], "FAIL"),
    ([result("fail", severity="warn")], "WARN"),
    ([result("insufficient", insufficient="pass")], "PASS (insufficient data)"),
    ([result("insufficient")], "FAIL (insufficient data)"),
    ([result("error", severity="warn")], "WARN (error)"),
])
def test_verdict_labels(results: list[GateResult], label: str) -> None:
    assert verdicts(results)[0].label == label


def test_exit_code_ignores_warn_severity() -> None:
    assert exit_code([]) == EXIT_OK
    assert exit_code([result(), result("fail", severity="warn"), result("error", severity="warn")]) == EXIT_OK
    assert exit_code([result("insufficient", insufficient="pass")]) == EXIT_OK
    assert exit_code([result(), result("insufficient")]) == EXIT_GATE_FAILED
    assert exit_code([result("error")]) == EXIT_GATE_FAILED


def test_summary_counts() -> None:
    rs = [result(), result("fail", group="B"), result("insufficient", insufficient="pass", gate_index=1),
          result("fail", severity="warn", gate_index=2)]
    assert summarize(rs) == {
        "verdicts": {"total": 3, "pass": 1, "fail": 1, "warn": 1, "with_insufficient_data": 1},
        "results": {"pass": 1, "fail": 2, "insufficient": 1, "error": 0},
    }


@pytest.mark.parametrize("target", ["dir", "file"])
def test_gates_json_shape(tmp_path: Path, target: str) -> None:
    rs = [result(), result("fail", group="B", judged=math.inf)]
    path = write_gates_json(tmp_path if target == "dir" else tmp_path / GATES, rs)
    assert path == tmp_path / GATES
    doc = json.loads(path.read_text())
    assert set(doc) == {"format_version", "exit_code", "passed", "verdict", "summary", "verdicts", "results"}
    assert (doc["format_version"], doc["exit_code"], doc["passed"]) == (FORMAT_VERSION, 1, False)
    assert doc["verdict"] == verdict(rs) == "failed: 1 gate"
    assert doc["verdicts"] == [{
        "gate_id": "max_rate[crime by race]#0", "gate_index": 0, "type": "max_rate", "severity": "fail",
        "model": "m", "variant": "default", "status": "fail", "passed": False, "outcome": "fail", "groups": 2,
        "message": "1 fail of 2 group(s); B fail",
    }]
    first, second = doc["results"]
    assert first["ci_low"] is None and first["ci_high"] is None  # NaN -> null, valid JSON
    assert second["judged"] == "inf" and second["blocking"] is True
    assert set(first) == {f for f in GateResult.__dataclass_fields__} | {
        "blocking", "status", "statistic_value", "fails_when"}
    assert second["statistic_value"] == "inf" and second["status"] == "fail"
    assert not list(tmp_path.glob("*.tmp"))


def test_gates_json_of_no_gates(tmp_path: Path) -> None:
    doc = json.loads(write_gates_json(tmp_path, []).read_text())
    assert (doc["exit_code"], doc["verdicts"], doc["results"]) == (0, [], [])


def test_results_are_frozen() -> None:
    r = result()
    with pytest.raises(AttributeError):
        r.outcome = "fail"  # type: ignore[misc]
    assert replace(r, outcome="fail").blocking


# --------------------------------------------------------------------------- status, verdict, intervals


def test_a_warn_gates_failing_row_shows_warn_and_never_changes_the_exit_code() -> None:
    warn = result("fail", severity="warn", group="B")
    assert (warn.outcome, warn.status, warn.to_dict()["status"]) == ("fail", "warn", "warn")
    [v] = verdicts([result(severity="warn"), warn])
    assert v.status == "warn" and v.details() == ["WARN B fail"]
    assert exit_code([warn]) == 0
    assert result("insufficient").status == "insufficient"


@pytest.mark.parametrize(("rows", "text"), [
    ([], "no gates"),
    ([result()], "passed"),
    ([result(), result("fail", gate_index=1, severity="warn"), result("fail", gate_index=2, severity="warn")],
     "passed with 2 warnings"),
    # one gate failing for two models counts once
    ([result("fail"), result("fail", model="other"), result("fail", gate_index=1, severity="warn")],
     "failed: 1 gate, 1 warning"),
    ([result("fail"), result("error", gate_index=1)], "failed: 2 gates"),
])
def test_verdict_text(rows: list[GateResult], text: str) -> None:
    assert verdict(rows) == text
    assert text.startswith("failed") == (exit_code(rows) != 0) or not rows


def test_fails_when_states_the_failing_direction() -> None:
    assert result(statistic="upper bound of rate of crime").fails_when == "upper bound of rate of crime > threshold 0.05"
    floor = result(op=">=", threshold=0.75, statistic="accuracy")
    assert floor.fails_when == "accuracy < threshold 0.75"


def test_one_interval_formatter_never_writes_double_dashes_or_inf() -> None:
    assert format_interval(-0.162, -0.09) == "-0.162 to -0.090"
    assert format_interval(0.04, 0.12) == "0.040 to 0.120"
    assert format_interval(1.2, math.inf, fmt_ratio) == "1.20 to ∞"
    assert format_interval(None, None) == ""
    assert "--" not in format_interval(-0.5, -0.25, fmt_signed)
