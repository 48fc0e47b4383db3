"""Small datasets written in the exact layouts of the real ones (test utility: tests, benchmarks, the
synthetic demo adapters).

Every writer is deterministic in its arguments. ``corrupt`` maps a sample's write index to a
kind of damage (:data:`CORRUPTIONS`); ``modes`` maps it to a PIL mode (:data:`MODES`) so that
the RGB conversion is exercised. The write index is the FairFace row, the webdataset key number
(``s0000003`` is index 3) or the number in a file name (``img_00003.jpg``). Images are drawn
shapes, never people.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageDraw

Corruption = Literal["zero_bytes", "truncated", "not_image"]
CORRUPTIONS: tuple[str, ...] = ("zero_bytes", "truncated", "not_image")
#: Modes that need converting to RGB (``I;16`` is a 16-bit grayscale PNG).
MODES: tuple[str, ...] = ("L", "CMYK", "RGBA", "P", "I;16")

#: FairFace's ClassLabel names in the hub's exact order (see shared FACTS).
FAIRFACE_AGE = ("0-2", "3-9", "10-19", "20-29", "30-39", "40-49", "50-59", "60-69", "more than 70")
FAIRFACE_GENDER = ("Male", "Female")
FAIRFACE_RACE = ("East Asian", "Indian", "Black", "White", "Middle Eastern", "Latino_Hispanic",
                 "Southeast Asian")
#: Rough share of each age bin in FairFace's validation split.
_AGE_WEIGHTS = np.array([2, 12, 11, 30, 22, 12, 7, 3, 1], dtype=float)
_FORMATS = {"jpg": "JPEG", "jpeg": "JPEG", "png": "PNG", "webp": "WEBP"}
_FORMAT_MODES = {"JPEG": {"RGB", "L", "CMYK"}, "PNG": {"RGB", "L", "RGBA", "P", "I;16"},
                 "WEBP": {"RGB", "RGBA"}}

# --------------------------------------------------------------------------- images


def draw_face(rng: np.random.Generator, size: int, *, age: int = 3, gender: int = 0) -> Image.Image:
    """A cartoon head on a plain background; age bin sets scale and hair colour, gender the hair
    length. Skin, background and features are random, independent of any group label."""
    bg = tuple(int(v) for v in rng.integers(150, 256, 3))
    img = Image.new("RGB", (size, size), bg)
    d = ImageDraw.Draw(img)
    scale = 0.55 + 0.05 * min(age, 3) + rng.uniform(-0.04, 0.04)
    w, h = size * scale * 0.8, size * scale
    cx, cy = size / 2 + rng.uniform(-1, 1) * size * 0.05, size / 2
    hair = (200, 200, 200) if age >= 7 else tuple(int(v) for v in rng.integers(10, 120, 3))
    if gender == 1:
        d.rectangle([cx - w * 0.6, cy - h * 0.45, cx + w * 0.6, cy + h * 0.55], fill=hair)
    skin = tuple(int(v) for v in rng.integers(60, 240) * np.array([1.0, 0.8, 0.65]))
    d.ellipse([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], fill=skin)
    d.chord([cx - w / 2, cy - h / 2, cx + w / 2, cy], 180, 360, fill=hair)
    eye = max(1.0, size / 32)
    for ex in (cx - w * 0.2, cx + w * 0.2):
        d.ellipse([ex - eye, cy - eye, ex + eye, cy + eye], fill=(20, 20, 20))
    d.arc([cx - w * 0.2, cy + h * 0.1, cx + w * 0.2, cy + h * 0.3], 20, 160, fill=(120, 30, 30))
    return img


def draw_swatch(rng: np.random.Generator, size: int, label: int, n_classes: int) -> Image.Image:
    """A noisy block whose hue follows ``label`` (a weak class signal for classification tests)."""
    hue = np.array([label * 255 // max(n_classes, 1), 255 - label * 97 % 256, label * 53 % 256])
    arr = np.clip(hue + rng.normal(0, 20, (size, size, 3)), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def encode(img: Image.Image, ext: str = "jpg", mode: str | None = None,
           corrupt: str | None = None) -> bytes:
    """Encode ``img`` for a file ending ``ext``, optionally converted to ``mode`` (saved as JPEG
    or PNG when the format cannot hold that mode, as real datasets sometimes do) or damaged."""
    if corrupt == "zero_bytes":
        return b""
    if corrupt == "not_image":
        return b"<html>this is not an image</html>\n"
    fmt = _FORMATS.get(ext.lower(), "PNG")
    if mode is not None:
        if mode == "I;16":  # full 16-bit range, as a real 16-bit scan has
            img = Image.fromarray(np.asarray(img.convert("L")).astype(np.uint16) * 257)
        else:
            img = img.convert(mode)
        if mode not in _FORMAT_MODES[fmt]:
            fmt = "JPEG" if mode in _FORMAT_MODES["JPEG"] else "PNG"
    buf = io.BytesIO()
    img.save(buf, fmt)
    data = buf.getvalue()
    if corrupt == "truncated":
        return data[: max(len(data) // 2, 20)]
    if corrupt is not None:
        raise ValueError(f"unknown corruption {corrupt!r}; use one of {CORRUPTIONS}")
    return data


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


# --------------------------------------------------------------------------- FairFace


def fairface_readme(configs: Mapping[str, Sequence[str]]) -> str:
    """The README front matter listing ``config -> splits`` exactly as the hub repo does."""
    lines = ["---", "configs:"]
    for config, splits in configs.items():
        lines += [f"- config_name: '{config}'", "  data_files:"]
        for split in splits:
            lines += [f"  - split: {split}", f"    path: {config}/{split}-*"]
    return "\n".join([*lines, "---", "", "# FairFace (small synthetic copy in the hub layout)", ""])


def write_fairface_dir(root: str | Path, n: int = 28, seed: int = 0, *, size: int = 16,
                       configs: Sequence[str] = ("0.25",), splits: Sequence[str] = ("validation",),
                       corrupt: Mapping[int, str] | None = None,
                       modes: Mapping[int, str] | None = None) -> Path:
    """Write ``n`` drawn faces per config/split as ``<config>/<split>-00000-of-00001.parquet``
    with FairFace's exact features, plus the README. Race x gender cycle evenly (shuffled)."""
    import datasets
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(root)
    features = datasets.Features({
        "image": datasets.Image(),
        "age": datasets.ClassLabel(names=list(FAIRFACE_AGE)),
        "gender": datasets.ClassLabel(names=list(FAIRFACE_GENDER)),
        "race": datasets.ClassLabel(names=list(FAIRFACE_RACE)),
        "service_test": datasets.Value("bool"),
    })
    for ci, config in enumerate(configs):
        for si, split in enumerate(splits):
            rng = np.random.default_rng([seed, ci, si])
            combos = np.arange(n) % (len(FAIRFACE_RACE) * len(FAIRFACE_GENDER))
            rng.shuffle(combos)
            race, gender = combos // 2, combos % 2
            age = rng.choice(len(FAIRFACE_AGE), size=n, p=_AGE_WEIGHTS / _AGE_WEIGHTS.sum())
            images = [{"bytes": encode(draw_face(rng, size, age=int(age[i]), gender=int(gender[i])),
                                       "jpg", (modes or {}).get(i), (corrupt or {}).get(i)),
                       "path": None} for i in range(n)]
            table = pa.Table.from_pydict(
                {"image": images, "age": age.tolist(), "gender": gender.tolist(),
                 "race": race.tolist(), "service_test": (rng.random(n) < 0.5).tolist()},
                schema=features.arrow_schema)
            path = root / config / f"{split}-00000-of-00001.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(table, path)
    (root / "README.md").write_text(fairface_readme({c: splits for c in configs}), encoding="utf-8")
    return root


# --------------------------------------------------------------------------- LAION webdataset


def write_wds_dir(root: str | Path, class_names: Sequence[str], samples_per_class: int = 2, *,
                  image_ext: str = "jpg", with_templates: bool = True,
                  templates: Sequence[str] = ("a photo of a {c}.", "a sketch of a {c}."),
                  shards: int = 2, split: str = "test", size: int = 16, seed: int = 0,
                  corrupt: Mapping[int, str] | None = None,
                  modes: Mapping[int, str] | None = None) -> Path:
    """clip_benchmark's layout: ``classnames.txt``, ``zeroshot_classification_templates.txt``,
    ``<split>/0.tar ...`` and ``<split>/nshards.txt``; sample ``i`` is ``s{i:07d}.<ext>`` plus
    ``s{i:07d}.cls`` (label ``i % len(class_names)``, as text)."""
    root = Path(root)
    (root / split).mkdir(parents=True, exist_ok=True)
    (root / "classnames.txt").write_text("".join(f"{c}\n" for c in class_names), encoding="utf-8")
    if with_templates:
        (root / "zeroshot_classification_templates.txt").write_text(
            "".join(f"{t}\n" for t in templates), encoding="utf-8")
    total = len(class_names) * samples_per_class
    rng = np.random.default_rng(seed)
    bounds = np.linspace(0, total, shards + 1).astype(int)
    for shard in range(shards):
        with tarfile.open(root / split / f"{shard}.tar", "w") as tar:
            for i in range(bounds[shard], bounds[shard + 1]):
                label = i % len(class_names)
                img = draw_swatch(rng, size, label, len(class_names))
                members = {image_ext: encode(img, image_ext, (modes or {}).get(i), (corrupt or {}).get(i)),
                           "cls": str(label).encode()}
                for ext, data in members.items():
                    info = tarfile.TarInfo(f"s{i:07d}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    (root / split / "nshards.txt").write_text(f"{shards}\n", encoding="utf-8")
    return root


# --------------------------------------------------------------------------- folder trees


def _write_tree(root: Path, folders: Iterable[tuple[str, int]], images_per_class: int, ext: str,
                size: int, seed: int, n_classes: int, corrupt: Mapping[int, str] | None,
                modes: Mapping[int, str] | None) -> Path:
    rng = np.random.default_rng(seed)
    index = 0
    for folder, label in folders:
        for _ in range(images_per_class):
            img = draw_swatch(rng, size, label, n_classes)
            data = encode(img, ext, (modes or {}).get(index), (corrupt or {}).get(index))
            _write(root / folder / f"img_{index:05d}.{ext}", data)
            index += 1
    return root


def write_imagefolder(root: str | Path, class_names: Sequence[str], images_per_class: int = 2, *,
                      ext: str = "jpg", size: int = 16, seed: int = 0,
                      corrupt: Mapping[int, str] | None = None,
                      modes: Mapping[int, str] | None = None) -> Path:
    """``root/<class>/img_NNNNN.<ext>`` for each class name, written in the given order."""
    folders = [(c, i) for i, c in enumerate(class_names)]
    return _write_tree(Path(root), folders, images_per_class, ext, size, seed, len(class_names),
                       corrupt, modes)


def write_wnid_dir(root: str | Path, wnids: Sequence[str], images_per_class: int = 1, *,
                   ext: str = "JPEG", size: int = 16, seed: int = 0,
                   corrupt: Mapping[int, str] | None = None,
                   modes: Mapping[int, str] | None = None) -> Path:
    """An ImageNet-style tree ``root/<wnid>/img_NNNNN.JPEG`` (val, Sketch, R, A releases)."""
    folders = [(w, i) for i, w in enumerate(wnids)]
    return _write_tree(Path(root), folders, images_per_class, ext, size, seed, len(wnids),
                       corrupt, modes)


def write_imagenetv2_dir(root: str | Path, classes: Iterable[int] = range(1000),
                         images_per_class: int = 1, *, variant: str = "matched-frequency",
                         nested: bool = True, size: int = 16, seed: int = 0,
                         corrupt: Mapping[int, str] | None = None) -> Path:
    """ImageNetV2 as its tarball extracts: ``imagenetv2-<variant>-format-val/<int>/*.jpeg``
    (``nested=False`` writes the numbered folders directly under ``root``). Returns ``root``."""
    root = Path(root)
    base = root / f"imagenetv2-{variant}-format-val" if nested else root
    _write_tree(base, [(str(c), c) for c in classes], images_per_class, "jpeg", size, seed, 1000,
                corrupt, None)
    return root


def write_objectnet_release(root: str | Path, folder_to_imagenet: Mapping[str, Sequence[int]],
                            images_per_class: int = 1, *,
                            unmapped: Sequence[str] = ("air_freshener", "tarp"),
                            labels: Mapping[str, str] | None = None, size: int = 16,
                            seed: int = 0) -> Path:
    """The ObjectNet 1.0 release: ``objectnet-1.0/images/<folder>/*.png`` and ``mappings/`` with
    its four files in their real formats. ImageNet 2012 ids are a permutation of the pytorch
    (sorted-wnid) indices, as in the release, so a reader that skips the id map gets it wrong."""
    base = Path(root) / "objectnet-1.0"
    labels = dict(labels or {})
    folders = sorted([*folder_to_imagenet, *unmapped])
    for f in folders:
        labels.setdefault(f, f.replace("_", " ").capitalize())
    pid_of_2012 = [(i * 7 + 3) % 1000 for i in range(1000)]  # 2012 id -> pytorch index
    in_label = {pid: f"imagenet class {pid}" for pid in range(1000)}
    mappings = base / "mappings"
    mappings.mkdir(parents=True, exist_ok=True)
    dump = {"folder_to_objectnet_label.json": {f: labels[f] for f in folders},
            "objectnet_to_imagenet_1k.json": {labels[f]: "; ".join(in_label[p] for p in pids)
                                              for f, pids in folder_to_imagenet.items()},
            "pytorch_to_imagenet_2012_id.json": {str(pid): i for i, pid in enumerate(pid_of_2012)}}
    for name, obj in dump.items():
        (mappings / name).write_text(json.dumps(obj, indent=1), encoding="utf-8")
    (mappings / "imagenet_to_label_2012_v2").write_text(
        "".join(f"{in_label[pid]}\n" for pid in pid_of_2012), encoding="utf-8")
    _write_tree(base / "images", [(f, i) for i, f in enumerate(folders)], images_per_class, "png",
                size, seed, len(folders), None, None)
    return Path(root)
