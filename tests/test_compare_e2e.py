"""``audit run --baseline`` end to end on a tiny random-weight model (real adapter, real writer)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from audit.cli import main
from audit.results import read_run
from tests.conftest import LABEL_SETS

PROBE = """
name: nightly
dataset: {{adapter: fairface, source: {source}, subgroups: [race]}}
models: [audit-tiny-vit:random, {{id: audit-tiny-vit:random, name: twin}}]
label_sets: [{ls}/fairface_race_gender.yaml, {ls}/crime.yaml]
templates: ["a photo of a {{}}."]
categories: [crime]
metrics: [category_rate]
stats: {{min_n: 2, n_bootstrap: 0}}
gates:
  - {{type: no_regression, category: crime, group_col: race, margin: 0.0, insufficient: pass}}
report: {{enabled: false}}
"""


@pytest.mark.slow  # two real runs (about 30 s on 2 idle cores)
def test_run_with_baseline_judges_no_regression(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from audit.testing.fixtures import write_fairface_dir

    source = write_fairface_dir(tmp_path / "ff", n=16, seed=1, size=16)
    probe = tmp_path / "probe.yaml"
    probe.write_text(textwrap.dedent(PROBE.format(source=source, ls=LABEL_SETS)))
    assert main(["run", str(probe), "--out", str(tmp_path / "night1"), "--quiet"]) == 0  # first night: no baseline
    gates = json.loads((tmp_path / "night1" / "gates.json").read_text())
    assert {r["outcome"] for r in gates["results"]} == {"insufficient"}
    first = read_run(tmp_path / "night1")
    both = pd.read_csv(tmp_path / "night1" / "fairness_compare.csv")
    assert set(zip(both["model_base"], both["model_new"])) == {("audit-tiny-vit:random", "twin")}
    assert "fairness_compare.csv" in first.manifest.files
    code = main(["run", str(probe), "--out", str(tmp_path / "night2"), "--quiet", "--baseline",
                 str(tmp_path / "night1")])
    assert code == 0, capsys.readouterr()
    second = read_run(tmp_path / "night2")
    assert second.changed_files() == []  # gates.json rewritten, manifest re-sealed after it
    results = second.gates.results if second.gates else []
    assert {r.outcome for r in results} == {"pass"} and results[0].type == "no_regression"
    assert main(["run", str(probe), "--out", str(tmp_path / "night3"), "--baseline", str(tmp_path / "nope")]) == 2
    assert not (tmp_path / "night3").exists()  # refused before anything is written
