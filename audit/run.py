"""Orchestration only: probe -> datasets x models x variants -> predictions -> metrics -> files.

No argv parsing and no printing here (the CLI does both); progress bars go to stderr.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from dataclasses import dataclass, field
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
    BY_TEMPLATE,
    GATES,
    MANIFEST,
    METRICS,
    PREDICTIONS,
    ROBUSTNESS,
    Manifest,
    write_csv,
    write_manifest,
    write_parquet,
)
from audit.spec import CLASSNAMES, DatasetSpec, ModelSpec, Probe


@dataclass(frozen=True)
class RunOptions:
    out: Path | None = None
    models: tuple[str, ...] = ()
    limit: int | None = None
    device: str = "auto"
    precision: str = "auto"
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


@dataclass
class _Collected:
    """What the model loop accumulates for the output files."""

    frames: list[pd.DataFrame] = field(default_factory=list)
    retrieval: list[pd.DataFrame] = field(default_factory=list)
    by_template: list[pd.DataFrame] = field(default_factory=list)
    models: list[dict[str, Any]] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    prompts: dict[str, Any] = field(default_factory=dict)
    skipped: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    images_encoded: int = 0
    prompts_encoded: int = 0


@dataclass(frozen=True)
class _Context:
    probe: Probe
    options: RunOptions
    root: Path
    batch_size: int
    dist: Any
    want_templates: bool

    @property
    def uses_classnames(self) -> bool:
        return CLASSNAMES in self.probe.spec.label_sets


def run_probe(probe: Probe, options: RunOptions = RunOptions()) -> RunOutcome:
    """Run every model of the probe over its datasets and write the run directory."""
    from audit.distributed import init_from_env

    dist = init_from_env(options.device)
    run_dir = Path(options.out) if options.out else default_out(probe)
    # data problems surface before anything is created on disk
    datasets = [(spec, load_dataset(probe, spec, options.limit)) for spec in probe.spec.datasets]
    if dist.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / MANIFEST).unlink(missing_ok=True)  # the manifest marks a complete run: written last
    ctx = _Context(probe, options, cache_root(options.cache_dir), options.batch_size or probe.spec.batch_size,
                   dist, any(m.name == "template_sensitivity" for m in probe.spec.metrics))
    out = _Collected()
    for mspec in _models(probe, options.models):
        if mspec.scoring == "generative":
            _run_generative(ctx, mspec, datasets, out)
        else:
            _run_contrastive(ctx, mspec, datasets, out)
    dist.close()
    if not dist.is_main:
        return RunOutcome(run_dir, EXIT_OK, pd.DataFrame(), model_failures=out.failures)
    if not out.frames:
        raise DataError("no model could be loaded, nothing to audit:\n" + "\n".join(out.failures.values()))
    predictions = pd.concat(out.frames, ignore_index=True)
    templates_df = pd.concat(out.by_template, ignore_index=True) if out.by_template else None
    manifest = provenance.manifest(probe, datasets, out.models, out.failures, out.prompts, out.skipped,
                                   tuple(_models(probe, options.models)))
    retrieval = pd.concat(out.retrieval, ignore_index=True) if out.retrieval else None
    if probe.spec.report.gallery:
        from audit.gallery import write_gallery

        write_gallery(run_dir, probe, predictions, {s.display_name: d for s, d in datasets})
    return finish_run(probe, run_dir, predictions, templates_df, manifest, out.failures, options,
                      out.images_encoded, out.prompts_encoded, retrieval)


def _features(ctx: _Context, out: _Collected, model: Any, dspec: DatasetSpec, data: LoadedDataset) -> Any:
    """Per-image features of ``model`` (embeddings, or cached likelihoods) through the cache;
    None on torchrun ranks other than 0, once they have filled their shards."""
    store = ImageStore(ctx.root, {"model": model.info.cache_key, "dataset": data.info.fingerprint},
                       shard_rows=ctx.options.shard_rows)
    result = _encode(ctx, model, dspec, data, store)
    if result is not None:
        out.images_encoded += result.computed_shards
    return result


def _encode(ctx: _Context, model: Any, dspec: DatasetSpec, data: LoadedDataset, store: ImageStore) -> Any:
    """Image features through the cache; under torchrun every rank fills its shards first."""
    opts = ctx.options
    if ctx.dist.enabled:
        embed_images(model, data, store, batch_size=ctx.batch_size, num_workers=opts.num_workers,
                     quiet=opts.quiet or not ctx.dist.is_main, rank=ctx.dist.rank,
                     world_size=ctx.dist.world_size, read_back=False)
        ctx.dist.barrier()
        if not ctx.dist.is_main:
            return None
    return embed_images(model, data, store, batch_size=ctx.batch_size, num_workers=opts.num_workers,
                        quiet=opts.quiet, desc=f"{model.info.name} | {dspec.display_name}")


def _vocabularies(probe: Probe, dspec: DatasetSpec, data: LoadedDataset) -> list[Vocabulary]:
    """The probe's variants that run on this dataset (``dataset.variants`` narrows them)."""
    vocabs = vocabularies(probe, data.info.class_names, data.info.templates)
    return [v for v in vocabs if dspec.variants is None or v.variant in dspec.variants]


def _add_predictions(ctx: _Context, out: _Collected, dspec: DatasetSpec, data: LoadedDataset, model_name: str,
                     vocab: Vocabulary, rows: np.ndarray, scores: Any) -> None:
    """Predictions from the template ensemble (``scores(None)``) and, for template sensitivity,
    from each template alone (``scores(t)``)."""
    out.frames.append(predict_from_scores(dspec, data, model_name, vocab, scores(None), rows,
                                          uses_classnames=ctx.uses_classnames))
    if ctx.want_templates and len(vocab.templates) > 1:
        for t, template in enumerate(vocab.templates):
            frame = predict_from_scores(dspec, data, model_name, vocab, scores(t), rows,
                                        uses_classnames=ctx.uses_classnames)
            out.by_template.append(frame.assign(template=template))


def _record_prompts(out: _Collected, dspec: DatasetSpec, vocab: Vocabulary) -> None:
    """``prompts[variant]``: the first dataset's vocabulary; a later dataset whose vocabulary differs
    (its own class names: ImageNet-R's 200, ObjectNet's 113) goes under ``by_dataset``."""
    record = provenance.vocab_record(vocab)
    first = out.prompts.setdefault(vocab.variant, record)
    if first["digest"] != record["digest"]:
        first.setdefault("by_dataset", {})[dspec.display_name] = record


def _record_skipped(out: _Collected, dspec: DatasetSpec, data: LoadedDataset, errors: dict[int, str]) -> None:
    out.skipped[dspec.display_name] = [
        {"image_id": str(data.metadata[IMAGE_ID].iloc[r]), "error": e} for r, e in sorted(errors.items())
    ]


def _run_contrastive(ctx: _Context, mspec: ModelSpec, datasets: list[tuple[DatasetSpec, LoadedDataset]],
                     out: _Collected) -> None:
    from audit.registries import MODEL_SCHEMES, model_scheme

    try:
        adapter = MODEL_SCHEMES.get(model_scheme(mspec.id))
        model = adapter(mspec.id, name=mspec.display_name, device=ctx.options.device,
                        seed=ctx.probe.spec.seed, resolve=ctx.probe.resolve, **_run_options(ctx, adapter))
    except DataError as exc:
        out.failures[mspec.display_name] = exc.render()
        return
    out.models.append(provenance.model_record(model.info))
    texts = TextStore(ctx.root, model.info.cache_key)
    for dspec, data in datasets:
        images = _features(ctx, out, model, dspec, data)
        if images is None:
            continue
        rows = np.flatnonzero(images.ok)
        feats = images.embeddings[images.ok]
        if ctx.probe.spec.retrieval is not None:
            from audit.retrieval import retrieval_rows

            base = ctx.probe.spec.base_variant
            out.retrieval.append(retrieval_rows(ctx.probe, dspec, data, model, texts, feats, rows, base,
                                                quiet=ctx.options.quiet))
        if ctx.probe.spec.associations:  # association tests: extra metric rows, like retrieval's
            from audit.association import association_rows

            out.retrieval.append(association_rows(ctx.probe, dspec, data, model, texts, feats, rows,
                                                  ctx.probe.spec.base_variant, quiet=ctx.options.quiet))
        for vocab in _vocabularies(ctx.probe, dspec, data):
            flat, n_new = embed_texts(model, [p for row in vocab.prompts() for p in row], texts, quiet=ctx.options.quiet)
            out.prompts_encoded += n_new
            _record_prompts(out, dspec, vocab)
            prompt_emb = flat.reshape(len(vocab.labels), len(vocab.templates), -1)

            def scores(t: int | None, feats: np.ndarray = feats, prompt_emb: np.ndarray = prompt_emb) -> np.ndarray:
                emb = prompt_emb if t is None else prompt_emb[:, t:t + 1]
                return zero_shot_scores(feats, class_weights(emb), model.info.logit_scale, model.info.logit_bias)

            _add_predictions(ctx, out, dspec, data, model.info.name, vocab, rows, scores)
        _record_skipped(out, dspec, data, images.errors)


def _run_options(ctx: _Context, adapter: Any) -> dict[str, Any]:
    """The optional run settings an adapter declares it takes (``run_options``), e.g. the cache
    directory for its model description, or the numeric precision."""
    offered = {"info_cache": ctx.root / "models", "precision": ctx.options.precision}
    return {k: offered[k] for k in getattr(adapter, "run_options", ()) if k in offered}


def _run_generative(ctx: _Context, mspec: ModelSpec, datasets: list[tuple[DatasetSpec, LoadedDataset]],
                    out: _Collected) -> None:
    """Label likelihood scoring: log p(prompt | image), averaged over templates per label."""
    from audit.models.generative import CocaScorer, label_scores

    try:
        scorer = CocaScorer(mspec.id, name=mspec.display_name, device=ctx.options.device,
                            seed=ctx.probe.spec.seed, resolve=ctx.probe.resolve,
                            reduction=mspec.reduction or "sum", **_run_options(ctx, CocaScorer))
    except DataError as exc:
        out.failures[mspec.display_name] = exc.render()
        return
    out.models.append(provenance.model_record(scorer.info))
    for dspec, data in datasets:
        vocabs = _vocabularies(ctx.probe, dspec, data)
        prompts = list(dict.fromkeys(p for v in vocabs for row in v.prompts() for p in row))
        encoder = scorer.prompt_encoder(prompts)  # one decoder pass per image x distinct prompt
        res = _features(ctx, out, encoder, dspec, data)
        if res is None:
            continue
        rows = np.flatnonzero(res.ok)
        index = {p: i for i, p in enumerate(prompts)}
        for vocab in vocabs:
            _record_prompts(out, dspec, vocab)
            cols = [index[p] for row in vocab.prompts() for p in row]  # label-major
            per_prompt = res.embeddings[res.ok][:, cols].astype(np.float64)
            if scorer.reduction == "mean":
                per_prompt = per_prompt / encoder.n_tokens[cols]
            cube = per_prompt.reshape(len(rows), len(vocab.labels), len(vocab.templates))

            def scores(t: int | None, cube: np.ndarray = cube, pp: np.ndarray = per_prompt,
                       n: tuple[int, int] = (len(vocab.labels), len(vocab.templates))) -> np.ndarray:
                return label_scores(pp, *n) if t is None else cube[:, :, t]

            _add_predictions(ctx, out, dspec, data, scorer.info.name, vocab, rows, scores)
        _record_skipped(out, dspec, data, res.errors)


def predict_from_scores(dspec: DatasetSpec, data: LoadedDataset, model_name: str, vocab: Vocabulary,
                        scores: np.ndarray, rows: np.ndarray, *, uses_classnames: bool) -> pd.DataFrame:
    """One prediction row per readable image for one model x variant, from ``[images, labels]`` scores."""
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
    order = data.info.extra.get("label_order", {})
    for col in dspec.subgroups:  # label strings; a missing attribute stays missing, not "nan"
        values = meta[col].map(lambda v: None if pd.isna(v) else str(v))
        # keep the dataset's own label order (age bins 0-2, 3-9, ...), not string order
        out[col] = pd.Categorical(values, categories=order[col]) if col in order else values.to_numpy()
    has_target = dspec.target is not None or TARGET_INDEX in meta.columns
    out["target"] = meta["target"].astype(str).to_numpy() if has_target and "target" in meta else None
    # class index of the target: class names may repeat (OpenAI's ImageNet names do), indices don't
    out["target_index"] = (meta[TARGET_INDEX].astype("Int64").to_numpy() if TARGET_INDEX in meta
                           else pd.array([pd.NA] * len(out), dtype="Int64"))
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
               manifest: Manifest, failures: dict[str, str], options: RunOptions,
               encoded_images: int, encoded_prompts: int, retrieval: pd.DataFrame | None = None) -> RunOutcome:
    """Metrics, robustness, gates and files, in an order where the manifest comes last."""
    from audit.gates import evaluate_gates, write_gates_json
    from audit.metrics import compute_metrics

    rng = np.random.default_rng(probe.spec.seed)
    metrics = compute_metrics(predictions, probe.spec, rng, by_template=by_template)
    if retrieval is not None and len(retrieval):
        metrics = pd.concat([metrics, retrieval[list(metrics.columns)]], ignore_index=True)
    write_parquet(run_dir / PREDICTIONS, predictions)
    if by_template is not None:
        write_parquet(run_dir / BY_TEMPLATE, by_template)
    write_csv(run_dir / METRICS, metrics)
    robustness = None
    if probe.spec.kind == "robustness":
        from audit.robustness import robustness_from_metrics

        # One dataset per robustness name: the first of each adapter (e.g. of two ObjectNet modes).
        first: dict[str, str] = {}
        for d in probe.spec.datasets:
            first.setdefault(d.adapter, d.display_name)
        robustness = robustness_from_metrics(
            metrics[metrics["dataset"].isin(set(first.values()))],
            dataset_names={name: adapter for adapter, name in first.items()},
            n_bootstrap=probe.spec.stats.n_bootstrap, rng=np.random.default_rng(probe.spec.seed),
        )
        write_csv(run_dir / ROBUSTNESS, robustness)
        names = {name: adapter for adapter, name in first.items()}
        comparison = compare_all_models(metrics, predictions, names, probe)
        if comparison is not None:
            write_csv(run_dir / "robustness_compare.csv", comparison)
    from audit.compare.runs import write_fairness_compare

    write_fairness_compare(run_dir, probe.spec, metrics, predictions, manifest)
    run_spec = probe.spec.model_copy(update={"models": tuple(_models(probe, options.models))})
    results = evaluate_gates(probe.spec, metrics, robustness, run_spec=run_spec)
    write_gates_json(run_dir / GATES, results)
    write_manifest(run_dir, manifest)  # last: records every file's SHA-256
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


def compare_all_models(metrics: pd.DataFrame, predictions: pd.DataFrame, names: dict[str, str],
                       probe: Probe) -> pd.DataFrame | None:
    """Which model is more robust, per shift and pair of models, with an interval on the difference
    of effective robustness (bootstrap over baseline models and, paired, over images)."""
    from audit.robustness import compare_models

    base = probe.spec.base_variant
    acc = metrics[(metrics["metric"] == "accuracy") & (metrics["group_col"] == "overall")
                  & (metrics["variant"] == base) & metrics["dataset"].isin(list(names))]
    rows = acc.assign(dataset=acc["dataset"].map(names))[["model", "dataset", "value"]].rename(columns={"value": "top1"})
    with_imagenet = sorted(set(rows.loc[rows["dataset"] == "imagenet", "model"]))
    if len(with_imagenet) < 2:
        return None
    preds = predictions[(predictions["variant"] == base) & predictions["dataset"].isin(list(names))]
    correct = preds.assign(dataset=preds["dataset"].map(names))[["dataset", "model", "image_id", "correct"]]
    frames = [
        compare_models(rows, a, b, correct=correct, n_bootstrap=probe.spec.stats.n_bootstrap,
                       rng=np.random.default_rng(probe.spec.seed))
        for i, a in enumerate(with_imagenet) for b in with_imagenet[i + 1:]
    ]
    return pd.concat(frames, ignore_index=True)


__all__ = ["RunOptions", "RunOutcome", "predict_from_scores", "run_probe"]
