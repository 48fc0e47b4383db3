"""Orchestration only: probe -> datasets x models x variants -> predictions -> metrics -> files.

No argv parsing and no printing here (the CLI does both); progress bars go to stderr.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from audit import provenance
from audit.cache import ImageStore, TextStore, cache_root
from audit.classify import class_weights, collapse_max, top_k, zero_shot_scores
from audit.data.base import IMAGE_ID, TARGET_INDEX, LoadedDataset
from audit.embed import embed_images, embed_texts
from audit.errors import EXIT_DATA, EXIT_GATE_FAILED, EXIT_OK, AuditError, DataError
from audit.labels import Vocabulary, vocabularies
from audit.registries import DATASETS
from audit.results import (
    BY_TEMPLATE, GATES, MANIFEST, METRICS, PREDICTION_LEAD, PREDICTIONS, ROBUSTNESS, write_csv,
    write_json, write_parquet,
)
from audit.spec import CLASSNAMES, DatasetSpec, ModelSpec, Probe


@dataclass(frozen=True)
class RunOptions:
    out: Path | None = None
    models: tuple[str, ...] = ()
    limit: int | None = None
    device: str = "auto"
    batch_size: int | None = None
    num_workers: int | None = None
    quiet: bool = False
    cache_dir: Path | None = None
    report: bool = True
    shard_rows: int = 1024


@dataclass
class RunOutcome:
    run_dir: Path
    exit_code: int
    metrics: pd.DataFrame
    gate_results: list[Any] = field(default_factory=list)
    model_failures: dict[str, str] = field(default_factory=dict)
    images_encoded: int = 0
    prompts_encoded: int = 0
    report_error: str | None = None


def default_out(probe: Probe) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / probe.spec.name / stamp


def load_dataset(probe: Probe, spec: DatasetSpec, limit: int | None) -> LoadedDataset:
    if limit is not None:
        spec = spec.model_copy(update={"limit": min(limit, spec.limit or limit)})
    adapter = DATASETS.get(spec.adapter)(spec, probe.resolve)
    return adapter.load()


def _models(probe: Probe, override: Sequence[str]) -> list[ModelSpec]:
    if override:
        return [ModelSpec(id=m) for m in override]
    return list(probe.spec.models)


def run_probe(probe: Probe, options: RunOptions = RunOptions()) -> RunOutcome:
    """Run every model of the probe over its datasets and write the run directory."""
    from audit.models.openclip import OpenClipModel

    from audit.distributed import init_from_env

    dist = init_from_env(options.device)
    run_dir = Path(options.out) if options.out else default_out(probe)
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / MANIFEST).unlink(missing_ok=True)  # the manifest marks a complete run: written last
    root = cache_root(options.cache_dir)
    batch_size = options.batch_size or probe.spec.batch_size
    datasets = [(spec, load_dataset(probe, spec, options.limit)) for spec in probe.spec.datasets]
    frames: list[pd.DataFrame] = []
    by_template: list[pd.DataFrame] = []
    model_records: list[dict[str, Any]] = []
    failures: dict[str, str] = {}
    prompts_record: dict[str, Any] = {}
    skipped: dict[str, list[dict[str, str]]] = {}
    encoded_images = encoded_prompts = 0
    want_templates = any(m.name == "template_sensitivity" for m in probe.spec.metrics)
    for mspec in _models(probe, options.models):
        try:
            model = OpenClipModel(mspec.id, name=mspec.display_name, device=options.device,
                                  seed=probe.spec.seed, resolve=probe.resolve)
        except DataError as exc:
            failures[mspec.display_name] = exc.render()
            continue
        model_records.append(provenance.model_record(model.info))
        texts = TextStore(root, model.info.cache_key)
        for dspec, data in datasets:
            store = ImageStore(root, {"model": model.info.cache_key, "dataset": data.info.fingerprint},
                               shard_rows=options.shard_rows)
            if dist.enabled:  # each rank fills its shards of the shared cache; rank 0 goes on
                embed_images(model, data, store, batch_size=batch_size, num_workers=options.num_workers,
                             quiet=options.quiet or not dist.is_main, rank=dist.rank,
                             world_size=dist.world_size, read_back=False)
                dist.barrier()
                if not dist.is_main:
                    continue
            images = embed_images(model, data, store, batch_size=batch_size, num_workers=options.num_workers,
                                  quiet=options.quiet, desc=f"{model.info.name} | {dspec.display_name}")
            encoded_images += images.computed_shards
            for vocab in vocabularies(probe, data.info.class_names, data.info.templates):
                prompts = [p for row in vocab.prompts() for p in row]
                flat, n_new = embed_texts(model, prompts, texts, quiet=options.quiet)
                encoded_prompts += n_new
                prompt_emb = flat.reshape(len(vocab.labels), len(vocab.templates), -1)
                prompts_record[vocab.variant] = provenance.vocab_record(vocab)
                weights = class_weights(prompt_emb)
                frames.append(predict(dspec, data, model.info.name, vocab, images.embeddings[images.ok],
                                      np.flatnonzero(images.ok), weights, model.info.logit_scale,
                                      model.info.logit_bias, uses_classnames=CLASSNAMES in probe.spec.label_sets))
                if want_templates and len(vocab.templates) > 1:
                    for t, template in enumerate(vocab.templates):
                        single = class_weights(prompt_emb[:, t:t + 1])
                        frame = predict(dspec, data, model.info.name, vocab, images.embeddings[images.ok],
                                        np.flatnonzero(images.ok), single, model.info.logit_scale,
                                        model.info.logit_bias, uses_classnames=CLASSNAMES in probe.spec.label_sets)
                        by_template.append(frame.assign(template=template))
            skipped[dspec.display_name] = [
                {"image_id": str(data.metadata[IMAGE_ID].iloc[r]), "error": e} for r, e in sorted(images.errors.items())
            ]
    if not dist.is_main:
        dist.close()
        return RunOutcome(run_dir, EXIT_OK, pd.DataFrame(), model_failures=failures)
    dist.close()
    if not frames:
        raise DataError("no model could be loaded, nothing to audit:\n" + "\n".join(failures.values()))
    predictions = pd.concat(frames, ignore_index=True)
    templates_df = pd.concat(by_template, ignore_index=True) if by_template else None
    manifest = provenance.manifest(probe, datasets, model_records, failures, prompts_record, skipped)
    return finish_run(probe, run_dir, predictions, templates_df, manifest, failures, options,
                      encoded_images, encoded_prompts)


def predict(dspec: DatasetSpec, data: LoadedDataset, model_name: str, vocab: Vocabulary,
            embeddings: np.ndarray, rows: np.ndarray, weights: np.ndarray, logit_scale: float,
            logit_bias: float | None, *, uses_classnames: bool) -> pd.DataFrame:
    """One prediction row per readable image for one model x variant."""
    scores = zero_shot_scores(embeddings, weights, logit_scale, logit_bias)
    texts = np.array(vocab.texts, dtype=object)
    categories = np.array(vocab.categories, dtype=object)
    targets = np.array([lb.target for lb in vocab.labels], dtype=object)
    groups = data.info.extra.get("collapse_groups")
    if groups is not None:  # e.g. ObjectNet scored 1000-way, collapsed to its 113 classes
        scores = collapse_max(scores, groups)
        texts = np.array(data.info.extra["collapse_names"], dtype=object)
        categories = np.array(["class"] * len(texts), dtype=object)
        targets = np.array([str(i) for i in range(len(texts))], dtype=object)
    best = top_k(scores, 5)
    meta = data.metadata.iloc[rows].reset_index(drop=True)
    out = pd.DataFrame({"dataset": dspec.display_name, "model": model_name, "variant": vocab.variant,
                        IMAGE_ID: meta[IMAGE_ID].astype(str)})
    for col in dspec.subgroups:  # label strings; a missing attribute stays missing, not "nan"
        out[col] = meta[col].map(lambda v: None if pd.isna(v) else str(v)).to_numpy()
    has_target = dspec.target is not None or TARGET_INDEX in meta.columns
    out["target"] = meta["target"].astype(str).to_numpy() if has_target and "target" in meta else None
    out["top1_label"] = texts[best[:, 0]]
    out["top1_category"] = categories[best[:, 0]]
    out["top5_labels"] = [list(texts[r]) for r in best]
    out["top1_score"] = scores[np.arange(len(best)), best[:, 0]].astype(float)
    if has_target:
        key = (meta[TARGET_INDEX].astype(str) if uses_classnames or groups is not None else meta["target"].astype(str)).to_numpy()
        out["correct"] = targets[best[:, 0]] == key
        out["top5_correct"] = (targets[best] == key[:, None]).any(axis=1)
    else:
        out["correct"] = pd.array([pd.NA] * len(out), dtype="boolean")
        out["top5_correct"] = pd.array([pd.NA] * len(out), dtype="boolean")
    return out


def finish_run(probe: Probe, run_dir: Path, predictions: pd.DataFrame, by_template: pd.DataFrame | None,
               manifest: dict[str, Any], failures: dict[str, str], options: RunOptions,
               encoded_images: int, encoded_prompts: int) -> RunOutcome:
    """Metrics, robustness, gates and files, in an order where the manifest comes last."""
    from audit.gates import evaluate_gates, write_gates_json
    from audit.metrics import compute_metrics

    rng = np.random.default_rng(probe.spec.seed)
    metrics = compute_metrics(predictions, probe.spec, rng, by_template=by_template)
    write_parquet(run_dir / PREDICTIONS, predictions)
    if by_template is not None:
        write_parquet(run_dir / BY_TEMPLATE, by_template)
    write_csv(run_dir / METRICS, metrics)
    robustness = None
    if probe.spec.kind == "robustness":
        from audit.robustness import robustness_from_metrics

        robustness = robustness_from_metrics(
            metrics, dataset_names={d.display_name: d.adapter for d in probe.spec.datasets},
            n_bootstrap=probe.spec.stats.n_bootstrap, rng=np.random.default_rng(probe.spec.seed),
        )
        write_csv(run_dir / ROBUSTNESS, robustness)
    results = evaluate_gates(probe.spec, metrics, robustness)
    write_gates_json(run_dir / GATES, results)
    write_json(run_dir / MANIFEST, manifest)
    from audit.gates import exit_code as gate_exit

    code = gate_exit(results)
    if failures:
        code = EXIT_DATA
    outcome = RunOutcome(run_dir, code, metrics, results, failures, encoded_images, encoded_prompts)
    if options.report and probe.spec.report.enabled:
        try:
            from audit.report import render_report

            render_report(run_dir)
        except AuditError as exc:
            outcome.report_error = exc.render()
            outcome.exit_code = max(outcome.exit_code, EXIT_DATA) if outcome.exit_code != EXIT_GATE_FAILED else EXIT_DATA
    return outcome


__all__ = ["RunOptions", "RunOutcome", "run_probe", "predict", "EXIT_OK", "replace"]
