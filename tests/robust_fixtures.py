"""Planted copies of ImageNet and its shifts in the real layouts, for the robustness end-to-end tests.

Each image is two flat colour halves. Each half spells the code of one class name (three base-16
digits, one per channel, 16 levels apart, so JPEG and WebP noise cannot move a digit). The
planted model (:mod:`tests.planted_classes`) embeds an image as the normalized sum of the
one-hot directions of the names it reads there, and a prompt as the one-hot direction of the
class name in it. So every score is known in advance: ``100 / sqrt(k)`` for the classes whose
name the image carries (``k`` = how many distinct names it carries), 0 for all others, ties to
the lower class index.

The plans below say, image by image, which names each image carries and what top-1 and top-5
must come out; the tests compare those hand-written outcomes with the run's predictions and
metrics. Class lists come from open_clip's shipped ImageNet names and timm's shipped ImageNet-R/A
index lists, read here directly rather than through the package's adapters.
"""

from __future__ import annotations

import ast
import importlib.util
import io
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

from audit.testing import fixtures as fx

REPO = Path(__file__).resolve().parent.parent
SHIPPED_PROBE = REPO / "probes" / "imagenet_shifts.yaml"
SIZE = 32
LEVEL = 16  # distance between two digit levels in a channel

# --------------------------------------------------------------------------- class lists


def _package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.submodule_search_locations, f"{name} is not installed"
    return Path(next(iter(spec.submodule_search_locations)))


@lru_cache(maxsize=1)
def imagenet_names() -> tuple[str, ...]:
    """open_clip's IMAGENET_CLASSNAMES (OpenAI's names), read from the file, without torch."""
    source = (_package_dir("open_clip") / "zero_shot_metadata.py").read_text(encoding="utf-8")
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "IMAGENET_CLASSNAMES":
            names = tuple(ast.literal_eval(node.value))
            assert len(names) == 1000
            return names
    raise AssertionError("IMAGENET_CLASSNAMES not found in open_clip")


@lru_cache(maxsize=2)
def subset(which: str) -> tuple[int, ...]:
    """ImageNet indices of ImageNet-R's or -A's 200 classes, from timm's shipped list."""
    path = _package_dir("timm") / "data" / "_info" / f"imagenet_{which}_indices.txt"
    out = tuple(int(v) for v in path.read_text().split())
    assert len(out) == 200
    return out


def subset_names(which: str) -> tuple[str, ...]:
    """classnames.txt of LAION's wds_imagenet-r / -a: OpenAI's names masked to the 200."""
    return tuple(imagenet_names()[i] for i in subset(which))


# --------------------------------------------------------------------------- ObjectNet

#: A few real ObjectNet classes: folder -> (label as in the release, ImageNet indices), from
#: the release's mappings/ (as in mlfoundations/wise-ft's objectnet metadata). Several map to
#: more than one ImageNet class; none of their lower-cased labels is an ImageNet name.
OBJECTNET = {
    "alarm_clock": ("Alarm clock", (409, 530)),
    "bicycle": ("Bicycle", (671, 444)),
    "binder_closed": ("Binder (closed)", (446,)),
    "chair": ("Chair", (423, 559, 765)),
    "helmet": ("Helmet", (560, 518)),
    "mug": ("Mug", (504,)),
    "pen": ("Pen", (418, 749, 563)),
    "tie": ("Tie", (457, 906)),
}
OBJECTNET_FOLDERS = tuple(sorted(OBJECTNET))
#: clip_benchmark's 113-way class names: lower-cased labels in sorted-folder order.
OBJECTNET_NAMES = tuple(OBJECTNET[f][0].lower() for f in OBJECTNET_FOLDERS)
OBJECTNET_GROUPS = tuple(OBJECTNET[f][1] for f in OBJECTNET_FOLDERS)

# --------------------------------------------------------------------------- plans


@dataclass(frozen=True)
class Planted:
    """One image: its label index, the names the planted model reads in it, planted outcomes."""

    target: int
    sees: tuple[str, ...]
    correct: bool
    top5: bool


def _in(target: int, pred: int, correct: bool, top5: bool) -> Planted:
    """An image of class ``target`` in which the model reads ImageNet class ``pred``'s name."""
    return Planted(target, (imagenet_names()[pred],), correct, top5)


def _plans() -> dict[str, list[Planted]]:
    r, a = subset("r"), subset("a")
    only_r = next(i for i in r if i not in a)
    assert 0 not in r and 0 not in a and 2 not in a  # 'tench' and 'great white shark' are outside
    # With one-hot scores, a wrong image's top-5 is its predicted class then classes 0, 1, 2, ...
    # so a target among the lowest indices lands in the top-5 although top-1 is wrong.
    return {
        "imagenet": [_in(0, 0, True, True)] * 3 + [
            _in(414, 954, False, False), _in(954, 954, True, True), _in(954, 1, False, False),
            _in(999, 999, True, True), _in(999, 999, True, True), _in(2, 999, False, True),
            _in(3, 500, False, True)],
        # ImageNetV2 folders in the order a string sort lists them would give '10' label 2.
        "imagenet_v2": [
            _in(0, 0, True, True), _in(1, 1, True, True), _in(2, 10, False, True),
            _in(10, 10, True, True), _in(100, 100, True, True), _in(999, 0, False, False),
            _in(3, 3, True, True), _in(20, 2, False, False)],
        "imagenet_sketch": [
            _in(5, 5, True, True), _in(6, 6, True, True), _in(7, 8, False, False),
            _in(8, 7, False, False), _in(300, 300, True, True), _in(301, 1, False, False),
            _in(600, 600, True, True), _in(601, 3, False, False)],
        # R and A: targets are positions 0..199 among the subset; predictions are ImageNet names,
        # some of classes outside the subset (a 200-way head scores those 0 everywhere).
        "imagenet_r": [
            _in(0, r[0], True, True), _in(1, r[1], True, True), _in(5, r[5], True, True),
            _in(10, r[10], True, True), _in(199, r[199], True, True), _in(20, r[21], False, False),
            _in(30, 0, False, False), _in(3, 0, False, True)],
        "imagenet_a": [
            _in(0, a[0], True, True), _in(199, a[199], True, True), _in(3, a[4], False, True),
            _in(50, 0, False, False), _in(60, only_r, False, False), _in(70, a[71], False, False),
            _in(80, 2, False, False), _in(90, a[1], False, False)],
        # OpenAI's names hold 'sunglasses' twice (836, 837): identical prompts, so identical
        # scores, and the tie goes to 836; an image of 837 can never be top-1 right.
        "imagenet_duplicate_names": [
            _in(836, 836, True, True), _in(837, 837, False, True), _in(0, 0, True, True)],
    }


@dataclass(frozen=True)
class PlantedObjectNet:
    """One ObjectNet image: the ObjectNet name and the ImageNet class the model reads in it, and
    the planted outcomes in both modes."""

    target: int
    objectnet_name: str
    imagenet_index: int
    correct_113: bool
    top5_113: bool
    correct_collapse: bool
    top5_collapse: bool

    @property
    def sees(self) -> tuple[str, ...]:
        return (self.objectnet_name, imagenet_names()[self.imagenet_index])


#: One image per mapped folder, in sorted-folder order (target = position). In objectnet_113 only
#: the ObjectNet name scores; in imagenet_collapse only the ImageNet name does, and its class
#: counts for every ObjectNet class whose group holds it ('tench', 0, is in none: every
#: collapsed score is 0 and the tie goes to class 0).
OBJECTNET_PLAN = (
    PlantedObjectNet(0, "alarm clock", 530, True, True, True, True),       # 2nd of the group
    PlantedObjectNet(1, "bicycle", 504, True, True, False, True),           # -> mug; 1 in top-5
    PlantedObjectNet(2, "chair", 446, False, True, True, True),
    PlantedObjectNet(3, "chair", 765, True, True, True, True),              # 3rd of the group
    PlantedObjectNet(4, "helmet", 0, True, True, False, True),              # tench: all zero
    PlantedObjectNet(5, "tie", 504, False, False, True, True),
    PlantedObjectNet(6, "pen", 906, True, True, False, False),              # -> tie
    PlantedObjectNet(7, "mug", 749, False, False, False, False),            # -> pen
)


@lru_cache(maxsize=1)
def plans() -> dict[str, list[Planted]]:
    return _plans()


@lru_cache(maxsize=1)
def codebook() -> tuple[str, ...]:
    """Every name an image carries; an image spells the position of the name in this list."""
    names = {n for plan in plans().values() for p in plan for n in p.sees}
    names |= {n for p in OBJECTNET_PLAN for n in p.sees}
    return tuple(sorted(names))


def prompt_universe() -> tuple[str, ...]:
    """Every class name a prompt of these fixtures can hold."""
    return tuple(dict.fromkeys((*imagenet_names(), *OBJECTNET_NAMES)))


def planted_rate(plan: Sequence[Planted | PlantedObjectNet], field: str) -> float:
    return float(np.mean([getattr(p, field) for p in plan]))


# --------------------------------------------------------------------------- images


def _colour(code: int) -> tuple[int, int, int]:
    digits = (code % 16, code // 16 % 16, code // 256)
    assert code < 16 ** 3
    return tuple(LEVEL * d + LEVEL // 2 for d in digits)  # type: ignore[return-value]


def planted_image(names: Sequence[str]) -> Image.Image:
    """Left half spells ``names[0]``, right half ``names[-1]``."""
    book = codebook()
    left, right = (_colour(book.index(n)) for n in (names[0], names[-1]))
    arr = np.zeros((SIZE, SIZE, 3), np.uint8)
    arr[:, : SIZE // 2] = left
    arr[:, SIZE // 2:] = right
    return Image.fromarray(arr, "RGB")


def read_codes(img: Image.Image) -> tuple[int, int]:
    """The two codes of an image (robust to a border crop and to lossy compression)."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float64)
    h, w = arr.shape[:2]
    rows = slice(h // 4, 3 * h // 4)
    codes = []
    for cols in (slice(w // 8, 3 * w // 8), slice(5 * w // 8, 7 * w // 8)):
        med = np.median(arr[rows, cols].reshape(-1, 3), axis=0)
        d = np.clip(np.rint((med - LEVEL // 2) / LEVEL), 0, 15).astype(int)
        codes.append(int(d[0] + 16 * d[1] + 256 * d[2]))
    return codes[0], codes[1]


def _bytes(img: Image.Image, ext: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, {"jpg": "JPEG", "webp": "WEBP", "png": "PNG", "jpeg": "JPEG"}[ext])
    return buf.getvalue()


# --------------------------------------------------------------------------- layouts


def write_wds(root: Path, class_names: Sequence[str], plan: Sequence[Planted], *, ext: str,
              shards: int = 2) -> Path:
    """LAION's clip_benchmark layout, as :func:`audit.testing.fixtures.write_wds_dir` writes it,
    with the samples of ``plan``: ``classnames.txt``, the 80 ``{c}`` templates,
    ``test/{0..}.tar`` of ``s<7 digits>.<ext>`` + ``.cls``, ``test/nshards.txt``."""
    from audit.labels import resolve_templates

    (root / "test").mkdir(parents=True, exist_ok=True)
    (root / "classnames.txt").write_text("".join(f"{c}\n" for c in class_names), encoding="utf-8")
    templates = [t.replace("{}", "{c}") for t in resolve_templates("openai_imagenet")]
    (root / "zeroshot_classification_templates.txt").write_text("".join(f"{t}\n" for t in templates))
    bounds = np.linspace(0, len(plan), shards + 1).astype(int)
    for shard in range(shards):
        with tarfile.open(root / "test" / f"{shard}.tar", "w") as tar:
            for i in range(bounds[shard], bounds[shard + 1]):
                members = {ext: _bytes(planted_image(plan[i].sees), ext), "cls": str(plan[i].target).encode()}
                for suffix, data in members.items():
                    info = tarfile.TarInfo(f"s{i:07d}.{suffix}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
    (root / "test" / "nshards.txt").write_text(f"{shards}\n")
    return root


def write_v2(root: Path, plan: Sequence[Planted]) -> Path:
    """The extracted matched-frequency tarball (folders named by ImageNet index, no classnames)."""
    by_class = {p.target: p for p in plan}
    assert len(by_class) == len(plan), "one image per ImageNetV2 folder"
    fx.write_imagenetv2_dir(root, list(by_class), 1)
    base = root / "imagenetv2-matched-frequency-format-val"
    for path in base.glob("*/*.jpeg"):
        planted_image(by_class[int(path.parent.name)].sees).save(path, "JPEG")
    return root


def write_objectnet(root: Path) -> Path:
    """The ObjectNet 1.0 release (images/ + mappings/) with the planted mapped folders and two
    unmapped ones (left as they are: the adapter must leave them out)."""
    fx.write_objectnet_release(root, {f: list(OBJECTNET[f][1]) for f in OBJECTNET_FOLDERS}, 1,
                               labels={f: OBJECTNET[f][0] for f in OBJECTNET_FOLDERS})
    images = root / "objectnet-1.0" / "images"
    for p in OBJECTNET_PLAN:
        (path,) = (images / OBJECTNET_FOLDERS[p.target]).glob("*.png")
        planted_image(p.sees).save(path, "PNG")
    return root


def write_all(root: Path) -> dict[str, Path]:
    """Every dataset of the shipped probe, planted; returns adapter -> local source directory."""
    p = plans()
    return {
        "imagenet": write_wds(root / "wds_imagenet1k", imagenet_names(), p["imagenet"], ext="jpg"),
        "imagenet_v2": write_v2(root / "imagenetv2", p["imagenet_v2"]),
        "imagenet_sketch": write_wds(root / "wds_imagenet_sketch", imagenet_names(),
                                     p["imagenet_sketch"], ext="webp"),
        "imagenet_r": write_wds(root / "wds_imagenet-r", subset_names("r"), p["imagenet_r"], ext="webp"),
        "imagenet_a": write_wds(root / "wds_imagenet-a", subset_names("a"), p["imagenet_a"], ext="webp"),
        "objectnet": write_objectnet(root / "objectnet"),
    }


def probe_copy(path: Path, sources: dict[str, Path], *, models: Sequence[str],
               objectnet_mode: str | None = None, templates: object | None = None,
               datasets: Sequence[str] | None = None) -> Path:
    """The shipped probe, written to ``path`` with each dataset's ``source`` set to its local
    copy; the models replaced; optionally another ObjectNet mode, templates, or fewer datasets."""
    spec = yaml.safe_load(SHIPPED_PROBE.read_text(encoding="utf-8"))
    kept = []
    for ds in spec["datasets"]:
        if datasets is not None and ds["adapter"] not in datasets:
            continue
        ds["source"] = str(sources[ds["adapter"]])
        if ds["adapter"] == "objectnet" and objectnet_mode is not None:
            ds.setdefault("options", {})["objectnet_mode"] = objectnet_mode
        kept.append(ds)
    spec["datasets"] = kept
    spec["models"] = list(models)
    if templates is not None:
        spec["templates"] = templates
    spec["report"] = {"enabled": False}
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


__all__ = [
    "OBJECTNET",
    "OBJECTNET_FOLDERS",
    "OBJECTNET_GROUPS",
    "OBJECTNET_NAMES",
    "OBJECTNET_PLAN",
    "Planted",
    "PlantedObjectNet",
    "codebook",
    "imagenet_names",
    "plans",
    "planted_image",
    "planted_rate",
    "probe_copy",
    "prompt_universe",
    "read_codes",
    "subset",
    "subset_names",
    "write_all",
]
