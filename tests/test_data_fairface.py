"""FairFace adapter, offline errors and the synthetic demo dataset, on hub-layout fixtures."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from audit.data import IMAGE_ID, TARGET, TARGET_INDEX, UnreadableImage, open_dataset
from audit.data.fairface import FairFaceAdapter
from audit.testing.fixtures import FAIRFACE_AGE, FAIRFACE_GENDER, FAIRFACE_RACE, write_fairface_dir
from audit.data.synthetic import SyntheticFairFaceAdapter
from audit.errors import EXIT_DATA, EXIT_USER, DataError, UserError
from audit.spec import DatasetSpec


@pytest.fixture(autouse=True)
def _hf_caches(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep datasets' Arrow cache and the hub cache away from the user's."""
    import datasets.config
    from huggingface_hub import constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf_datasets")))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf_hub")))


def resolver(base: Path) -> Callable[[str], Path]:
    return lambda rel: (base / rel).resolve() if not Path(rel).is_absolute() else Path(rel)


def load(tmp_path: Path, **kw: object) -> object:
    spec = DatasetSpec(**{"adapter": "fairface", **kw})  # type: ignore[arg-type]
    return open_dataset(spec, resolver(tmp_path))


@pytest.fixture
def ff_dir(tmp_path: Path) -> Path:
    return write_fairface_dir(tmp_path / "ff", n=56, seed=1)


def test_loads_local_hub_layout_with_classlabel_names(ff_dir: Path, tmp_path: Path) -> None:
    ds = load(tmp_path, source="./ff")
    meta = ds.metadata  # type: ignore[attr-defined]
    assert list(meta.columns) == [IMAGE_ID, "age", "gender", "race"]
    assert len(ds) == 56 and ds.info.num_rows == 56  # type: ignore[arg-type, attr-defined]
    assert meta[IMAGE_ID].tolist()[:2] == ["validation/000000", "validation/000001"]
    # Names come from the features: compare with the raw ints of the parquet file.
    raw = pq.read_table(ff_dir / "0.25" / "validation-00000-of-00001.parquet").to_pandas()
    assert meta["race"].tolist() == [FAIRFACE_RACE[i] for i in raw["race"]]
    assert meta["age"].tolist() == [FAIRFACE_AGE[i] for i in raw["age"]]
    assert set(meta["gender"]) <= set(FAIRFACE_GENDER)
    info = ds.info  # type: ignore[attr-defined]
    assert (info.config, info.split, info.source) == ("0.25", "validation", str(ff_dir))
    assert info.class_names is None and len(info.fingerprint) == 32


def test_target_race_gives_label_strings_and_indices(ff_dir: Path, tmp_path: Path) -> None:
    ds = load(tmp_path, source=str(ff_dir), target="race")
    meta = ds.metadata  # type: ignore[attr-defined]
    assert ds.info.class_names == FAIRFACE_RACE  # type: ignore[attr-defined]
    assert (meta[TARGET] == meta["race"]).all()
    assert [FAIRFACE_RACE[i] for i in meta[TARGET_INDEX]] == meta["race"].tolist()


def test_config_125_and_bad_config_split(tmp_path: Path) -> None:
    write_fairface_dir(tmp_path / "ff", n=7, configs=("0.25", "1.25"), splits=("train", "validation"))
    ds = load(tmp_path, source="ff", config="1.25", split="train")
    assert (ds.info.config, ds.info.split, len(ds)) == ("1.25", "train", 7)  # type: ignore[attr-defined, arg-type]
    with pytest.raises(UserError, match="config '0.5' is not in") as err:
        load(tmp_path, source="ff", config="0.5")
    assert err.value.exit_code == EXIT_USER
    with pytest.raises(UserError, match="split 'valid' is not in config '0.25'.*did you mean 'validation'"):
        load(tmp_path, source="ff", split="valid")


def test_corrupt_images_fail_only_their_rows(tmp_path: Path) -> None:
    bad = {1: "zero_bytes", 4: "truncated", 6: "not_image"}
    write_fairface_dir(tmp_path / "ff", n=10, corrupt=bad)
    ds = load(tmp_path, source="ff")
    for row in range(10):
        if row in bad:
            with pytest.raises(UnreadableImage, match=f"validation/{row:06d}"):
                ds.load_image(row)  # type: ignore[attr-defined]
        else:
            img = ds.load_image(row)  # type: ignore[attr-defined]
            assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (16, 16)


@pytest.mark.parametrize("mode", ["L", "CMYK", "RGBA", "P", "I;16"])
def test_modes_convert_to_rgb(tmp_path: Path, mode: str) -> None:
    write_fairface_dir(tmp_path / "ff", n=3, modes={1: mode})
    img = load(tmp_path, source="ff").load_image(1)  # type: ignore[attr-defined]
    assert img.mode == "RGB"
    arr = np.asarray(img)
    assert 0 < arr.mean() < 255  # a 16-bit image converted naively would be all white


def test_stratified_limit_is_balanced_and_deterministic(ff_dir: Path, tmp_path: Path) -> None:
    a = load(tmp_path, source="ff", subgroups=["race", "gender"], limit=14, stratify=["race", "gender"])
    b = load(tmp_path, source="ff", subgroups=["race", "gender"], limit=14, stratify=["race", "gender"])
    ma, mb = a.metadata, b.metadata  # type: ignore[attr-defined]
    assert ma[IMAGE_ID].tolist() == mb[IMAGE_ID].tolist()
    assert a.info.fingerprint == b.info.fingerprint  # type: ignore[attr-defined]
    counts = ma.groupby(["race", "gender"]).size()
    assert len(counts) == 14 and (counts == 1).all()  # 7 races x 2 genders, one each
    ids = ma[IMAGE_ID].tolist()
    assert ids == sorted(ids)  # original row order is kept
    sub = a.info.extra["subsample"]  # type: ignore[attr-defined]
    assert sub["method"] == "stratified" and sub["limit"] == 14 and sum(sub["strata"].values()) == 14
    # Uneven strata: 10 over 7 races gives 1 or 2 per race.
    c = load(tmp_path, source="ff", subgroups=["race"], limit=10, stratify=["race"])
    per_race = c.metadata["race"].value_counts()  # type: ignore[attr-defined]
    assert per_race.sum() == 10 and per_race.max() - per_race.min() <= 1 and len(per_race) == 7


def test_plain_limit_takes_first_rows_and_changes_fingerprint(ff_dir: Path, tmp_path: Path) -> None:
    full = load(tmp_path, source="ff")
    first = load(tmp_path, source="ff", limit=5)
    assert first.metadata[IMAGE_ID].tolist() == [f"validation/{i:06d}" for i in range(5)]  # type: ignore[attr-defined]
    assert first.info.extra["subsample"]["method"] == "first"  # type: ignore[attr-defined]
    assert full.info.fingerprint != first.info.fingerprint  # type: ignore[attr-defined]
    strat = load(tmp_path, source="ff", subgroups=["race"], limit=5, stratify=["race"])
    assert strat.info.fingerprint not in (full.info.fingerprint, first.info.fingerprint)  # type: ignore[attr-defined]


def test_regenerated_directory_is_not_served_from_a_stale_cache(tmp_path: Path) -> None:
    write_fairface_dir(tmp_path / "ff", n=8, seed=0)
    before = load(tmp_path, source="ff")
    time.sleep(0.01)
    write_fairface_dir(tmp_path / "ff", n=11, seed=3)
    after = load(tmp_path, source="ff")
    assert len(after) == 11  # type: ignore[arg-type]
    assert after.info.fingerprint != before.info.fingerprint  # type: ignore[attr-defined]


def test_columns_rename_and_unknown_target(ff_dir: Path, tmp_path: Path) -> None:
    ds = load(tmp_path, source="ff", columns={"ethnicity": "race"}, subgroups=["ethnicity"])
    assert (ds.metadata["ethnicity"] == ds.metadata["race"]).all()  # type: ignore[attr-defined]
    with pytest.raises(UserError, match="'skin' is not a column of fairface"):
        load(tmp_path, source="ff", target="skin")
    with pytest.raises(UserError, match="unknown option.*'image_colum'"):
        load(tmp_path, source="ff", options={"image_colum": "image"})


def test_missing_local_path_is_a_user_error(tmp_path: Path) -> None:
    with pytest.raises(UserError) as err:
        load(tmp_path, source="./data/fairface")
    assert err.value.exit_code == EXIT_USER
    assert str(tmp_path / "data" / "fairface") in str(err.value)


@pytest.mark.parametrize("var", ["HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"])
def test_hub_id_not_available_offline_fails_fast_with_the_fix(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, var: str) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setenv(var, "1")
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        load(tmp_path)  # default source: the hub id
    assert time.monotonic() - start < 5
    text = str(err.value)
    assert err.value.exit_code == EXIT_DATA
    assert "HuggingFaceM4/FairFace" in text and "'0.25'" in text and "'validation'" in text
    assert "hf download --repo-type dataset HuggingFaceM4/FairFace --local-dir DIR" in text
    assert "HF_HUB_OFFLINE=1" in text and "source: DIR" in text


def test_synthetic_fairface_generates_once_and_loads_through_fairface(tmp_path: Path) -> None:
    spec = DatasetSpec(adapter="synthetic_fairface", options={"n": 42, "seed": 3, "size": 24},
                       subgroups=["race"])
    adapter = SyntheticFairFaceAdapter(spec, resolver(tmp_path))
    assert isinstance(adapter, FairFaceAdapter) and adapter.columns == ("age", "gender", "race")
    ds = adapter.load()
    root = Path(ds.info.source)
    assert root.parent.name == "synthetic" and (root / "0.25" / "validation-00000-of-00001.parquet").is_file()
    readme = (root / "README.md").read_text()
    assert ("- config_name: '0.25'\n  data_files:\n  - split: validation\n"
            "    path: 0.25/validation-*") in readme
    assert len(ds) == 42 and ds.load_image(0).size == (24, 24)
    assert ds.info.extra["synthetic"] == {"n": 42, "seed": 3, "size": 24, "generator_version": 1}
    assert ds.metadata["race"].value_counts().max() - ds.metadata["race"].value_counts().min() <= 1
    mtime = (root / "README.md").stat().st_mtime_ns
    again = SyntheticFairFaceAdapter(spec, resolver(tmp_path)).load()
    assert again.info.fingerprint == ds.info.fingerprint
    assert (root / "README.md").stat().st_mtime_ns == mtime  # reused, not rewritten
    assert not [p for p in root.parent.iterdir() if p.name.startswith(".")]  # no temp dirs left
    other = SyntheticFairFaceAdapter(spec.model_copy(update={"options": {"n": 42, "seed": 4}}),
                                     resolver(tmp_path)).load()
    assert Path(other.info.source) != root
    a, b = np.asarray(ds.load_image(0)), np.asarray(again.load_image(0))
    assert (a == b).all()


def test_synthetic_rejects_bad_options(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="options.n: must be a whole number"):
        SyntheticFairFaceAdapter(DatasetSpec(adapter="synthetic_fairface", options={"n": 0}),
                                 resolver(tmp_path)).load()
    with pytest.raises(UserError, match="generates its data"):
        SyntheticFairFaceAdapter(DatasetSpec(adapter="synthetic_fairface", source="x/y"),
                                 resolver(tmp_path)).load()
