"""Verdicts, the exit code and gates.json."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path

import pytest

from audit.errors import EXIT_GATE_FAILED, EXIT_OK
from audit.gates import GateResult, exit_code, summarize, verdicts, write_gates_json
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
    assert set(doc) == {"format_version", "exit_code", "passed", "summary", "verdicts", "results"}
    assert (doc["format_version"], doc["exit_code"], doc["passed"]) == (FORMAT_VERSION, 1, False)
    assert doc["verdicts"] == [{
        "gate_id": "max_rate[crime by race]#0", "gate_index": 0, "type": "max_rate", "severity": "fail",
        "model": "m", "variant": "default", "status": "fail", "passed": False, "outcome": "fail", "groups": 2,
        "message": "1 fail of 2 group(s); B fail",
    }]
    first, second = doc["results"]
    assert first["ci_low"] is None and first["ci_high"] is None  # NaN -> null, valid JSON
    assert second["judged"] == "inf" and second["blocking"] is True
    assert set(first) == {f for f in GateResult.__dataclass_fields__} | {"blocking"}
    assert not list(tmp_path.glob("*.tmp"))


def test_gates_json_of_no_gates(tmp_path: Path) -> None:
    doc = json.loads(write_gates_json(tmp_path, []).read_text())
    assert (doc["exit_code"], doc["verdicts"], doc["results"]) == (0, [], [])


def test_results_are_frozen() -> None:
    r = result()
    with pytest.raises(AttributeError):
        r.outcome = "fail"  # type: ignore[misc]
    assert replace(r, outcome="fail").blocking
