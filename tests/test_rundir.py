"""The run-directory contract: typed manifest and gates file, one reader, checksums, clear errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from audit.cli import main
from audit.gates.result import GateResult, gates_document
from audit.testing.gates import metric_row, probe_dict, write_run
from audit.results import (
    FORMAT_VERSION, GATES, MANIFEST, METRICS, GatesFile, Manifest, read_run, write_manifest,
)
from audit.results.manifest import sha256_file

GATE = [{"type": "max_rate", "category": "crime", "group_col": "overall", "threshold": 0.5}]


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return write_run(tmp_path / "run", probe_dict(GATE, variants={"default": {}}), [metric_row(value=0.1)])


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def test_manifest_records_every_file_and_reads_back_typed(run: Path) -> None:
    rd = read_run(run)
    assert isinstance(rd.manifest, Manifest) and rd.manifest.format_version == FORMAT_VERSION
    assert rd.manifest.files[METRICS].sha256 == sha256_file(run / METRICS)
    assert rd.manifest.files[METRICS].bytes == (run / METRICS).stat().st_size
    assert MANIFEST not in rd.manifest.files and rd.changed_files() == []
    assert rd.metrics["value"].tolist() == [0.1] and rd.gates is None


def test_scoring_is_filled_from_the_models(tmp_path: Path) -> None:
    m = write_manifest(tmp_path, {"probe": {"name": "p"}, "models": [
        {"id": "a", "scoring": "softmax over cosine"}, {"id": "b", "scoring": "softmax over cosine"}]})
    assert m.scoring == "softmax over cosine"
    assert json.loads((tmp_path / MANIFEST).read_text())["scoring"] == "softmax over cosine"


def test_sample_run_reads_through_the_one_reader(tmp_path: Path) -> None:
    from audit.reporting import load_run
    from audit.reporting.provenance import run_table
    from audit.testing.sample_run import write_sample_run

    data = load_run(write_sample_run(tmp_path / "s", n_images=200))
    assert data.source is not None and data.source.gates is not None
    assert data.source.changed_files() == []
    scoring = run_table(data).set_index("what").loc["scoring", "value"]
    assert scoring == "softmax over cosine similarity x logit_scale"


def test_gates_file_lets_new_gate_result_fields_through() -> None:
    fields = {f.name: None for f in dataclasses.fields(GateResult)}
    r = GateResult(**{**fields, "gate_id": "g", "gate_index": 0, "type": "max_rate", "severity": "fail",
                      "model": "m", "variant": "v", "dataset": "d", "group_col": "overall", "group": "all",
                      "outcome": "pass", "metric": "category_rate", "category": "crime", "judge": "point",
                      "judged": 0.1, "op": "<=", "threshold": 0.5, "value": 0.1, "ci_low": float("-inf"),
                      "insufficient": "fail", "message": "ok"})
    doc = gates_document([r])
    doc["results"][0]["alternative"] = "greater"  # a field a later GateResult adds
    typed = GatesFile.model_validate(json.loads(json.dumps(doc)))
    dumped = typed.results[0].model_dump()
    assert set(doc["results"][0]) <= set(dumped) and dumped["alternative"] == "greater"
    assert typed.exit_code == 0 and typed.verdicts[0].status == "pass"


@pytest.mark.parametrize(("content", "code", "needle"), [
    (None, 2, "missing manifest.json"),
    ('{"format_version": "2", "probe": {"na', 3, "truncated or not JSON"),
    ("[]", 3, "holds a JSON list, not an object"),
    ('{"format_version": "2", "probe": {"name": 3}, "models": {}}', 3, "probe.name"),
    ('{"format_version": "99", "probe": {"name": "p"}}', 3, "upgrade audit"),
    ('"\\ud800"', 3, "not an object"),
])
def test_bad_manifests_exit_clearly(run: Path, capsys: pytest.CaptureFixture[str], content: str | None,
                                    code: int, needle: str) -> None:
    if content is None:
        (run / MANIFEST).unlink()
    else:
        (run / MANIFEST).write_text(content)
    for command in ("check", "report"):
        got, _, err = cli(capsys, command, str(run))
        assert got == code and needle in err, (command, err)
    if "probe.name" in needle:
        assert "models: Input should be a valid list" in err  # all problems at once


def test_not_a_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "check", str(tmp_path / "nope"))
    assert code == 2 and "run directory not found" in err
    (tmp_path / "f").write_text("x")
    code, _, err = cli(capsys, "check", str(tmp_path / "f"))
    assert code == 2 and "is a file, not a run directory" in err


def test_bad_gates_json_exit_3(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run / GATES).write_text('{"results": [{"gate_id": 1}]}')
    code, _, err = cli(capsys, "report", str(run))
    assert code == 3 and "gates.json is not a valid gates.json" in err and "exit_code: Field required" in err and "results.0.type: Field required" in err


def test_edited_metrics_warn_and_strict_refuses(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = run / METRICS
    path.write_text(path.read_text().replace("0.1,", "0.9,"))
    code, out, err = cli(capsys, "check", str(run))
    assert code == 1 and f"warning: {path}: changed since the run" in err  # re-judged as it is: 0.9 > 0.5
    code, out, err = cli(capsys, "check", str(run), "--strict")
    assert code == 3 and "1 file(s) differ from the manifest's record" in err and "drop --strict" in err
    assert out == ""
    code, _, err = cli(capsys, "report", str(run), "--strict")
    assert code == 3 and "metrics.csv: changed since the run" in err


def test_deleted_file_is_reported(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (run / METRICS).rename(run / "old.csv")
    (run / "old.csv").rename(run / METRICS)
    assert read_run(run).changed_files() == []
    (run / METRICS).unlink()
    manifest = json.loads((run / MANIFEST).read_text())
    manifest["files"]["../escape.csv"] = manifest["files"].pop(METRICS)
    (run / MANIFEST).write_text(json.dumps(manifest))
    (run / "metrics.csv").write_text("x\n")
    lines = read_run(run).changed_files()
    assert lines == ["../escape.csv: not a path inside the run directory (not checked)"]


def test_junit_target_errors(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = cli(capsys, "check", str(run), "--junit", str(tmp_path))
    assert code == 2 and "is a directory" in err
    (tmp_path / "file").write_text("")
    code, _, err = cli(capsys, "check", str(run), "--junit", str(tmp_path / "file" / "j.xml"))
    assert code == 3 and "a file of that name exists" in err
    code, _, _ = cli(capsys, "check", str(run), "--junit", str(tmp_path / "j.xml"))
    assert code == 0 and (tmp_path / "j.xml").is_file()


def test_unwritable_junit_exit_3(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    import errno
    import tempfile

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", refuse)
    code, _, err = cli(capsys, "check", str(run), "--junit", str(tmp_path / "j.xml"))
    assert code == 3 and "cannot write" in err and "Read-only file system" in err


def test_version_1_runs_still_read(run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    manifest = json.loads((run / MANIFEST).read_text())
    manifest["format_version"] = "1"
    del manifest["files"]
    (run / MANIFEST).write_text(json.dumps(manifest))
    code, _, err = cli(capsys, "check", str(run))
    assert code == 0 and "predates file checksums" in err


def test_json_schemas_are_published() -> None:
    from audit.results.gates import GatesFile as G
    from audit.results.manifest import Manifest as M

    assert "files" in M.model_json_schema()["properties"]
    assert "results" in G.model_json_schema()["properties"]


# robustness.csv as a format-1 run wrote it: top-1s as fractions, no unit in the names
V1_ROBUSTNESS = (
    "model,dataset,top1,baseline_top1,effective_robustness,relative_robustness,imagenet_top1,"
    "eff_rob_low,eff_rob_high,eff_rob_baseline_low,eff_rob_baseline_high,fit_slope,fit_intercept,"
    "fit_r,fit_n,note\n"
    "m,imagenet_r,0.451,0.419,3.2,-20.0,0.651,1.1,5.3,2.0,4.4,0.8,-0.5,0.9,100,\n"
)


def _as_version_1(run: Path) -> None:
    manifest = json.loads((run / MANIFEST).read_text())
    manifest["format_version"] = "1"
    del manifest["files"]
    (run / MANIFEST).write_text(json.dumps(manifest))


def test_version_1_robustness_is_read_in_points_with_unit_names(run: Path) -> None:
    from audit.results import ROBUSTNESS

    (run / ROBUSTNESS).write_text(V1_ROBUSTNESS)
    _as_version_1(run)
    rob = read_run(run).robustness
    assert rob is not None
    assert list(rob.columns) == [
        "model", "dataset", "top1_pts", "baseline_top1_pts", "effective_robustness_pts",
        "relative_robustness_pts", "imagenet_top1_pts", "eff_rob_low_pts", "eff_rob_high_pts",
        "eff_rob_baseline_low_pts", "eff_rob_baseline_high_pts", "fit_slope", "fit_intercept",
        "fit_r", "fit_n", "note"]
    row = rob.iloc[0]
    # the fractions became points; the robustness columns were points already
    assert (row.top1_pts, row.baseline_top1_pts, row.imagenet_top1_pts) == pytest.approx((45.1, 41.9, 65.1))
    assert (row.effective_robustness_pts, row.relative_robustness_pts) == pytest.approx((3.2, -20.0))
    assert (row.eff_rob_low_pts, row.eff_rob_high_pts) == pytest.approx((1.1, 5.3))
    assert (row.eff_rob_baseline_low_pts, row.eff_rob_baseline_high_pts) == pytest.approx((2.0, 4.4))
    assert (row.fit_slope, row.fit_r, row.fit_n) == pytest.approx((0.8, 0.9, 100))
    assert row.note == ""


def test_version_2_robustness_is_not_remapped(run: Path) -> None:
    from audit.errors import DataError
    from audit.results import ROBUSTNESS

    (run / ROBUSTNESS).write_text(V1_ROBUSTNESS)  # old names in a format-2 run: a broken file
    with pytest.raises(DataError, match="lacks column.*top1_pts, effective_robustness_pts"):
        _ = read_run(run).robustness
    new = V1_ROBUSTNESS.replace("top1,", "top1_pts,").replace("robustness,", "robustness_pts,")
    new = new.replace("_low,", "_low_pts,").replace("_high,", "_high_pts,")
    (run / ROBUSTNESS).write_text(new.replace("0.451,0.419", "45.1,41.9").replace("0.651", "65.1"))
    rob = read_run(run).robustness
    assert rob is not None and rob.loc[0, "top1_pts"] == 45.1 and rob.loc[0, "eff_rob_high_pts"] == 5.3
