"""Content-addressed embedding store: atomic shards, checksums, locks. No pickle.

Layout under the cache root (``$AUDIT_CACHE_DIR``, default the user cache dir)::

    images/<key>/key.json                 what the key covers (model, preprocessing, dataset ...)
    images/<key>/shard-00000.npz          embeddings [rows, D] float32 + ok [rows] bool
    images/<key>/shard-00000.json         rows, sha256 of the .npz, unreadable images (the
                                          completion marker: written last)
    scores/<key>/...                      the same shard layout for a generative scorer's per-image
                                          prompt log-likelihoods [rows, prompts] (not embeddings:
                                          their key names the model and the exact prompt list)
    text/<model key>/<sha>.npz            prompts (unicode array) + embeddings
    models/<key>.json                     a loaded model's ModelInfo (cache key, logit scale ...),
                                          so a fully cached re-run need not load the weights
    models/digests/<key>.sha256           a local checkpoint's sha256, keyed by its path, size,
                                          mtime, ctime and inode (hashed once, not every run)
    synthetic/<key>/                      generated datasets (``audit.data.synthetic``)

Every adapter that keeps files takes its directory from :func:`cache_root` and the helpers below
(:func:`models_dir`, :func:`synthetic_dir`), so ``--cache-dir`` moves all of it.

A shard is complete only when its ``.json`` exists and the checksum matches, so a run killed at
any moment (SIGKILL included) resumes from the last complete shard.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from filelock import FileLock

from audit.errors import DataError
from audit.fileio import atomic_write, make_dirs

CACHE_FORMAT_VERSION = "1"


def cache_root(override: str | Path | None = None) -> Path:
    if override:
        return Path(override).expanduser()
    env = os.environ.get("AUDIT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("audit"))


def models_dir(root: Path) -> Path:
    """Where adapters keep loaded models' descriptions and checkpoint digests."""
    return root / "models"


def synthetic_dir(root: Path) -> Path:
    """Where generated datasets are written."""
    return root / "synthetic"


def digest(obj: Any, n: int = 24) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _corrupt(path: Path, why: str, remove: Path | None = None) -> DataError:
    """The error for a damaged cache entry; the fix deletes ``remove`` (default: the entry's directory)."""
    import shlex

    target = remove or path.parent
    return DataError(f"corrupt embedding-cache entry {path}: {why}",
                     fix=f"delete it (rm -r {shlex.quote(str(target))}) and re-run; it will be recomputed")


@dataclass(frozen=True)
class Shard:
    embeddings: np.ndarray
    ok: np.ndarray
    errors: dict[int, str]  # absolute row -> reason


class ImageStore:
    """Image embeddings of one (model, preprocessing, dataset rows) key, in fixed-size shards."""

    #: The top-level cache directory of this kind of entry.
    kind = "images"

    def __init__(self, root: Path, key: dict[str, Any], shard_rows: int = 1024) -> None:
        self.key = {**key, "cache_format": CACHE_FORMAT_VERSION, "shard_rows": shard_rows}
        self.dir = root / self.kind / digest(self.key)
        self.shard_rows = shard_rows
        make_dirs(self.dir)
        key_file = self.dir / "key.json"
        if not key_file.exists():
            atomic_write(key_file, lambda p: p.write_text(json.dumps(self.key, indent=2, default=str)))

    def n_shards(self, n_rows: int) -> int:
        return (n_rows + self.shard_rows - 1) // self.shard_rows

    def rows(self, i: int, n_rows: int) -> range:
        return range(i * self.shard_rows, min((i + 1) * self.shard_rows, n_rows))

    def _paths(self, i: int) -> tuple[Path, Path]:
        return self.dir / f"shard-{i:05d}.npz", self.dir / f"shard-{i:05d}.json"

    def has(self, i: int) -> bool:
        return self._paths(i)[1].exists()

    def lock(self, i: int) -> FileLock:
        return FileLock(str(self.dir / f"shard-{i:05d}.lock"))

    def write(self, i: int, shard: Shard) -> None:
        data, meta = self._paths(i)

        def save(p: Path) -> None:
            with p.open("wb") as f:
                np.savez(f, embeddings=shard.embeddings.astype(np.float32), ok=shard.ok.astype(bool))

        atomic_write(data, save)
        info = {"rows": len(shard.ok), "sha256": _sha256(data),
                "errors": {str(k): v for k, v in sorted(shard.errors.items())}}
        atomic_write(meta, lambda p: p.write_text(json.dumps(info, indent=1)))

    def read(self, i: int) -> Shard:
        data, meta = self._paths(i)
        try:
            info = json.loads(meta.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise _corrupt(meta, f"unreadable shard manifest ({exc})") from None
        if not data.exists():
            raise _corrupt(data, "shard file missing")
        if _sha256(data) != info.get("sha256"):
            raise _corrupt(data, "checksum mismatch")
        try:
            with np.load(data, allow_pickle=False) as z:
                emb, ok = z["embeddings"], z["ok"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise _corrupt(data, str(exc)) from None
        if len(ok) != info["rows"] or emb.shape[0] != info["rows"]:
            raise _corrupt(data, "row count does not match its manifest")
        return Shard(emb, ok, {int(k): v for k, v in info.get("errors", {}).items()})


class ScoreStore(ImageStore):
    """Per-image scores of a fixed prompt list (a generative scorer's log-likelihoods), in the
    same checksummed shards as embeddings but under their own kind, ``scores/``."""

    kind = "scores"


class TextStore:
    """Prompt embeddings of one model, looked up prompt by prompt."""

    def __init__(self, root: Path, model_key: str) -> None:
        self.dir = root / "text" / digest({"model": model_key, "cache_format": CACHE_FORMAT_VERSION})
        make_dirs(self.dir)

    def lookup(self, prompts: Sequence[str]) -> dict[str, np.ndarray]:
        wanted = set(prompts)
        found: dict[str, np.ndarray] = {}
        for path in sorted(self.dir.glob("*.npz")):
            try:
                with np.load(path, allow_pickle=False) as z:
                    names, emb = z["prompts"], z["embeddings"]
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as exc:
                raise _corrupt(path, f"unreadable ({exc or type(exc).__name__})", remove=path) from None
            if path.stem != _prompts_digest(names.tolist()):
                raise _corrupt(path, "content does not match its name", remove=path)
            for name, vec in zip(names.tolist(), emb):
                if name in wanted:
                    found[name] = vec
        return found

    def add(self, prompts: Sequence[str], embeddings: np.ndarray) -> None:
        if not prompts:
            return
        path = self.dir / f"{_prompts_digest(list(prompts))}.npz"

        def save(p: Path) -> None:
            with p.open("wb") as f:
                np.savez(f, prompts=np.array(list(prompts), dtype=str), embeddings=embeddings.astype(np.float32))

        atomic_write(path, save)


def _prompts_digest(prompts: list[str]) -> str:
    return hashlib.sha256("\n".join(prompts).encode()).hexdigest()[:24]
