"""What a run directory records about how its numbers were made (``manifest.json``)."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

import audit
from audit.data.base import LoadedDataset
from audit.labels import Vocabulary
from audit.models.base import ModelInfo
from audit.results.manifest import Manifest, ModelRecord, scoring_summary
from audit.results.schema import FORMAT_VERSION
from audit.spec import DatasetSpec, Probe

PACKAGES = ("audit", "torch", "torchvision", "open_clip_torch", "datasets", "huggingface_hub", "numpy",
            "pandas", "statsmodels", "scipy", "seaborn", "papermill", "pydantic", "pyarrow")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_commit(where: Path) -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=where, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def model_record(info: ModelInfo) -> dict[str, Any]:
    return {
        "id": info.id, "name": info.name, "scheme": info.scheme, "weights": info.weights,
        "logit_scale": info.logit_scale, "logit_bias": info.logit_bias,
        "random_weights": info.random_weights, "device": info.device, "precision": info.precision,
        "scoring": info.scoring, "preprocess": info.preprocess, **info.extra,
    }


def vocab_record(vocab: Vocabulary) -> dict[str, Any]:
    return {
        "templates": list(vocab.templates),
        "labels": list(vocab.texts),
        "categories": list(vocab.categories),
        "targets": [lb.target for lb in vocab.labels],
        "prompts": vocab.prompts(),
        "digest": vocab.digest(),
    }


def dataset_record(spec: DatasetSpec, data: LoadedDataset, skipped: list[dict[str, str]]) -> dict[str, Any]:
    info = data.info
    return {
        "name": spec.display_name, "adapter": info.adapter, "source": info.source, "config": info.config,
        "split": info.split, "revision": info.revision, "num_rows": info.num_rows,
        "fingerprint": info.fingerprint, "subgroups": list(spec.subgroups),
        "intersections": [list(c) for c in spec.intersections], "target": spec.target,
        "extra": {k: v for k, v in info.extra.items() if k not in ("collapse_groups",)},
        "skipped": skipped, "n_skipped": len(skipped),
    }


def manifest(probe: Probe, datasets: list[tuple[DatasetSpec, LoadedDataset]],
             models: list[dict[str, Any]], failures: dict[str, str], prompts: dict[str, Any],
             skipped: dict[str, list[dict[str, str]]], run_models: tuple[Any, ...] | None = None) -> Manifest:
    """The typed manifest of a run (``files`` is filled by :func:`audit.results.write_manifest`).

    Args:
        probe: The loaded probe.
        datasets: Each dataset spec with what was loaded for it.
        models: :func:`model_record` of each model that ran.
        failures: Model display name -> why it failed.
        prompts: Variant -> :func:`vocab_record`.
        skipped: Dataset display name -> images that could not be read.
        run_models: The models that ran when ``--model`` replaced the probe's.
    """
    spec = probe.spec
    resolved = probe.resolved_dict()
    if run_models is not None:  # --model replaced the probe's models: record what actually ran
        resolved["models"] = [m.model_dump() for m in run_models]
    return Manifest.model_validate({
        "format_version": FORMAT_VERSION,
        "audit_version": audit.__version__,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "probe": {
            "name": spec.name, "kind": spec.kind, "path": str(probe.path), "sha256": probe.sha256,
            "notice": spec.notice, "resolved": resolved,
            "allow_notebooks_outside": probe.allow_notebooks_outside,
        },
        "label_sets": [
            {"name": ls.spec.name, "version": ls.spec.version, "path": str(ls.path), "sha256": ls.sha256,
             "citation": ls.spec.citation}
            for ls in probe.label_sets
        ],
        "prompts": prompts,
        "retrieval": None if spec.retrieval is None else {
            **spec.retrieval.model_dump(mode="json"),
            "query_sets": [
                {"name": q.spec.name, "version": q.spec.version, "path": str(q.path), "sha256": q.sha256,
                 "templates": list(qs.templates), "queries": [lb.text for lb in q.spec.labels]}
                for qs, q in zip(spec.retrieval.query_sets, probe.query_sets)
            ],
        },
        "models": models,
        "model_failures": failures,
        "datasets": [dataset_record(s, d, skipped.get(s.display_name, [])) for s, d in datasets],
        "seed": spec.seed,
        "stats": spec.stats.model_dump(),
        "packages": package_versions(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(probe.path.parent),
        "scoring": scoring_summary([ModelRecord.model_validate(m) for m in models]),
    })
