#!/usr/bin/env python
"""Derive ``audit/reference/openclip_datacomp.csv`` from open_clip's published results table.

open_clip's ``docs/openclip_results.csv`` (mlfoundations/open_clip, MIT) has, for each
pretrained model, the DataComp evaluation suite's scores, including ``Dollar Street`` (top-5
accuracy of the worst ``income_ds`` group: DataComp's ``acc_top5_wg``) and ``GeoDE`` (top-1
accuracy of the worst region: ``acc_wg``). We keep only those two columns, per
(``arch``, ``pretrained``), with a citation; the report shows them beside a run's worst-group
numbers when the model is in the table.

Usage::

    python scripts/make_openclip_datacomp.py             # write the shipped table
    python scripts/make_openclip_datacomp.py --check     # exit 1 if it differs
    python scripts/make_openclip_datacomp.py --reference DIR --out FILE.csv
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference"
DEFAULT_OUT = ROOT / "audit" / "reference" / "openclip_datacomp.csv"
SOURCE_FILE = "openclip_results.csv"
#: source column -> column here
COLUMNS = {"name": "arch", "pretrained": "pretrained", "Dollar Street": "dollar_street", "GeoDE": "geode"}
CITATION = ("open_clip results table, docs/openclip_results.csv, github.com/mlfoundations/open_clip "
            "(MIT); metrics of the DataComp evaluation suite, Gadre et al. 2023, "
            "github.com/mlfoundations/datacomp")


def derive(reference: Path) -> pd.DataFrame:
    """The two published columns per model, sorted by arch and pretrained tag."""
    src = pd.read_csv(reference / SOURCE_FILE)
    missing = [c for c in COLUMNS if c not in src.columns]
    if missing:
        raise SystemExit(f"{reference / SOURCE_FILE} lacks column(s) {missing}")
    df = src[list(COLUMNS)].rename(columns=COLUMNS).dropna(subset=["dollar_street", "geode"], how="all")
    df = df.sort_values(["arch", "pretrained"]).reset_index(drop=True)
    df["citation"] = CITATION
    return df


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--check", action="store_true", help="compare with the shipped file instead of writing")
    args = p.parse_args(argv)
    text = derive(args.reference).to_csv(index=False, float_format="%.4f", lineterminator="\n")
    if args.check:
        same = args.out.is_file() and args.out.read_text(encoding="utf-8") == text
        print("up to date" if same else f"{args.out} differs from a fresh derivation")
        return 0 if same else 1
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
