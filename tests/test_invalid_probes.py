"""Probes that are well-formed YAML but wrong in meaning: ``validate`` and ``run`` refuse each with
exit 2 and the same message naming the field path, and ``run`` leaves no output or cache behind.

The base probe is a correct one (generated FairFace-shaped images, a tiny random-weight open_clip
model), so each case differs from a runnable probe by one mistake.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from audit.cli import main
from audit.errors import Problem
from tests.conftest import LABEL_SETS

BASE = f"""\
name: t
dataset:
  adapter: synthetic_fairface
  options: {{n: 20, size: 16}}
  subgroups: [race, gender]
models: [audit-tiny-vit:random]
label_sets: [{LABEL_SETS}/fairface_race_gender.yaml, {LABEL_SETS}/crime.yaml]
variants: {{default: {{}}, no_crime: {{exclude: [crime]}}}}
categories: [crime]
metrics: [{{name: category_rate, categories: [crime]}}, variant_change]
gates:
  - {{type: variant_no_increase, category: crime, group_col: race, compare: no_crime}}
"""


def _sub(old: str, new: str) -> tuple[str, str]:
    assert BASE.count(old) == 1, old
    return old, new


#: id -> (replacement in BASE, field path the message must name, words it must contain)
CASES = {
    "category metric without categories": (_sub("\ncategories: [crime]", "\ncategories: []"), "metrics[1]",
                                           "'variant_change' reports category rates but no category is named"),
    "variant excludes every label": (_sub("no_crime: {exclude: [crime]}", "no_crime: {exclude: [crime, race_gender]}"),
                                     "variants.no_crime", "leaves no labels"),
    "unknown adapter option": (_sub("n: 20,", "sizee: 3,"), "dataset.options.sizee", "did you mean 'size'?"),
    "option out of bounds": (_sub("n: 20,", "n: 0,"), "dataset.options.n", "[1, 1000000]"),
    "local-dir that does not exist": (_sub("audit-tiny-vit:random", "local-dir:./nope"), "models[0].id",
                                      "model directory not found"),
    "checkpoint that does not exist": (_sub("audit-tiny-vit:random", "audit-tiny-vit:./nope.pt"), "models[0].id",
                                       "checkpoint file not found"),
    "pretrained tag typo with a dot": (_sub("audit-tiny-vit:random", "'ViT-B-32:opnai.v2'"), "models[0].id",
                                       "did you mean 'openai'?"),
    "gate names an unknown variant": (_sub("compare: no_crime", "compare: no_crim"), "gates[0].compare",
                                      "did you mean 'no_crime'?"),
    "gate judges a metric the probe does not compute": (_sub(", variant_change]", "]"), "gates[0]",
                                                         "'variant_change', which the probe does not compute"),
    "dataset source directory that does not exist": (_sub("adapter: synthetic_fairface\n  options: {n: 20, size: 16}",
                                                           "adapter: fairface\n  source: ./nodata"),
                                                      "dataset.source", "dataset directory not found"),
    "generated dataset given a source": (_sub("  options: {n: 20, size: 16}", "  options: {n: 20, size: 16}\n  source: ."),
                                         "dataset.source", "takes no 'source'"),
    "hub adapter without a source": (_sub("adapter: synthetic_fairface\n  options: {n: 20, size: 16}", "adapter: hf"),
                                     "dataset.source", "needs a source"),
    "model name over two lines": (_sub("models: [audit-tiny-vit:random]",
                                       'models: [{id: audit-tiny-vit:random, name: "a\\nb"}]'),
                                  "models[0].name", "on one line"),
    "name escapes the output root": (_sub("name: t", "name: ../../x"), "name", "not a safe probe name"),
    "absolute name": (_sub("name: t", "name: /abs/path"), "name", "not a safe probe name"),
    "name with braces": (_sub("name: t", "name: 'exp{1}'"), "name", "not a safe probe name"),
    "notebook outside the probe directory": (_sub("gates:", "report: {notebooks: [../outside.ipynb]}\ngates:"),
                                             "report.notebooks[0]", "--allow-notebooks-outside"),
}


def _write(tmp_path: Path, text: str) -> Path:
    probe_dir = tmp_path / "probe"
    probe_dir.mkdir()
    (tmp_path / "outside.ipynb").write_text("{}")
    path = probe_dir / "probe.yaml"
    path.write_text(text)
    return path


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err


def _validate_and_run(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
                      path: Path) -> str:
    """``validate`` and ``run`` both exit 2 with the same message; ``run`` leaves nothing behind."""
    out, cache = tmp_path / "out", tmp_path / "cache"
    monkeypatch.setenv("AUDIT_CACHE_DIR", str(cache))
    code, message = _cli(capsys, "validate", str(path))
    assert code == 2, message
    run_code, run_message = _cli(capsys, "run", str(path), "--out", str(out), "--cache-dir", str(cache))
    assert run_code == 2, run_message
    assert run_message == message
    assert not out.exists() and not cache.exists()
    assert "Traceback" not in message
    return message


def test_base_probe_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _cli(capsys, "validate", str(_write(tmp_path, BASE)))
    assert code == 0, err


@pytest.mark.parametrize("case", list(CASES))
def test_wrong_probe_refused_before_anything_runs(case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    (old, new), field, words = CASES[case]
    message = _validate_and_run(tmp_path, capsys, monkeypatch, _write(tmp_path, BASE.replace(old, new)))
    assert f"\n  {field}: " in message, message
    assert words in message
    assert "(1 problem)" in message, message


def test_missing_label_set_reported_once(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    text = BASE.replace(f"{LABEL_SETS}/crime.yaml", "./crime.yaml")
    message = _validate_and_run(tmp_path, capsys, monkeypatch, _write(tmp_path, text))
    assert "(1 problem)" in message, message
    assert "label_sets[1]: label-set file not found" in message
    assert "unknown category" not in message


def test_several_mistakes_named_in_one_message(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    text = (BASE.replace("name: t", "name: ../x")                               # pydantic: name rule
            .replace("  subgroups:", "  limt: 3\n  subgroups:")                   # pydantic: unknown key
            .replace("n: 20,", "sizee: 3,")                                      # cross: adapter option
            .replace("compare: no_crime", "compare: no_crim")                    # cross: gate variant
            .replace("audit-tiny-vit:random", "audit-tiny-vit:random, 'ViT-B-32:opnai.v2'")  # cross: tag
            + "  - {type: max_rate, category: crime, threshold: 2}\n"             # pydantic: bound
            + "  - {type: max_rate, category: crme, group_col: rac, threshold: 0.1}\n")  # cross x2
    message = _validate_and_run(tmp_path, capsys, monkeypatch, _write(tmp_path, text))
    expected = ["name:", "dataset.limt:", "dataset.options.sizee:", "gates[0].compare:", "models[1].id:",
                "gates[1].threshold:", "gates[2].category:", "gates[2].group_col:"]
    for field in expected:
        assert f"\n  {field} " in message, (field, message)
    assert f"({len(expected)} problems)" in message, message


def test_notebook_inside_or_allowed_is_announced(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _write(tmp_path, BASE.replace("gates:", "report: {notebooks: [mine.ipynb, fairness]}\ngates:"))
    (path.parent / "mine.ipynb").write_text("{}")
    code = main(["validate", str(path)])
    out = capsys.readouterr().out
    assert code == 0
    assert f"this probe executes notebook {path.parent / 'mine.ipynb'}" in out
    outside = path.parent / "outside.yaml"
    outside.write_text(BASE.replace("gates:", "report: {notebooks: [../outside.ipynb]}\ngates:"))
    assert main(["validate", "--allow-notebooks-outside", str(outside)]) == 0
    assert f"executes notebook {tmp_path / 'outside.ipynb'}" in capsys.readouterr().out


@pytest.mark.slow
def test_base_probe_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The base probe is runnable, so every refusal above is the loader's doing, not the data's."""
    monkeypatch.setenv("AUDIT_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "out"
    code = main(["run", str(_write(tmp_path, BASE)), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                 "--no-report", "--quiet"])
    assert code in (0, 1), capsys.readouterr().err  # 1: the gate may fail on random weights
    assert (out / "metrics.csv").is_file()


def test_refused_parts_cause_no_follow_on_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A variant, gate or dataset field pydantic refused is named once; what refers to it is still judged."""
    text = (BASE.replace("no_crime: {exclude: [crime]}", "no_crime: 3")
            .replace("  subgroups: [race, gender]", "  subgroups: [race, gender]\n  intersections: [[race]]")
            + "  - {type: max_rat, category: crime, threshold: 0.1}\n"
            + "  - {category: crime, threshold: 0.1}\n")
    code, message = _cli(capsys, "validate", str(_write(tmp_path, text)))
    assert code == 2
    for field in ("variants.no_crime:", "dataset.intersections:", "gates[1].type: unknown gate type 'max_rat' "
                  "-- did you mean 'max_rate'?", "gates[2].type: required field is missing"):
        assert f"\n  {field}" in message, (field, message)
    assert "(4 problems)" in message, message


def test_effective_robustness_gate_needs_a_robustness_probe(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    text = BASE + "  - {type: min_effective_robustness, shift: imagenet_r, threshold: 0}\n"
    message = _validate_and_run(tmp_path, capsys, monkeypatch, _write(tmp_path, text))
    assert "gates[1]: min_effective_robustness needs kind: robustness" in message
    assert "gates[1]: min_effective_robustness judges the metric 'accuracy', which the probe does not compute" in message


def contributed_check(spec: object, label_sets: list[object], resolve: object) -> list[Problem]:
    """A feature module's cross-check, as registered in audit.registries.PROBE_CHECKS."""
    return [Problem("extra.field", f"seen {len(label_sets)} label sets")]


def test_contributed_checks_join_the_same_message(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from audit import registries
    from audit.registry import Registry

    monkeypatch.setattr(registries, "PROBE_CHECKS", Registry("probe check", {
        "extra": "tests.test_invalid_probes:contributed_check"}))
    code, message = _cli(capsys, "validate", str(_write(tmp_path, BASE.replace("compare: no_crime", "compare: x"))))
    assert code == 2
    assert "\n  gates[0].compare: " in message and "\n  extra.field: seen 2 label sets" in message
