"""Hand-made run directories, for tests of gates, ``audit check`` and the pytest plugin.

Writes only what gates read (``manifest.json`` with the resolved probe, ``metrics.csv`` and
optionally ``robustness.csv``), through the atomic writers of :mod:`audit.results`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from audit.results import FORMAT_VERSION, METRIC_COLUMNS, METRICS, ROBUSTNESS, write_csv, write_manifest
from audit.spec.models import ProbeSpec

MODEL = "ViT-B-32:openai"


def metric_row(metric: str = "category_rate", group_col: str = "overall", group: str = "all", *,
               value: float, n: int | None = 500, ci: tuple[float, float] | None = None,
               p_value: float | None = None, category: str = "crime", model: str = MODEL,
               variant: str = "default", dataset: str = "fairface", flag: str = "") -> dict[str, Any]:
    """One metrics.csv row; ``ci`` defaults to value +- 0.02 (None: write no interval)."""
    lo, hi = ci if ci is not None else (value - 0.02, value + 0.02)
    return {
        "dataset": dataset, "model": model, "variant": variant, "metric": metric, "category": category,
        "group_col": group_col, "group": group, "n": n, "value": value, "ci_low": lo, "ci_high": hi,
        "p_value": p_value, "flag": flag,
    }


def probe_dict(gates: Sequence[Mapping[str, Any]] = (), **overrides: Any) -> dict[str, Any]:
    """A minimal valid probe (one FairFace-like dataset, one model, two variants) with ``gates``."""
    spec: dict[str, Any] = {
        "name": "test_probe",
        "dataset": {"adapter": "synthetic_fairface", "name": "fairface", "subgroups": ["race", "gender"],
                    "intersections": [["race", "gender"]]},
        "models": [MODEL],
        "label_sets": ["crime.yaml"],
        "variants": {"default": {}, "no_crime": {"exclude": ["crime"]}},
        "categories": ["crime"],
        "metrics": ["category_rate", "disparity", "pairwise_test", "variant_change"],
        "stats": {"alpha": 0.05, "min_n": 30, "n_bootstrap": 100},
        "gates": list(gates),
    }
    spec.update(overrides)
    return spec


def write_run(run_dir: str | Path, probe: Mapping[str, Any] | ProbeSpec, rows: Iterable[Mapping[str, Any]],
              robustness: Iterable[Mapping[str, Any]] | None = None) -> Path:
    """Write a run directory that ``audit check`` and ``pytest --audit-run`` can read."""
    run_dir = Path(run_dir)
    spec = probe if isinstance(probe, ProbeSpec) else ProbeSpec.model_validate(dict(probe))
    write_csv(run_dir / METRICS, pd.DataFrame(list(rows), columns=list(METRIC_COLUMNS)))
    if robustness is not None:
        write_csv(run_dir / ROBUSTNESS, pd.DataFrame(list(robustness)))
    write_manifest(run_dir, {  # last, as a run writes it
        "format_version": FORMAT_VERSION,
        "probe": {"name": spec.name, "resolved": spec.model_dump(mode="json")},
    })
    return run_dir
