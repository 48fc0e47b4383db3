"""``audit check``: exit codes, the printed table, --probe policies and JUnit XML."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from audit.check import check_main, format_table
from audit.errors import EXIT_USER, DataError, UserError
from audit.gates import AuditRun
from audit.testing.gates import MODEL, metric_row, probe_dict, write_run
from audit.results import MANIFEST, METRICS

RATES = [
    metric_row(group_col="race", group="Black", value=0.03, ci=(0.02, 0.045), n=400),
    metric_row(group_col="race", group="White", value=0.02, ci=(0.01, 0.03), n=500),
    metric_row(value=0.025, ci=(0.018, 0.032), n=900),
]
RATE_GATE = {"type": "max_rate", "category": "crime", "group_col": "race", "threshold": 0.05, "judge": "upper"}


def make_run(tmp_path: Path, gates: list[dict[str, Any]], rows: list[dict[str, Any]] = RATES, **probe: Any) -> Path:
    probe.setdefault("variants", {"default": {}})
    return write_run(tmp_path / "run", probe_dict(gates, **probe), rows)


def check(run: Path, **kw: Any) -> tuple[int, str]:
    out = io.StringIO()
    code = check_main(run, out=out, **kw)
    return code, out.getvalue()


def test_passing_run_exits_0_and_prints_the_deciding_numbers(tmp_path: Path) -> None:
    code, text = check(make_run(tmp_path, [RATE_GATE]))
    assert code == 0
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("gate "))
    assert header.split() == ["gate", "model", "variant", "dataset", "group", "n", "value", "interval", "judged",
                              "rule", "outcome"]
    black = next(line for line in lines if "race=Black" in line)
    assert black.split() == ["max_rate[crime", "by", "race]", MODEL, "default", "fairface", "race=Black", "400",
                             "0.030", "0.020", "..", "0.045", "upper", "0.045", "<=", "0.05", "PASS"]
    assert lines[-1] == ("1 gate check(s) (gate x model x variant): 1 passed, 0 failed, 0 warned; "
                         "0 with insufficient data -> exit 0")


def test_table_columns_are_aligned(tmp_path: Path) -> None:
    run = AuditRun.load(make_run(tmp_path, [RATE_GATE, {**RATE_GATE, "group_col": "overall"}]))
    lines = format_table(run.results).splitlines()
    starts = {line.index(MODEL) for line in lines[1:]}
    assert len(starts) == 1 and lines[0].index("model") in starts


def test_failing_gate_exits_1_and_explains(tmp_path: Path) -> None:
    code, text = check(make_run(tmp_path, [{**RATE_GATE, "threshold": 0.04}]))
    assert code == 1
    assert ("FAIL max_rate[crime by race] ViT-B-32:openai default: 1 fail of 2 group(s); rate of crime 0.030 "
            "(95% CI 0.020 to 0.045, n=400): upper bound 0.045 > 0.04 for race=Black") in text


def test_warn_gate_does_not_change_the_exit_code(tmp_path: Path) -> None:
    code, text = check(make_run(tmp_path, [{**RATE_GATE, "threshold": 0.01, "severity": "warn"}]))
    assert code == 0
    assert "WARN max_rate[crime by race]" in text and "FAIL (warn)" in text
    assert "0 passed, 0 failed, 1 warned" in text


def test_insufficient_pass_is_reported(tmp_path: Path) -> None:
    rows = [*RATES, metric_row(group_col="race", group="Indian", value=0.5, n=3)]
    code, text = check(make_run(tmp_path, [{**RATE_GATE, "insufficient": "pass"}], rows))
    assert code == 0
    assert "INSUFFICIENT (allowed)" in text and "PASS (insufficient data) max_rate[crime by race]" in text
    assert "1 with insufficient data -> exit 0" in text


def test_quiet_prints_only_the_summary(tmp_path: Path) -> None:
    _, text = check(make_run(tmp_path, [RATE_GATE]), quiet=True)
    assert text.splitlines() == ["1 gate check(s) (gate x model x variant): 1 passed, 0 failed, 0 warned; "
                                 "0 with insufficient data -> exit 0"]


def test_no_gates(tmp_path: Path) -> None:
    code, text = check(make_run(tmp_path, []))
    assert code == 0 and "declares no gates" in text


def test_stricter_policy_probe_from_a_file(tmp_path: Path) -> None:
    import yaml

    run = make_run(tmp_path, [RATE_GATE])
    (tmp_path / "crime.yaml").write_text(yaml.safe_dump(
        {"name": "crime", "version": "1", "labels": [{"text": "thief", "category": "crime"}]}))
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(probe_dict([{**RATE_GATE, "threshold": 0.02}], variants={"default": {}})))
    assert check(run)[0] == 0
    code, text = check(run, probe_path=policy)
    assert code == 1 and f"gates of {policy} on {run}" in text


def test_junit_xml_one_testcase_per_gate_model_variant(tmp_path: Path) -> None:
    gates = [
        RATE_GATE,
        {**RATE_GATE, "threshold": 0.01, "id": "strict"},
        {**RATE_GATE, "threshold": 0.01, "id": "advisory", "severity": "warn"},
        {"type": "max_rate", "category": "crime", "group_col": "age", "threshold": 0.1, "id": "by age"},
    ]
    junit = tmp_path / "out" / "junit.xml"
    code, _ = check(make_run(tmp_path, gates, variants={"default": {}, "other": {}}), junit=junit)
    assert code == 1
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("name"), suite.get("tests"), suite.get("failures"), suite.get("errors")) == (
        "audit.test_probe", "8", "1", "4")
    cases = {(c.get("classname"), c.get("name")): c for c in suite.iter("testcase")}
    assert len(cases) == 8
    passing = cases[("audit.max_rate[crime by race]", f"{MODEL}::default")]
    assert passing.find("failure") is None and passing.find("error") is None
    failure = cases[("audit.strict", f"{MODEL}::default")].find("failure")
    assert failure is not None
    assert failure.get("message") == ("2 fail of 2 group(s); rate of crime 0.030 (95% CI 0.020 to 0.045, n=400): "
                                      "upper bound 0.045 > 0.01 for race=Black")
    assert "FAIL rate of crime 0.020 (95% CI 0.010 to 0.030, n=500)" in (failure.text or "")
    # The 'other' variant has no rows: an error, never a pass.
    error = cases[("audit.strict", f"{MODEL}::other")].find("error")
    assert error is not None and "no variant 'other'" in (error.get("message") or "")
    advisory = cases[("audit.advisory", f"{MODEL}::default")]
    assert advisory.find("failure") is None
    props = {p.get("name"): p.get("value") for p in advisory.iter("property")}
    assert props == {"type": "max_rate", "severity": "warn", "outcome": "fail", "status": "warn"}
    assert (advisory.findtext("system-out") or "").startswith("WARN: 2 fail of 2 group(s)")
    assert cases[("audit.by age", f"{MODEL}::default")].find("error") is not None


def test_bad_run_dir_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="run directory not found") as err:
        check_main(tmp_path / "nope")
    assert err.value.exit_code == EXIT_USER
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / MANIFEST).write_text("{}")
    with pytest.raises(UserError, match=r"missing metrics\.csv"):
        check_main(tmp_path / "partial")


def test_manifest_without_resolved_probe(tmp_path: Path) -> None:
    run = make_run(tmp_path, [RATE_GATE])
    (run / MANIFEST).write_text(json.dumps({"format_version": "1", "probe": {"name": "x"}}))
    with pytest.raises(UserError, match=r"has no resolved probe \(manifest key probe.resolved\)") as err:
        check_main(run)
    assert err.value.fix is not None and "--probe" in err.value.fix


def test_invalid_resolved_probe_lists_the_problems(tmp_path: Path) -> None:
    run = make_run(tmp_path, [RATE_GATE])
    manifest = json.loads((run / MANIFEST).read_text())
    manifest["probe"]["resolved"]["gates"][0]["threshold"] = 7
    (run / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(UserError, match="not a valid resolved probe") as err:
        check_main(run)
    assert [p.field for p in err.value.problems] == ["gates[0].threshold"]


def test_metrics_without_the_contract_columns_is_a_data_error(tmp_path: Path) -> None:
    run = make_run(tmp_path, [RATE_GATE])
    (run / METRICS).write_text("model,value\nm,0.1\n")
    with pytest.raises(DataError, match="lacks column"):
        check_main(run)


def test_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cli = pytest.importorskip("audit.cli")
    run = make_run(tmp_path, [{**RATE_GATE, "threshold": 0.04}])
    assert cli.main(["check", str(run), "--junit", str(tmp_path / "j.xml")]) == 1
    assert (tmp_path / "j.xml").exists()
    assert cli.main(["check", str(tmp_path / "missing")]) == EXIT_USER
    assert "error: run directory not found" in capsys.readouterr().err
