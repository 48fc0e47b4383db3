"""Embedding cache: resume after SIGKILL, reuse across variants, corruption detected, concurrency."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from audit.cache import ImageStore, TextStore
from audit.data.base import DatasetInfo, UnreadableImage
from audit.embed import embed_images, embed_texts
from audit.errors import DataError
from audit.models.openclip import OpenClipModel


class ColourDataset:
    """A tiny in-memory dataset; rows listed in ``bad`` are unreadable."""

    def __init__(self, n: int, bad: tuple[int, ...] = (), delay: float = 0.0) -> None:
        self.n, self.bad, self.delay = n, bad, delay
        self.metadata = pd.DataFrame({"image_id": [f"img{i}" for i in range(n)]})
        self.info = DatasetInfo("colours", "test", "memory", None, "test", None, n, f"colours-{n}-{bad}")

    def __len__(self) -> int:
        return self.n

    def load_image(self, row: int) -> Image.Image:
        time.sleep(self.delay)
        if row in self.bad:
            raise UnreadableImage("truncated file")
        return Image.new("RGB", (20, 20), ((row * 37) % 256, (row * 91) % 256, (row * 13) % 256))


@pytest.fixture(scope="module")
def model() -> OpenClipModel:
    return OpenClipModel("audit-tiny-vit:random")


def test_embeddings_cached_and_unreadable_rows_flagged(tmp_path, model):
    data = ColourDataset(10, bad=(3,))
    store = ImageStore(tmp_path, {"model": model.info.cache_key, "dataset": data.info.fingerprint}, shard_rows=4)
    first = embed_images(model, data, store, batch_size=3, num_workers=0, quiet=True)
    assert first.computed_shards == 3
    assert first.ok.tolist() == [i != 3 for i in range(10)]
    assert first.errors == {3: "truncated file"}
    assert np.all(first.embeddings[3] == 0)
    again = embed_images(model, data, store, batch_size=3, num_workers=0, quiet=True)
    assert again.computed_shards == 0
    np.testing.assert_array_equal(again.embeddings, first.embeddings)


def test_corrupt_shard_is_detected_with_the_path_to_delete(tmp_path, model):
    data = ColourDataset(4)
    store = ImageStore(tmp_path, {"model": model.info.cache_key, "dataset": data.info.fingerprint}, shard_rows=4)
    embed_images(model, data, store, num_workers=0, quiet=True)
    shard = next(store.dir.glob("shard-*.npz"))
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(DataError) as exc:
        embed_images(model, data, store, num_workers=0, quiet=True)
    assert exc.value.exit_code == 3
    assert "checksum mismatch" in exc.value.render() and str(store.dir) in exc.value.render()


def test_text_cache_encodes_only_new_prompts(tmp_path, model):
    store = TextStore(tmp_path, model.info.cache_key)
    a, n_a = embed_texts(model, ["a thief", "a child"], store, quiet=True)
    b, n_b = embed_texts(model, ["a child", "a gorilla", "a thief"], store, quiet=True)
    assert (n_a, n_b) == (2, 1)
    np.testing.assert_array_equal(b[[0, 2]], a[[1, 0]])
    np.testing.assert_allclose(b[1], model.encode_texts(["a gorilla"])[0], atol=1e-6)


CHILD = """
import sys
sys.path.insert(0, {repo!r})
from tests.test_cache import ColourDataset
from audit.cache import ImageStore
from audit.embed import embed_images
from audit.models.openclip import OpenClipModel
model = OpenClipModel("audit-tiny-vit:random")
data = ColourDataset(24, bad=(5,), delay={delay})
store = ImageStore(__import__("pathlib").Path({root!r}), {{"model": model.info.cache_key, "dataset": data.info.fingerprint}}, shard_rows=6)
embed_images(model, data, store, batch_size=2, num_workers=0, quiet=True)
"""


def _child(root: Path, delay: float) -> subprocess.Popen[bytes]:
    repo = str(Path(__file__).resolve().parent.parent)
    code = textwrap.dedent(CHILD.format(repo=repo, root=str(root), delay=delay))
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_sigkill_then_resume_gives_identical_results(tmp_path, model):
    killed_root, clean_root = tmp_path / "killed", tmp_path / "clean"
    proc = _child(killed_root, delay=0.1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(killed_root.glob("images/*/shard-00000.json")):
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = sorted(killed_root.glob("images/*/shard-*.json"))
    assert 1 <= len(done) < 4, "the kill should land mid-run"
    data = ColourDataset(24, bad=(5,))
    key = {"model": model.info.cache_key, "dataset": data.info.fingerprint}
    resumed_store = ImageStore(killed_root, key, shard_rows=6)
    resumed = embed_images(model, data, resumed_store, batch_size=2, num_workers=0, quiet=True)
    assert resumed.computed_shards == 4 - len(done)
    clean = embed_images(model, data, ImageStore(clean_root, key, shard_rows=6), batch_size=2, num_workers=0, quiet=True)
    np.testing.assert_array_equal(resumed.embeddings, clean.embeddings)
    np.testing.assert_array_equal(resumed.ok, clean.ok)
    assert resumed.errors == clean.errors == {5: "truncated file"}


def test_two_processes_share_a_cache_without_corruption(tmp_path, model):
    procs = [_child(tmp_path, delay=0.01) for _ in range(2)]
    for p in procs:
        assert p.wait(timeout=120) == 0, p.stderr.read().decode() if p.stderr else ""
    shards = sorted(tmp_path.glob("images/*/shard-*.json"))
    assert len(shards) == 4
    data = ColourDataset(24, bad=(5,))
    store = ImageStore(tmp_path, {"model": model.info.cache_key, "dataset": data.info.fingerprint}, shard_rows=6)
    result = embed_images(model, data, store, num_workers=0, quiet=True)
    assert result.computed_shards == 0
    for meta in shards:
        assert json.loads(meta.read_text())["rows"] == 6
