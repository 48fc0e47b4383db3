"""FACET: the adapter on a generated annotations.csv + images in the documented layout, the
per-class recall and recall-disparity metrics recomputed independently, and an end-to-end run
with a planted model whose per-person predictions are known in advance."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from statsmodels.stats.multitest import multipletests

from audit.data.facet import DERIVED, FACET_CLASSES, RAW_COLUMNS, FacetAdapter, display_name
from audit.errors import DataError
from audit.metrics import compute_metrics
from audit.metrics.person_recall import largest_disparities
from audit.models.base import ModelInfo
from audit.spec import DatasetSpec
from audit.spec.models import ProbeSpec

CLASSES = ("doctor", "nurse", "guitarist")
SIDE, BOX = 64, 16  # each image holds 4 people in a 2 x 2 grid of 16-px boxes
Z = 1.959963984540054


def _votes(level: str, levels: Sequence[str], prefix: str) -> dict[str, int]:
    return {f"{prefix}_{v}": int(v == level) * 2 for v in levels}


def write_facet(root: Path, people: list[dict[str, Any]]) -> None:
    """``annotations/annotations.csv`` and images split over ``imgs_1/`` and ``imgs_2/``; each
    person's box is filled with a colour that encodes the class the planted model will predict."""
    rows = []
    per_image = 4
    for start in range(0, len(people), per_image):
        img = Image.new("RGB", (SIDE, SIDE), (255, 255, 255))
        name = f"sa_{start // per_image:05d}.jpg"
        for j, person in enumerate(people[start:start + per_image]):
            x, y = 8 + (j % 2) * 32, 8 + (j // 2) * 32
            img.paste((FACET_CLASSES.index(person["shows"]) * 4, 100, 50), (x, y, x + BOX, y + BOX))
            row = {c: 0 for c in RAW_COLUMNS}
            row.update(person_id=str(1000 + start + j), filename=name, class1=person["class1"], class2="",
                       bounding_box=json.dumps({"x": x, "y": y, "width": BOX, "height": BOX}))
            row.update(_votes(person["gender"], ("masc", "fem", "non_binary"), "gender_presentation"))
            row[f"skin_tone_{person['tone']}"] = 3
            rows.append(row)
        folder = root / ("imgs_1" if start % 8 == 0 else "imgs_2")
        folder.mkdir(parents=True, exist_ok=True)
        img.save(folder / name, quality=100, subsampling=0)
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(root / "annotations" / "annotations.csv", index=False)


def _people(seed: int = 0, n: int = 96) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        cls, gender = CLASSES[i % 3], ("masc", "fem")[(i // 3) % 2]
        right = rng.random() < (0.9 if gender == "masc" or cls != "nurse" else 0.3)  # planted: nurse, fem
        shows = cls if right else CLASSES[(CLASSES.index(cls) + 1) % 3]
        out.append({"class1": cls, "gender": gender, "tone": int(rng.integers(1, 11)), "shows": shows})
    return out


def _load(root: Path, **kw: Any) -> Any:
    spec = DatasetSpec(adapter="facet", source=str(root), subgroups=kw.pop("subgroups", ("gender_presentation", "skin_tone")),
                       target="class1", **kw)
    return FacetAdapter(spec, lambda p: Path(p).resolve()).load()


def test_adapter_reads_the_documented_layout_and_crops_people(tmp_path: Path) -> None:
    people = _people()
    write_facet(tmp_path, people)
    data = _load(tmp_path)
    meta = data.metadata
    assert len(data) == len(people) and list(meta["image_id"][:2]) == ["1000", "1001"]
    assert list(meta["target"]) == [display_name(p["class1"]) for p in people]
    assert list(meta["gender_presentation"]) == [p["gender"] for p in people]
    tone = ["lighter" if p["tone"] <= 3 else "medium" if p["tone"] <= 6 else "darker" for p in people]
    assert list(meta["skin_tone"]) == tone
    assert data.info.class_names is not None and len(data.info.class_names) == 52
    crop = data.load_image(5)
    assert crop.size == (BOX, BOX)
    red = np.median(np.asarray(crop)[..., 0])
    assert abs(red - FACET_CLASSES.index(people[5]["shows"]) * 4) <= 2
    whole = _load(tmp_path, options={"crop": "image"}).load_image(5)
    assert whole.size == (SIDE, SIDE)


def test_majority_vote_leaves_ties_and_no_votes_missing(tmp_path: Path) -> None:
    write_facet(tmp_path, _people(n=4))
    csv = tmp_path / "annotations" / "annotations.csv"
    frame = pd.read_csv(csv)
    frame.loc[0, ["gender_presentation_masc", "gender_presentation_fem"]] = [1, 1]  # tie
    frame.loc[1, [c for c in frame.columns if c.startswith("gender_presentation")]] = 0  # no vote
    frame.to_csv(csv, index=False)
    meta = _load(tmp_path).metadata
    assert meta["gender_presentation"].iloc[0] is None and meta["gender_presentation"].iloc[1] is None
    assert set(DERIVED) == {"gender_presentation", "age_presentation", "skin_tone"}


def test_missing_data_and_columns_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        _load(tmp_path / "nowhere")
    assert err.value.exit_code == 3 and "https://ai.meta.com/datasets/facet-downloads/" in err.value.render()
    write_facet(tmp_path, _people(n=4))
    csv = tmp_path / "annotations" / "annotations.csv"
    pd.read_csv(csv).drop(columns=["bounding_box", "skin_tone_7", "gender_presentation_fem"]).to_csv(csv, index=False)
    with pytest.raises(DataError) as err:
        _load(tmp_path)
    assert "lacks column(s) bounding_box, gender_presentation_fem, skin_tone_7 (columns found: " in err.value.render()


def test_bad_boxes_are_listed(tmp_path: Path) -> None:
    write_facet(tmp_path, _people(n=4))
    csv = tmp_path / "annotations" / "annotations.csv"
    frame = pd.read_csv(csv)
    frame.loc[1, "bounding_box"] = "{'x': 1}"
    frame.loc[2, "bounding_box"] = json.dumps({"x": 0, "y": 0, "width": 0, "height": 3})
    frame.to_csv(csv, index=False)
    with pytest.raises(DataError) as err:
        _load(tmp_path)
    text = err.value.render()
    assert "person_id 1001" in text and "person_id 1002" in text and "person_id 1000" not in text


# --------------------------------------------------------------------------- metrics


def _wilson(k: int, n: int) -> tuple[float, float]:
    p = k / n
    centre = (p + Z * Z / (2 * n)) / (1 + Z * Z / n)
    half = Z / (1 + Z * Z / n) * math.sqrt(p * (1 - p) / n + Z * Z / (4 * n * n))
    return centre - half, centre + half


def _predictions(seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    n = 600
    gender = rng.choice(["masc", "fem"], n)
    target = rng.choice(["doctor", "nurse", "guitarist"], n)
    p = np.where((target == "nurse") & (gender == "fem"), 0.4, 0.8)
    return pd.DataFrame({"dataset": "facet", "model": "m", "variant": "default", "image_id": np.arange(n).astype(str),
                         "gender_presentation": gender, "target": target, "correct": rng.random(n) < p})


def _spec(metrics: list[str]) -> ProbeSpec:
    return ProbeSpec.model_validate({
        "name": "t", "dataset": {"adapter": "facet", "name": "facet", "subgroups": ["gender_presentation"],
                                 "target": "class1"},
        "models": ["m"], "label_sets": ["classnames"], "metrics": metrics, "stats": {"min_n": 30}})


def test_recall_per_class_by_group_matches_a_hand_count() -> None:
    preds = _predictions()
    out = compute_metrics(preds, _spec(["class_recall"]), np.random.default_rng(0))
    rows = out[(out.metric == "class_recall") & (out.group_col == "gender_presentation")]
    assert len(rows) == 6
    for r in rows.itertuples():
        mask = (preds.target == r.category) & (preds.gender_presentation == r.group)
        k, n = int(preds.correct[mask].sum()), int(mask.sum())
        assert (r.n, r.value) == (n, pytest.approx(k / n))
        assert (r.ci_low, r.ci_high) == pytest.approx(_wilson(k, n), abs=1e-9)


def test_recall_disparity_has_newcombe_interval_and_holm_p() -> None:
    from statsmodels.stats.proportion import test_proportions_2indep

    preds = _predictions()
    out = compute_metrics(preds, _spec(["recall_disparity"]), np.random.default_rng(0))
    rows = out[out.metric == "recall_disparity"].set_index("category")
    assert set(rows.index) == {"doctor", "guitarist", "nurse"} and set(rows.group) == {"fem vs masc"}
    raw = []
    for cls in ("doctor", "guitarist", "nurse"):
        counts = []
        for g in ("fem", "masc"):
            mask = (preds.target == cls) & (preds.gender_presentation == g)
            counts.append((int(preds.correct[mask].sum()), int(mask.sum())))
        (k1, n1), (k2, n2) = counts
        p1, p2 = k1 / n1, k2 / n2
        (l1, u1), (l2, u2) = _wilson(k1, n1), _wilson(k2, n2)
        # Newcombe (1998) method 10, by hand from the two Wilson intervals
        low = p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
        high = p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
        row = rows.loc[cls]
        assert row.value == pytest.approx(p1 - p2) and row.n == min(n1, n2)
        assert (row.ci_low, row.ci_high) == pytest.approx((low, high), abs=1e-9)
        raw.append(test_proportions_2indep(k1, n1, k2, n2, method="score", compare="diff").pvalue)
    np.testing.assert_allclose(rows.loc[["doctor", "guitarist", "nurse"], "p_value"],
                               multipletests(raw, method="holm")[1])
    top = largest_disparities(out, alpha=0.05)
    assert top.category.iloc[0] == "nurse" and top.value.iloc[0] < -0.25
    assert (top.p_value < 0.05).all() and list(top.abs_difference) == sorted(top.abs_difference, reverse=True)


# --------------------------------------------------------------------------- end to end


class FacetPlantedModel:
    """Reads the class a crop shows from its colour; a prompt embeds as its class's direction."""

    def __init__(self, model_id: str, *, name: str | None = None, device: str = "cpu", seed: int = 0,
                 resolve: Callable[[str], Path] | None = None) -> None:
        self.device = "cpu"
        self.info = ModelInfo(id=model_id, name=name or model_id, scheme="facet_planted", weights="planted",
                              cache_key=f"facet_planted:{model_id}", logit_scale=100.0, logit_bias=None,
                              random_weights=False, preprocess="class from the red channel", device="cpu",
                              precision="fp32")

    @staticmethod
    def preprocess(img: Any) -> torch.Tensor:
        return torch.tensor(int(round(float(np.median(np.asarray(img)[..., 0])) / 4)))

    def encode_images(self, batch: Any) -> np.ndarray:
        return np.eye(52, dtype=np.float32)[np.asarray(batch).reshape(-1)]

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        names = [display_name(c) for c in FACET_CLASSES]
        return np.stack([np.eye(52, dtype=np.float32)[names.index(t.removeprefix("a photo of a ").rstrip("."))]
                         for t in texts])


def test_probe_runs_end_to_end_and_the_gate_finds_the_planted_class(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from audit import registries
    from audit.cli import main

    registries.MODEL_SCHEMES.register("facet_planted", "tests.test_facet:FacetPlantedModel")
    planted = "facet_planted:x"
    people = _people(n=240)
    write_facet(tmp_path / "facet", people)
    probe = (Path(__file__).parent.parent / "probes" / "facet.yaml").read_text()
    probe = probe.replace("../data/facet", str(tmp_path / "facet")).replace("ViT-B-32:openai", planted)
    (tmp_path / "p.yaml").write_text(probe)
    code = main(["run", str(tmp_path / "p.yaml"), "--out", str(tmp_path / "run"), "--no-report"])
    captured = capsys.readouterr()
    out = captured.out
    assert code == 1, out + captured.err  # nurse: fem recall ~0.3 vs masc ~0.9
    metrics = pd.read_csv(tmp_path / "run" / "metrics.csv")
    frame = pd.DataFrame(people)
    rec = metrics[(metrics.metric == "class_recall") & (metrics.group_col == "gender_presentation")]
    for r in rec[rec.n > 0].itertuples():
        mask = (frame.class1.map(display_name) == r.category) & (frame.gender == r.group)
        assert r.value == pytest.approx((frame.shows[mask] == frame.class1[mask]).mean())
    gates = json.loads((tmp_path / "run" / "gates.json").read_text())
    failed = {(g["group_col"], g["category"]) for g in gates["results"] if g["outcome"] == "fail"}
    assert ("gender_presentation", "nurse") in failed
    assert {c for col, c in failed if col == "gender_presentation"} == {"nurse"}
    small = [g for g in gates["results"] if g["outcome"] == "insufficient"]
    assert small and all(g["n"] < 30 for g in small)  # e.g. non_binary: no such person generated
    assert any("non_binary" in g["group"] for g in small)


@pytest.mark.parametrize(("options", "problem"), [({"crop": "no"}, "crop: 'no' is not one of person, image"),
                                                  ({"padding": 200}, "padding: must be a whole number in"),
                                                  ({"pad": 10}, "unknown option 'pad' -- did you mean 'padding'?")])
def test_bad_options_are_user_errors(tmp_path: Path, options: dict[str, Any], problem: str) -> None:
    from audit.errors import UserError

    write_facet(tmp_path, _people(n=4))
    with pytest.raises(UserError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        _load(tmp_path, options=options)


def test_padding_widens_the_crop(tmp_path: Path) -> None:
    write_facet(tmp_path, _people(n=4))
    assert _load(tmp_path, options={"padding": 25}).load_image(0).size == (BOX + 8, BOX + 8)
