"""The robustness step of a run: the effective-robustness table and the model comparison.

``audit.run`` calls :func:`run_robustness` once; the statistics live in
:mod:`audit.robustness.effective` and :mod:`audit.robustness.compare`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.spec import Probe, ProbeSpec


def shift_names(spec: ProbeSpec) -> dict[str, str]:
    """One dataset per robustness name: the first of each adapter (e.g. of two ObjectNet modes),
    as ``{display name: adapter}``."""
    first: dict[str, str] = {}
    for d in spec.datasets:
        first.setdefault(d.adapter, d.display_name)
    return {name: adapter for adapter, name in first.items()}


def run_robustness(metrics: pd.DataFrame, predictions: pd.DataFrame, probe: Probe,
                   rng: np.random.Generator, compare_rng: np.random.Generator
                   ) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """``robustness.csv`` (effective robustness per model and shift) and, with two or more models
    on ImageNet, ``robustness_compare.csv`` (or None)."""
    from audit.robustness import robustness_from_metrics

    names = shift_names(probe.spec)
    table = robustness_from_metrics(metrics[metrics["dataset"].isin(set(names))], dataset_names=names,
                                    n_bootstrap=probe.spec.stats.n_bootstrap, rng=rng)
    return table, compare_all_models(metrics, predictions, names, probe.spec, compare_rng)


def compare_all_models(metrics: pd.DataFrame, predictions: pd.DataFrame, names: dict[str, str],
                       spec: ProbeSpec, rng: np.random.Generator, *, paired: bool = True) -> pd.DataFrame | None:
    """Which model is more robust, per shift and pair of models, with an interval on the difference
    of effective robustness (bootstrap over baseline models and, when ``paired`` (the models
    scored the same images), over the images). Every pair gets its own stream spawned from ``rng``."""
    from audit.robustness import compare_models

    base = spec.base_variant
    acc = metrics[(metrics["metric"] == "accuracy") & (metrics["group_col"] == "overall")
                  & (metrics["variant"] == base) & metrics["dataset"].isin(list(names))]
    rows = acc.assign(dataset=acc["dataset"].map(names))[["model", "dataset", "value"]].rename(columns={"value": "top1"})
    with_imagenet = sorted(set(rows.loc[rows["dataset"] == "imagenet", "model"]))
    if len(with_imagenet) < 2:
        return None
    preds = predictions[(predictions["variant"] == base) & predictions["dataset"].isin(list(names))]
    correct = preds.assign(dataset=preds["dataset"].map(names))[["dataset", "model", "image_id", "correct"]]
    pairs = [(a, b) for i, a in enumerate(with_imagenet) for b in with_imagenet[i + 1:]]
    frames = [
        compare_models(rows, a, b, correct=correct if paired else None, n_bootstrap=spec.stats.n_bootstrap,
                       rng=pair_rng)
        for (a, b), pair_rng in zip(pairs, rng.spawn(len(pairs)))
    ]
    return pd.concat(frames, ignore_index=True)


__all__ = ["compare_all_models", "run_robustness", "shift_names"]
