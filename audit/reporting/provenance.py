"""Provenance tables from ``manifest.json``: what ran, on what, with which software."""

from __future__ import annotations

import pandas as pd

from audit.reporting.display import count
from audit.reporting.load import RunData


def run_table(run: RunData) -> pd.DataFrame:
    """Probe, date, commit, seed, versions: one row per fact."""
    m, probe = run.manifest, run.probe
    sha = str(probe.get("sha256") or "")
    facts = [
        ("probe", f"{probe.get('name', '')} ({run.kind})"),
        ("probe file", f"{probe.get('path', '')} (sha256 {sha[:12]})" if sha else probe.get("path", "")),
        ("created", m.get("created", "")),
        ("audit version", m.get("audit_version", "")),
        ("results format", m.get("format_version", "")),
        ("git commit", m.get("git_commit") or "not recorded (not a git checkout)"),
        ("seed", m.get("seed", "")),
        ("scoring", m.get("scoring") or "; ".join(dict.fromkeys(
            str(x["scoring"]) for x in m.get("models", []) if x.get("scoring"))) or "not recorded"),
    ]
    return pd.DataFrame(facts, columns=["what", "value"]).astype(str)


def models_table(run: RunData) -> pd.DataFrame:
    rows = [{
        "model": m.get("name") or m.get("id"), "id": m.get("id", ""),
        "weights": m.get("weights", ""), "scheme": m.get("scheme", ""),
        "logit scale": m.get("logit_scale"), "logit bias": m.get("logit_bias"),
        "random weights": "YES" if m.get("random_weights") else "no",
    } for m in run.manifest.get("models", [])]
    return pd.DataFrame(rows)


def datasets_table(run: RunData) -> pd.DataFrame:
    rows = [{
        "dataset": d.get("name", ""), "adapter": d.get("adapter", ""),
        "source": d.get("source", ""), "config": d.get("config"), "split": d.get("split"),
        "revision": d.get("revision") or "not pinned", "images": count(d.get("num_rows")),
        "skipped": len(d.get("skipped") or []), "fingerprint": str(d.get("fingerprint") or "")[:16],
    } for d in run.manifest.get("datasets", [])]
    return pd.DataFrame(rows)


def prompts_table(run: RunData, max_templates: int = 3) -> pd.DataFrame:
    """Per prompt variant: how many templates and labels, the categories, the first templates."""
    rows = []
    for variant, p in (run.manifest.get("prompts") or {}).items():
        templates = list(p.get("templates") or [])
        shown = " | ".join(templates[:max_templates]) + (" | ..." if len(templates) > max_templates else "")
        rows.append({
            "variant": variant, "templates": len(templates), "labels": len(p.get("labels") or []),
            "categories": ", ".join(sorted(set(p.get("categories") or []))), "first templates": shown,
        })
    return pd.DataFrame(rows)


def label_sets_table(run: RunData) -> pd.DataFrame:
    return pd.DataFrame([{
        "label set": s.get("name", ""), "version": s.get("version", ""), "path": s.get("path", ""),
        "sha256": str(s.get("sha256") or "")[:12],
    } for s in run.manifest.get("label_sets", [])])


def packages_table(run: RunData) -> pd.DataFrame:
    pkgs = run.manifest.get("packages") or {}
    return pd.DataFrame(sorted(pkgs.items()), columns=["package", "version"])


def skipped_table(run: RunData) -> pd.DataFrame:
    """Images the run could not read, per dataset, with the error."""
    rows = [{"dataset": d.get("name", ""), "image_id": s.get("image_id"), "error": s.get("error")}
            for d in run.manifest.get("datasets", []) for s in d.get("skipped") or []]
    return pd.DataFrame(rows, columns=["dataset", "image_id", "error"])
