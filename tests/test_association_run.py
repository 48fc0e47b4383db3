"""Association tests in a probe: validation, the gate, and the demo's planted group found."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from audit.errors import UserError
from audit.gates import GateContext
from audit.gates.association import abs_row, eval_max_association, eval_max_recall_disparity
from audit.labels import fill
from audit.spec import load_probe
from audit.spec.models import MaxAssociationGate, MaxRecallDisparityGate, StatsSpec
from tests.conftest import REPO

DEMO = REPO / "probes" / "demo.yaml"


def _probe(tmp_path: Path, **changes: object) -> Path:
    data = yaml.safe_load(DEMO.read_text())
    data.update(changes)
    path = REPO / "probes" / f".tmp-assoc-{tmp_path.name}.yaml"  # beside demo.yaml: relative paths hold
    path.write_text(yaml.safe_dump(data))
    return path


def test_probe_errors_are_located_and_listed_together(tmp_path: Path) -> None:
    bad = [{"name": "t", "group_col": "kinn", "a": {"categories": ["flaged"]}, "b": {"categories": ["object"]}},
           {"name": "t", "group_col": "kin", "groups": ["quellan", "quellan"],
            "a": {"labels": "../label_sets/nope.yaml"}, "b": {"categories": ["object"]}}]
    gates = [{"type": "max_association", "test": "tt", "threshold": 0.5}]
    path = _probe(tmp_path, associations=bad, gates=gates)
    try:
        with pytest.raises(UserError) as err:
            load_probe(path)
    finally:
        path.unlink()
    text = err.value.render()
    assert "associations[0].group_col: 'kinn' is not a declared subgroup of dataset demo_world_test -- did you mean 'kin'?" in text
    assert "associations[0].a.categories[0]: unknown category 'flaged' -- did you mean 'flagged'?" in text
    assert "associations[1].name: test name 't' is used twice" in text
    assert "associations[1].groups: name two different groups" in text
    assert "associations[1].a.labels: label set file not found" in text
    assert "gates[0].test: unknown association test 'tt' -- did you mean 't'?" in text


def test_an_attribute_set_needs_exactly_one_source(tmp_path: Path) -> None:
    bad = [{"name": "t", "group_col": "kin", "a": {"categories": ["flagged"], "labels": "x.yaml"},
            "b": {}}]
    path = _probe(tmp_path, associations=bad)
    try:
        with pytest.raises(UserError) as err:
            load_probe(path)
    finally:
        path.unlink()
    text = err.value.render()
    assert "associations[0].a: give exactly one of 'categories'" in text
    assert "associations[0].b: give exactly one of 'categories'" in text


def _rows(metric: str, values: list[tuple[str, float, float, float, int, float]], **extra: str) -> pd.DataFrame:
    return pd.DataFrame([{"dataset": "d", "model": "m", "variant": "default", "metric": metric,
                          "category": extra.get("category", "t"), "group_col": extra.get("group_col", "kin"),
                          "group": g, "value": v, "ci_low": lo, "ci_high": hi, "n": n, "p_value": p, "flag": ""}
                         for g, v, lo, hi, n, p in values])


def test_max_association_judges_the_effect_size_or_its_bound() -> None:
    metrics = _rows("association_test", [("a", 0.9, 0.6, 1.2, 50, 0.001), ("b", 0.3, -0.1, 0.7, 50, 0.2),
                                         ("c", 1.5, 0.9, 2.0, 10, 0.01)])
    ctx = GateContext(metrics, stats=StatsSpec(min_n=30), models=("m",), variants=("default", "other"))
    point = {r.group: r.outcome for r in eval_max_association(
        MaxAssociationGate(type="max_association", test="t", threshold=0.5), ctx)}
    assert point == {"a": "fail", "b": "pass", "c": "insufficient"}
    upper = {r.group: r.outcome for r in eval_max_association(
        MaxAssociationGate(type="max_association", test="t", threshold=0.5, judge="upper", min_n=5), ctx)}
    assert upper == {"a": "fail", "b": "fail", "c": "fail"}
    sig = {r.group: r.outcome for r in eval_max_association(
        MaxAssociationGate(type="max_association", test="t", threshold=0.2, significant_only=True), ctx)}
    assert sig == {"a": "fail", "b": "pass", "c": "insufficient"}
    missing = eval_max_association(MaxAssociationGate(type="max_association", test="other", threshold=0.5), ctx)
    assert [r.outcome for r in missing] == ["error"] and "declare association test 'other'" in missing[0].message


def test_recall_disparity_gate_judges_the_absolute_difference() -> None:
    assert abs_row({"value": -0.2, "ci_low": -0.3, "ci_high": -0.1}) | {} == {"value": 0.2, "ci_low": 0.1, "ci_high": 0.3}
    assert abs_row({"value": 0.05, "ci_low": -0.1, "ci_high": 0.2})["ci_low"] == 0.0
    metrics = _rows("recall_disparity", [("masc vs fem", -0.2, -0.3, -0.1, 60, 0.001),
                                         ("masc vs fem", 0.02, -0.1, 0.14, 60, 0.9)],
                    group_col="gender_presentation")
    metrics["category"] = ["nurse", "doctor"]
    ctx = GateContext(metrics, stats=StatsSpec(min_n=30), models=("m",), variants=("default",))
    res = eval_max_recall_disparity(MaxRecallDisparityGate(type="max_recall_disparity",
                                                           group_col="gender_presentation", threshold=0.1), ctx)
    assert [(r.outcome, r.judged) for r in res] == [("fail", 0.2), ("pass", 0.02)]
    assert "for class 'nurse', gender_presentation masc vs fem" in res[0].message


@pytest.fixture(scope="module")
def demo_rows(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, object]:
    from audit.association import association_rows
    from audit.cache import TextStore
    from audit.embed import embed_texts
    from audit.demo.adapter import DemoWorldAdapter
    from audit.models.openclip import OpenClipModel

    probe = load_probe(DEMO)
    # 144 held-out figures (4 balanced blocks, 48 per kin) keep the test fast; the run uses 576
    dspec = probe.spec.datasets[0].model_copy(update={"options": {"n": 144, "seed": 0}})
    data = DemoWorldAdapter(dspec, probe.resolve).load()
    model = OpenClipModel(f"local-dir:{REPO / 'audit' / 'demo' / 'model'}")
    batch = torch.stack([model.preprocess(data.load_image(i)) for i in range(len(data))])
    feats = model.encode_images(batch)
    store = TextStore(tmp_path_factory.mktemp("text"), model.info.cache_key)

    def encode(prompts: list[str]) -> np.ndarray:
        return embed_texts(model, prompts, store, quiet=True)[0]

    rows = association_rows(probe, dspec, data, model.info.name, encode, feats, np.arange(len(data)), "default")
    return rows, feats, data.metadata, model


def test_demo_planted_group_has_the_largest_positive_significant_effect(demo_rows: tuple) -> None:
    rows, feats, meta, model = demo_rows
    assert set(rows["group"]) == {"quellan", "zorbin", "ostravi"}
    top = rows.sort_values("value", ascending=False).iloc[0]
    assert top["group"] == "quellan" and top["value"] > 0.8 and top["ci_low"] > 0 and top["p_value"] < 0.05
    # independent recomputation: template-averaged unit vectors, cosines, Cohen's d with the pooled std
    templates = ["a drawing of {}.", "a picture of {}.", "{}."]

    def vec(text: str) -> np.ndarray:
        e = model.encode_texts([fill(t, text) for t in templates])
        m = (e / np.linalg.norm(e, axis=1, keepdims=True)).mean(axis=0)
        return m / np.linalg.norm(m)

    x = feats / np.linalg.norm(feats, axis=1, keepdims=True)
    s = x @ vec("an animal") - np.mean([x @ vec(t) for t in ("a ball", "a book", "a leaf", "a star")], axis=0)
    q = (meta["kin"] == "quellan").to_numpy()
    d = (s[q].mean() - s[~q].mean()) / s.std(ddof=1)
    assert top["value"] == pytest.approx(d, rel=1e-4)
    assert rows["p_value"].notna().all()


def test_forest_plot_draws_one_line_per_row_and_escapes_user_text() -> None:
    from audit.reporting.association import association_table, plot_association_forest

    metrics = _rows("association_test", [("a$b", 0.9, 0.6, 1.2, 50, 0.001), ("c", -0.3, -0.6, 0.1, 12, 0.4)])
    metrics.loc[1, "flag"] = "small_n"
    assert plot_association_forest(metrics.assign(metric="accuracy")) is None
    fig = plot_association_forest(metrics)
    ticks = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert ticks == [r"t | a\$b", "t | c\u2020"]
    assert list(association_table(metrics)["group"]) == ["a$b", "c"]


def test_report_sections_show_only_what_the_run_has(monkeypatch: pytest.MonkeyPatch) -> None:
    from audit.reporting import association as ra

    shown: list[str] = []
    monkeypatch.setattr(ra, "markdown", lambda text: shown.append(text))
    monkeypatch.setattr(ra, "show_associations", lambda run, alpha: shown.append(f"assoc {alpha}"))
    monkeypatch.setattr(ra, "show_recall_disparities", lambda run, alpha: shown.append("recall"))

    class Run:
        metrics = _rows("association_test", [("a", 0.9, 0.6, 1.2, 50, 0.001)])
        resolved = {"stats": {"alpha": 0.01}}

    ra.show_association_sections(Run())  # type: ignore[arg-type]
    assert shown == ["## Association tests", "assoc 0.01"]
