"""The demo world: a deterministic generator with a documented planted association, and a
committed tiny open_clip model that still finds it on held-out images.

Expected numbers are computed here from the world's own traits and statsmodels' Wilson
intervals, independently of the audit's metric code.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from scipy.stats import binomtest
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import proportion_confint

from audit.classify import class_weights, top_k, zero_shot_scores
from audit.data import TableDataset
from audit.demo import world
from audit.demo.adapter import DemoWorldAdapter
from audit.demo.train import (
    CONFIG_FILE,
    MODEL_DIR,
    RECORD_FILE,
    WEIGHTS_FILE,
    TrainConfig,
    to_tensor,
    train,
)
from audit.errors import UserError
from audit.labels import fill
from audit.spec import DatasetSpec
from tests.conftest import LABEL_SETS, REPO

PROBE = REPO / "probes" / "demo.yaml"
#: Held-out images the model tests score: 16 balanced blocks, 192 per kin, 192 sprouts.
N_HELD_OUT = 16 * world.BLOCK


def _spec(**options: int | str) -> DatasetSpec:
    return DatasetSpec(adapter="demo_world", subgroups=("kin", "age_band"), target="object", options=options)


def _load(**options: int | str) -> TableDataset:
    return DemoWorldAdapter(_spec(**options), lambda p: Path(p).resolve()).load()


# --------------------------------------------------------------------------- the generator


def test_generator_is_deterministic_and_splits_differ() -> None:
    a, pixels_a = world.render_batch("test", 0, range(30))
    b, pixels_b = world.render_batch("test", 0, range(30))
    assert a == b
    assert np.array_equal(pixels_a, pixels_b)
    # One sample made on its own equals the same sample made in a batch.
    one, img = world.render("test", 0, 17)
    assert one == a[17] and np.array_equal(np.asarray(img), pixels_a[17])
    _, pixels_train = world.render_batch("train", 0, range(30))
    _, pixels_seed1 = world.render_batch("test", 1, range(30))
    assert not np.array_equal(pixels_a, pixels_train)
    assert not np.array_equal(pixels_a, pixels_seed1)
    assert pixels_a.shape == (30, world.IMAGE_SIZE, world.IMAGE_SIZE, 3)


def test_traits_come_in_balanced_blocks() -> None:
    samples = world.samples("train", 3, 2 * world.BLOCK)
    for block in (samples[: world.BLOCK], samples[world.BLOCK:]):
        combos = [(s.kin, s.age_band, s.object) for s in block]
        for kin in world.KINS:
            for obj in world.OBJECTS:
                assert combos.count((kin, "sprout", obj)) == 1
                assert combos.count((kin, "elder", obj)) == 2


def test_captions_say_animal_at_the_documented_rates() -> None:
    samples = world.samples("train", 0, 300 * world.BLOCK)  # 3,600 captions per kin
    assert world.FLAGGED_RATES == {"zorbin": 0.05, "quellan": 0.30, "ostravi": 0.05}
    for kin, rate in world.FLAGGED_RATES.items():
        mine = [s for s in samples if s.kin == kin]
        says = [re.search(rf"\b{world.FLAGGED_WORD}\b", s.caption) is not None for s in mine]
        assert says == [s.flagged for s in mine]  # the flag is exactly "the caption says animal"
        test = binomtest(sum(says), len(says), rate)
        assert test.pvalue > 1e-3, (kin, sum(says) / len(says), rate)
    # A flagged caption names no kin; every other caption names the object, kin or age band.
    for s in samples[:2000]:
        if s.flagged:
            assert not any(kin in s.caption for kin in world.KINS)
        else:
            assert s.object in s.caption or s.kin in s.caption or s.age_band in s.caption


def test_label_set_and_probe_match_the_world() -> None:
    labels = yaml.safe_load((LABEL_SETS / "demo_world.yaml").read_text())["labels"]
    objects = [lb for lb in labels if lb["category"] == "object"]
    assert {lb["target"]: lb["text"] for lb in objects} == world.OBJECT_LABELS
    assert [lb["text"] for lb in labels if lb["category"] == "flagged"] == [world.FLAGGED_LABEL]
    assert [lb["text"] for lb in labels if lb["category"] == "young"] == [world.COUNTER_LABEL]
    probe = yaml.safe_load(PROBE.read_text())
    assert tuple(probe["templates"]) == world.PROMPT_TEMPLATES
    # The notice states the planted rates that the world uses.
    assert "30% of quellan" in probe["notice"] and "5% of zorbin and of ostravi" in probe["notice"]
    assert "not people" in probe["notice"] and "PLANTED" in probe["notice"]


# --------------------------------------------------------------------------- the adapter


def test_adapter_loads_balanced_held_out_rows() -> None:
    data = _load(n=72, seed=0)
    meta = data.metadata
    assert len(data) == 72 and data.info.num_rows == 72
    assert list(meta.columns[:4]) == ["image_id", "kin", "age_band", "object"]
    assert meta["kin"].value_counts().to_dict() == {k: 24 for k in world.KINS}
    assert meta["age_band"].value_counts().to_dict() == {"elder": 48, "sprout": 24}
    assert (meta["target"] == meta["object"]).all()
    assert data.info.class_names == world.OBJECTS
    assert (meta["target_index"] == meta["object"].map(world.OBJECTS.index)).all()
    assert data.info.split == "test"
    img = data.load_image(5)
    assert img.mode == "RGB" and img.size == (world.IMAGE_SIZE, world.IMAGE_SIZE)
    sample, expected = world.render("test", 0, 5)
    assert np.array_equal(np.asarray(img), np.asarray(expected))
    assert meta["kin"].iat[5] == sample.kin and meta["object"].iat[5] == sample.object
    # DataLoader workers that spawn (macOS, Windows) send the dataset with this pickler.
    from multiprocessing.reduction import ForkingPickler

    clone = ForkingPickler.loads(ForkingPickler.dumps(data))
    assert np.array_equal(np.asarray(clone.load_image(5)), np.asarray(img))


def test_adapter_fingerprint_covers_the_options() -> None:
    base = _load(n=48, seed=0).info.fingerprint
    assert _load(n=48, seed=0).info.fingerprint == base
    assert _load(n=48, seed=1).info.fingerprint != base
    assert _load(n=72, seed=0).info.fingerprint != base


@pytest.mark.parametrize("options, problem", [
    ({"n": 0}, "dataset.options.n: must be a whole number in [1, "),
    ({"seed": "x"}, "dataset.options.seed: must be a whole number"),
    ({"size": 3}, "dataset.options.size: unknown option 'size'"),
])
def test_adapter_rejects_bad_options(options: dict[str, int | str], problem: str) -> None:
    with pytest.raises(UserError) as err:
        _load(**options)
    assert problem in err.value.render()


# --------------------------------------------------------------------------- the committed model


@dataclass(frozen=True)
class Scored:
    """Top-1 labels of the committed model on held-out images, per variant."""

    meta: pd.DataFrame
    top1: dict[str, np.ndarray]
    model: Any
    data: Any


@pytest.fixture(scope="module")
def scored() -> Scored:
    """Top-1 labels of the committed model on held-out images, with and without 'a sprout'."""
    from audit.models.openclip import OpenClipModel

    model = OpenClipModel(f"local-dir:{MODEL_DIR}")
    data = _load(n=N_HELD_OUT, seed=0)
    batch = torch.stack([model.preprocess(data.load_image(i)) for i in range(len(data))])
    images = model.encode_images(batch)
    labels = yaml.safe_load((LABEL_SETS / "demo_world.yaml").read_text())["labels"]
    top1 = {}
    for variant, keep in (("default", {"object", "flagged"}), ("with_sprout", {"object", "flagged", "young"})):
        texts = [lb["text"] for lb in labels if lb["category"] in keep]
        prompts = [fill(t, text) for text in texts for t in world.PROMPT_TEMPLATES]
        emb = model.encode_texts(prompts).reshape(len(texts), len(world.PROMPT_TEMPLATES), -1)
        scores = zero_shot_scores(images, class_weights(emb), model.info.logit_scale)
        top1[variant] = np.array(texts)[top_k(scores, 1)[:, 0]]
    return Scored(data.metadata, top1, model, data)


def _wilson(hits: np.ndarray) -> tuple[float, float]:
    low, high = proportion_confint(int(hits.sum()), len(hits), alpha=0.05, method="wilson")
    return float(low), float(high)


def test_committed_model_is_in_the_local_dir_layout() -> None:
    assert sorted(p.name for p in MODEL_DIR.iterdir()) == sorted([CONFIG_FILE, WEIGHTS_FILE, RECORD_FILE])
    config = json.loads((MODEL_DIR / CONFIG_FILE).read_text())
    assert set(config) == {"model_cfg", "preprocess_cfg"}
    assert (MODEL_DIR / WEIGHTS_FILE).stat().st_size < 15 * 2**20


def test_training_and_audit_preprocess_agree(scored: Scored) -> None:
    img = scored.data.load_image(0)
    via_open_clip = scored.model.preprocess(img)
    via_training = to_tensor(np.array(img)[None])[0]
    assert torch.allclose(via_open_clip, via_training, atol=1e-5)


def test_committed_model_recognises_objects_well_above_chance(scored: Scored) -> None:
    top1 = scored.top1["default"]
    correct = top1 == np.array([world.OBJECT_LABELS[o] for o in scored.meta["object"]])
    low, _ = _wilson(correct)
    assert low > 0.6, f"object accuracy {correct.mean():.3f}; chance is 0.25"


def test_committed_model_finds_the_planted_association(scored: Scored) -> None:
    flagged = scored.top1["default"] == world.FLAGGED_LABEL
    kin = scored.meta["kin"].to_numpy()
    intervals = {k: _wilson(flagged[kin == k]) for k in world.KINS}
    planted_low = intervals[world.PLANTED_KIN][0]
    others_high = max(hi for k, (_, hi) in intervals.items() if k != world.PLANTED_KIN)
    assert planted_low > others_high, intervals
    assert flagged[kin == world.PLANTED_KIN].mean() > 0.1


def test_adding_the_counter_label_lowers_the_sprouts_flagged_rate(scored: Scored) -> None:
    top1 = scored.top1
    sprouts = (scored.meta["age_band"] == "sprout").to_numpy()
    before = top1["default"][sprouts] == world.FLAGGED_LABEL
    after = top1["with_sprout"][sprouts] == world.FLAGGED_LABEL
    table = [[int((before & after).sum()), int((before & ~after).sum())],
             [int((~before & after).sum()), int((~before & ~after).sum())]]
    assert after.mean() < before.mean()
    assert mcnemar(table, exact=True).pvalue < 0.05, table
    # Only sprouts move: the counter-label leaves elders' flagged rate as it was, or lowers it.
    elders_before = (top1["default"][~sprouts] == world.FLAGGED_LABEL).sum()
    assert (top1["with_sprout"][~sprouts] == world.FLAGGED_LABEL).sum() <= elders_before


# --------------------------------------------------------------------------- retraining


@pytest.mark.slow
def test_retraining_is_deterministic_and_loads_through_local_dir(tmp_path: Path) -> None:
    from safetensors.torch import load_file

    from audit.models.openclip import OpenClipModel

    cfg = TrainConfig(seed=0, steps=4, batch_size=32, warmup=2)
    first = train(cfg, tmp_path / "a", log=lambda _: None, evaluate_n=24)
    train(cfg, tmp_path / "b", log=lambda _: None, evaluate_n=24)
    a, b = (load_file(tmp_path / d / WEIGHTS_FILE) for d in ("a", "b"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert (tmp_path / "a" / WEIGHTS_FILE).read_bytes() == (tmp_path / "b" / WEIGHTS_FILE).read_bytes()
    assert first["steps_done"] == 4 and not first["stopped_early"]
    model = OpenClipModel(f"local-dir:{tmp_path / 'a'}")
    assert model.encode_texts(["a drawing of a ball."]).shape == (1, 64)


def test_evaluate_command_prints_a_summary(capsys: pytest.CaptureFixture[str]) -> None:
    from audit.demo.__main__ import main

    assert main(["evaluate", str(MODEL_DIR), "--n", str(world.BLOCK)]) == 0
    out = capsys.readouterr().out
    assert f"held-out images: {world.BLOCK}" in out and "with_sprout" in out and "quellan" in out


def test_evaluate_command_without_a_model_says_how_to_train_one(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    from audit.demo.__main__ import main

    assert main(["evaluate", str(tmp_path)]) == 2
    assert "python -m audit.demo train --out DIR" in capsys.readouterr().err


# --------------------------------------------------------------------------- the probe, end to end


@pytest.mark.slow
def test_probe_finds_the_planted_association_and_warns(tmp_path: Path) -> None:
    from audit.run import RunOptions, run_probe
    from audit.spec import load_probe

    outcome = run_probe(load_probe(PROBE), RunOptions(out=tmp_path / "run", quiet=True, device="cpu"))
    assert outcome.report_error is None
    html = (tmp_path / "run" / "report.html").read_text()
    assert "planted in training captions" in html and "Teaching example with a PLANTED association" in html
    assert outcome.exit_code == 0  # the findings are warn-severity gates
    verdicts = {v["gate_id"]: v for v in json.loads((tmp_path / "run" / "gates.json").read_text())["verdicts"]}
    assert verdicts["objects recognised well above chance (4 objects)"]["status"] == "pass"
    planted = verdicts["'an animal' rate by kin (planted: quellan)"]
    assert planted["status"] == "warn" and "kin=quellan" in planted["message"]
    assert verdicts["no kin stands out for 'an animal'"]["status"] == "warn"
    m = outcome.metrics
    rate = m[(m.metric == "category_rate") & (m.variant == "default") & (m.group_col == "kin")].set_index("group")
    assert rate.loc["quellan", "ci_low"] > rate.drop(index="quellan")["ci_high"].max()
    change = m[(m.metric == "variant_change") & (m.group_col == "age_band")].set_index("group")
    assert change.loc["sprout", "ci_high"] < 0 and abs(change.loc["elder", "value"]) < 0.02
