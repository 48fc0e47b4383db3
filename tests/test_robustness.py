"""Effective robustness: the fit, the table, the bootstrap, comparisons and metrics input.

Expected numbers are computed independently (numpy.polyfit / corrcoef on logits by hand, a
loop bootstrap) rather than snapshotted.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from audit.errors import EXIT_USER, UserError
from audit.results import METRIC_COLUMNS
from audit.robustness import (
    COMPARE_COLUMNS, ROBUSTNESS_COLUMNS, SHIFTS, compare_models, effective_robustness,
    fit_band, fit_baseline, fits_table, robustness_from_metrics,
)
from audit.robustness.fit import NOTE_LOW_R

BASELINE_CSV = Path(__file__).resolve().parents[1] / "audit" / "reference" / "testbed_baseline.csv"

# Radford et al. 2021 (Figure 13): zero-shot CLIP ViT-L/14@336px and a standard ResNet-101.
PAPER = {
    "clip-vit-l14-336": {"imagenet": 76.2, "imagenet_v2": 70.1, "imagenet_r": 88.9,
                         "objectnet": 72.3, "imagenet_sketch": 60.2, "imagenet_a": 77.1},
    "resnet101": {"imagenet": 76.2, "imagenet_v2": 64.3, "imagenet_r": 37.7,
                  "objectnet": 32.6, "imagenet_sketch": 25.2, "imagenet_a": 2.7},
}


def long_table(acc: dict[str, dict[str, float]], scale: float = 100.0) -> pd.DataFrame:
    return pd.DataFrame([{"model": m, "dataset": d, "top1": v / scale}
                         for m, row in acc.items() for d, v in row.items()])


def hand_logit(p: np.ndarray) -> np.ndarray:
    return np.log(p / (1.0 - p))


def hand_expit(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def hand_fit(shift: str) -> tuple[float, float, float, int]:
    """slope, intercept, r, n from the shipped CSV with numpy only."""
    df = pd.read_csv(BASELINE_CSV)[["imagenet", shift]].dropna()
    df = df[(df[shift] > 0) & (df[shift] < 1)]
    x, y = hand_logit(df["imagenet"].to_numpy()), hand_logit(df[shift].to_numpy())
    slope, intercept = np.polyfit(x, y, 1)
    return float(slope), float(intercept), float(np.corrcoef(x, y)[0, 1]), len(df)


@pytest.fixture(scope="module")
def paper_table() -> pd.DataFrame:
    return effective_robustness(long_table(PAPER), n_bootstrap=300, rng=0)


def linear_baseline(n: int = 20, slope: float = 1.2, intercept: float = -1.0,
                    noise: float = 0.0, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = np.linspace(0.55, 0.85, n)
    out = {"model": [f"m{i}" for i in range(n)], "imagenet": x}
    for k, shift in enumerate(SHIFTS):
        z = intercept + slope * hand_logit(x) + noise * rng.standard_normal(n)
        out[shift] = hand_expit(z + 0.1 * k)
    return pd.DataFrame(out)


# --------------------------------------------------------------------------- the fit


@pytest.mark.parametrize("shift", SHIFTS)
def test_fit_matches_polyfit_on_hand_logits(shift: str) -> None:
    slope, intercept, r, n = hand_fit(shift)
    fit = fit_baseline(None, shift)
    assert fit.slope == pytest.approx(slope, abs=1e-10)
    assert fit.intercept == pytest.approx(intercept, abs=1e-10)
    assert fit.r == pytest.approx(r, abs=1e-10)
    assert fit.n == n
    res = stats.linregress(fit.x, fit.y)
    by_linregress = hand_expit(res.intercept + res.slope * hand_logit(0.7))
    assert fit.predict(0.7) == pytest.approx(by_linregress)


def test_fit_on_shipped_baseline_matches_the_testbed_facts() -> None:
    fits = fits_table().set_index("dataset")
    assert fits.loc["imagenet_v2", "r"] > 0.997          # the testbed's near-perfect line
    assert 0.85 < fits.loc["imagenet_a", "r"] < 0.9      # ~0.88: fitted in two pieces there
    assert fits.loc[:, "n"].to_dict() == {"imagenet_v2": 85, "imagenet_sketch": 85,
                                          "imagenet_r": 80, "imagenet_a": 84, "objectnet": 85}
    assert "low fit r" in fits.loc["imagenet_a", "note"]
    assert "resnet50" in fits.loc["imagenet_a", "note"]     # 0% on ImageNet-A: left out
    assert fits.loc["imagenet_v2", "note"] == ""
    assert fit_baseline(None, "imagenet_a").left_out == ("resnet50",)


def test_fit_errors_name_the_problem() -> None:
    msg = "unknown shift 'imagenet-r' -- did you mean 'imagenet_r'"
    with pytest.raises(UserError, match=msg) as e:
        fit_baseline(None, "imagenet-r")
    assert e.value.exit_code == EXIT_USER
    tiny = linear_baseline(n=2)
    with pytest.raises(UserError, match="2 usable model"):
        fit_baseline(tiny, "imagenet_v2")
    with pytest.raises(UserError, match="no 'objectnet' column"):
        fit_baseline(tiny.drop(columns="objectnet"), "objectnet")


def test_long_baseline_gives_the_same_fit() -> None:
    wide = linear_baseline(noise=0.1)
    long = wide.melt(id_vars="model", var_name="dataset", value_name="top1")
    a, b = fit_baseline(wide, "objectnet"), fit_baseline(long, "objectnet")
    assert (a.slope, a.intercept, a.r, a.n) == pytest.approx((b.slope, b.intercept, b.r, b.n))


# --------------------------------------------------------------------------- the table


def test_columns_and_order(paper_table: pd.DataFrame) -> None:
    assert tuple(paper_table.columns) == ROBUSTNESS_COLUMNS
    assert list(paper_table["model"]) == ["clip-vit-l14-336"] * 5 + ["resnet101"] * 5
    assert list(paper_table["dataset"]) == list(SHIFTS) * 2


def test_one_unit_per_table_named_in_every_column(paper_table: pd.DataFrame) -> None:
    # issue 16: every accuracy or robustness number is in points and says so; the fit's
    # logit-space slope/intercept and its r and n have no accuracy unit
    unitless = {"fit_slope", "fit_intercept", "fit_r", "fit_n"}
    numeric = [c for c in paper_table.columns if pd.api.types.is_numeric_dtype(paper_table[c])]
    assert {c for c in numeric if not c.endswith("_pts")} == unitless
    pts = paper_table[[c for c in numeric if c.endswith("_pts") and "top1" in c]]
    assert ((pts > 1) & (pts <= 100)).all().all()  # points, not fractions


def test_numbers_match_a_hand_computation(paper_table: pd.DataFrame) -> None:
    for row in paper_table.itertuples():
        slope, intercept, r, n = hand_fit(row.dataset)
        x = PAPER[row.model]["imagenet"] / 100
        y = PAPER[row.model][row.dataset] / 100
        pred = hand_expit(intercept + slope * hand_logit(x))
        # one unit for the whole table: accuracy points
        assert row.top1_pts == pytest.approx(100 * y, abs=1e-9)
        assert row.imagenet_top1_pts == pytest.approx(100 * x, abs=1e-9)
        assert row.baseline_top1_pts == pytest.approx(100 * pred, abs=1e-10)
        assert row.effective_robustness_pts == pytest.approx(100 * (y - pred), abs=1e-9)
        assert row.effective_robustness_pts == pytest.approx(row.top1_pts - row.baseline_top1_pts, abs=1e-9)
        assert row.relative_robustness_pts == pytest.approx(100 * (y - x), abs=1e-9)
        assert (row.fit_slope, row.fit_intercept, row.fit_r, row.fit_n) == pytest.approx(
            (slope, intercept, r, n), abs=1e-10)
        assert row.eff_rob_low_pts <= row.effective_robustness_pts <= row.eff_rob_high_pts
        assert row.eff_rob_baseline_low_pts <= row.effective_robustness_pts <= row.eff_rob_baseline_high_pts


def test_clip_paper_model_is_effectively_robust_on_every_shift(paper_table: pd.DataFrame) -> None:
    clip = paper_table[paper_table["model"] == "clip-vit-l14-336"].set_index("dataset")
    assert (clip["effective_robustness_pts"] > 5).all()
    assert (clip["eff_rob_low_pts"] > 0).all()
    assert clip.loc["imagenet_r", "effective_robustness_pts"] > 40
    assert clip.loc["imagenet_a", "effective_robustness_pts"] > 60


def test_standard_resnet101_sits_on_the_line(paper_table: pd.DataFrame) -> None:
    rn = paper_table[paper_table["model"] == "resnet101"].set_index("dataset")
    assert (rn["effective_robustness_pts"].abs() < 5).all()
    assert rn.loc["imagenet_a", "note"].startswith(NOTE_LOW_R.split("{")[0])
    assert "two pieces" in rn.loc["imagenet_a", "note"]
    assert rn.loc["imagenet_v2", "note"] == rn.loc["objectnet", "note"] == ""


def test_low_r_threshold_and_extrapolation_notes() -> None:
    rows = long_table({"m": {"imagenet": 0.95, "imagenet_v2": 0.9, "objectnet": 0.6}}, scale=1)
    clean = effective_robustness(rows, linear_baseline(), n_bootstrap=0)
    assert clean["fit_r"].to_numpy() == pytest.approx([1, 1])
    assert all("outside the baseline's range 0.550-0.850" in n for n in clean["note"])
    assert not any("low fit r" in n for n in clean["note"])
    assert clean["eff_rob_low_pts"].isna().all()          # n_bootstrap=0: no band
    noisy = effective_robustness(rows, linear_baseline(noise=0.8), n_bootstrap=0, low_r=0.99)
    assert all("low fit r" in n and "< 0.99" in n for n in noisy["note"])


def test_model_with_only_some_shifts_and_no_shifts() -> None:
    rows = long_table({"a": {"imagenet": 0.7, "imagenet_r": 0.5},
                       "b": {"imagenet": 0.6}}, scale=1)
    out = effective_robustness(rows, n_bootstrap=10)
    assert list(zip(out["model"], out["dataset"])) == [("a", "imagenet_r")]
    empty = effective_robustness(long_table({"b": {"imagenet": 0.6}}, scale=1))
    assert empty.empty and tuple(empty.columns) == ROBUSTNESS_COLUMNS


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_is_reproducible_and_seeded() -> None:
    rows = long_table(PAPER)
    a = effective_robustness(rows, n_bootstrap=200, rng=7)
    b = effective_robustness(rows, n_bootstrap=200, rng=np.random.default_rng(7))
    c = effective_robustness(rows, n_bootstrap=200, rng=8)
    pd.testing.assert_frame_equal(a, b)
    assert not np.allclose(a["eff_rob_low_pts"], c["eff_rob_low_pts"])
    pd.testing.assert_frame_equal(effective_robustness(rows, n_bootstrap=50),
                                  effective_robustness(rows, n_bootstrap=50))


def test_band_matches_a_loop_bootstrap() -> None:
    fit = fit_baseline(None, "objectnet")
    grid = np.array([0.6, 0.7, 0.8])
    band = fit_band(fit, grid, n_bootstrap=200, rng=np.random.default_rng(3))
    rng = np.random.default_rng(3)
    idx = rng.integers(0, fit.n, size=(200, fit.n))  # the same draws, refit one by one
    preds = []
    for rep in idx:
        slope, intercept = np.polyfit(fit.x[rep], fit.y[rep], 1)
        preds.append(hand_expit(intercept + slope * hand_logit(grid)))
    low, high = np.percentile(np.array(preds), [2.5, 97.5], axis=0)
    assert band["band_low"].to_numpy() == pytest.approx(low, abs=1e-10)
    assert band["band_high"].to_numpy() == pytest.approx(high, abs=1e-10)
    assert (band["band_low"] <= band["baseline_top1"]).all()
    assert (band["baseline_top1"] <= band["band_high"]).all()


def test_default_grid_covers_the_baseline_and_clip_range() -> None:
    band = fit_band(fit_baseline(None, "imagenet_v2"), n_bootstrap=20)
    assert list(band.columns) == ["dataset", "imagenet_top1", "baseline_top1", "band_low",
                                  "band_high"]
    assert len(band) == 200
    assert band["imagenet_top1"].min() < 0.56 and band["imagenet_top1"].max() >= 0.9


# --------------------------------------------------------------------------- compare


def test_compare_clip_with_resnet101() -> None:
    table = effective_robustness(long_table(PAPER), n_bootstrap=0)
    cmp = compare_models(long_table(PAPER), "clip-vit-l14-336", "resnet101", n_bootstrap=300)
    assert tuple(cmp.columns) == COMPARE_COLUMNS
    assert list(cmp["dataset"]) == list(SHIFTS)
    assert (cmp["more_robust"] == "clip-vit-l14-336").all()
    er = table.set_index(["model", "dataset"])["effective_robustness_pts"]
    for row in cmp.itertuples():
        assert row.difference == pytest.approx(
            er[("clip-vit-l14-336", row.dataset)] - er[("resnet101", row.dataset)])
        # Same ImageNet accuracy: the line cancels, so resampling the baseline changes nothing.
        assert row.diff_low == pytest.approx(row.difference)
        assert row.diff_high == pytest.approx(row.difference)
    assert (cmp["resampled"] == "baseline models").all()


def per_image(models: dict[str, dict[str, np.ndarray]]) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": d, "model": m, "image_id": i, "correct": bool(c)}
                         for m, by_d in models.items() for d, arr in by_d.items()
                         for i, c in enumerate(arr)])


def test_compare_resamples_paired_images() -> None:
    rng = np.random.default_rng(0)
    n = 400
    a = {d: rng.random(n) < p for d, p in (("imagenet", 0.75), ("imagenet_v2", 0.66))}
    b = {"imagenet": a["imagenet"] ^ (rng.random(n) < 0.1),
         "imagenet_v2": a["imagenet_v2"] ^ (rng.random(n) < 0.1)}
    correct = per_image({"a": a, "b": b})
    rows = correct.groupby(["model", "dataset"], as_index=False)["correct"].mean()
    rows = rows.rename(columns={"correct": "top1"})
    base = linear_baseline()   # exactly linear: resampled fits are all the same line
    got = compare_models(rows, "a", "b", base, correct=correct, n_bootstrap=2000, rng=1).iloc[0]
    assert got["resampled"] == "baseline models, images (imagenet, imagenet_v2)"
    # Independent bootstrap over image indices: paired across models, each dataset drawn apart.
    fit = fit_baseline(base, "imagenet_v2")
    draw = np.random.default_rng(2)
    idx_x, idx_y = draw.integers(0, n, size=(2000, n)), draw.integers(0, n, size=(2000, n))

    def er(m: dict[str, np.ndarray]) -> np.ndarray:
        x, y = m["imagenet"][idx_x].mean(axis=1), m["imagenet_v2"][idx_y].mean(axis=1)
        return 100 * (y - hand_expit(fit.intercept + fit.slope * hand_logit(x)))
    low, high = np.percentile(er(a) - er(b), [2.5, 97.5])
    assert got["diff_low"] == pytest.approx(low, abs=0.6)   # Monte Carlo noise ~0.2
    assert got["diff_high"] == pytest.approx(high, abs=0.6)
    # A model against its twin: every replicate's difference is exactly 0.
    a_rows = rows[rows["model"] == "a"]
    twin = pd.concat([a_rows, a_rows.assign(model="a2")])
    twin_correct = per_image({"a": a, "a2": a})
    same = compare_models(twin, "a", "a2", correct=twin_correct, n_bootstrap=100).iloc[0]
    assert (same["difference"], same["diff_low"], same["diff_high"]) == (0, 0, 0)
    assert same["more_robust"] == "undecided"


def test_compare_errors() -> None:
    rows = long_table(PAPER)
    msg = "model 'resnet-101' is not in the table -- did you mean 'resnet101'"
    with pytest.raises(UserError, match=msg) as e:
        compare_models(rows, "clip-vit-l14-336", "resnet-101")
    assert e.value.exit_code == EXIT_USER
    with pytest.raises(UserError, match="is the same model as model_a"):
        compare_models(rows, "resnet101", "resnet101")
    bad = per_image({"clip-vit-l14-336": {"imagenet": np.ones(10)},
                     "resnet101": {"imagenet": np.ones(10)}})
    with pytest.raises(UserError, match="per-image results disagree with the table"):
        compare_models(rows, "clip-vit-l14-336", "resnet101", correct=bad, n_bootstrap=10)


# --------------------------------------------------------------------------- metrics.csv input


def metrics_rows(acc: dict[str, dict[str, float]], variant: str,
                 rename: dict[str, str] | None = None) -> list[dict[str, object]]:
    rows = []
    for model, by_d in acc.items():
        for d, v in by_d.items():
            base = {c: "" for c in METRIC_COLUMNS} | {
                "dataset": (rename or {}).get(d, d), "model": model, "variant": variant,
                "n": 1000, "ci_low": np.nan, "ci_high": np.nan, "p_value": np.nan}
            rows.append(base | {"metric": "accuracy", "group_col": "overall", "group": "",
                                "value": v / 100})
            rows.append(base | {"metric": "accuracy", "group_col": "race", "group": "x",
                                "value": 0.01})
            rows.append(base | {"metric": "top5_accuracy", "group_col": "overall", "value": 0.99})
    return rows


def test_robustness_from_metrics_equals_the_direct_table() -> None:
    rename = {"imagenet_v2": "inv2"}
    metrics = pd.DataFrame(
        metrics_rows(PAPER, "default", rename) + metrics_rows(PAPER, "short", rename)
        + metrics_rows({"fairface-only": {"fairface": 50.0}}, "default")
        + metrics_rows({"no-imagenet": {"imagenet_r": 50.0}}, "default"),
        columns=list(METRIC_COLUMNS))
    got = robustness_from_metrics(metrics, dataset_names={"inv2": "imagenet_v2"},
                                  n_bootstrap=100, rng=0)
    assert tuple(got.columns) == (*ROBUSTNESS_COLUMNS, "n", "variant")
    assert list(got["variant"].unique()) == ["default", "short"]
    # metrics.csv carries n (1000 images each): the interval includes the model's sampling error
    want = effective_robustness(long_table(PAPER).assign(n=1000), n_bootstrap=100, rng=0)
    assert (want["eff_rob_high_pts"] - want["eff_rob_low_pts"] > want["eff_rob_baseline_high_pts"]
            - want["eff_rob_baseline_low_pts"]).all()
    default = got[got["variant"] == "default"].drop(columns=["n", "variant"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(default, want)
    assert set(got["model"]) == set(PAPER)


def test_robustness_from_metrics_without_shifts_is_empty() -> None:
    metrics = pd.DataFrame(metrics_rows({"m": {"fairface": 40.0}}, "default"),
                           columns=list(METRIC_COLUMNS))
    got = robustness_from_metrics(metrics)
    assert got.empty and tuple(got.columns) == (*ROBUSTNESS_COLUMNS, "variant")
    with pytest.raises(UserError, match="missing group_col"):
        robustness_from_metrics(metrics.drop(columns="group_col"))
