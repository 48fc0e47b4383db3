#!/usr/bin/env python
"""Derive ``audit/reference/testbed_baseline.csv`` from the imagenet-testbed's published tables.

The baseline for effective robustness is the testbed's set of STANDARD models (trained on
ImageNet only, no robustness intervention), minus the names the testbed itself leaves out of
its line fits (``aws``, ``batch64``, ``subsample``). For each we keep the top-1 on ImageNet val
and the five natural shifts, converted from percent to fractions (rounded to 6 decimals, i.e.
4 decimals of a percent, well below the float32 noise in the source), with a citation.

Usage::

    python scripts/make_testbed_baseline.py                       # write the shipped table
    python scripts/make_testbed_baseline.py --check               # exit 1 if it differs
    python scripts/make_testbed_baseline.py --reference DIR --out FILE.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference"
DEFAULT_OUT = ROOT / "audit" / "reference" / "testbed_baseline.csv"

TOP1_FILE = "imagenet_testbed_top1.csv"
TYPES_FILE = "imagenet_testbed_model_types.csv"

#: testbed column -> dataset name used throughout ``audit``.
COLUMNS = {
    "val": "imagenet",
    "imagenetv2-matched-frequency-format-val": "imagenet_v2",
    "imagenet-sketch": "imagenet_sketch",
    "imagenet-r": "imagenet_r",
    "imagenet-a": "imagenet_a",
    "objectnet-1.0-beta": "objectnet",
}
BASELINE_TYPE = "STANDARD"
EXCLUDED_SUBSTRINGS = ("aws", "batch64", "subsample")
DECIMALS = 6
CITATION = (
    "Taori et al. 2020, Measuring Robustness to Natural Distribution Shifts in Image "
    "Classification (NeurIPS); imagenet-testbed robustness_top1s.csv, "
    "github.com/modestyachts/imagenet-testbed (MIT)"
)


def derive_baseline(top1_csv: Path, types_csv: Path) -> pd.DataFrame:
    """The shipped baseline table, derived from the testbed's two files.

    Returns one row per baseline model: ``model``, the six dataset columns (fractions; empty
    where the testbed has no number) and ``citation``, sorted by ImageNet top-1, best first.
    """
    top1 = pd.read_csv(top1_csv)
    types = pd.read_csv(types_csv)
    standard = set(types.loc[types["type"] == BASELINE_TYPE, "model"])
    keep = top1["model"].isin(standard) & ~top1["model"].str.lower().str.contains(
        "|".join(EXCLUDED_SUBSTRINGS)
    )
    df = top1.loc[keep, ["model", *COLUMNS]].rename(columns=COLUMNS)
    for col in COLUMNS.values():
        df[col] = np.round(df[col].astype(float) / 100.0, DECIMALS)
    df["citation"] = CITATION
    df = df.sort_values(["imagenet", "model"], ascending=[False, True], kind="mergesort")
    return df.reset_index(drop=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE,
                        help=f"folder holding {TOP1_FILE} and {TYPES_FILE}")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--check", action="store_true",
                        help="compare with --out instead of writing it; exit 1 if they differ")
    args = parser.parse_args(argv)
    derived = derive_baseline(args.reference / TOP1_FILE, args.reference / TYPES_FILE)
    text = derived.to_csv(index=False, float_format=f"%.{DECIMALS}f", lineterminator="\n")
    if args.check:
        same = args.out.exists() and args.out.read_text() == text
        print(f"{args.out}: {'up to date' if same else 'DIFFERS from the derived table'}")
        return 0 if same else 1
    tmp = args.out.with_suffix(".csv.tmp")
    tmp.write_text(text)
    tmp.replace(args.out)
    print(f"wrote {args.out} ({len(derived)} models)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
