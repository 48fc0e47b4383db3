"""model_card.md: markdown tables, caveats and a model-index block equal to the run's numbers."""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from audit.model_card import (
    CAVEAT_PERCEIVED,
    CAVEAT_PROMPTS,
    DECIMALS,
    MODEL_CARD,
    POINT_DECIMALS,
    TASK,
    write_model_card,
)
from audit.testing.sample_run import MODELS, NOTICE, write_sample_run
from audit.results import GATES, METRICS, ROBUSTNESS

YAML_BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)


def _index(card: str) -> list[dict]:
    blocks = YAML_BLOCK.findall(card)
    assert len(blocks) == 1
    return yaml.safe_load(blocks[0])["model-index"]


def _metrics_of(index: list[dict], model: str, type_: str) -> list[float]:
    entry = next(e for e in index if e["name"] == model)
    return [m["value"] for r in entry["results"] for m in r["metrics"] if m["type"] == type_]


@pytest.fixture(scope="module")
def fair_card(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    run_dir = write_sample_run(tmp_path_factory.mktemp("f") / "run", "fairness")
    path = write_model_card(run_dir)
    assert path == run_dir / MODEL_CARD
    return run_dir, path.read_text(encoding="utf-8")


def test_model_index_equals_metrics(fair_card: tuple[Path, str]) -> None:
    run_dir, card = fair_card
    index = _index(card)
    metrics = pd.read_csv(run_dir / METRICS)
    assert [e["name"] for e in index] == list(MODELS)
    for entry in index:
        (result,) = entry["results"]
        assert result["task"] == {"type": TASK}
        assert result["dataset"] == {"name": "fairface", "type": "HuggingFaceM4/FairFace",
                                     "config": "0.25", "split": "validation", "revision": "sample"}
        model = entry["name"]
        mine = metrics[(metrics["model"] == model) & (metrics["group_col"] == "overall")]
        for type_, where in (("category_rate", mine["metric"] == "category_rate"),
                             ("accuracy", (mine["metric"] == "accuracy") & (mine["variant"] == "default")),
                             ("top5_accuracy", (mine["metric"] == "top5_accuracy") & (mine["variant"] == "default"))):
            want = sorted(round(v, DECIMALS) for v in mine.loc[where, "value"])
            assert sorted(_metrics_of(index, model, type_)) == pytest.approx(want, abs=1e-12)
            assert len(want) > 0
        gaps = metrics[(metrics["model"] == model) & (metrics["metric"] == "disparity_difference")
                       & (metrics["variant"] == "default") & ~metrics["group_col"].str.contains(" x ")]
        assert sorted(_metrics_of(index, model, "disparity_difference")) == pytest.approx(
            sorted(round(v, DECIMALS) for v in gaps["value"]), abs=1e-12)


def test_card_sections_and_caveats(fair_card: tuple[Path, str]) -> None:
    _, card = fair_card
    for text in ("**What was measured.**", "**Data.**", "**Overall category rates (95% CI).**",
                 "**Release gates: failed: ", CAVEAT_PERCEIVED, CAVEAT_PROMPTS,
                 f"> **Notice:** {NOTICE}", "HuggingFaceM4/FairFace",
                 "**Prompt variants: each group's rate"):
        assert text in card
    assert card.count(NOTICE) == 1  # printed once, at the top


def test_markdown_tables_are_well_formed(fair_card: tuple[Path, str]) -> None:
    _, card = fair_card
    tables: list[list[str]] = []
    for line in card.splitlines():
        if line.startswith("|"):
            if not tables or not tables[-1]:
                tables.append([])
            tables[-1].append(line)
        elif tables and tables[-1]:
            tables.append([])
    tables = [t for t in tables if t]
    assert len(tables) >= 4
    for t in tables:
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in t}
        assert len(widths) == 1, t[0]


def test_robustness_card(tmp_path: Path) -> None:
    run_dir = write_sample_run(tmp_path / "run", "robustness")
    card = write_model_card(run_dir).read_text(encoding="utf-8")
    index = _index(card)
    rob = pd.read_csv(run_dir / ROBUSTNESS)
    for model in MODELS:
        want = sorted(round(v, POINT_DECIMALS) for v in rob.loc[rob["model"] == model, "effective_robustness_pts"])
        assert sorted(_metrics_of(index, model, "effective_robustness")) == pytest.approx(want, abs=1e-12)
        entry = next(e for e in index if e["name"] == model)
        assert [r["dataset"]["name"] for r in entry["results"]][0] == "imagenet"
    assert "Effective robustness (accuracy points, 95% band)" in card
    assert CAVEAT_PERCEIVED not in card


def test_card_without_gates_or_notice(tmp_path: Path) -> None:
    run_dir = write_sample_run(tmp_path / "run", "fairness", notice=None)
    (run_dir / GATES).unlink()
    card = write_model_card(run_dir).read_text(encoding="utf-8")
    assert "Release gates" not in card and "Notice" not in card
    assert _index(card)
