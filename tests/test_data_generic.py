"""The generic ``hf`` and ``imagefolder`` adapters, image decoding and subsampling."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from audit.data import (
    IMAGE_ID,
    TARGET,
    TARGET_INDEX,
    UnreadableImage,
    decode_image,
    open_dataset,
    select_rows,
)
from audit.testing import fixtures as fx
from audit.data.hf import HFAdapter, resolve_source
from audit.data.imagefolder import ImageFolderAdapter
from audit.errors import EXIT_USER, UserError
from audit.registries import DATASETS
from audit.spec import DatasetSpec


@pytest.fixture(autouse=True)
def _hf_caches(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    import datasets.config
    from huggingface_hub import constants

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf_datasets")))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path_factory.mktemp("hf_hub")))


def load(tmp_path: Path, adapter: str, **kw: Any) -> Any:
    def resolve(rel: str) -> Path:
        return Path(rel) if Path(rel).is_absolute() else (tmp_path / rel).resolve()
    return open_dataset(DatasetSpec(adapter=adapter, **kw), resolve)


def test_importing_adapters_imports_no_torch_or_datasets() -> None:
    code = ("import sys, audit.data.imagenet, audit.data.synthetic, audit.data.imagefolder, "
            "audit.testing.fixtures; "
            "print(sorted({'torch', 'datasets', 'open_clip', 'timm'} & set(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_registered_adapter_resolves_and_declares_its_interface() -> None:
    for name in DATASETS.names():
        cls: Any = DATASETS.get(name)
        assert isinstance(cls.default_split, str) and isinstance(cls.options_help, dict)
        assert cls.columns is None or isinstance(cls.columns, tuple)
        assert callable(cls.load)


def test_source_resolution(tmp_path: Path) -> None:
    (tmp_path / "org" / "name").mkdir(parents=True)
    def resolve(rel: str) -> Path:
        return (tmp_path / rel).resolve()
    assert resolve_source("org/name", None, resolve, "hf").local == tmp_path / "org" / "name"
    assert resolve_source("org/other", None, resolve, "hf").local is None  # a hub id
    assert resolve_source(None, "a/b", resolve, "hf").id == "a/b"
    for path in ("./org/other", "../x", "a/b/c", "plain"):
        with pytest.raises(UserError, match="source directory not found"):
            resolve_source(path, None, resolve, "hf")
    with pytest.raises(UserError, match="needs `source`"):
        resolve_source(None, None, resolve, "hf")


def test_hf_adapter_on_a_hub_layout_dir(tmp_path: Path) -> None:
    fx.write_fairface_dir(tmp_path / "ff", n=14)
    ds = load(tmp_path, "hf", source="ff", split="validation", subgroups=["gender"],
              target="race", columns={"gender": "gender", "flag": "service_test"})
    meta = ds.metadata
    assert list(meta.columns) == [IMAGE_ID, "gender", "race", TARGET, TARGET_INDEX]
    assert set(meta["gender"]) <= set(fx.FAIRFACE_GENDER)
    assert ds.info.class_names == fx.FAIRFACE_RACE and ds.info.extra["image_columns"] == ["image"]
    flagged = load(tmp_path, "hf", source="ff", split="validation", subgroups=["flag"],
                   columns={"flag": "service_test"})
    assert set(flagged.metadata["flag"]) <= {"True", "False"}  # non-ClassLabel -> str
    with pytest.raises(UserError, match="'ethnicity'.*not in dataset") as err:
        load(tmp_path, "hf", source="ff", split="validation", subgroups=["ethnicity"])
    assert err.value.exit_code == EXIT_USER and "race" in str(err.value)
    with pytest.raises(UserError, match="image column 'img' is not in dataset -- did you mean 'image'"):
        load(tmp_path, "hf", source="ff", split="validation", options={"image_column": "img"})


def test_hf_adapter_int_and_string_targets(tmp_path: Path) -> None:
    fx.write_wds_dir(tmp_path / "wds", [f"c{i}" for i in range(12)], 1, shards=1)
    # One shard and two .txt files: datasets' inference would pick its text builder.
    ds = load(tmp_path, "hf", source="wds", split="test", target="cls",
              options={"data_files": "test/*.tar"})
    assert ds.metadata[IMAGE_ID].tolist()[:2] == ["s0000000", "s0000001"]  # webdataset __key__
    assert ds.info.class_names == tuple(str(i) for i in range(12))  # ints: not "0", "1", "10"
    assert ds.metadata[TARGET_INDEX].tolist() == list(range(12))
    words = load(tmp_path, "hf", source="wds", split="test", target="name",
                 columns={"name": "__key__"}, options={"data_files": "test/*.tar"})
    assert words.info.class_names == tuple(f"s{i:07d}" for i in range(12))  # strings: sorted


def test_hf_adapter_needs_a_source(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="needs `source`"):
        HFAdapter(DatasetSpec(adapter="hf"), lambda p: tmp_path / p).load()


def test_imagefolder_sorted_names_targets_and_bad_images(tmp_path: Path) -> None:
    bad = {1: "truncated", 4: "zero_bytes"}
    fx.write_imagefolder(tmp_path / "imgs", ["zebra", "apple", "Mango"], 2, corrupt=bad,
                         modes={2: "CMYK", 3: "P"})
    (tmp_path / "imgs" / "apple" / "notes.txt").write_text("not an image file, skipped")
    ds = load(tmp_path, "imagefolder", source="imgs", limit=100)
    assert ds.info.class_names == ("Mango", "apple", "zebra")  # sorted as strings
    meta = ds.metadata
    assert meta[TARGET].tolist() == ["Mango", "Mango", "apple", "apple", "zebra", "zebra"]
    assert meta[TARGET_INDEX].tolist() == [0, 0, 1, 1, 2, 2]
    assert meta[IMAGE_ID].tolist()[0] == "Mango/img_00004.jpg"
    for row, image_id in enumerate(meta[IMAGE_ID]):
        index = int(image_id.split("_")[-1].split(".")[0])
        if index in bad:
            with pytest.raises(UnreadableImage, match=image_id):
                ds.load_image(row)
        else:
            assert ds.load_image(row).mode == "RGB"
    assert ImageFolderAdapter.columns == ("target",)


def test_imagefolder_split_folders(tmp_path: Path) -> None:
    fx.write_imagefolder(tmp_path / "root" / "val", ["a", "b"], 1)
    fx.write_imagefolder(tmp_path / "root" / "train", ["a", "b"], 1)
    with pytest.raises(UserError, match="holds split folders"):
        load(tmp_path, "imagefolder", source="root")
    assert load(tmp_path, "imagefolder", source="root", split="val").info.split == "val"
    with pytest.raises(UserError, match="split folder not found"):
        load(tmp_path, "imagefolder", source="root", split="test")


def _png(mode: str, value: int) -> bytes:
    buf = io.BytesIO()
    Image.new(mode, (4, 4), value).save(buf, "PNG")
    return buf.getvalue()


def test_decode_image_modes_crop_and_errors(tmp_path: Path) -> None:
    gray16 = decode_image(_png("I;16", 65535 // 2), None)
    assert gray16.mode == "RGB" and abs(int(np.asarray(gray16)[0, 0, 0]) - 127) <= 1
    assert decode_image(_png("L", 200), None).getpixel((0, 0)) == (200, 200, 200)
    big = io.BytesIO()
    Image.new("RGB", (10, 8)).save(big, "PNG")
    assert decode_image(big.getvalue(), None, border_crop=2).size == (6, 4)
    path = tmp_path / "x.png"
    path.write_bytes(_png("RGBA", 0))
    assert decode_image(None, str(path)).mode == "RGB"
    for data, msg in ((b"", "zero-byte"), (b"GIF89a...", "img1"), (_png("L", 1)[:30], "img1")):
        with pytest.raises(UnreadableImage, match=msg):
            decode_image(data, None, image_id="img1")
    with pytest.raises(UnreadableImage, match="cannot read"):
        decode_image(None, str(tmp_path / "missing.jpg"))


def test_select_rows_water_fills_and_is_seeded() -> None:
    meta = pd.DataFrame({"g": ["a"] * 2 + ["b"] * 50 + ["c"] * 50})
    rows, rec = select_rows(meta, 32, ["g"], "k1")
    counts = meta.iloc[rows]["g"].value_counts().to_dict()
    assert counts == {"a": 2, "b": 15, "c": 15}  # 'a' is capped at its size; the rest is even
    assert rec is not None and rec["strata"] == {"a": 2, "b": 15, "c": 15}
    again, _ = select_rows(meta, 32, ["g"], "k1")
    other, _ = select_rows(meta, 32, ["g"], "k2")
    assert (rows == again).all() and not np.array_equal(rows, other)
    assert (np.diff(rows) > 0).all()
    all_rows, rec_all = select_rows(meta, 500, ["g"], "k1")
    assert len(all_rows) == 102 and rec_all is not None and rec_all["method"] == "all"
    odd, _ = select_rows(meta, 7, ["g"], "k1")
    odd_counts = meta.iloc[odd]["g"].value_counts()
    assert odd_counts.sum() == 7 and odd_counts.max() - odd_counts.min() <= 1
