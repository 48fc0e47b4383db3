"""Orchestration only: probe -> datasets x models x variants -> predictions -> metrics -> files.

No argv parsing and no printing here: the CLI does both. Steps are reported through the
``audit`` logger and long loops through :mod:`audit.progress`, which the CLI shows on stderr.
Every model goes through the same loop via the :class:`~audit.models.scorer.Scorer` protocol.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from audit import provenance
from audit.cache import cache_root
from audit.data.base import IMAGE_ID, LoadedDataset
from audit.errors import EXIT_DATA, EXIT_GATE_FAILED, EXIT_OK, AuditError, DataError, Problem, UserError
from audit.labels import Vocabulary, vocabularies
from audit.progress import log
from audit.registries import DATASETS
from audit.results import (
    BY_TEMPLATE,
    GATES,
    METRICS,
    PREDICTIONS,
    ROBUSTNESS,
    Manifest,
    write_csv,
    write_manifest,
    write_parquet,
)
from audit.spec import CLASSNAMES, DatasetSpec, ModelSpec, Probe

if TYPE_CHECKING:  # torch is imported only once a run starts
    from audit.embed import EmbedJob


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
    #: Unreadable images left out, per dataset (listed in manifest.json under ``skipped``).
    skipped_images: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StageRngs:
    """The run's random streams, all spawned from ONE generator seeded by the probe's ``seed``."""

    metrics: np.random.Generator
    robustness: np.random.Generator
    compare: np.random.Generator
    gallery: np.random.Generator

    @classmethod
    def from_generator(cls, rng: np.random.Generator) -> StageRngs:
        return cls(*rng.spawn(4))


def default_out(probe: Probe) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("runs") / probe.spec.name / stamp


def load_dataset(probe: Probe, spec: DatasetSpec, limit: int | None, cache: Path | None = None) -> LoadedDataset:
    """Load one dataset of the probe; adapters that keep files get the cache root (``run_options``)."""
    if limit is not None:
        spec = spec.model_copy(update={"limit": min(limit, spec.limit or limit)})
    cls = DATASETS.get(spec.adapter)
    kwargs = {"cache_dir": cache} if cache is not None and "cache_dir" in getattr(cls, "run_options", ()) else {}
    return cls(spec, probe.resolve, **kwargs).load()


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
    job: EmbedJob
    want_templates: bool

    @property
    def uses_classnames(self) -> bool:
        return CLASSNAMES in self.probe.spec.label_sets


def run_probe(probe: Probe, options: RunOptions = RunOptions()) -> RunOutcome:
    """Run every model of the probe over its datasets and write the run directory.

    Nothing is written to the run directory before every output is ready: it appears whole at
    the end (:mod:`audit.staging`), so a failed run leaves none behind.
    """
    from audit.distributed import init_from_env
    from audit.embed import EmbedJob
    from audit.staging import check_out_dir

    run_dir = Path(options.out) if options.out else default_out(probe)
    check_out_dir(run_dir)
    mspecs = _models(probe, options.models)
    _announce(probe, mspecs, run_dir)
    root = cache_root(options.cache_dir)
    datasets, unavailable = _load_inputs(probe, mspecs, options, root)
    dist = init_from_env(options.device)
    job = EmbedJob(options.batch_size or probe.spec.batch_size, options.num_workers, options.shard_rows,
                   options.quiet, dist)
    ctx = _Context(probe, options, root, job, any(m.name == "template_sensitivity" for m in probe.spec.metrics))
    out = _Collected(failures=dict(unavailable))
    for mspec in mspecs:
        if mspec.display_name not in unavailable:
            _run_model(ctx, mspec, datasets, out)
    dist.close()
    if not dist.is_main:
        return RunOutcome(run_dir, EXIT_OK, pd.DataFrame(), model_failures=out.failures)
    if not out.frames:
        raise DataError("no model could be loaded, nothing to audit:\n" + "\n".join(out.failures.values()))
    predictions = pd.concat(out.frames, ignore_index=True)
    templates_df = pd.concat(out.by_template, ignore_index=True) if out.by_template else None
    manifest = provenance.manifest(probe, datasets, out.models, out.failures, out.prompts, out.skipped, tuple(mspecs))
    retrieval = pd.concat(out.retrieval, ignore_index=True) if out.retrieval else None
    outcome = finish_run(probe, run_dir, predictions, templates_df, manifest, out.failures, options,
                         out.images_encoded, out.prompts_encoded, retrieval,
                         datasets={s.display_name: d for s, d in datasets},
                         rng=np.random.default_rng(probe.spec.seed))
    outcome.skipped_images = {name: len(rows) for name, rows in out.skipped.items() if rows}
    return outcome


def _announce(probe: Probe, mspecs: Sequence[ModelSpec], run_dir: Path) -> None:
    spec = probe.spec
    log.info("audit: probe '%s' (%s): %d dataset(s) [%s], %d model(s) [%s]", spec.name, probe.path,
             len(spec.datasets), ", ".join(d.display_name for d in spec.datasets), len(mspecs),
             ", ".join(m.display_name for m in mspecs))
    log.info("audit: output -> %s", run_dir)


def _load_inputs(probe: Probe, mspecs: Sequence[ModelSpec], options: RunOptions, root: Path
                 ) -> tuple[list[tuple[DatasetSpec, LoadedDataset]], dict[str, str]]:
    """Every dataset, and which models' weights are missing, checked together so that one
    message names every missing input. Raises when a dataset or every model is unavailable."""
    from audit.models.scorer import check_available

    datasets, problems = [], []
    for i, dspec in enumerate(probe.spec.datasets):
        log.info("loading dataset %s (%s)", dspec.display_name, dspec.adapter)
        try:
            datasets.append((dspec, load_dataset(probe, dspec, options.limit, root)))
        except AuditError as exc:
            problems.append((f"datasets[{i}] ({dspec.display_name})", exc))
    unavailable: dict[str, str] = {}
    for i, mspec in enumerate(mspecs):
        try:
            check_available(mspec, probe.resolve, probe.spec.seed)
        except AuditError as exc:
            problems.append((f"models[{i}] ({mspec.display_name})", exc))
            unavailable[mspec.display_name] = exc.render()
    if problems and (len(datasets) < len(probe.spec.datasets) or len(unavailable) == len(mspecs)):
        raise _unavailable(probe, problems)
    return datasets, unavailable


def _unavailable(probe: Probe, problems: list[tuple[str, AuditError]]) -> AuditError:
    """One error naming every missing input; exit 3 unless every problem is the user's (exit 2)."""
    cls = UserError if all(isinstance(e, UserError) for _, e in problems) else DataError
    items = [Problem(where, exc.render().replace("\n", "\n    ")) for where, exc in problems]
    return cls(f"probe '{probe.spec.name}': inputs that cannot be loaded", problems=items)


def _vocabularies(probe: Probe, dspec: DatasetSpec, data: LoadedDataset) -> list[Vocabulary]:
    """The probe's variants that run on this dataset (``dataset.variants`` narrows them)."""
    vocabs = vocabularies(probe, data.info.class_names, data.info.templates,
                          data.info.extra.get("class_categories"))
    return [v for v in vocabs if dspec.variants is None or v.variant in dspec.variants]


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


def _run_model(ctx: _Context, mspec: ModelSpec, datasets: list[tuple[DatasetSpec, LoadedDataset]],
               out: _Collected) -> None:
    """One model over every dataset and variant, whatever its kind (the scorer decides)."""
    from audit.models.scorer import ScorerSettings, build_scorer

    settings = ScorerSettings(ctx.root, ctx.options.device, ctx.probe.spec.seed, ctx.options.precision,
                              ctx.options.quiet)
    log.info("loading model %s (%s, %s scoring)", mspec.display_name, mspec.id, mspec.scoring)
    try:
        scorer = build_scorer(mspec, ctx.probe.resolve, settings)
    except DataError as exc:
        out.failures[mspec.display_name] = exc.render()
        log.warning("model %s failed to load; the run goes on without it", mspec.display_name)
        return
    out.models.append(provenance.model_record(scorer.info))
    for dspec, data in datasets:
        vocabs = _vocabularies(ctx.probe, dspec, data)
        feats = scorer.features(data, vocabs, ctx.job, f"embedding {dspec.display_name} ({scorer.info.name})")
        if feats is None:  # a torchrun rank other than 0: its shards are in the cache
            continue
        out.images_encoded += feats.computed_shards
        space = scorer.embedding_space(feats)
        if ctx.probe.spec.retrieval is not None and space is not None:
            from audit.retrieval import retrieval_rows

            out.retrieval.append(retrieval_rows(ctx.probe, dspec, data, scorer.info.name, space[1], space[0],
                                                feats.rows, ctx.probe.spec.base_variant))
        if ctx.probe.spec.associations and space is not None:  # extra metric rows, like retrieval's
            from audit.association import association_rows

            out.retrieval.append(association_rows(ctx.probe, dspec, data, scorer.info.name, space[1], space[0],
                                                  feats.rows, ctx.probe.spec.base_variant))
        for vocab in vocabs:
            scores = scorer.scores(feats, vocab)
            out.prompts_encoded += scores.prompts_encoded
            _record_prompts(out, dspec, vocab)
            _add_predictions(ctx, out, dspec, data, scorer.info.name, vocab, feats.rows, scores.ensemble,
                             scores.template)
        _record_skipped(out, dspec, data, feats.errors)


def _add_predictions(ctx: _Context, out: _Collected, dspec: DatasetSpec, data: LoadedDataset, model_name: str,
                     vocab: Vocabulary, rows: np.ndarray, ensemble: np.ndarray,
                     template: Callable[[int], np.ndarray]) -> None:
    """Predictions from the template ensemble and, for template sensitivity, each template alone."""
    from audit.predict import predict_from_scores

    out.frames.append(predict_from_scores(dspec, data, model_name, vocab, ensemble, rows,
                                          uses_classnames=ctx.uses_classnames))
    if ctx.want_templates and len(vocab.templates) > 1:
        for t, text in enumerate(vocab.templates):
            frame = predict_from_scores(dspec, data, model_name, vocab, template(t), rows,
                                        uses_classnames=ctx.uses_classnames)
            out.by_template.append(frame.assign(template=text))


def finish_run(probe: Probe, run_dir: Path, predictions: pd.DataFrame, by_template: pd.DataFrame | None,
               manifest: Manifest, failures: dict[str, str], options: RunOptions,
               encoded_images: int, encoded_prompts: int, retrieval: pd.DataFrame | None = None, *,
               datasets: dict[str, LoadedDataset] | None = None,
               rng: np.random.Generator | None = None) -> RunOutcome:
    """Metrics, robustness, gates and files (the manifest last), written into a staging directory
    that becomes ``run_dir`` only when all of them are written; then the report."""
    from audit.gates import evaluate_gates, exit_code, write_gates_json
    from audit.metrics import compute_metrics
    from audit.staging import staged_dir

    rngs = StageRngs.from_generator(rng if rng is not None else np.random.default_rng(probe.spec.seed))
    log.info("computing metrics and gates")
    metrics = compute_metrics(predictions, probe.spec, rngs.metrics, by_template=by_template)
    if retrieval is not None and len(retrieval):
        metrics = pd.concat([metrics, retrieval[list(metrics.columns)]], ignore_index=True)
    robustness = comparison = None
    if probe.spec.kind == "robustness":
        from audit.robustness.run_tables import run_robustness

        robustness, comparison = run_robustness(metrics, predictions, probe, rngs.robustness, rngs.compare)
    run_spec = probe.spec.model_copy(update={"models": tuple(_models(probe, options.models))})
    results = evaluate_gates(probe.spec, metrics, robustness, run_spec=run_spec)
    with staged_dir(run_dir) as stage:
        write_parquet(stage / PREDICTIONS, predictions)
        if by_template is not None:
            write_parquet(stage / BY_TEMPLATE, by_template)
        write_csv(stage / METRICS, metrics)
        if robustness is not None:
            write_csv(stage / ROBUSTNESS, robustness)
        if comparison is not None:
            write_csv(stage / "robustness_compare.csv", comparison)
        if probe.spec.report.gallery and datasets is not None:
            from audit.gallery import write_gallery

            write_gallery(stage, probe, predictions, datasets, rng=rngs.gallery)
        from audit.compare.runs import write_fairness_compare

        write_fairness_compare(stage, probe.spec, metrics, predictions, manifest)
        write_gates_json(stage / GATES, results)
        write_manifest(stage, manifest)  # last: records every file's SHA-256
    code = EXIT_DATA if failures else exit_code(results)
    outcome = RunOutcome(run_dir, code, metrics, results, failures, encoded_images, encoded_prompts)
    if options.report and probe.spec.report.enabled:
        _render(run_dir, outcome)
    return outcome


def _render(run_dir: Path, outcome: RunOutcome) -> None:
    from audit.report import render_report

    log.info("rendering the report (report.html, model_card.md) in %s", run_dir)
    try:
        render_report(run_dir)
    except AuditError as exc:
        outcome.report_error = exc.render()
        outcome.exit_code = max(outcome.exit_code, EXIT_DATA) if outcome.exit_code != EXIT_GATE_FAILED else EXIT_DATA


__all__ = ["RunOptions", "RunOutcome", "StageRngs", "finish_run", "run_probe"]
