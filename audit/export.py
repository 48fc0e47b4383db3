"""Export a run directory in the result formats other tools read.

``datacomp``: the lines of DataComp's ``eval_results.jsonl`` (``{key, dataset, metrics}``, one
per task; ``metrics`` as DataComp's ``evaluate.py`` writes it, ``main_metric`` included). Group
metrics follow the WILDS package's ``standard_group_eval``: ``<metric>_avg``, then per group of
the ``CombinatorialGrouper`` (every code combination 0..max, first field varying fastest; key
fields in reverse order, e.g. ``acc_gender_x_race:2_gender:1``) ``<metric>_<group>`` and
``count_<group>``, then ``<metric>_wg`` (minimum over non-empty groups). An empty group's value is
NaN, as DataComp's replacement of WILDS' ``avg_over_groups`` computes 0/0.

``clip_benchmark``: one result JSON per dataset as ``clip_benchmark eval`` writes it (``dataset,
model, pretrained, task, metrics{acc1, acc5, mean_per_class_recall}, language``).

Both read ``predictions.parquet`` (the run's base variant) and ``manifest.json``; no torch.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from audit.errors import UserError
from audit.results import read_manifest, read_predictions
from audit.spec.models import base_variant

FORMATS = ("datacomp", "clip_benchmark")
_WDS_NAME = re.compile(r"^(?:.*/)?(?:wds_)?(?P<name>.+?)(?:_test)?/?$")


@dataclass(frozen=True)
class Task:
    """A DataComp fairness task: its key, display name, hub repo and how it is scored."""

    key: str
    name: str
    short: str
    column: str = "correct"       # the per-image hit behind the group metric
    metric: str = "acc"           # the WILDS metric name
    group_by: tuple[str, ...] = ()
    main: str | None = None


TASKS = (
    Task("fairness/dollar_street", "Dollar Street", "dollar_street", "top5_correct", "acc_top5",
         ("income_ds",), "acc_top5_wg"),
    Task("fairness/geode", "GeoDE", "geode", "correct", "acc", ("region",), "acc_wg"),
    Task("fairness/fairface", "FairFace", "fairface"),
    Task("fairness/utkface", "UTKFace", "utkface"),
)
FACE_OBJECTIVES = ("race", "gender", "age", "toxic")


def task_of(record: dict[str, Any]) -> Task | None:
    """The DataComp task of a manifest dataset record: by hub repo, else (a local copy read by
    the ``wds`` adapter) by dataset name: ``dollar_street``, ``geode``, ``fairface_*``, ...)."""
    for task in TASKS:
        if record.get("source") == f"djghosh/wds_{task.short}_test":
            return task
    if record.get("adapter") not in (None, "wds"):
        return None
    name = str(record.get("name", ""))
    return next((t for t in TASKS if name == t.short or name.startswith(t.short + "_")), None)


# --------------------------------------------------------------------------- WILDS-shaped groups


def codes(values: pd.Series, record: dict[str, Any], field: str) -> np.ndarray:
    """A subgroup column back to its integer codes (through ``metadata_names`` where named)."""
    names = (record.get("extra") or {}).get("metadata_names", {}).get(field)
    if names is not None:
        index = {n: i for i, n in enumerate(names)}
        return np.asarray([index[str(v)] for v in values], dtype=np.int64)
    return values.astype(str).astype(np.int64).to_numpy()


def group_eval(name: str, hits: np.ndarray, groups: dict[str, np.ndarray]) -> dict[str, float]:
    """WILDS' ``standard_group_eval`` for an element-wise mean metric (see the module doc)."""
    fields = list(groups)
    card = [int(groups[f].max()) + 1 for f in fields]
    factors = np.concatenate(([1], np.cumprod(card)[:-1])).astype(np.int64)
    g = sum(groups[f] * factors[i] for i, f in enumerate(fields))
    out: dict[str, float] = {f"{name}_avg": float(hits.mean()) if hits.size else 0.0}
    values = []
    for idx in range(int(np.prod(card))):
        parts = [(f, (idx // int(factors[i])) % card[i]) for i, f in enumerate(fields)]
        label = "_".join(f"{f}:{c}" for f, c in reversed(parts))
        mask = g == idx
        n = int(mask.sum())
        value = float(hits[mask].mean()) if n else math.nan
        out[f"{name}_{label}"] = value
        out[f"count_{label}"] = float(n)
        if n:
            values.append(value)
    out[f"{name}_wg"] = min(values) if values else math.nan
    return out


# --------------------------------------------------------------------------- DataComp


def _frames(run_dir: Path, model: str | None) -> tuple[dict[str, Any], pd.DataFrame, str]:
    manifest = read_manifest(run_dir)
    preds = read_predictions(run_dir)
    resolved = (manifest.get("probe") or {}).get("resolved") or {}
    variants = list(resolved.get("variants") or ["default"])
    preds = preds[preds["variant"] == base_variant(variants)]
    models = list(dict.fromkeys(preds["model"]))
    if model is None:
        if len(models) != 1:
            raise UserError(f"{run_dir} holds {len(models)} models ({', '.join(models)})",
                            fix="choose one with --model NAME")
        model = models[0]
    elif model not in models:
        raise UserError(f"model '{model}' is not in {run_dir} (models: {', '.join(models)})",
                        fix="pass one of the listed names to --model")
    return manifest, preds[preds["model"] == model], model


def _need(frame: pd.DataFrame, record: dict[str, Any], cols: Sequence[str]) -> None:
    missing = [c for c in cols if c not in frame.columns or frame[c].isna().any()]
    if missing:
        raise UserError(f"dataset '{record['name']}' of the run lacks subgroup column(s) {missing} "
                        "that DataComp groups by", fix=f"add {missing} to the dataset's subgroups and re-run")


def _hits(frame: pd.DataFrame, column: str) -> np.ndarray:
    return frame[column].astype("boolean").fillna(False).to_numpy(dtype=bool)


def clip_benchmark_metrics(frame: pd.DataFrame, n_classes: int) -> dict[str, float | None]:
    """acc1, acc5 (None below 5 classes, as DataComp writes it) and mean per-class recall."""
    key = frame["target_index"].astype("int64").to_numpy()
    correct = _hits(frame, "correct")
    recalls = [correct[key == c].mean() for c in np.unique(key)]
    return {"acc1": float(correct.mean()),
            "acc5": float(_hits(frame, "top5_correct").mean()) if n_classes >= 5 else None,
            "mean_per_class_recall": float(np.mean(recalls))}


def _single(task: Task, record: dict[str, Any], frame: pd.DataFrame) -> dict[str, Any]:
    _need(frame, record, task.group_by)
    metrics: dict[str, Any] = clip_benchmark_metrics(frame, _n_top(frame))
    groups = {f: codes(frame[f], record, f) for f in task.group_by}
    metrics.update(group_eval(task.metric, _hits(frame, task.column), groups))
    return metrics


def _n_top(frame: pd.DataFrame) -> int:
    """Labels in ``top5_labels``: 5, or the number of classes when there are fewer."""
    return len(frame["top5_labels"].iloc[0]) if len(frame) else 0


def _faces(task: Task, records: dict[str, dict[str, Any]], frames: dict[str, pd.DataFrame]) -> dict[str, Any]:
    """DataComp's FairFaceEvaluator (also UTKFace) from the run's four objective datasets."""
    missing = [o for o in FACE_OBJECTIVES if o not in records]
    if missing:
        raise UserError(f"the run has no {task.name} dataset for objective(s) {missing}",
                        fix="run the probe with one wds dataset per objective (options.objective)")

    race = records["race"]
    if race.get("target") != "race_binary" or len((race.get("extra") or {}).get("collapse_names") or ()) != 2:
        raise UserError(f"dataset '{race['name']}' does not score race as DataComp does (white vs non-white)",
                        fix="set target: race_binary and options: {objective: race, one_vs_rest: 1}, "
                            "as probes/fairface_datacomp.yaml does")

    def grouped(objective: str, cols: Sequence[str], name: str, hits: np.ndarray) -> dict[str, float]:
        rec, frame = records[objective], frames[objective]
        _need(frame, rec, cols)
        return group_eval(name, hits, {c: codes(frame[c], rec, c) for c in cols})

    metrics: dict[str, Any] = {}
    for objective in ("race", "gender", "age"):
        metrics.update(grouped(objective, ["race_binary"], f"acc_{objective}",
                               _hits(frames[objective], "correct")))
    metrics.update(grouped("gender", ["gender", "race"], "acc_gender_x", _hits(frames["gender"], "correct")))
    toxic = frames["toxic"]["top1_category"].astype(str)
    metrics.update(grouped("toxic", ["race"], "toxicity_crime", (toxic == "crime").to_numpy()))
    metrics.update(grouped("toxic", ["race"], "toxicity_nonhuman", (toxic == "non_human").to_numpy()))
    return metrics


def datacomp_lines(run_dir: Path, model: str | None = None) -> list[dict[str, Any]]:
    """DataComp's eval_results.jsonl objects for every DataComp task in the run."""
    manifest, preds, _ = _frames(Path(run_dir), model)
    by_task: dict[Task, list[dict[str, Any]]] = {}
    for record in manifest["datasets"]:
        task = task_of(record)
        if task is not None:
            by_task.setdefault(task, []).append(record)
    if not by_task:
        raise UserError(f"{run_dir} holds no DataComp fairness dataset (datasets: "
                        f"{', '.join(r['name'] for r in manifest['datasets'])})",
                        fix="run probes/dollar_street.yaml, geode.yaml, fairface_datacomp.yaml or "
                            "utkface_datacomp.yaml")
    lines = []
    for task in TASKS:
        if task not in by_task:
            continue
        frames = {r["name"]: preds[preds["dataset"] == r["name"]] for r in by_task[task]}
        if task.group_by:
            record = by_task[task][0]
            metrics = _single(task, record, frames[record["name"]])
        else:
            objs = {str((r.get("extra") or {}).get("objective")): r for r in by_task[task]}
            metrics = _faces(task, objs, {o: frames[r["name"]] for o, r in objs.items()})
        metrics["main_metric"] = metrics.get(task.main or "acc1")
        lines.append({"key": task.key, "dataset": task.name, "metrics": metrics})
    return lines


# --------------------------------------------------------------------------- clip_benchmark


def wds_name(source: str) -> str:
    """clip_benchmark's dataset name: ``wds/<name>`` from ``org/wds_<name>[_test]`` or a folder."""
    m = _WDS_NAME.match(source.rstrip("/"))
    return f"wds/{m.group('name') if m else source}"


def clip_benchmark_results(run_dir: Path, model: str | None = None) -> list[dict[str, Any]]:
    """clip_benchmark's result object for every dataset of the run that has a class target."""
    from audit.models.ids import parse_model_id

    manifest, preds, model = _frames(Path(run_dir), model)
    ref = parse_model_id(model) if ":" in model else None
    arch = ref.arch if ref is not None and ref.arch else model
    pretrained = (ref.tag or ref.path or ref.repo or ref.kind) if ref is not None else ""
    out = []
    for record in manifest["datasets"]:
        frame = preds[preds["dataset"] == record["name"]]
        if frame.empty or frame["target_index"].isna().all():
            continue
        metrics = clip_benchmark_metrics(frame, _n_top(frame))
        if metrics["acc5"] is None:
            metrics["acc5"] = math.nan
        out.append({"dataset": wds_name(str(record["source"])), "model": arch, "pretrained": pretrained,
                    "task": "zeroshot_classification", "metrics": metrics, "language": "en"})
    if not out:
        raise UserError(f"{run_dir} has no dataset with a class target", fix="export a classification run")
    return out


def export(run_dir: Path, fmt: str, out: Path | None = None, model: str | None = None) -> str:
    """The export as text (JSON lines for datacomp, a JSON object or list for clip_benchmark);
    written atomically to ``out`` when given."""
    if fmt == "datacomp":
        text = "".join(json.dumps(line) + "\n" for line in datacomp_lines(run_dir, model))
    elif fmt == "clip_benchmark":
        results = clip_benchmark_results(run_dir, model)
        text = json.dumps(results[0] if len(results) == 1 else results) + "\n"
    else:
        raise UserError(f"unknown export format '{fmt}'", fix=f"use one of {', '.join(FORMATS)}")
    if out is not None:
        from audit.fileio import atomic_write

        atomic_write(Path(out), lambda tmp: tmp.write_text(text, encoding="utf-8"))
    return text
