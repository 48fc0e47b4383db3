"""The generic ``wds`` adapter on local copies in DataComp's exact webdataset layout."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audit.data import open_dataset
from audit.errors import DataError, UserError
from audit.spec import DatasetSpec
from tests.datacomp_fixtures import FACE_FIELDS, FACE_OBJECTIVES, draw_metadata, write_datacomp_wds, write_faces

REGIONS = ("Africa", "Americas", "Asia", "Europe", "Oceania")


@pytest.fixture(autouse=True)
def _hf_caches(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    import datasets.config
    from huggingface_hub import constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf_datasets")))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf_hub")))


def load(**kw: Any) -> Any:
    return open_dataset(DatasetSpec(adapter="wds", **kw), Path)


def geo(tmp_path: Path, n: int = 30, **kw: Any) -> tuple[Path, np.ndarray, np.ndarray]:
    meta = draw_metadata(n, (5, 11), seed=7)
    labels = np.random.default_rng(8).integers(0, 4, n)
    root = write_datacomp_wds(tmp_path / "geo", ["a", "b", "c", "d"], ["a photo of a {c}."], meta, labels,
                              shards=3, **kw)
    return root, meta, labels


def test_metadata_reach_the_table_by_key_under_declared_names(tmp_path: Path) -> None:
    root, meta, labels = geo(tmp_path)
    data = load(source=str(root), metadata=("region", "country"), metadata_names={"region": REGIONS},
                subgroups=("region", "country"))
    table = data.metadata.set_index("image_id")
    assert len(table) == len(meta)
    for i in range(len(meta)):  # the vectors were shuffled against key order when written
        row = table.loc[f"s{i:07d}"]
        assert row["region"] == REGIONS[meta[i, 0]] and row["country"] == str(meta[i, 1])
        assert row["target_index"] == labels[i] and row["target"] == "abcd"[labels[i]]
    assert data.info.class_names == ("a", "b", "c", "d") and data.info.templates == ("a photo of a {c}.",)
    order = data.info.extra["label_order"]
    assert order["region"] == list(REGIONS)
    assert order["country"] == [str(c) for c in range(11)]  # numeric, not string, order
    assert data.info.extra["metadata_fields"] == ["region", "country"]
    assert data.load_image(0).mode == "RGB"


def test_objective_prefixed_files_give_one_label_set_per_objective(tmp_path: Path) -> None:
    root = write_faces(tmp_path / "ff", n=28)
    common: dict[str, Any] = {"source": str(root), "metadata": FACE_FIELDS}
    gender = load(**common, options={"objective": "gender"}, target="gender", subgroups=("race",))
    assert gender.info.class_names == tuple(FACE_OBJECTIVES["gender"])
    assert gender.info.templates == ("a photo of a {c}.", "a photo of a {c} person.")
    assert (gender.metadata["target"] == np.array(FACE_OBJECTIVES["gender"])[gender.metadata["target_index"]]).all()
    race = load(**common, options={"objective": "race", "one_vs_rest": 1}, target="race_binary",
                metadata_names={"race_binary": ("white", "non-white")})
    assert race.info.extra["collapse_groups"] == [[1], [0, 2, 3, 4, 5, 6]]  # DataComp's `pred != 1`
    assert race.info.extra["collapse_names"] == ["white", "non-white"]
    assert set(race.metadata["target"]) == {"white", "non-white"}
    toxic = load(**common, options={"objective": "toxic"}, subgroups=("race",),
                 class_categories={"non_human": "14-17", "crime": "18-"})
    cats = toxic.info.extra["class_categories"]
    assert cats[:14] == ["class"] * 14 and cats[14:18] == ["non_human"] * 4 and cats[18:] == ["crime"] * 3
    assert "target" not in toxic.metadata


def test_objective_errors(tmp_path: Path) -> None:
    root = write_faces(tmp_path / "ff", n=14)
    with pytest.raises(UserError, match="prefixes its class names .* objectives .race, gender, age, toxic"):
        load(source=str(root))
    with pytest.raises(UserError, match="'colour' is not an objective"):
        load(source=str(root), options={"objective": "colour"})
    with pytest.raises(UserError, match="one_vs_rest needs dataset.target"):
        load(source=str(root), metadata=FACE_FIELDS, options={"objective": "race", "one_vs_rest": 1})
    with pytest.raises(UserError, match="class 15 is in both 'non_human' and 'crime'"):
        load(source=str(root), metadata=FACE_FIELDS, options={"objective": "toxic"},
             class_categories={"non_human": "14-17", "crime": "15-"})
    with pytest.raises(UserError, match="range '18-30' is outside the 21 classes"):
        load(source=str(root), metadata=FACE_FIELDS, options={"objective": "toxic"},
             class_categories={"crime": "18-30"})


def test_vector_of_the_wrong_length_names_the_sample(tmp_path: Path) -> None:
    root, _, _ = geo(tmp_path, vector_override={17: [1, 2, 3]})
    with pytest.raises(DataError, match=r"sample s0000017 .* has 3 values, but dataset.metadata declares 2") as err:
        load(source=str(root), metadata=("region", "country"))
    assert err.value.exit_code == 3


def test_code_outside_the_names_map_names_the_sample(tmp_path: Path) -> None:
    root, _, _ = geo(tmp_path, vector_override={4: [5, 0]})
    with pytest.raises(DataError, match=r"sample s0000004 .* region code 5 has no name .* codes 0-4") as err:
        load(source=str(root), metadata=("region", "country"), metadata_names={"region": REGIONS})
    assert err.value.exit_code == 3


def test_columns_must_be_declared_fields(tmp_path: Path) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as err:  # the loader reports it at `validate`
        DatasetSpec(adapter="wds", metadata=("region",), subgroups=("income",), metadata_names={"country": ("x",)})
    text = str(err.value)
    assert "column 'income' is not a metadata field (region)" in text and "metadata_names.country" in text
    root, _, _ = geo(tmp_path)
    with pytest.raises(UserError, match="column.s. region need the npy metadata fields declared"):
        load(source=str(root), subgroups=("region",))


def test_missing_hub_dataset_says_how_to_download(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load(source="djghosh/wds_geode_test", metadata=("region", "country"))
    text = err.value.render()
    assert err.value.exit_code == 3
    assert "download --repo-type dataset djghosh/wds_geode_test --local-dir DIR" in text


def test_local_copy_without_classnames(tmp_path: Path) -> None:
    root, _, _ = geo(tmp_path)
    (root / "classnames.txt").unlink()
    with pytest.raises(DataError, match="classnames.txt not found"):
        load(source=str(root))
