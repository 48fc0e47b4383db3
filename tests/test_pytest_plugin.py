"""The pytest plugin, through pytest's own ``pytester``: items, outcomes, messages, JUnit, fixture."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

# Import what the plugin's hooks import lazily (statsmodels -> scipy -> numpy.fft) before pytester's
# in-process runs: pytester drops modules first imported inside a run, and a C extension such as
# numpy.fft's cannot be loaded twice in one process ("cannot load module more than once").
import audit.compare.stats  # noqa: E402,F401
import audit.gates  # noqa: E402,F401
from audit.testing.gates import MODEL, metric_row, probe_dict, write_run

pytest_plugins = ["pytester"]

RATES = [
    metric_row(group_col="race", group="Black", value=0.03, ci=(0.02, 0.045), n=400),
    metric_row(group_col="race", group="White", value=0.02, ci=(0.01, 0.03), n=500),
    metric_row(value=0.025, ci=(0.018, 0.032), n=900, category="crime|non_human"),
    metric_row("accuracy", "race", "Black", value=0.81, ci=(0.77, 0.85), n=400, category=""),
    metric_row("accuracy", "race", "White", value=0.86, ci=(0.83, 0.89), n=500, category=""),
]
GATES = [
    {"type": "max_rate", "category": "crime|non_human", "group_col": "overall", "threshold": 0.05, "judge": "upper"},
    {"type": "max_rate", "category": "crime", "group_col": "race", "threshold": 0.04, "judge": "upper"},
    {"type": "min_accuracy", "group_col": "race", "threshold": 0.9, "severity": "warn"},
]


@pytest.fixture
def audit_pytester(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    # Load only this plugin in the inner sessions (fast, and independent of what else is
    # installed); '-p audit' names the entry point, so it also works with autoload on.
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    return pytester


def make_run(path: Path, gates: list[dict[str, Any]] = GATES, **probe: Any) -> Path:
    probe.setdefault("variants", {"default": {}})
    return write_run(path / "run", probe_dict(gates, **probe), RATES)


def run_pytest(pytester: pytest.Pytester, *args: str) -> pytest.RunResult:
    return pytester.runpytest("-p", "audit", "-p", "no:cacheprovider", *args)


def test_without_audit_run_the_plugin_adds_nothing(audit_pytester: pytest.Pytester) -> None:
    audit_pytester.makepyfile(test_plain="def test_a():\n    pass\n\ndef test_b(audit_run):\n    pass\n")
    result = run_pytest(audit_pytester, "--co", "-q")
    assert result.ret == 0
    assert [line for line in result.outlines if "::" in line] == ["test_plain.py::test_a", "test_plain.py::test_b"]
    result = run_pytest(audit_pytester, "-rs")
    result.assert_outcomes(passed=1, skipped=1)
    result.stdout.fnmatch_lines(["*needs an audit run: pass --audit-run RUN_DIR*"])


def test_each_gate_model_variant_is_an_item(audit_pytester: pytest.Pytester) -> None:
    run = make_run(audit_pytester.path, variants={"default": {}, "other": {}}, models=[MODEL, "RN50:openai"])
    result = run_pytest(audit_pytester, "--audit-run", str(run), "--co", "-q")
    assert result.ret == 0
    ids = [line for line in result.outlines if line.startswith("audit::")]
    gates = ["max_rate[crime|non_human overall]", "max_rate[crime by race]", "min_accuracy[accuracy by race]"]
    assert ids == [f"audit::{m}::{v}::{g}" for m in (MODEL, "RN50:openai") for v in ("default", "other") for g in gates]
    assert len(ids) == 12
    result.stdout.fnmatch_lines(["12 tests collected*"])


def test_pass_fail_and_warn(audit_pytester: pytest.Pytester) -> None:
    run = make_run(audit_pytester.path)
    result = run_pytest(audit_pytester, "--audit-run", str(run), "-rA")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.assert_outcomes(passed=2, failed=1, warnings=1)
    lines = result.outlines
    assert f"PASSED audit::{MODEL}::default::max_rate[crime|non_human overall]" in lines
    assert f"PASSED audit::{MODEL}::default::min_accuracy[accuracy by race]" in lines
    assert any(line.startswith(f"FAILED audit::{MODEL}::default::max_rate[crime by race] - ") for line in lines)
    out = result.stdout.str()
    assert (f"FAIL: gate max_rate[crime by race] for model {MODEL}, variant default: 1 fail of 2 group(s); "
            "rate of crime 0.030 (95% CI 0.020 to 0.045, n=400): upper bound 0.045 > 0.04 for race=Black") in out
    assert "AuditGateWarning: warn-severity gate min_accuracy[accuracy by race] failed" in out
    assert "accuracy 0.810 (95% CI 0.770 to 0.850, n=400) < 0.9 for race=Black" in out
    assert "Traceback" not in out and "raise GateFailed" not in out


def test_insufficient_pass_warns(audit_pytester: pytest.Pytester) -> None:
    run = make_run(audit_pytester.path, [{"type": "max_rate", "category": "crime", "group_col": "race",
                                           "threshold": 0.5, "min_n": 450, "insufficient": "pass"}])
    result = run_pytest(audit_pytester, "--audit-run", str(run))
    result.assert_outcomes(passed=1, warnings=1)
    result.stdout.fnmatch_lines(["*AuditGateWarning*insufficient data for race=Black: n=400 < min_n=450*"])


def test_junitxml_works_unchanged(audit_pytester: pytest.Pytester) -> None:
    run = make_run(audit_pytester.path)
    run_pytest(audit_pytester, "--audit-run", str(run), f"--junitxml={audit_pytester.path / 'j.xml'}")
    suite = ET.parse(audit_pytester.path / "j.xml").getroot().find("testsuite")
    assert suite is not None and (suite.get("tests"), suite.get("failures")) == ("3", "1")
    # model and variant are collectors: classname audit.MODEL.VARIANT, the gate id is the name
    assert [(c.get("classname"), c.get("name")) for c in suite.iter("testcase")] == [
        (f"audit.{MODEL}.default", "max_rate[crime|non_human overall]"),
        (f"audit.{MODEL}.default", "max_rate[crime by race]"),
        (f"audit.{MODEL}.default", "min_accuracy[accuracy by race]"),
    ]
    failed = [c for c in suite.iter("testcase") if c.find("failure") is not None]
    assert [c.get("name") for c in failed] == ["max_rate[crime by race]"]
    failure = failed[0].find("failure")
    assert failure is not None and "upper bound 0.045 > 0.04 for race=Black" in (failure.get("message") or "")
    props = {p.get("name"): p.get("value") for p in failed[0].iter("property")}
    assert props == {"gate_type": "max_rate", "severity": "fail", "outcome": "fail", "status": "fail"}


def test_marker_and_keyword_select_gate_items(audit_pytester: pytest.Pytester) -> None:
    audit_pytester.makepyfile(test_plain="def test_a():\n    pass\n")
    run = make_run(audit_pytester.path)
    # named test paths are collected next to the gates; -m audit keeps the gates only
    only_gates = run_pytest(audit_pytester, "test_plain.py", "--audit-run", str(run), "-m", "audit", "--co", "-q")
    assert [line for line in only_gates.outlines if "::" in line and not line.startswith("audit::")] == []
    only_gates.stdout.fnmatch_lines(["3/4 tests collected (1 deselected)*"])
    by_keyword = run_pytest(audit_pytester, "--audit-run", str(run), "-k", "min_accuracy", "--co", "-q")
    assert [line for line in by_keyword.outlines if "::" in line] == [
        f"audit::{MODEL}::default::min_accuracy[accuracy by race]"]


def test_audit_run_fixture_helpers(audit_pytester: pytest.Pytester) -> None:
    run = make_run(audit_pytester.path)
    audit_pytester.makepyfile(test_release="""
        def test_metrics_and_manifest(audit_run):
            assert set(audit_run.metrics["metric"]) == {"category_rate", "accuracy"}
            assert audit_run.manifest["probe"]["name"] == "test_probe"
            assert audit_run.probe.name == "test_probe"

        def test_rates_below_loose(audit_run):
            results = audit_run.assert_rate_below("crime", 0.05, group_col="race")
            assert [r.group for r in results] == ["Black", "White"]

        def test_rates_below_strict(audit_run):
            audit_run.assert_rate_below("crime", 0.025, group_col="race", judge="point")

        def test_accuracy_above(audit_run):
            audit_run.assert_accuracy_above(0.8, group_col="race", judge="point")
            audit_run.assert_accuracy_above(0.8, group_col="race")
    """)
    result = run_pytest(audit_pytester, "test_release.py", "--audit-run", str(run), "-m", "not audit")
    result.assert_outcomes(passed=2, failed=2, deselected=3)
    errors = [line for line in result.outlines if line.startswith("E ")]
    assert [line.split(maxsplit=1)[1] for line in errors] == [
        "AssertionError: max_rate[crime by race]: 1 of 2 group result(s) do not pass",
        f"{MODEL} / default / fairface: FAIL rate of crime 0.030 (95% CI 0.020 to 0.045, n=400) > 0.025 for race=Black",
        "AssertionError: min_accuracy[accuracy by race]: 1 of 2 group result(s) do not pass",
        f"{MODEL} / default / fairface: FAIL accuracy 0.810 (95% CI 0.770 to 0.850, n=400): "
        "lower bound 0.770 < 0.8 for race=Black",
    ]
    # The helper's own frames are hidden: the failure points at the test's line.
    assert "rundir.py" not in result.stdout.str()


def test_audit_probe_applies_a_stricter_policy(audit_pytester: pytest.Pytester) -> None:
    import yaml

    run = make_run(audit_pytester.path)
    (audit_pytester.path / "crime.yaml").write_text(yaml.safe_dump(
        {"name": "crime", "version": "1", "labels": [{"text": "thief", "category": "crime"},
                                                     {"text": "animal", "category": "non_human"}]}))
    policy = audit_pytester.path / "policy.yaml"
    policy.write_text(yaml.safe_dump(probe_dict([GATES[0] | {"threshold": 0.03}], variants={"default": {}})))
    result = run_pytest(audit_pytester, "--audit-run", str(run), "--audit-probe", str(policy))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*upper bound 0.032 > 0.03 over all images*"])


@pytest.mark.parametrize(("args", "message"), [
    (["--audit-run", "nope"], "*audit plugin: run directory not found: nope*"),
    (["--audit-probe", "policy.yaml"], "*--audit-probe needs --audit-run RUN_DIR*"),
    (["--audit-baseline", "base"], "*--audit-baseline needs --audit-run RUN_DIR*"),
])
def test_usage_errors(audit_pytester: pytest.Pytester, args: list[str], message: str) -> None:
    result = run_pytest(audit_pytester, *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_from_a_project_root_only_gate_items_are_collected(audit_pytester: pytest.Pytester) -> None:
    run = make_run(audit_pytester.path)
    audit_pytester.mkdir("tests")
    (audit_pytester.path / "tests" / "test_own.py").write_text("raise ImportError('never imported')\n")
    result = run_pytest(audit_pytester, "--audit-run", str(run), "--co", "-q")
    assert result.ret == 0
    collected = [line for line in result.outlines if "::" in line]
    assert collected and all(line.startswith("audit::") for line in collected)
    # named test paths are still collected next to the gates
    (audit_pytester.path / "tests" / "test_own.py").write_text("def test_mine(audit_run):\n    pass\n")
    result = run_pytest(audit_pytester, "tests", "--audit-run", str(run), "--co", "-q")
    assert "tests/test_own.py::test_mine" in result.outlines


def test_no_regression_gate_against_a_baseline(audit_pytester: pytest.Pytester) -> None:
    from tests.compare_fixtures import predictions
    from tests.compare_fixtures import write_run as write_full_run

    base = write_full_run(audit_pytester.path / "base", predictions("m1"), fingerprint="fp0")
    worse = write_full_run(audit_pytester.path / "worse", predictions("m1", extra_black=0.15, model_seed=2),
                           fingerprint="fp0")
    result = run_pytest(audit_pytester, "--audit-run", str(worse), "--audit-baseline", str(base))
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*FAIL: gate no_regression[[]crime by race[]]*race=Black*"])
    result = run_pytest(audit_pytester, "--audit-run", str(base), "--audit-baseline", str(base))
    result.assert_outcomes(passed=1)
