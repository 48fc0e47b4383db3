"""The report's figures and tables draw exactly the run's numbers (no notebook needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from audit.errors import DataError
from audit.reporting import (
    clip_paper_reference,
    format_rows,
    gate_table,
    load_run,
    plot_accuracy_by_group,
    plot_category_rates,
    plot_effective_robustness,
    plot_effective_robustness_scatter,
    plot_intersection,
    plot_template_sensitivity,
    plot_variant_comparison,
    rate_table,
)
from audit.reporting.display import figure_png
from audit.reporting.fairness import _split_groups
from audit.reporting.load import RunData
from audit.testing.sample_run import MODELS, RACES, write_sample_run
from audit.results import METRICS


@pytest.fixture(scope="module")
def fair(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    return load_run(write_sample_run(tmp_path_factory.mktemp("f") / "run", "fairness"))


@pytest.fixture(scope="module")
def rob(tmp_path_factory: pytest.TempPathFactory) -> RunData:
    return load_run(write_sample_run(tmp_path_factory.mktemp("r") / "run", "robustness"))


def _labelled(fig: Figure) -> None:
    for ax in fig.axes:
        if not ax.get_visible() or ax.get_label() == "<colorbar>":
            continue
        assert ax.get_title(), "every panel has a title"
        assert ax.get_xlabel() and ax.get_ylabel(), "every panel has axis labels"
    png = figure_png(fig)
    assert png.startswith(b"\x89PNG") and len(png) > 10_000


def test_category_rate_bars_are_the_metrics(fair: RunData) -> None:
    fig = plot_category_rates(fair.metrics, "crime", "race", models=MODELS)
    assert fig is not None
    _labelled(fig)
    ax = fig.axes[0]
    assert ax.get_ylabel() == "rate (% of images)"
    m = fair.metrics
    expected = m[(m["metric"] == "category_rate") & (m["category"] == "crime")
                 & (m["group_col"] == "race") & (m["variant"] == "default")]
    bars = [p for p in ax.patches if p.get_width() > 0 and p.get_height() >= 0]
    for model, patches in zip(MODELS, np.array_split(np.array(bars[:2 * len(RACES)]), 2)):
        want = expected[expected["model"] == model].set_index("group").loc[list(RACES), "value"]
        got = [p.get_height() for p in patches]
        np.testing.assert_allclose(got, 100 * want.to_numpy(), rtol=1e-9)
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    n = expected[expected["model"] == MODELS[0]].set_index("group")["n"]
    assert ticks[0] == f"East Asian\nn={int(n['East Asian']):,}"


def test_error_bars_are_the_intervals(fair: RunData) -> None:
    fig = plot_accuracy_by_group(fair.metrics, "gender", models=MODELS)
    ax = fig.axes[0]
    m = fair.metrics
    rows = m[(m["metric"] == "accuracy") & (m["group_col"] == "gender") & (m["variant"] == "default")
             & (m["model"] == MODELS[0])]
    segments = ax.collections[0].get_segments()  # first model's error bars
    got = sorted((round(s[0][1], 9), round(s[1][1], 9)) for s in segments)
    want = sorted((round(100 * lo, 9), round(100 * hi, 9)) for lo, hi in zip(rows["ci_low"], rows["ci_high"]))
    assert got == want


def test_small_n_is_marked(fair: RunData) -> None:
    fig = plot_category_rates(fair.metrics, ["crime"], "age")
    ax = fig.axes[0]
    assert any(p.get_hatch() == "///" for p in ax.patches)
    assert any(t.get_text().endswith("\u2020") for t in ax.get_xticklabels())  # "more than 70"
    assert any("min_n" in t.get_text() for t in ax.get_legend().get_texts())


def test_clip_paper_markers_only_where_published(fair: RunData) -> None:
    ref = clip_paper_reference()
    if ref is None:
        pytest.skip("audit.reference not installed")
    fig = plot_category_rates(fair.metrics, ["crime", "crime|non_human"], "race", reference=ref)
    crime_ax, union_ax = fig.axes
    diamonds = [c for c in crime_ax.collections if c.get_label() == "CLIP paper (published)"]
    assert len(diamonds) == 1
    ys = diamonds[0].get_offsets()[:, 1]
    assert ys[list(RACES).index("Indian")] == pytest.approx(24.4)
    assert not [c for c in union_ax.collections if "CLIP" in str(c.get_label())]
    table = rate_table(fair, "race", category="crime").set_index("race")
    assert table.loc["Indian", "crime: CLIP paper"] == "24.4%"
    rows = fair.rows("category_rate", category="crime", group_col="race", variant="default",
                     model=MODELS[0]).set_index("group")
    r = rows.loc["Indian"]
    assert table.loc["Indian", f"crime: {MODELS[0]}"] == (
        f"{100 * r['value']:.1f}% ({100 * r['ci_low']:.1f}\u2013{100 * r['ci_high']:.1f})")
    assert table.loc["Indian", "n"] == f"{int(r['n']):,}"
    ages = rate_table(fair, "age", category="crime").set_index("age")
    assert ages.loc["more than 70", f"crime: {MODELS[0]}"].endswith("\u2020")


def test_other_figures(fair: RunData) -> None:
    for fig in (plot_intersection(fair.metrics, ["crime", "non_human"], models=MODELS),
                plot_variant_comparison(fair.metrics, "age", reference=clip_paper_reference()),
                plot_template_sensitivity(fair.metrics)):
        assert fig is not None
        _labelled(fig)


def test_absent_rows_give_none(fair: RunData) -> None:
    only = fair.metrics[fair.metrics["metric"] == "category_rate"]
    assert plot_accuracy_by_group(only, "race") is None
    assert plot_template_sensitivity(only) is None
    assert plot_category_rates(only, "crime", "ethnicity") is None
    assert plot_variant_comparison(only[only["variant"] == "default"], "age") is None
    assert plot_intersection(only, "crime", "race x ethnicity") is None


def test_intersection_groups_split() -> None:
    parts = _split_groups("race x gender", pd.Series(["Black x Female", "Latino_Hispanic x Male"]))
    assert parts.values.tolist() == [["Black", "Female"], ["Latino_Hispanic", "Male"]]


def test_robustness_figures(rob: RunData) -> None:
    fig = plot_effective_robustness_scatter(rob)
    assert fig is not None
    _labelled(fig)
    ax = fig.axes[0]
    assert ax.get_xscale() == "logit" and ax.get_yscale() == "logit"
    assert ax.get_xlabel() == "ImageNet top-1 (%, logit scale)"
    audited = {c.get_label(): c.get_offsets()[0] for c in ax.collections if c.get_label() in MODELS}
    r = rob.robustness.set_index(["model", "dataset"])
    shift = ax.get_title().split(" ")[0]
    for model, (x, y) in audited.items():
        assert y == pytest.approx(r.loc[(model, shift), "top1_pts"] / 100)  # points in the file
        if "imagenet_top1_pts" in r:
            assert x == pytest.approx(r.loc[(model, shift), "imagenet_top1_pts"] / 100)
    bars = plot_effective_robustness(rob)
    _labelled(bars)
    heights = sorted(p.get_height() for p in bars.axes[0].patches)
    assert heights == pytest.approx(sorted(rob.robustness["effective_robustness_pts"]))


def test_tables_format_the_metrics(fair: RunData) -> None:
    rows = fair.rows("category_rate", group_col="overall", variant="default")
    out = format_rows(rows, keep=["model", "category"])
    first = rows.iloc[0]
    assert out.loc[0, "value"] == f"{100 * first['value']:.1f}%"
    assert out.loc[0, "n"] == f"{int(first['n']):,}"
    gates = gate_table(fair, failing_only=True)
    assert set(gates["outcome"]) <= {"FAIL", "INSUFFICIENT DATA"} and len(gates) > 0


def test_malformed_metrics_is_a_data_error(tmp_path: Path) -> None:
    run_dir = write_sample_run(tmp_path / "run", "robustness")
    m = pd.read_csv(run_dir / METRICS)
    m["value"] = m["value"].astype(object)
    m.loc[1, "value"] = "n/a?"
    m.to_csv(run_dir / METRICS, index=False)
    with pytest.raises(DataError, match=r"metrics.csv line 3: column 'value' holds 'n/a\?', not a number"):
        load_run(run_dir)
    m.drop(columns=["ci_low"]).to_csv(run_dir / METRICS, index=False)
    with pytest.raises(DataError, match="missing columns ci_low"):
        load_run(run_dir)


def test_each_dataset_gets_its_own_section(fair: RunData) -> None:
    from audit.reporting.sections import _each_dataset

    other = fair.metrics.assign(dataset="utkface")
    both = RunData(fair.run_dir, fair.manifest, pd.concat([fair.metrics, other]), fair.gates, None)
    assert _each_dataset(fair, "category_rate") == [None]
    assert _each_dataset(both, "category_rate") == ["fairface", "utkface"]
    fig = plot_category_rates(both.metrics, "crime", "race", dataset="utkface")
    assert "utkface" in fig.axes[0].get_title()


def test_numeric_bins_in_numeric_order() -> None:
    from audit.reporting.tables import group_order

    lexical = ["0-2", "10-19", "20-29", "3-9", "30-39", "more than 70"]
    assert group_order(lexical) == ["0-2", "3-9", "10-19", "20-29", "30-39", "more than 70"]
    assert group_order(["White", "Black", "Indian"]) == ["White", "Black", "Indian"]
