"""ImageNet-family adapters on fixtures in the real layouts (webdataset and original releases)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from audit.data import IMAGE_ID, TARGET, TARGET_INDEX, UnreadableImage, open_dataset
from audit.testing import fixtures as fx
from audit.data.imagenet import imagenet_wnids, subset_indices
from audit.errors import EXIT_DATA, DataError, UserError
from audit.spec import DatasetSpec

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "reference"


@pytest.fixture(autouse=True)
def _hf_caches(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    import datasets.config
    from huggingface_hub import constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf_datasets")))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf_hub")))


def reference(name: str) -> Any:
    path = SHARED / name
    if not path.is_file():
        pytest.skip(f"independent reference {path} not present")
    return json.loads(path.read_text())


def load(tmp_path: Path, adapter: str, **kw: Any) -> Any:
    def resolve(rel: str) -> Path:
        return Path(rel) if Path(rel).is_absolute() else (tmp_path / rel).resolve()
    return open_dataset(DatasetSpec(adapter=adapter, **kw), resolve)


@pytest.mark.parametrize("ext", ["jpg", "webp"])
def test_webdataset_detects_image_column_by_type(tmp_path: Path, ext: str) -> None:
    fx.write_wds_dir(tmp_path / "wds", ["tench", "goldfish", "shark"], 3, image_ext=ext)
    ds = load(tmp_path, "imagenet", source="wds")
    assert ds.info.extra["image_columns"] == [ext] and ds.info.extra["layout"] == "webdataset"
    assert ds.info.class_names == ("tench", "goldfish", "shark")
    assert ds.info.templates == ("a photo of a {c}.", "a sketch of a {c}.")
    meta = ds.metadata
    assert meta[IMAGE_ID].tolist() == [f"s{i:07d}" for i in range(9)]
    assert meta[TARGET_INDEX].tolist() == [i % 3 for i in range(9)]
    assert meta[TARGET].tolist() == [("tench", "goldfish", "shark")[i % 3] for i in range(9)]
    assert ds.load_image(4).mode == "RGB"


def test_webdataset_corrupt_rows_and_modes(tmp_path: Path) -> None:
    bad = {2: "truncated", 5: "zero_bytes", 7: "not_image"}
    modes = {0: "L", 1: "CMYK", 3: "RGBA", 4: "P"}
    fx.write_wds_dir(tmp_path / "wds", ["a", "b"], 5, image_ext="jpg", corrupt=bad, modes=modes,
                     with_templates=False)
    ds = load(tmp_path, "imagenet", source="wds")
    assert ds.info.templates is None
    for row in range(10):
        if row in bad:
            with pytest.raises(UnreadableImage, match=f"s{row:07d}"):
                ds.load_image(row)
        else:
            assert ds.load_image(row).mode == "RGB"


def test_subset_indices_match_the_independent_copy() -> None:
    ref = reference("imagenet_subsets.json")
    assert subset_indices("r") == ref["imagenet_r_indices"]
    assert subset_indices("a") == ref["imagenet_a_indices"]
    assert imagenet_wnids() == ref["all_imagenet_wnids"]


@pytest.mark.parametrize("adapter,key", [("imagenet_r", "imagenet_r_indices"),
                                         ("imagenet_a", "imagenet_a_indices")])
def test_r_and_a_expose_imagenet_indices(tmp_path: Path, adapter: str, key: str) -> None:
    ref = reference("imagenet_subsets.json")
    fx.write_wds_dir(tmp_path / "wds", [f"class {i}" for i in range(200)], 1, shards=1)
    ds = load(tmp_path, adapter, source="wds")
    assert ds.info.extra["imagenet_indices"] == ref[key]
    assert len(ds) == 200 and ds.metadata[TARGET_INDEX].max() == 199


def test_imagenet_r_wnid_folders_label_by_subset_position(tmp_path: Path) -> None:
    ref = reference("imagenet_subsets.json")
    r_wnids = [ref["all_imagenet_wnids"][i] for i in ref["imagenet_r_indices"]]
    picks = [r_wnids[5], r_wnids[0], r_wnids[199]]
    root = fx.write_wnid_dir(tmp_path / "imagenet-r", picks, 2, ext="jpg")
    (root / "classnames.txt").write_text("".join(f"r{i}\n" for i in range(200)))
    ds = load(tmp_path, "imagenet_r", source="imagenet-r")
    assert ds.info.extra["layout"] == "wnid_folders"
    assert ds.metadata[TARGET_INDEX].tolist() == [0, 0, 5, 5, 199, 199]
    assert ds.metadata[TARGET].tolist() == ["r0", "r0", "r5", "r5", "r199", "r199"]
    assert ds.metadata[IMAGE_ID].iloc[0] == f"{r_wnids[0]}/img_00002.jpg"


def test_imagenet_wnid_folders_under_val_use_sorted_wnid_positions(tmp_path: Path) -> None:
    wnids = imagenet_wnids()
    root = tmp_path / "ILSVRC"
    fx.write_wnid_dir(root / "val", [wnids[999], wnids[0], wnids[10]], 1)
    (root / "classnames.txt").write_text("".join(f"c{i}\n" for i in range(1000)))
    ds = load(tmp_path, "imagenet", source="ILSVRC", split="val")
    assert ds.metadata[TARGET_INDEX].tolist() == [0, 10, 999]
    with pytest.raises(DataError, match="not classes of imagenet_a"):
        load(tmp_path, "imagenet_a", source="ILSVRC", split="val", options={"layout": "wnid_folders"})


def test_imagenetv2_label_is_int_folder_not_string_order(tmp_path: Path) -> None:
    classes = [0, 1, 2, 10, 100, 999]
    fx.write_imagenetv2_dir(tmp_path / "v2", classes, 1)
    ds = load(tmp_path, "imagenet_v2", source="v2")
    meta = ds.metadata
    assert ds.info.extra["layout"] == "imagenetv2_folders"
    assert ds.info.extra["variant"] == "matched-frequency"
    folder = meta[IMAGE_ID].str.split("/").str[0]
    assert (folder.astype(int) == meta[TARGET_INDEX]).all()
    assert meta.loc[folder == "10", TARGET_INDEX].item() == 10  # string order would say 3
    # Without a classnames.txt the names are OpenAI's ImageNet names (from open_clip).
    assert meta.loc[folder == "0", TARGET].item() == "tench" and len(ds.info.class_names) == 1000


def test_imagenetv2_variants(tmp_path: Path) -> None:
    fx.write_imagenetv2_dir(tmp_path / "v2", [3, 20], 1, variant="threshold0.7")
    (tmp_path / "v2" / "classnames.txt").write_text("".join(f"c{i}\n" for i in range(1000)))
    ds = load(tmp_path, "imagenet_v2", source="v2", options={"variant": "threshold0.7"})
    assert ds.info.extra["variant"] == "threshold0.7" and ds.metadata[TARGET].tolist() == ["c3", "c20"]
    with pytest.raises(DataError, match="no ImageNetV2 folders"):
        load(tmp_path, "imagenet_v2", source="v2", options={"layout": "imagenetv2_folders"})
    fx.write_wds_dir(tmp_path / "wds", ["a"], 1, shards=1)
    with pytest.raises(UserError, match="holds matched-frequency, not top-images"):
        load(tmp_path, "imagenet_v2", source="wds", options={"variant": "top-images"})
    with pytest.raises(UserError, match="did you mean 'threshold0.7'"):
        load(tmp_path, "imagenet_v2", source="v2", options={"variant": "threshold0.8"})


def _objectnet_reference() -> tuple[list[str], dict[str, list[int]], list[str]]:
    ref = reference("objectnet_mapping.json")
    return (ref["objectnet_folders_sorted"], ref["objectnet_folder_to_imagenet_indices"],
            ref["objectnet_classnames_clip_benchmark"])


def test_objectnet_release_mapping(tmp_path: Path) -> None:
    folders, mapping, names = _objectnet_reference()
    labels = dict(zip(folders, names, strict=True))  # the release's labels, lower-cased by us
    fx.write_objectnet_release(tmp_path / "on", mapping, 1, labels=labels)
    ds = load(tmp_path, "objectnet", source="on")
    extra = ds.info.extra
    assert extra["layout"] == "objectnet_release" and extra["objectnet_mode"] == "objectnet_113"
    assert extra["objectnet_to_imagenet"] == {i: mapping[f] for i, f in enumerate(folders)}
    assert ds.info.class_names == tuple(n.lower() for n in names)
    assert len(ds) == 113  # unmapped folders are left out
    assert ds.metadata[IMAGE_ID].str.split("/").str[0].tolist() == folders
    assert extra["border_crop_px"] == 0 and ds.load_image(0).size == (16, 16)
    collapse = load(tmp_path, "objectnet", source="on", options={"objectnet_mode": "imagenet_collapse"})
    assert collapse.info.extra["border_crop_px"] == 2 and collapse.load_image(0).size == (12, 12)
    assert collapse.info.fingerprint != ds.info.fingerprint
    assert collapse.info.class_names is not None and len(collapse.info.class_names) == 1000
    assert collapse.info.extra["collapse_names"] == [n.lower() for n in names]
    assert collapse.info.extra["collapse_groups"] == [mapping[f] for f in folders]
    assert collapse.metadata[TARGET_INDEX].tolist() == list(range(113))


def test_objectnet_webdataset_mapping_needs_mappings_dir(tmp_path: Path) -> None:
    folders, mapping, names = _objectnet_reference()
    fx.write_wds_dir(tmp_path / "wds", names, 1, shards=1)
    ds = load(tmp_path, "objectnet", source="wds")
    assert ds.info.extra["objectnet_to_imagenet"] is None and ds.info.class_names == tuple(names)
    with pytest.raises(UserError, match="needs the ObjectNet -> ImageNet mapping"):
        load(tmp_path, "objectnet", source="wds", options={"objectnet_mode": "imagenet_collapse"})
    fx.write_objectnet_release(tmp_path / "release", mapping, 1)
    ds = load(tmp_path, "objectnet", source="wds", options={
        "objectnet_mode": "imagenet_collapse", "mappings_dir": "release/objectnet-1.0/mappings"})
    assert ds.info.extra["objectnet_to_imagenet"] == {i: mapping[f] for i, f in enumerate(folders)}


def test_hub_repo_not_available_offline(tmp_path: Path) -> None:
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        load(tmp_path, "imagenet_sketch")
    assert time.monotonic() - start < 5 and err.value.exit_code == EXIT_DATA
    text = str(err.value)
    assert "clip-benchmark/wds_imagenet_sketch" in text and "'test'" in text
    assert "hf download --repo-type dataset clip-benchmark/wds_imagenet_sketch" in text


def test_layout_errors(tmp_path: Path) -> None:
    (tmp_path / "junk" / "stuff").mkdir(parents=True)
    with pytest.raises(DataError, match="cannot tell the layout"):
        load(tmp_path, "imagenet", source="junk")
    with pytest.raises(UserError, match="needs a local directory"):
        load(tmp_path, "imagenet", options={"layout": "wnid_folders"})
    with pytest.raises(UserError, match="target is the class"):
        load(tmp_path, "imagenet", source="junk", target="label")
