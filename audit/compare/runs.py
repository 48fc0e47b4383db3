"""Compare run directories read through :func:`audit.results.read_run`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from audit.compare.core import COMPARISON_COLUMNS, Side, compare_sides
from audit.errors import UserError
from audit.results import Manifest, RunDir
from audit.results.schema import write_csv
from audit.spec.models import ProbeSpec, StatsSpec


def _side(run: RunDir, model: str, predictions: Callable[[], pd.DataFrame] | None = None) -> Side:
    return Side(model=model, metrics=run.metrics, predictions=predictions or (lambda: run.predictions),
                manifest=run.manifest, label=str(run.path))


def _models(run: RunDir) -> list[str]:
    return list(dict.fromkeys(run.manifest.model_names + [m for m in run.metrics["model"] if m]))


def model_pairs(base: RunDir, new: RunDir | None, base_model: str | None = None,
                new_model: str | None = None) -> list[tuple[Side, Side]]:
    """Which model of ``base`` is compared with which of ``new`` (or, without ``new``, of ``base``).

    Raises:
        UserError: the models cannot be matched; the message lists them.
    """
    if new is None:
        if not (base_model and new_model):
            raise UserError("comparing two models of one run needs --base-model and --new-model",
                            fix=f"models in {base.path}: {', '.join(_models(base))}")
        shared = lambda: base.predictions  # noqa: E731  one callable: the same images on both sides
        return [(_side(base, base_model, shared), _side(base, new_model, shared))]
    if base_model or new_model:
        return [(_side(base, base_model or _only(base)), _side(new, new_model or _only(new)))]
    bm, nm = _models(base), _models(new)
    if set(bm) == set(nm):
        return [(_side(base, m), _side(new, m)) for m in bm]
    if len(bm) == 1 and len(nm) == 1:
        return [(_side(base, bm[0]), _side(new, nm[0]))]
    raise UserError(f"the runs have different models (base: {', '.join(bm)}; new: {', '.join(nm)})",
                    fix="name the pair with --base-model NAME --new-model NAME")


def _only(run: RunDir) -> str:
    models = _models(run)
    if len(models) != 1:
        raise UserError(f"{run.path} has {len(models)} models ({', '.join(models)}); name one",
                        fix="pass both --base-model and --new-model")
    return models[0]


def robustness_comparison(base: RunDir, new: RunDir | None, spec: ProbeSpec, *, base_model: str | None = None,
                          new_model: str | None = None) -> pd.DataFrame | None:
    """Effective robustness of each compared pair (``robustness_comparison.csv``), for robustness
    probes: per shift, ``difference`` = ER(base) - ER(new) (``robustness_compare.csv``'s
    convention, model_a minus model_b) with a bootstrap interval over the baseline models and, when
    both sides scored the same images (same dataset fingerprints), paired over those images
    (:func:`audit.robustness.compare_models`); None for other probes.

    The models appear as ``base: NAME`` (``model_a``) and ``new: NAME`` (``model_b``), so a model
    compared with itself across two runs stays two models.
    """
    if spec.kind != "robustness":
        return None
    from audit.robustness.run_tables import compare_all_models, shift_names

    names = shift_names(spec)
    frames = []
    for pair_rng, (b, n) in zip(np.random.default_rng(spec.seed).spawn(1000),
                                model_pairs(base, new, base_model, new_model)):
        metrics, predictions = [], []
        for side, tag in ((b, "base"), (n, "new")):
            label = f"{tag}: {side.model}"
            metrics.append(side.metrics[side.metrics["model"] == side.model].assign(model=label))
            preds = side.predictions()
            predictions.append(preds[preds["model"] == side.model].assign(model=label))
        paired = all(b.fingerprints.get(d) is not None and b.fingerprints.get(d) == n.fingerprints.get(d)
                     for d in names)
        table = compare_all_models(pd.concat(metrics, ignore_index=True), pd.concat(predictions, ignore_index=True),
                                   names, spec, pair_rng, paired=paired)
        if table is not None:
            frames.append(table.assign(paired=paired))
    return pd.concat(frames, ignore_index=True) if frames else None


def stats_of(run: RunDir) -> StatsSpec:
    """The stats policy a run was made with (defaults when not recorded)."""
    return StatsSpec.model_validate(run.manifest.stats or {})


def compare_runs(base: RunDir, new: RunDir | None = None, *, base_model: str | None = None,
                 new_model: str | None = None, stats: StatsSpec | None = None) -> pd.DataFrame:
    """comparison.csv for two runs (or two models of ``base``): see :func:`compare_sides`."""
    stats = stats or stats_of(new or base)
    frames = [compare_sides(b, n, stats.alpha, stats.min_n) for b, n in model_pairs(base, new, base_model, new_model)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=list(COMPARISON_COLUMNS))


def fairness_compare(metrics: pd.DataFrame, predictions: pd.DataFrame, manifest: Manifest, models: list[str],
                     stats: StatsSpec) -> pd.DataFrame | None:
    """Every pair of models of one run, paired on the same images (``fairness_compare.csv``);
    None with fewer than two models."""
    if len(models) < 2:
        return None
    shared = lambda: predictions  # noqa: E731  one callable: the same images on both sides
    frames = [compare_sides(Side(a, metrics, shared, manifest, "run"), Side(b, metrics, shared, manifest, "run"),
                            stats.alpha, stats.min_n)
              for i, a in enumerate(models) for b in models[i + 1:]]
    return pd.concat(frames, ignore_index=True)


FAIRNESS_COMPARE = "fairness_compare.csv"


def write_fairness_compare(run_dir: Path, spec: ProbeSpec, metrics: pd.DataFrame, predictions: pd.DataFrame,
                           manifest: Manifest) -> Path | None:
    """Write ``fairness_compare.csv`` for a fairness probe with several models and rate rows."""
    from audit.compare.core import OUTCOMES

    models = list(dict.fromkeys(predictions["model"]))
    if spec.kind != "fairness" or len(models) < 2 or not metrics["metric"].isin(list(OUTCOMES)).any():
        return None
    table = fairness_compare(metrics, predictions, manifest, models, spec.stats)
    if table is None:
        return None
    write_csv(run_dir / FAIRNESS_COMPARE, table)
    return run_dir / FAIRNESS_COMPARE


__all__ = ["FAIRNESS_COMPARE", "compare_runs", "fairness_compare", "write_fairness_compare", "model_pairs", "stats_of"]
