"""FACET (Gustafson et al., ICCV 2023): people in 32k images, one row per annotated person.

FACET is not on the Hugging Face hub: the user accepts Meta's licence, downloads the annotations
and the image archives from https://ai.meta.com/datasets/facet-downloads/ and points
``dataset.source`` at the directory they were extracted into. Nothing is bundled here.

Layout read (``<root>`` = ``dataset.source``):

- ``<root>/annotations/annotations.csv`` (or ``<root>/annotations.csv``): one row per person.
- The images anywhere below ``<root>`` (the download's ``imgs_1/``, ``imgs_2/``, ``imgs_3/``
  folders, or ``images/``), found by file name (the ``filename`` column).

Where each column name comes from (public sources; the release has no loader of its own that we
could read): ``person_id``, ``filename``, ``class1``, ``class2``, ``bounding_box`` (a JSON object
``{"x", "y", "width", "height"}`` in pixels) and the per-annotator indicator columns
``gender_presentation_{masc,fem,non_binary,na}``, ``skin_tone_{1..10,na}`` (Monk Skin Tone scale),
``age_presentation_{young,middle,older,na}``, ``hair_color_*``, ``hairtype_*``, ``has_*``,
``visible_*`` and ``lighting_*`` are the names used by public code that reads Meta's
``annotations.csv`` (e.g. converters of FACET to COCO format and fairness-benchmark loaders on
GitHub that read ``person_id``, ``filename``, ``class1`` and ``gender_presentation_masc/fem``),
matching the attribute names in the FACET paper. The 52 class names are those of the same
loaders (``astronaut`` ... ``waiter``), the paper's person classes.

Derived columns (our documented choice; FACET records how many annotators chose each value):

- ``gender_presentation``: ``masc``, ``fem`` or ``non_binary``, the value with the most votes;
  missing when none has a vote or two tie.
- ``age_presentation``: ``young``, ``middle`` or ``older``, the same rule.
- ``skin_tone``: ``lighter`` (MST 1-3), ``medium`` (4-6) or ``darker`` (7-10), the range with the
  most votes, the same rule.

Any other column of the file named in ``dataset.subgroups`` is passed through as it is. The
target is ``class1``; each image is the person's bounding-box crop (option ``crop: image`` for
the whole image; ``padding`` to widen the box by a percentage of its size on each side).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from PIL import Image

from audit.data import IMAGE_ID, TARGET, TARGET_INDEX, Table, TableDataset, build_dataset, local_signature
from audit.data.base import AdapterBase, DatasetInfo, Option, UnreadableImage, option_help, option_problems
from audit.data.imagefolder import FileImages, list_images
from audit.errors import DataError, UserError

#: The 52 FACET person classes, in the index order public loaders use (sorted).
FACET_CLASSES = (
    "astronaut", "backpacker", "ballplayer", "bartender", "basketball_player", "boatman", "carpenter",
    "cheerleader", "climber", "computer_user", "craftsman", "dancer", "disk_jockey", "doctor", "drummer",
    "electrician", "farmer", "fireman", "flutist", "gardener", "guard", "guitarist", "gymnast",
    "hairdresser", "horseman", "judge", "laborer", "lawman", "lifeguard", "machinist", "motorcyclist",
    "nurse", "painter", "patient", "prayer", "referee", "repairman", "reporter", "retailer", "runner",
    "sculptor", "seller", "singer", "skateboarder", "soccer_player", "soldier", "speaker", "student",
    "teacher", "tennis_player", "trumpeter", "waiter",
)
#: Columns every row needs.
REQUIRED = ("person_id", "filename", "class1", "bounding_box")
#: Derived column -> {level: indicator columns whose votes count for it}, levels in order.
DERIVED: dict[str, dict[str, tuple[str, ...]]] = {
    "gender_presentation": {v: (f"gender_presentation_{v}",) for v in ("masc", "fem", "non_binary")},
    "age_presentation": {v: (f"age_presentation_{v}",) for v in ("young", "middle", "older")},
    "skin_tone": {"lighter": tuple(f"skin_tone_{i}" for i in range(1, 4)),
                  "medium": tuple(f"skin_tone_{i}" for i in range(4, 7)),
                  "darker": tuple(f"skin_tone_{i}" for i in range(7, 11))},
}
#: Raw attribute columns of annotations.csv (see the module docstring for their source).
RAW_COLUMNS = (
    "class2", "gender_presentation_masc", "gender_presentation_fem", "gender_presentation_non_binary",
    "gender_presentation_na", *(f"skin_tone_{i}" for i in range(1, 11)), "skin_tone_na",
    "age_presentation_young", "age_presentation_middle", "age_presentation_older", "age_presentation_na",
    "hair_color_brown", "hair_color_blonde", "hair_color_grey", "hair_color_na", "hair_color_black",
    "hair_color_colored", "hair_color_red", "hairtype_coily", "hairtype_dreadlocks", "hairtype_bald",
    "hairtype_straight", "hairtype_curly", "hairtype_wavy", "hairtype_na", "has_facial_hair", "has_tattoo",
    "has_cap", "has_mask", "has_headscarf", "has_eyeware", "visible_torso", "visible_face", "visible_minimal",
    "lighting_underexposed", "lighting_dimly_lit", "lighting_well_lit", "lighting_na", "lighting_overexposed",
)
BOX = ("box_x", "box_y", "box_w", "box_h")
HOW_TO_GET = ("accept Meta's FACET licence and download the annotations and images from "
              "https://ai.meta.com/datasets/facet-downloads/, extract them into one directory "
              "(annotations/annotations.csv, imgs_1/, imgs_2/, imgs_3/) and set dataset.source to it")


def display_name(cls: str) -> str:
    """``basketball_player`` -> ``basketball player`` (the text that goes into prompts)."""
    return cls.replace("_", " ")


def find_annotations(root: Path) -> Path:
    for candidate in (root / "annotations" / "annotations.csv", root / "annotations.csv"):
        if candidate.is_file():
            return candidate
    raise DataError(f"FACET annotations not found under {root} (looked for annotations/annotations.csv "
                    "and annotations.csv)", fix=HOW_TO_GET)


def read_annotations(path: Path, wanted: tuple[str, ...]) -> pd.DataFrame:
    """The annotation table, checked for every column the probe needs (all missing ones at once)."""
    try:
        frame = pd.read_csv(path, dtype={"person_id": str, "filename": str, "class1": str})
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise DataError(f"cannot read FACET annotations {path}: {exc}", fix=HOW_TO_GET) from None
    needed = list(REQUIRED) + [c for col in wanted for c in _sources(col)]
    missing = [c for c in dict.fromkeys(needed) if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks column(s) {', '.join(missing)} (columns found: {', '.join(frame.columns)})",
                        fix="use Meta's annotations.csv unchanged, or rename your columns to FACET's names")
    dup = frame["person_id"][frame["person_id"].duplicated()]
    if len(dup):
        raise DataError(f"{path}: person_id is not unique (e.g. {', '.join(map(str, dup.iloc[:3]))})")
    return frame


def _sources(col: str) -> tuple[str, ...]:
    return tuple(c for cols in DERIVED[col].values() for c in cols) if col in DERIVED else (col,)


def majority(frame: pd.DataFrame, levels: dict[str, tuple[str, ...]]) -> pd.Series:
    """The level with the most votes per row; None when no vote or a tie at the top."""
    votes = np.stack([frame[list(cols)].fillna(0).astype(float).sum(axis=1).to_numpy() for cols in levels.values()], axis=1)
    names = np.array(list(levels), dtype=object)
    top = votes.max(axis=1)
    unique = (votes == top[:, None]).sum(axis=1) == 1
    out = np.where((top > 0) & unique, names[votes.argmax(axis=1)], None)
    return pd.Series(out, index=frame.index, dtype=object)


def parse_boxes(frame: pd.DataFrame, path: Path) -> np.ndarray:
    """``[N, 4]`` boxes (x, y, width, height) from the JSON ``bounding_box`` column; every bad row listed."""
    boxes, bad = np.zeros((len(frame), 4)), []
    for i, text in enumerate(frame["bounding_box"].astype(str)):
        try:
            box = json.loads(text)
            boxes[i] = [float(box[k]) for k in ("x", "y", "width", "height")]
            if not all(math.isfinite(v) for v in boxes[i]) or boxes[i, 2] <= 0 or boxes[i, 3] <= 0:
                raise ValueError("non-positive or non-finite size")
        except (ValueError, KeyError, TypeError) as exc:
            bad.append(f"person_id {frame['person_id'].iat[i]}: {text[:60]!r} ({exc})")
    if bad:
        shown = "; ".join(bad[:5]) + (f"; and {len(bad) - 5} more" if len(bad) > 5 else "")
        raise DataError(f"{path}: bounding_box must be a JSON object with x, y, width, height: {shown}")
    return boxes


class PersonCrops:
    """A loaded dataset whose images are the bounding-box crops of the people (picklable)."""

    def __init__(self, inner: TableDataset, padding: float) -> None:
        self.inner, self.padding = inner, padding
        self.info: DatasetInfo = inner.info
        self.metadata: pd.DataFrame = inner.metadata

    def __len__(self) -> int:
        return len(self.inner)

    def load_image(self, row: int) -> Image.Image:
        img = self.inner.load_image(row)
        x, y, w, h = (float(self.metadata[c].iat[row]) for c in BOX)
        px, py = w * self.padding, h * self.padding
        left, top = max(0, math.floor(x - px)), max(0, math.floor(y - py))
        right, bottom = min(img.width, math.ceil(x + w + px)), min(img.height, math.ceil(y + h + py))
        if right <= left or bottom <= top:
            raise UnreadableImage(f"{self.metadata[IMAGE_ID].iat[row]}: bounding box ({x:g}, {y:g}, {w:g}, {h:g}) "
                                  f"lies outside the {img.width}x{img.height} image")
        return img.crop((left, top, right, bottom))


class FacetAdapter(AdapterBase):
    """FACET from a local download (see the module docstring)."""

    columns: ClassVar[tuple[str, ...] | None] = (*DERIVED, *RAW_COLUMNS, TARGET, "class1")
    default_source: ClassVar[str | None] = None
    default_split: ClassVar[str] = "all"
    options: ClassVar[dict[str, Option]] = {
        "crop": Option("choice", "person (default): each person's bounding-box crop; image: the whole image",
                       choices=("person", "image")),
        "padding": Option("int", "widen each box by this percentage of its size on every side (default 0)",
                          bounds=(0, 100)),
    }
    options_help: ClassVar[dict[str, str]] = option_help(options)
    not_applicable: ClassVar[tuple[str, ...]] = ("config", "revision", "split")

    def _root(self) -> Path:
        if self.spec.source is None:
            raise DataError("FACET is not bundled and has no default source", fix=HOW_TO_GET)
        root = self.resolve(self.spec.source)
        if not root.is_dir():
            raise DataError(f"FACET directory not found: {root} (dataset.source '{self.spec.source}')", fix=HOW_TO_GET)
        return root

    def load(self) -> PersonCrops | TableDataset:
        spec = self.spec
        if spec.target not in (None, TARGET, "class1"):
            raise UserError(f"dataset.target: FACET's target is the person class (class1), not '{spec.target}'",
                            fix="set target: class1 or remove it")
        problems = option_problems(spec.options, self.options, self.resolve)
        if problems:
            raise UserError("; ".join(f"dataset.options.{k}: {p}" for k, p in problems),
                            fix=f"options of facet: {', '.join(f'{k} ({v})' for k, v in self.options_help.items())}")
        crop, padding = spec.options.get("crop", "person"), int(spec.options.get("padding", 0)) / 100
        root = self._root()
        path = find_annotations(root)
        frame = read_annotations(path, tuple(spec.subgroups))
        empty = frame["person_id"][frame["class1"].isna()]
        if len(empty):
            raise DataError(f"{path}: class1 is empty for person_id {', '.join(map(str, empty.iloc[:5]))}"
                            + (f" and {len(empty) - 5} more" if len(empty) > 5 else ""))
        unknown = sorted(set(frame["class1"]) - set(FACET_CLASSES))
        if unknown:
            raise DataError(f"{path}: class1 holds values that are not FACET classes: {', '.join(unknown[:10])}",
                            fix=f"FACET's classes are: {', '.join(FACET_CLASSES)}")
        table = self._table(root, path, frame)
        dataset = build_dataset(spec, table, source=str(root), config=None, split=self.default_split, revision=None)
        return PersonCrops(dataset, padding) if crop == "person" else dataset

    def _table(self, root: Path, path: Path, frame: pd.DataFrame) -> Table:
        files = {p.name: p for p in list_images(root)}
        index = {c: i for i, c in enumerate(FACET_CLASSES)}
        meta = pd.DataFrame({IMAGE_ID: frame["person_id"].astype(str),
                             TARGET: frame["class1"].map(display_name),
                             TARGET_INDEX: frame["class1"].map(index).astype("int64"),
                             "filename": frame["filename"]})
        for col in self.spec.subgroups:
            meta[col] = majority(frame, DERIVED[col]) if col in DERIVED else frame[col].to_numpy()
        meta[list(BOX)] = parse_boxes(frame, path)
        paths = [str(files.get(name, root / name)) for name in frame["filename"]]
        extra: dict[str, Any] = {"local_signature": local_signature(root),
                                 "label_order": {c: list(DERIVED[c]) for c in self.spec.subgroups if c in DERIVED}}
        return Table(meta, FileImages(paths), class_names=tuple(display_name(c) for c in FACET_CLASSES), extra=extra)


__all__ = ["DERIVED", "FACET_CLASSES", "FacetAdapter", "PersonCrops", "majority", "parse_boxes", "read_annotations"]
