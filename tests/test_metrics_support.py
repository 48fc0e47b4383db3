"""Tiny synthetic predictions and probes shared by the ``test_metrics_*`` modules (no tests here)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from audit.metrics import MetricInput
from audit.spec.models import ProbeSpec

DATASET = "ff"

#: A hand-made population: 11 images, one empty intersection (East Asian x Male).
RACE = ["Black"] * 4 + ["White"] * 5 + ["East Asian"] * 2
GENDER = ["Female", "Male"] * 4 + ["Female"] * 3
CATEGORY = ["crime", "race_gender", "crime", "non_human", "race_gender", "race_gender", "crime",
            "race_gender", "non_human", "race_gender", "race_gender"]


def probe(**overrides: Any) -> ProbeSpec:
    """A valid probe over dataset ``ff`` with race and gender subgroups and their intersection."""
    dataset = {"adapter": "synthetic_fairface", "name": DATASET, "subgroups": ["race", "gender"],
               "intersections": [["race", "gender"]]}
    dataset.update(overrides.pop("dataset", {}))
    data: dict[str, Any] = {
        "name": "test", "datasets": [dataset], "models": ["fake:tiny"], "label_sets": ["x.yaml"],
        "categories": ["crime", "crime|non_human"], "metrics": ["category_rate"],
        "stats": {"min_n": 3, "n_bootstrap": 200},
    }
    data.update(overrides)
    return ProbeSpec.model_validate(data)


def predictions(
    category: Sequence[str] = CATEGORY,
    *,
    race: Sequence[str] = RACE,
    gender: Sequence[str] = GENDER,
    model: str = "m",
    variant: str = "default",
    image_id: Sequence[int] | None = None,
    **extra: Sequence[Any],
) -> pd.DataFrame:
    """A predictions frame in the contract's columns; ``extra`` adds or replaces columns."""
    n = len(category)
    frame = pd.DataFrame({
        "dataset": DATASET, "model": model, "variant": variant,
        "image_id": list(range(n)) if image_id is None else list(image_id),
        "race": list(race), "gender": list(gender), "target": None,
        "top1_label": [f"{c}_label" for c in category], "top1_category": list(category),
        "top5_labels": [[f"{c}_label"] for c in category], "top1_score": 0.5, "correct": None,
    })
    for col, values in extra.items():
        frame[col] = list(values)
    return frame


def metric_input(frame: pd.DataFrame, spec: ProbeSpec, *, seed: int = 0,
                 by_template: pd.DataFrame | None = None) -> MetricInput:
    """What :func:`audit.metrics.compute_metrics` hands a metric, for calling one directly."""
    return MetricInput(
        predictions=frame, by_template=by_template,
        datasets={d.display_name: d for d in spec.datasets}, categories=tuple(spec.categories),
        stats=spec.stats, variants=tuple(spec.variants), rng=np.random.default_rng(seed),
    )


def simulated(rates: dict[str, float], n_per_group: int, rng: np.random.Generator, *,
              model: str = "m") -> pd.DataFrame:
    """Per race group, each image flagged ``crime`` with the group's probability."""
    race = np.repeat(list(rates), n_per_group)
    p = np.repeat(list(rates.values()), n_per_group)
    category = np.where(rng.random(race.size) < p, "crime", "race_gender")
    gender = np.where(np.arange(race.size) % 2 == 0, "Female", "Male")
    return predictions(list(category), race=list(race), gender=list(gender), model=model)


def row(result: pd.DataFrame, **where: Any) -> pd.Series:
    """The single row of ``result`` matching every ``column=value``."""
    mask = np.ones(len(result), dtype=bool)
    for col, value in where.items():
        mask &= (result[col] == value).to_numpy()
    assert mask.sum() == 1, f"expected one row for {where}, found {mask.sum()}"
    return result[mask].iloc[0]
