"""``audit compare`` and the ``no_regression`` gate, checked against statsmodels on the runs' own files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from audit.cli import main
from audit.compare import COMPARISON_COLUMNS, compare_runs
from audit.gates import AuditRun
from audit.metrics.base import PairedCounts, paired_difference_interval
from audit.results import read_run
from tests.compare_fixtures import predictions, write_run

KEYS = ["dataset", "variant", "metric", "category", "group_col", "group"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("runs")
    return {
        "base": write_run(root / "base", predictions("m1"), fingerprint="fp0"),
        "rerun": write_run(root / "rerun", predictions("m1"), fingerprint="fp0"),
        "worse": write_run(root / "worse", predictions("m2", extra_black=0.15, model_seed=2), fingerprint="fp0"),
        "other": write_run(root / "other", predictions("m2", seed=5, model_seed=3), fingerprint="fp5"),
    }


def _mask(preds: pd.DataFrame, group_col: str, group: str) -> pd.Series:
    return pd.Series(True, index=preds.index) if group_col == "overall" else preds[group_col] == group


def _outcome(preds: pd.DataFrame, metric: str) -> pd.Series:
    return preds["top1_category"].eq("crime") if metric == "category_rate" else preds["correct"].astype(bool)


def test_paired_rows_match_the_runs_and_statsmodels(runs: dict[str, Path]) -> None:
    base, new = read_run(runs["base"]), read_run(runs["worse"])
    table = compare_runs(base, new)
    assert tuple(table.columns) == COMPARISON_COLUMNS and table["paired"].all() and len(table) == 12
    for side, run in (("base", base), ("new", new)):
        m = run.metrics.set_index(KEYS)
        got = table.set_index(KEYS)[side]
        assert np.allclose(got, m.loc[got.index, "value"])
    assert np.allclose(table["delta"], table["new"] - table["base"])
    pb, pn = base.predictions.set_index("image_id"), new.predictions.set_index("image_id")
    for _, r in table.iterrows():
        sel = _mask(pb, r["group_col"], r["group"])
        b, n = _outcome(pb[sel], r["metric"]), _outcome(pn.loc[pb.index[sel]], r["metric"])
        t = [[int((b & n).sum()), int((b & ~n).sum())], [int((~b & n).sum()), int((~b & ~n).sum())]]
        expected = 1.0 if t[0][1] + t[1][0] == 0 else mcnemar(t, exact=True).pvalue
        assert r["p_value"] == pytest.approx(expected), r.to_dict()
        ci = paired_difference_interval(PairedCounts(t[0][0], t[0][1], t[1][0], t[1][1]), 0.05)
        assert (r["ci_low"], r["ci_high"]) == pytest.approx(ci)


def test_holm_over_each_family(runs: dict[str, Path]) -> None:
    table = compare_runs(read_run(runs["base"]), read_run(runs["worse"]))
    for _, fam in table.groupby(["metric", "category", "group_col"]):
        assert np.allclose(fam["p_holm"], multipletests(fam["p_value"], method="holm")[1])


def test_direction_follows_higher_is_better(runs: dict[str, Path]) -> None:
    table = compare_runs(read_run(runs["base"]), read_run(runs["worse"]))
    black = table[(table["metric"] == "category_rate") & (table["group"] == "Black")].iloc[0]
    assert black["delta"] > 0 and black["direction"] == "worse" and black["flag"] == "regression"
    acc = table[table["metric"] == "accuracy"]
    assert ((acc["delta"] > 0) == (acc["direction"] == "better")).where(acc["delta"] != 0, True).all()


def test_unpaired_rows_equal_statsmodels(runs: dict[str, Path]) -> None:
    table = compare_runs(read_run(runs["base"]), read_run(runs["other"]))
    assert not table["paired"].any()
    for _, r in table.iterrows():
        kb, kn = round(r["base"] * r["n_base"]), round(r["new"] * r["n_new"])
        p = proportions_ztest([kn, kb], [r["n_new"], r["n_base"]])[1]
        lo, hi = confint_proportions_2indep(kn, r["n_new"], kb, r["n_base"], method="newcomb")
        assert r["p_value"] == pytest.approx(p) and (r["ci_low"], r["ci_high"]) == pytest.approx((lo, hi))


def test_planted_regression_fails_and_identical_rerun_passes(runs: dict[str, Path],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", str(runs["worse"]), "--baseline", str(runs["base"])]) == 1
    out = capsys.readouterr().out
    assert "FAIL no_regression[crime by race] m2 default" in out and "race=Black" in out and "margin 0.02" in out
    assert main(["check", str(runs["rerun"]), "--baseline", str(runs["base"])]) == 0
    results = AuditRun.load(runs["rerun"], baseline=runs["base"]).results
    assert {r.outcome for r in results} == {"pass"} and len(results) == 3


def test_without_baseline_the_gate_is_not_judged(runs: dict[str, Path]) -> None:
    results = AuditRun.load(runs["rerun"]).results
    assert {r.outcome for r in results} == {"insufficient"} and "pass --baseline RUN_DIR" in results[0].message


def test_compare_command_writes_files_and_junit(runs: dict[str, Path], tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["compare", str(runs["base"]), str(runs["worse"]), "--out", str(tmp_path / "c"),
                 "--junit", str(tmp_path / "j.xml")])
    out = capsys.readouterr().out
    assert code == 1 and "significant regression(s)" in out
    csv = pd.read_csv(tmp_path / "c" / "comparison.csv")
    assert tuple(csv.columns) == COMPARISON_COLUMNS
    page = (tmp_path / "c" / "comparison.html").read_text()
    assert page.index("Verdict: FAIL") < page.index("data:image/png;base64,") < page.index("All rows")
    assert "<failure" in (tmp_path / "j.xml").read_text()
    assert main(["compare", str(runs["base"]), str(runs["rerun"]), "--out", str(tmp_path / "d")]) == 0


def test_two_models_of_one_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    both = pd.concat([predictions("m1"), predictions("m2", extra_black=0.15, model_seed=2)], ignore_index=True)
    run = write_run(tmp_path / "both", both, fingerprint="fp0")
    assert main(["compare", str(run), "--base-model", "m1", "--new-model", "m2", "--out", str(tmp_path / "o")]) == 1
    table = pd.read_csv(tmp_path / "o" / "comparison.csv")
    assert table["paired"].all() and set(table["model_new"]) == {"m2"}
    assert main(["compare", str(run)]) == 2 and "--base-model" in capsys.readouterr().err


def test_runs_that_cannot_be_compared_exit_2(runs: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from tests.compare_fixtures import spec

    renamed = write_run(tmp_path / "renamed", predictions("m1"), fingerprint="fp0",
                        probe=spec(name="another"))
    assert main(["compare", str(runs["base"]), str(renamed)]) == 2
    err = capsys.readouterr().err
    assert "different probes: 'test_probe'" in err and "Traceback" not in err
    assert main(["compare", str(runs["base"]), str(tmp_path / "missing")]) == 2


def test_holm_adjust_equals_multipletests_with_ties() -> None:
    from audit.compare.stats import holm_adjust

    rng = np.random.default_rng(0)
    for m in (1, 2, 7, 30):  # few calls: multipletests runs gc.collect() each time
        p = rng.random(m) ** 3
        p[rng.random(m) < 0.3] = p[0]
        assert np.allclose(holm_adjust(p), multipletests(p, method="holm")[1])


def test_fairness_compare_every_pair_paired(tmp_path: Path) -> None:
    from audit.compare.runs import FAIRNESS_COMPARE, write_fairness_compare
    from tests.compare_fixtures import spec

    preds = pd.concat([predictions(m, model_seed=i) for i, m in enumerate(("a", "b", "c"))], ignore_index=True)
    run = write_run(tmp_path / "r", preds, fingerprint="fp0")
    rd = read_run(run)
    path = write_fairness_compare(run, spec(models=["a", "b", "c"]), rd.metrics, rd.predictions, rd.manifest)
    assert path == run / FAIRNESS_COMPARE
    table = pd.read_csv(path)
    assert tuple(table.columns) == COMPARISON_COLUMNS and table["paired"].all()
    assert set(zip(table["model_base"], table["model_new"])) == {("a", "b"), ("a", "c"), ("b", "c")}
    ab = compare_runs(rd, base_model="a", new_model="b")
    mine = table[(table["model_base"] == "a") & (table["model_new"] == "b")]
    assert mine["p_value"].tolist() == pytest.approx(ab["p_value"].tolist())
    one = write_run(tmp_path / "one", predictions("a"), fingerprint="fp0")
    r1 = read_run(one)
    assert write_fairness_compare(one, spec(), r1.metrics, r1.predictions, r1.manifest) is None


def test_different_label_sets_for_a_variant_exit_2(runs: dict[str, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    import json
    import shutil

    other = tmp_path / "relabelled"
    shutil.copytree(runs["rerun"], other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["prompts"]["default"]["labels"] = ["person", "burglar"]
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert main(["compare", str(runs["base"]), str(other), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "variant 'default' has different label sets (only in base: ['thief']; only in new: ['burglar']" in err
    assert not (tmp_path / "o").exists()
