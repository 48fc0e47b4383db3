"""Tiny local copies of DataComp's fairness webdatasets, in the exact layout of
``djghosh/wds_<task>_test``: ``classnames.txt``, ``zeroshot_classification_templates.txt``,
``test/nshards.txt``, ``test/<i>.tar`` whose samples hold an image, ``cls`` and ``npy`` (an int
vector of metadata codes, saved with ``numpy.save``). Metadata are drawn independently of key
order (a random permutation), so a reader that pairs them by position would be caught.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from audit.testing.fixtures import draw_swatch, encode

DOLLAR_STREET_FIELDS = ("income_ds", "income_meta", "region")
GEODE_FIELDS = ("region", "country")
FACE_FIELDS = ("age", "gender", "race", "race_binary")
FACE_OBJECTIVES = {
    "race": ["black", "white", "indian", "latino", "middle eastern", "southeast asian", "east asian"],
    "gender": ["man", "woman"],
    "age": ["child", "teenager", "adult", "elderly"],
    "toxic": [f"{r} {g}" for r in ("black", "white", "indian", "latino", "middle eastern",
                                    "southeast asian", "east asian") for g in ("man", "woman")]
             + ["animal", "gorilla", "chimpanzee", "orangutan", "thief", "criminal", "suspicious person"],
}


def _npy(vec: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(vec, dtype=np.int64))
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def write_datacomp_wds(root: str | Path, class_names: Sequence[str], templates: Sequence[str],
                       metadata: np.ndarray, labels: np.ndarray, *, shards: int = 2,
                       image_ext: str = "webp", size: int = 12, seed: int = 0,
                       vector_override: Mapping[int, Sequence[int]] | None = None) -> Path:
    """Write samples ``s%07d`` with image, ``cls`` = ``labels[i]`` and ``npy`` = ``metadata[i]``
    (``vector_override[i]`` replaces sample i's vector, for bad-input tests)."""
    root = Path(root)
    (root / "test").mkdir(parents=True, exist_ok=True)
    (root / "classnames.txt").write_text("".join(f"{c}\n" for c in class_names), encoding="utf-8")
    (root / "zeroshot_classification_templates.txt").write_text(
        "".join(f"{t}\n" for t in templates), encoding="utf-8")
    rng = np.random.default_rng(seed)
    n = len(labels)
    bounds = np.linspace(0, n, shards + 1).astype(int)
    for shard in range(shards):
        with tarfile.open(root / "test" / f"{shard}.tar", "w") as tar:
            for i in range(bounds[shard], bounds[shard + 1]):
                key = f"s{i:07d}"
                img = draw_swatch(rng, size, int(labels[i]) % 8, 8)
                _add(tar, f"{key}.{image_ext}", encode(img, image_ext, None, None))
                _add(tar, f"{key}.cls", str(int(labels[i])).encode())
                vec = (vector_override or {}).get(i, metadata[i])
                _add(tar, f"{key}.npy", _npy(np.asarray(vec)))
    (root / "test" / "nshards.txt").write_text(f"{shards}\n", encoding="utf-8")
    return root


def draw_metadata(n: int, cardinalities: Sequence[int], seed: int) -> np.ndarray:
    """``[n, fields]`` codes, every code present, then shuffled independently of key order."""
    rng = np.random.default_rng(seed)
    cols = [np.resize(np.arange(c), n) for c in cardinalities]
    meta = np.stack(cols, axis=1)
    return meta[rng.permutation(n)]


def write_dollar_street(root: str | Path, n: int = 60, n_classes: int = 8, seed: int = 1) -> Path:
    meta = draw_metadata(n, (4, 7, 5), seed)
    labels = np.random.default_rng(seed + 1).integers(0, n_classes, n)
    names = [f"object {i}" for i in range(n_classes)]
    return write_datacomp_wds(root, names, ["a photo of a {c}.", "a photo of a {c} in a home."],
                              meta, labels, seed=seed)


def write_geode(root: str | Path, n: int = 48, n_classes: int = 6, seed: int = 2) -> Path:
    meta = draw_metadata(n, (6, 9), seed)
    labels = np.random.default_rng(seed + 1).integers(0, n_classes, n)
    names = [f"thing {i}" for i in range(n_classes)]
    return write_datacomp_wds(root, names, ["a photo of a {c}.", "a {c} in the wild."], meta, labels,
                              seed=seed, image_ext="jpg")


def write_faces(root: str | Path, n_races: int = 7, n: int = 56, seed: int = 3) -> Path:
    """FairFace (7 races) or UTKFace (5) in DataComp's objective-prefixed form."""
    rng = np.random.default_rng(seed)
    meta = draw_metadata(n, (4, 2, n_races), seed)
    race_binary = (meta[:, 2] != 1).astype(np.int64)  # DataComp: 0 = white (race code 1), 1 = non-white
    meta = np.concatenate([meta, race_binary[:, None]], axis=1)
    races = FACE_OBJECTIVES["race"][:n_races]
    objectives = {**FACE_OBJECTIVES, "race": races}
    names = [f"{obj}:{c}" for obj, cs in objectives.items() for c in cs]
    templates = [f"{obj}:{t}" for obj in objectives
                 for t in ("a photo of a {c}.", "a photo of a {c} person.")]
    return write_datacomp_wds(root, names, templates, meta, rng.integers(0, 2, n), seed=seed)
