"""The shipped reference tables: derivable from the shared sources, cited, loadable."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from audit import reference
from audit.reference import (
    CLIP_PAPER_FAIRFACE, TESTBED_BASELINE, clip_paper_fairface, reference_path,
)
from audit.robustness import DATASETS, load_baseline

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "reference"


def script() -> ModuleType:
    path = ROOT / "scripts" / "make_testbed_baseline.py"
    spec = importlib.util.spec_from_file_location("make_testbed_baseline", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def needs_shared(*names: str) -> None:
    missing = [n for n in names if not (SHARED / n).is_file()]
    if missing:
        pytest.skip(f"shared reference files not available: {', '.join(missing)}")


def test_shipped_baseline_equals_the_script_derivation() -> None:
    mod = script()
    needs_shared(mod.TOP1_FILE, mod.TYPES_FILE)
    derived = mod.derive_baseline(SHARED / mod.TOP1_FILE, SHARED / mod.TYPES_FILE)
    shipped = pd.read_csv(reference_path(TESTBED_BASELINE))
    pd.testing.assert_frame_equal(shipped, derived, check_exact=False, rtol=0, atol=1e-9)
    assert mod.main(["--reference", str(SHARED), "--check"]) == 0


def test_baseline_is_the_standard_set_with_citations() -> None:
    df = reference.testbed_baseline()  # (imported by module: pytest would collect test*)
    assert list(df.columns) == ["model", *DATASETS, "citation"]
    assert len(df) == 85 and df["model"].is_unique
    assert not df["model"].str.contains("aws|batch64|subsample").any()
    assert df["citation"].str.contains("Taori et al. 2020").all()
    values = df[list(DATASETS)].to_numpy()
    assert np.nanmin(values) >= 0 and np.nanmax(values) <= 1
    assert df["imagenet"].notna().all() and df["imagenet_r"].isna().sum() == 5
    row = df.set_index("model").loc["resnet50"]
    assert row["imagenet"] == pytest.approx(0.7613, abs=1e-4) and row["imagenet_a"] == 0
    assert list(load_baseline().columns) == ["model", *DATASETS]


def test_baseline_only_standard_models() -> None:
    needs_shared("imagenet_testbed_model_types.csv")
    types = pd.read_csv(SHARED / "imagenet_testbed_model_types.csv").set_index("model")["type"]
    assert (types.loc[reference.testbed_baseline()["model"]] == "STANDARD").all()


def test_clip_paper_fairface_is_a_cited_transcription() -> None:
    df = clip_paper_fairface()
    assert df["citation"].str.contains("arXiv:2103.00020").all()
    assert df["value"].to_numpy() == pytest.approx(df["percent"].to_numpy() / 100)
    black = df[(df["measure"] == "crime_related") & (df["group"] == "Black")]
    assert black["value"].tolist() == pytest.approx([0.164])
    assert set(df["label_set"]) == {"default", "with_child"}
    needs_shared(CLIP_PAPER_FAIRFACE)
    source = pd.read_csv(SHARED / CLIP_PAPER_FAIRFACE, dtype=str, keep_default_na=False)
    shipped = pd.read_csv(reference_path(CLIP_PAPER_FAIRFACE), dtype=str, keep_default_na=False)
    assert list(shipped.columns) == [*source.columns, "citation"]
    pd.testing.assert_frame_equal(shipped[list(source.columns)], source)
