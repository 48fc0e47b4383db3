"""Published reference numbers shipped with the package, each row with its citation.

* :func:`testbed_baseline` -- top-1 of the imagenet-testbed's standard ImageNet models on
  ImageNet and its five natural shifts (fractions); the default baseline for effective
  robustness. Derived by ``scripts/make_testbed_baseline.py``; see ``README.md`` here.
* :func:`clip_paper_fairface` -- the CLIP paper's FairFace rates (Tables 6 and 7), the
  reference column of the fairness report. Historical reference, not a target: the paper's
  prompts were not published and reproductions come out lower.

Both return fresh DataFrames (callers may modify them) and import nothing heavy.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pandas as pd

from audit.errors import DataError

__all__ = [
    "CLIP_PAPER_FAIRFACE",
    "TESTBED_BASELINE",
    "clip_paper_fairface",
    "reference_path",
    "testbed_baseline",
]

TESTBED_BASELINE = "testbed_baseline.csv"
CLIP_PAPER_FAIRFACE = "clip_paper_fairface.csv"

#: Columns of :func:`clip_paper_fairface`, in order (``value`` is ``percent / 100``).
FAIRFACE_COLUMNS = (
    "table", "measure", "group_col", "group", "label_set", "percent", "value", "source", "citation",
)


def reference_path(name: str) -> Path:
    """Path of a shipped reference file (inside the installed package)."""
    path = Path(str(resources.files(__name__).joinpath(name)))
    if not path.is_file():
        raise DataError(
            f"the packaged reference file {name} is missing ({path})",
            fix="reinstall the package (pip install -e .); the file ships as package data",
        )
    return path


def _read(name: str, **kwargs: object) -> pd.DataFrame:
    path = reference_path(name)
    try:
        return pd.read_csv(path, **kwargs)  # type: ignore[call-overload]
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read the packaged reference file {path}: {exc}",
                        fix="reinstall the package") from None


def testbed_baseline() -> pd.DataFrame:
    """The default effective-robustness baseline: one row per standard ImageNet model.

    Columns: ``model``, ``imagenet``, ``imagenet_v2``, ``imagenet_sketch``, ``imagenet_r``,
    ``imagenet_a``, ``objectnet`` (top-1 as fractions; NaN where the testbed has no number)
    and ``citation``. ImageNet-R and ImageNet-A numbers are the testbed's, measured on their
    200-class subsets (see ``audit/reference/README.md``).
    """
    return _read(TESTBED_BASELINE)


def clip_paper_fairface() -> pd.DataFrame:
    """The CLIP paper's published FairFace rates, with a citation per row.

    One row per (table, measure, group_col, group, label_set): ``percent`` as printed in the
    paper and ``value`` the same as a fraction, comparable with the ``value`` of
    ``category_rate`` rows in metrics.csv. Measures: ``crime_related`` and ``non_human`` by
    race (Table 6), ``crime_or_non_human`` by age with the default label set and with
    ``child`` categories added (``label_set == "with_child"``, Table 7).
    """
    df = _read(CLIP_PAPER_FAIRFACE, dtype={"table": int, "percent": float, "group": str},
               keep_default_na=False)
    df["value"] = df["percent"] / 100.0
    return df.loc[:, list(FAIRFACE_COLUMNS)]
