"""Run directories for the compare/history tests, written with the real metrics engine and writers.

Each image of a FairFace-like population (race x gender) is flagged ``crime`` with a planted
probability per race, and classified correctly with a fixed probability; a "regressed" model
flags more Black images. Fingerprints and image ids decide pairing, as in real runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from audit.gates import evaluate_gates
from audit.testing.gates import probe_dict
from audit.metrics import compute_metrics
from audit.results import FORMAT_VERSION, GATES, METRICS, PREDICTIONS, write_csv, write_manifest, write_parquet
from audit.gates.result import gates_document
from audit.results.schema import write_json
from audit.spec.models import ProbeSpec

RACES = ("Black", "White", "Indian")
GATE = {"type": "no_regression", "category": "crime", "group_col": "race", "margin": 0.02}


def spec(gates: list[dict[str, Any]] | None = None, models: list[str] | None = None, **kw: Any) -> ProbeSpec:
    return ProbeSpec.model_validate(probe_dict(
        [GATE] if gates is None else gates, variants={"default": {}}, models=models or ["m1"], **kw,
        metrics=["category_rate", "disparity", "accuracy"],
        dataset={"adapter": "synthetic_fairface", "name": "fairface", "subgroups": ["race", "gender"],
                 "target": "target"},
        stats={"alpha": 0.05, "min_n": 10, "n_bootstrap": 50}))


def predictions(model: str, *, n: int = 600, seed: int = 0, flag: dict[str, float] | None = None,
                extra_black: float = 0.0, acc: float = 0.8, model_seed: int = 1) -> pd.DataFrame:
    """One prediction per image; ``seed`` draws the images, ``model_seed`` the model's outcomes."""
    flag = flag or {"Black": 0.10, "White": 0.05, "Indian": 0.05}
    images = np.random.default_rng(seed)
    race = images.choice(RACES, n)
    gender = images.choice(("Male", "Female"), n)
    rng = np.random.default_rng(model_seed)
    u = rng.random(n)
    p = np.array([flag[r] for r in race]) + np.where(race == "Black", extra_black, 0.0)
    flagged = u < p
    correct = rng.random(n) < acc
    return pd.DataFrame({
        "dataset": "fairface", "model": model, "variant": "default",
        "image_id": [f"s{seed}/{i:05d}" for i in range(n)], "race": race, "gender": gender,
        "target": "person", "target_index": 0,
        "top1_label": np.where(flagged, "thief", "person"), "top1_category": np.where(flagged, "crime", "human"),
        "top5_labels": [["thief", "person"]] * n, "top1_score": 0.5, "correct": correct, "top5_correct": correct,
    })


def write_run(run_dir: Path, preds: pd.DataFrame, *, fingerprint: str, probe: ProbeSpec | None = None,
              created: str = "2026-12-01T00:00:00+00:00") -> Path:
    """Metrics and gates computed by the real engine, files written by the run's writers, manifest last."""
    probe = probe or spec(models=list(dict.fromkeys(preds["model"])))
    metrics = compute_metrics(preds, probe, np.random.default_rng(0))
    write_parquet(run_dir / PREDICTIONS, preds)
    write_csv(run_dir / METRICS, metrics)
    write_json(run_dir / GATES, gates_document(evaluate_gates(probe, metrics)))
    models = list(dict.fromkeys(preds["model"]))
    write_manifest(run_dir, {
        "format_version": FORMAT_VERSION, "created": created,
        "probe": {"name": probe.name, "kind": probe.kind, "resolved": probe.model_dump(mode="json")},
        "prompts": {"default": {"templates": ["a photo of a {}."], "labels": ["person", "thief"],
                                "categories": ["human", "crime"]}},
        "models": [{"id": m, "name": m, "weights": f"sha256:{m}", "scoring": "softmax"} for m in models],
        "datasets": [{"name": "fairface", "adapter": "synthetic_fairface", "revision": "r1",
                      "fingerprint": fingerprint, "num_rows": int(preds["image_id"].nunique())}],
        "seed": 0, "stats": probe.stats.model_dump(),
    })
    return run_dir
