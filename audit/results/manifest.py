"""``manifest.json``: the typed record of how a run's numbers were made, and its one writer.

The manifest is written last (its presence marks a complete run) and records the SHA-256 of every
file the run wrote before it, so ``check`` and ``report`` can tell when a file was edited since.
Report documents (``report.*``, ``model_card.md``) are rendered after the manifest and may be
re-rendered at will: they are not recorded.

Records allow extra keys (``extra="allow"``): a model adapter's own facts (``ModelInfo.extra``)
and keys added by later versions of the same format flow through unchanged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from audit.results.schema import FORMAT_VERSION, MANIFEST, write_json

_ALLOW = ConfigDict(extra="allow")


class ProbeRecord(BaseModel):
    """The probe a run was made with."""

    model_config = _ALLOW
    name: str = Field(description="The probe's name.")
    kind: str = Field("fairness", description="fairness or robustness.")
    path: str | None = Field(None, description="The probe file, as given.")
    sha256: str | None = Field(None, description="SHA-256 of the probe file.")
    notice: str | None = Field(None, description="The probe's notice, shown atop reports.")
    resolved: dict[str, Any] | None = Field(None, description="The fully resolved probe (what check re-judges).")
    allow_notebooks_outside: bool = Field(False, description="Whether the run allowed report notebooks from "
                                          "outside the probe's directory (--allow-notebooks-outside).")


class LabelSetRecord(BaseModel):
    """One label-set file the probe read."""

    model_config = _ALLOW
    name: str = Field(description="Label set name.")
    version: str | int | None = Field(None, description="Label set version.")
    path: str | None = Field(None, description="File path.")
    sha256: str | None = Field(None, description="SHA-256 of the file.")
    citation: str | None = Field(None, description="Where the labels come from.")


class PromptRecord(BaseModel):
    """The prompts of one label-set variant."""

    model_config = _ALLOW
    templates: list[str] = Field(default_factory=list, description="Prompt templates.")
    labels: list[str] = Field(default_factory=list, description="Label texts, in score order.")
    categories: list[str] = Field(default_factory=list, description="Category of each label.")
    digest: str | None = Field(None, description="Content hash of the vocabulary.")


class ModelRecord(BaseModel):
    """One model that ran (``ModelInfo`` plus the adapter's extra facts)."""

    model_config = _ALLOW
    id: str | None = Field(None, description="Model id as given (ARCH:TAG, hf-hub:..., local-dir:...).")
    name: str | None = Field(None, description="Display name used in every table.")
    scheme: str | None = Field(None, description="Adapter scheme (open_clip, transformers, ...).")
    weights: str | None = Field(None, description="Weights tag, path or digest.")
    logit_scale: float | None = Field(None, description="The model's own logit scale.")
    logit_bias: float | None = Field(None, description="Logit bias (SigLIP-style models).")
    random_weights: bool = Field(False, description="True when the weights are random (numbers mean nothing).")
    device: str | None = Field(None, description="Device it ran on.")
    precision: str | None = Field(None, description="Numeric precision.")
    scoring: str | None = Field(None, description="The scoring rule, in words.")
    preprocess: Any = Field(None, description="Image preprocessing.")

    @property
    def display(self) -> str:
        """``name``, else ``id``."""
        return str(self.name or self.id or "")


class SkippedImage(BaseModel):
    """An image the run could not read."""

    model_config = _ALLOW
    image_id: str | None = Field(None, description="Image id.")
    error: str | None = Field(None, description="Why it was skipped.")


class DatasetRecord(BaseModel):
    """One dataset a run read."""

    model_config = _ALLOW
    name: str = Field(description="Display name used in every table.")
    adapter: str | None = Field(None, description="Dataset adapter.")
    source: str | None = Field(None, description="Hub id or local path.")
    config: str | None = Field(None, description="Dataset config.")
    split: str | None = Field(None, description="Split.")
    revision: str | None = Field(None, description="Pinned revision, if any.")
    num_rows: int | None = Field(None, description="Images read.")
    fingerprint: str | None = Field(None, description="Fingerprint of the images and their order.")
    subgroups: list[str] = Field(default_factory=list, description="Declared subgroup columns.")
    intersections: list[list[str]] = Field(default_factory=list, description="Declared intersections.")
    target: str | None = Field(None, description="Target column.")
    extra: dict[str, Any] = Field(default_factory=dict, description="Adapter facts.")
    skipped: list[SkippedImage] = Field(default_factory=list, description="Images that could not be read.")


class FileRecord(BaseModel):
    """Size and SHA-256 of one output file when the manifest was written."""

    model_config = ConfigDict(extra="forbid")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 (hex) of the file's bytes.")
    bytes: int = Field(ge=0, description="Size in bytes.")


class Manifest(BaseModel):
    """``manifest.json``: provenance of a run directory (format :data:`FORMAT_VERSION`)."""

    model_config = _ALLOW
    format_version: str = Field(FORMAT_VERSION, description="Run-directory format version.")
    audit_version: str | None = Field(None, description="Version of audit that wrote the run.")
    created: str | None = Field(None, description="UTC time the run finished (ISO 8601).")
    probe: ProbeRecord = Field(description="The probe.")
    label_sets: list[LabelSetRecord] = Field(default_factory=list, description="Label-set files read.")
    prompts: dict[str, PromptRecord] = Field(default_factory=dict, description="Prompts per variant.")
    retrieval: dict[str, Any] | None = Field(None, description="Retrieval settings and query sets.")
    models: list[ModelRecord] = Field(default_factory=list, description="Models that ran.")
    model_failures: dict[str, str] = Field(default_factory=dict, description="Models that failed, with why.")
    datasets: list[DatasetRecord] = Field(default_factory=list, description="Datasets read.")
    seed: int | None = Field(None, description="The probe's seed.")
    stats: dict[str, Any] = Field(default_factory=dict, description="The probe's stats settings.")
    packages: dict[str, str | None] = Field(default_factory=dict, description="Package versions.")
    python: str | None = Field(None, description="Python version.")
    platform: str | None = Field(None, description="Platform string.")
    git_commit: str | None = Field(None, description="Commit of the probe's git checkout.")
    scoring: str | None = Field(None, description="Scoring rule(s) of the models, in words.")
    files: dict[str, FileRecord] = Field(
        default_factory=dict, description="Output files (relative path) written before the manifest.")

    @property
    def model_names(self) -> list[str]:
        """Display names of the models, in run order."""
        return [m.display for m in self.models]


def sha256_file(path: Path) -> str:
    """SHA-256 of a file's bytes, hex."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _is_recorded(rel: Path) -> bool:
    name = rel.name
    return not (name == MANIFEST or name.startswith(".") or name.endswith(".tmp"))


def file_records(run_dir: Path) -> dict[str, FileRecord]:
    """Size and SHA-256 of every file under ``run_dir`` except the manifest and temp files."""
    out: dict[str, FileRecord] = {}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(run_dir)
        if _is_recorded(rel):
            out[rel.as_posix()] = FileRecord(sha256=sha256_file(path), bytes=path.stat().st_size)
    return out


def scoring_summary(models: list[ModelRecord]) -> str | None:
    """The models' scoring rules, each once, in run order (None when none is recorded)."""
    rules = list(dict.fromkeys(m.scoring for m in models if m.scoring))
    return "; ".join(rules) or None


def write_manifest(run_dir: str | Path, manifest: Manifest | Mapping[str, Any]) -> Manifest:
    """Write ``manifest.json`` last: fill ``files`` with every output file's SHA-256 and
    ``scoring`` from the models when unset. Returns what was written.

    Raises:
        pydantic.ValidationError: ``manifest`` is not a valid :class:`Manifest` (a bug in the writer).
        DataError: the directory cannot be written.
    """
    run_dir = Path(run_dir)
    m = manifest if isinstance(manifest, Manifest) else Manifest.model_validate(dict(manifest))
    update: dict[str, Any] = {"files": file_records(run_dir), "format_version": FORMAT_VERSION}
    if m.scoring is None:
        update["scoring"] = scoring_summary(m.models)
    m = m.model_copy(update=update)
    write_json(run_dir / MANIFEST, m.model_dump(mode="json"))
    return m


def changed_files(run_dir: Path, manifest: Manifest) -> list[str]:
    """One line per recorded file that is missing or whose SHA-256 no longer matches."""
    out = []
    for rel, rec in manifest.files.items():
        path = run_dir / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts:
            out.append(f"{rel}: not a path inside the run directory (not checked)")
        elif not path.is_file():
            out.append(f"{rel}: missing (recorded {rec.bytes} bytes)")
        elif sha256_file(path) != rec.sha256:
            out.append(f"{rel}: changed since the run (SHA-256 {rec.sha256[:12]} recorded)")
    return out


__all__ = [
    "DatasetRecord", "FileRecord", "LabelSetRecord", "Manifest", "ModelRecord", "ProbeRecord", "PromptRecord",
    "SkippedImage", "changed_files", "file_records", "scoring_summary", "sha256_file", "write_manifest",
]
