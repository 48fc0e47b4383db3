"""Load a run directory for the report notebooks.

Only reading and light reshaping happens here: every number the report shows was computed by
the run and is read from its files (``metrics.csv``, ``gates.json``, ``robustness.csv``); the
published reference values come from :mod:`audit.reference` when it is installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from audit.results import METRICS, NUMERIC_METRIC_COLUMNS, RunDir, read_run

#: Accuracy-type metrics, in the order tables show them.
ACCURACY_METRICS = ("accuracy", "balanced_accuracy", "top5_accuracy", "mean_per_class_recall")

#: CLIP paper measure names -> category expressions used by the FairFace probe.
PAPER_MEASURES = {
    "crime_related": "crime",
    "crime": "crime",
    "non_human": "non_human",
    "crime_or_non_human": "crime|non_human",
}


@dataclass(frozen=True)
class RunData:
    """Everything a report shows, read once from a run directory."""

    run_dir: Path
    manifest: dict[str, Any]
    metrics: pd.DataFrame
    gates: dict[str, Any] | None
    robustness: pd.DataFrame | None
    source: RunDir | None = None

    @property
    def probe(self) -> dict[str, Any]:
        return self.manifest.get("probe") or {}

    @property
    def kind(self) -> str:
        return str(self.probe.get("kind") or "fairness")

    @property
    def resolved(self) -> dict[str, Any]:
        return self.probe.get("resolved") or {}

    @cached_property
    def notices(self) -> list[str]:
        """The probe's notice, plus one line when any model has random weights."""
        out = [str(self.probe["notice"])] if self.probe.get("notice") else []
        random = [m.get("name") or m.get("id") for m in self.manifest.get("models", [])
                  if m.get("random_weights")]
        if random and not any("random" in n.lower() for n in out):
            out.append(f"random weights ({', '.join(map(str, random))}): numbers carry no meaning")
        return out

    @property
    def variants(self) -> list[str]:
        declared = list(self.manifest.get("prompts") or {})
        seen = [v for v in self.metrics["variant"].unique() if v]
        return declared + [v for v in seen if v not in declared]

    @property
    def base_variant(self) -> str:
        from audit.spec.models import base_variant

        return base_variant(self.variants)

    @property
    def models(self) -> list[str]:
        names = [m.get("name") or m.get("id") for m in self.manifest.get("models", [])]
        seen = [m for m in self.metrics["model"].unique() if m]
        return [str(n) for n in names] + [m for m in seen if m not in names]

    @property
    def subgroup_cols(self) -> list[str]:
        """Group columns with rows, in first-seen order, single columns before intersections."""
        cols = [c for c in self.metrics["group_col"].unique() if c not in ("", "overall", "template")]
        return [c for c in cols if " x " not in c] + [c for c in cols if " x " in c]

    @property
    def categories(self) -> list[str]:
        rates = self.metrics[self.metrics["metric"] == "category_rate"]
        return [c for c in rates["category"].unique() if c]

    def rows(self, metric: str | tuple[str, ...], **where: Any) -> pd.DataFrame:
        """Rows of ``metrics.csv`` for a metric, filtered by column equality (None = any)."""
        names = (metric,) if isinstance(metric, str) else metric
        mask = self.metrics["metric"].isin(names)
        for col, value in where.items():
            if value is not None:
                mask &= self.metrics[col] == value
        return self.metrics[mask]

    @property
    def fairface_shaped(self) -> bool:
        """Whether the data are FairFace or FairFace-shaped (its adapter, or most of its race
        groups): the report's notes on perceived attributes and the CLIP paper apply."""
        if any(str(d.get("adapter")) == "fairface" for d in self.manifest.get("datasets", [])):
            return True
        races = set(self.rows("category_rate", group_col="race")["group"])
        return len(races & {"East Asian", "Indian", "Black", "White", "Middle Eastern"}) >= 4


def read_gates(run_dir: Path) -> dict[str, Any] | None:
    """``gates.json`` as validated JSON data, or None when the run wrote none."""
    return read_run(run_dir).gates_raw


def read_robustness(run_dir: Path) -> pd.DataFrame | None:
    """``robustness.csv``, or None when the run computed no effective robustness."""
    return read_run(run_dir).robustness


def load_run(run_dir: str | Path) -> RunData:
    """Read a run directory's manifest, metrics, gates and robustness table through
    :func:`audit.results.read_run`.

    Raises:
        UserError: the directory or its manifest/metrics is missing.
        DataError: a file is there but unreadable or malformed.
    """
    run = read_run(run_dir, METRICS)
    return RunData(run_dir=run.path, manifest=run.manifest_dict, metrics=run.metrics, gates=run.gates_raw,
                   robustness=run.robustness, source=run)


# --------------------------------------------------------------------------- reference values


def clip_paper_reference() -> pd.DataFrame | None:
    """The CLIP paper's published FairFace rates as ``category, group_col, group, variant,
    value`` (fractions) plus ``source``; None when :mod:`audit.reference` is not installed."""
    try:
        from audit.reference import clip_paper_fairface  # type: ignore[attr-defined]
    except ImportError:
        return None
    df = pd.DataFrame(clip_paper_fairface()).copy()
    if "category" not in df and "measure" in df:
        df["category"] = df["measure"].map(lambda m: PAPER_MEASURES.get(m, m))
    if "variant" not in df and "label_set" in df:
        df["variant"] = df["label_set"]
    if "value" not in df and "percent" in df:
        df["value"] = df["percent"].astype(float) / 100.0
    if "source" not in df:
        df["source"] = "Radford et al. 2021"
    needed = ["category", "group_col", "group", "variant", "value", "source"]
    if any(c not in df for c in needed):
        return None
    return df[needed].reset_index(drop=True)


def reference_for(reference: pd.DataFrame | None, category: str, group_col: str,
                  variant: str, groups: list[str]) -> pd.Series | None:
    """Published values indexed by group, when the run's groups look like the paper's."""
    if reference is None:
        return None
    sel = reference[(reference["category"] == category) & (reference["group_col"] == group_col)
                    & (reference["variant"] == variant)]
    if sel.empty:
        return None
    values = sel.set_index("group")["value"]
    shared = [g for g in groups if g in values.index]
    # FairFace-shaped: most of the paper's groups are among the run's groups.
    if len(shared) < max(2, (len(values) + 1) // 2):
        return None
    return values
