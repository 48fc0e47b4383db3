"""The shipped DataComp probes: they validate, and run offline on generated local copies of the
hub datasets (tiny random-weight model); group and worst-group accuracies equal WILDS'."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from audit.cli import main
from audit.export import datacomp_lines
from audit.reporting.datacomp import openclip_datacomp, worst_group_table
from audit.reporting.load import RunData, load_run
from audit.run import RunOptions, run_probe
from audit.spec import load_probe
from tests.datacomp_fixtures import FACE_OBJECTIVES, draw_metadata, write_datacomp_wds, write_faces

REPO = Path(__file__).resolve().parent.parent
PROBES = ("dollar_street", "geode", "fairface_datacomp", "utkface_datacomp")
HUB = {"dollar_street": "djghosh/wds_dollar_street_test", "geode": "djghosh/wds_geode_test",
       "fairface_datacomp": "djghosh/wds_fairface_test", "utkface_datacomp": "djghosh/wds_utkface_test"}


@pytest.fixture(autouse=True)
def _hf_caches(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    import datasets.config
    from huggingface_hub import constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf_datasets")))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf_hub")))


@pytest.mark.parametrize("name", PROBES)
def test_probe_validates_and_names_its_hub_dataset(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = REPO / "probes" / f"{name}.yaml"
    assert main(["validate", str(path)]) == 0, capsys.readouterr().err
    probe = load_probe(path)
    assert {d.source for d in probe.spec.datasets} == {HUB[name]}
    assert probe.spec.templates == "dataset" and probe.spec.label_sets == ("classnames",)


def local_probe(tmp_path: Path, name: str, source: Path) -> Path:
    text = (REPO / "probes" / f"{name}.yaml").read_text(encoding="utf-8")
    text = text.replace(f"source: {HUB[name]}", f"source: {source}")
    text = text.replace("  - ViT-B-32:openai\n", "  - audit-tiny-vit:random\n")
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.slow
def test_dollar_street_offline_groups_equal_wilds(tmp_path: Path) -> None:
    oracle = pytest.importorskip("tests.wilds_oracle")
    n, names = 64, [f"object {i}" for i in range(7)]
    meta = draw_metadata(n, (4, 6, 5), seed=11)
    labels = np.random.default_rng(12).integers(0, len(names), n)
    source = write_datacomp_wds(tmp_path / "ds", names, ["a photo of a {c}.", "a {c} at home."], meta, labels)
    outcome = run_probe(load_probe(local_probe(tmp_path, "dollar_street", source)),
                        RunOptions(out=tmp_path / "run", quiet=True, report=False))
    preds = pd.read_parquet(tmp_path / "run" / "predictions.parquet")
    rows = preds["image_id"].str.slice(1).astype(int).to_numpy()
    assert sorted(rows) == list(range(n))
    assert (preds["income_ds"] == meta[rows, 0].astype(str)).all()  # paired by key, not position
    assert (preds["region"] == meta[rows, 2].astype(str)).all()
    index = {c: i for i, c in enumerate(names)}
    top5 = np.array([[index[x] for x in r] for r in preds["top5_labels"]])
    theirs = oracle.dollar_street(top5, labels[rows], meta[rows])
    m = outcome.metrics
    acc = m[(m.metric == "top5_accuracy") & (m.group_col == "income_ds")].set_index("group")
    for code in range(4):
        assert acc.loc[str(code), "value"] == pytest.approx(theirs[f"acc_top5_income_ds:{code}"], rel=1e-6)
        assert acc.loc[str(code), "n"] == theirs[f"count_income_ds:{code}"]
    (worst,) = m[(m.metric == "worst_group_top5_accuracy") & (m.group_col == "income_ds")].itertuples()
    assert worst.value == pytest.approx(theirs["acc_top5_wg"], rel=1e-6)
    assert acc.loc[worst.group, "value"] == worst.value and worst.ci_low <= worst.value <= worst.ci_high
    gates = json.loads((tmp_path / "run" / "gates.json").read_text())
    assert "worst_group_top5_accuracy" in json.dumps(gates)
    shown = worst_group_table(load_run(tmp_path / "run")).set_index(["metric", "by"])
    assert shown.loc[("worst_group_top5_accuracy", "income_ds"), "worst group"] == worst.group
    assert "open_clip published %" not in shown  # a random-weight model is not in the table
    (line,) = datacomp_lines(tmp_path / "run")
    assert line["metrics"]["acc_top5_wg"] == pytest.approx(theirs["acc_top5_wg"], rel=1e-6)


@pytest.mark.slow
def test_fairface_offline_reproduces_datacomp_scoring(tmp_path: Path) -> None:
    oracle = pytest.importorskip("tests.wilds_oracle")
    source = write_faces(tmp_path / "ff", n=42)
    outcome = run_probe(load_probe(local_probe(tmp_path, "fairface_datacomp", source)),
                        RunOptions(out=tmp_path / "run", quiet=True, report=False))
    preds = pd.read_parquet(tmp_path / "run" / "predictions.parquet")
    assert set(preds.dataset) == {"fairface_race", "fairface_gender", "fairface_age", "fairface_toxic"}
    toxic = preds[preds.dataset == "fairface_toxic"]
    crime = set(FACE_OBJECTIVES["toxic"][18:])
    assert ((toxic.top1_category == "crime") == toxic.top1_label.isin(crime)).all()
    assert {g.gate_id for g in outcome.gate_results} >= {"crime-related labels for any race"}
    # the exported FairFace line equals DataComp's evaluator on the same per-objective argmaxes
    meta_rows = {}
    import datasets

    ds = datasets.load_dataset(str(source), data_files={"test": str(source / "test" / "*.tar")}, split="test")
    for key, vec in zip(ds["__key__"], ds["npy"]):
        meta_rows[key] = vec
    keys = sorted(meta_rows)
    meta = np.array([meta_rows[k] for k in keys], dtype=np.int64)
    y_pred = np.zeros((len(keys), 4), dtype=np.int64)
    for j, objective in enumerate(("race", "gender", "age", "toxic")):
        frame = preds[preds.dataset == f"fairface_{objective}"].set_index("image_id").loc[keys]
        if objective == "race":  # collapsed to white / non-white: any non-white class stands for it
            y_pred[:, j] = np.where(frame.top1_label == "white", 1, 0)
        else:
            classes = {c: i for i, c in enumerate(FACE_OBJECTIVES[objective])}
            y_pred[:, j] = frame.top1_label.map(classes).to_numpy()
    (line,) = datacomp_lines(tmp_path / "run")
    theirs = oracle.faces(y_pred, meta)
    assert list(line["metrics"])[:-1] == list(theirs)
    for key, value in theirs.items():
        assert line["metrics"][key] == pytest.approx(value, rel=1e-6, nan_ok=True), key


def test_report_shows_the_published_figure_beside_the_worst_group() -> None:
    rows = [{"dataset": d, "model": "ViT-B-32:openai", "variant": "default", "metric": m, "category": "",
             "group_col": g, "group": "0", "n": 500, "value": 0.5, "ci_low": 0.45, "ci_high": 0.55,
             "p_value": float("nan"), "flag": ""}
            for d, m, g in (("dollar_street", "worst_group_top5_accuracy", "income_ds"),
                            ("dollar_street", "worst_group_top5_accuracy", "region"),
                            ("geode", "worst_group_accuracy", "region"))]
    manifest = {"models": [{"id": "ViT-B-32:openai", "name": "ViT-B-32:openai"}],
                "datasets": [{"name": "dollar_street", "source": "djghosh/wds_dollar_street_test"},
                             {"name": "geode", "source": "/data/geode"}]}
    run = RunData(Path("."), manifest, pd.DataFrame(rows), None, None)
    shown = worst_group_table(run)
    # open_clip's results table: ViT-B-32 openai, Dollar Street 0.5386, GeoDE 0.8217
    assert list(shown["open_clip published %"]) == ["53.9", "\u2013", "82.2"]
    assert shown["95% CI"].iloc[0] == "45.0\u201355.0"


def test_published_table_is_derived_from_the_shared_reference(tmp_path: Path) -> None:
    shared = next((p for p in (REPO.parent / "shared" / "reference", REPO.parent.parent / "shared" / "reference")
                   if (p / "openclip_results.csv").is_file()), None)
    if shared is None:
        pytest.skip("../shared/reference/openclip_results.csv not present")
    import subprocess
    import sys

    script = REPO / "scripts" / "make_openclip_datacomp.py"
    proc = subprocess.run([sys.executable, str(script), "--check", "--reference", str(shared)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    table = openclip_datacomp()
    src = pd.read_csv(shared / "openclip_results.csv")
    assert len(table) == len(src) == 121 and table["citation"].str.contains("open_clip").all()
    merged = table.merge(src, left_on=["arch", "pretrained"], right_on=["name", "pretrained"])
    assert (merged["dollar_street"] == merged["Dollar Street"]).all() and (merged["geode"] == merged["GeoDE"]).all()


def test_worst_group_and_accuracy_test_against_hand_counts() -> None:
    from scipy.stats import chi2_contingency
    from statsmodels.stats.proportion import proportion_confint

    from audit.metrics.base import MetricInput
    from audit.metrics.worst_group import ACCURACY_TEST, WORST_GROUP_ACCURACY
    from audit.spec import DatasetSpec
    from audit.spec.models import StatsSpec

    rng = np.random.default_rng(9)
    region = rng.choice(["a", "b", "c"], 300)
    correct = rng.random(300) < np.where(region == "b", 0.3, 0.7)
    preds = pd.DataFrame({"dataset": "geode", "model": "m", "variant": "default", "region": region,
                          "correct": correct, "top5_correct": correct | (rng.random(300) < 0.5)})
    inp = MetricInput(preds, None, {"geode": DatasetSpec(adapter="wds", subgroups=("region",))}, (),
                      StatsSpec(min_n=10), ("default",), rng)
    (row,) = WORST_GROUP_ACCURACY.compute(inp)
    rates = {g: correct[region == g].mean() for g in "abc"}
    worst = min(rates, key=rates.__getitem__)
    k, n = int(correct[region == worst].sum()), int((region == worst).sum())
    assert (row.group, row.n, row.value) == (worst, n, pytest.approx(k / n))
    assert (row.ci_low, row.ci_high) == pytest.approx(proportion_confint(k, n, 0.05, method="wilson"))
    top1, top5 = ACCURACY_TEST.compute(inp)
    for got, hits in ((top1, correct), (top5, preds["top5_correct"].to_numpy())):
        table = [[int(hits[region == g].sum()), int((~hits[region == g]).sum())] for g in "abc"]
        want = chi2_contingency(table, correction=False)
        assert got.value == pytest.approx(want.statistic) and got.p_value == pytest.approx(want.pvalue)
    assert (top1.category, top5.category) == ("top1", "top5")
