"""ImageNet and its distribution shifts: ImageNet-V2, -Sketch, -R, -A and ObjectNet.

Default: LAION's clip_benchmark webdataset repos (``clip-benchmark/wds_*``, split ``test``) read
with ``datasets``' built-in webdataset builder; class names from ``classnames.txt`` and templates
from ``zeroshot_classification_templates.txt`` (placeholder ``{c}``). Local copies in the original
release layouts are read too (``options.layout`` or auto-detected):

* ``wnid_folders``: ``<wnid>/<image>``; label = position of the wnid in the sorted 1000 (or the
  200 of ImageNet-R/A, taken from timm's shipped lists);
* ``imagenetv2_folders``: folders ``0``..``999``; label = ``int(folder)``, NOT the string-sorted
  folder order (``10`` sorts before ``2``);
* ``objectnet_release``: ``objectnet-1.0/images/<folder>`` + ``mappings/``.

Metadata: ``image_id``, ``target`` (class name) and ``target_index``. ``DatasetInfo.extra``:
``layout``; ``imagenet_indices`` (R, A: the 200 ImageNet indices of the classes, in order);
``variant`` (V2); ``objectnet_mode``, ``objectnet_to_imagenet``, ``border_crop_px`` (ObjectNet).
"""

from __future__ import annotations

import ast
import importlib.util
import json
import re
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from audit.data import (
    IMAGE_ID,
    TARGET,
    TARGET_INDEX,
    Table,
    TableDataset,
    build_dataset,
    check_options,
    local_signature,
)
from audit.data.base import AdapterBase, Option, option_help
from audit.data.hf import (
    HFImages,
    Source,
    hub_file,
    image_columns,
    open_split,
    resolve_source,
)
from audit.data.imagefolder import folder_table, subfolders
from audit.errors import DataError, MissingDependency, UserError
from audit.registry import did_you_mean

WDS, WNID, V2, OBJECTNET = "webdataset", "wnid_folders", "imagenetv2_folders", "objectnet_release"
V2_VARIANTS = ("matched-frequency", "threshold0.7", "top-images")
OBJECTNET_MODES = ("objectnet_113", "imagenet_collapse")
_WNID_RE = re.compile(r"^n\d{8}$")
_MAPPINGS = ("folder_to_objectnet_label.json", "objectnet_to_imagenet_1k.json",
             "pytorch_to_imagenet_2012_id.json", "imagenet_to_label_2012_v2")


def timm_info(name: str) -> list[str]:
    """Lines of a list shipped in ``timm/data/_info/`` (found without importing timm or torch)."""
    spec = importlib.util.find_spec("timm")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("timm", "ImageNet class lists (shipped with open_clip's timm)")
    path = Path(next(iter(spec.submodule_search_locations)), "data", "_info", name)
    if not path.is_file():
        raise DataError(f"timm does not ship {name} (looked for {path})", fix="pip install -U timm")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def imagenet_wnids() -> list[str]:
    """The 1000 ImageNet-1k wnids in index order (sorted)."""
    return sorted(timm_info("imagenet_synsets.txt"))


def subset_indices(subset: str) -> list[int]:
    """ImageNet indices of ImageNet-R's or -A's 200 classes (``subset`` = ``r`` or ``a``)."""
    return [int(v) for v in timm_info(f"imagenet_{subset}_indices.txt")]


def openai_classnames() -> tuple[str, ...]:
    """OpenAI's 1000 ImageNet class names, as shipped by open_clip.

    Read as a literal from ``open_clip/zero_shot_metadata.py`` so that loading a dataset does not
    import torch (~10 s cold); falls back to importing it should the file change shape.
    """
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise MissingDependency("open_clip_torch", "ImageNet class names")
    source = Path(next(iter(spec.submodule_search_locations)), "zero_shot_metadata.py")
    try:
        for node in ast.parse(source.read_text(encoding="utf-8")).body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and getattr(node.targets[0], "id", None) == "IMAGENET_CLASSNAMES"):
                names = tuple(ast.literal_eval(node.value))
                if len(names) == 1000:
                    return names
    except (OSError, SyntaxError, ValueError):
        pass
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    return tuple(IMAGENET_CLASSNAMES)


def _lines(path: Path) -> list[str]:
    return _lines_of(path.read_text(encoding="utf-8"))


def _lines_of(text: str | None) -> list[str]:
    """Non-empty stripped lines (line i of classnames.txt is class i)."""
    return [s.strip() for s in (text or "").splitlines() if s.strip()]


class ImageNetAdapter(AdapterBase):
    """ImageNet-1k validation (``clip-benchmark/wds_imagenet1k``), or a local wnid tree."""

    columns: ClassVar[tuple[str, ...] | None] = ("target",)
    default_source: ClassVar[str | None] = "clip-benchmark/wds_imagenet1k"
    default_split: ClassVar[str] = "test"
    layouts: ClassVar[tuple[str, ...]] = (WDS, WNID)
    subset: ClassVar[str | None] = None
    options: ClassVar[dict[str, Option]] = {
        "layout": Option("choice", "webdataset | wnid_folders (default: detected from the directory)",
                         choices=(WDS, WNID)),
    }
    options_help: ClassVar[dict[str, str]] = option_help(options)

    def option(self, key: str, choices: tuple[str, ...] | None = None, default: Any = None) -> Any:
        value = self.spec.options.get(key, default)
        if choices is not None and value not in choices:
            raise UserError(f"dataset.options.{key}: '{value}' is not one of {', '.join(choices)}"
                            f"{did_you_mean(str(value), choices)}", fix=f"use one of {list(choices)}")
        return value

    # -- shared flow -----------------------------------------------------------------------

    def load(self) -> TableDataset:
        spec = self.spec
        check_options(spec, self.options, self.resolve)
        if spec.target not in (None, TARGET):
            raise UserError(f"dataset.target: {spec.adapter}'s target is the class, column "
                            f"'{TARGET}', not '{spec.target}'", fix="remove dataset.target")
        source = resolve_source(spec.source, self.default_source, self.resolve, spec.adapter)
        split = spec.split or self.default_split
        layout = self.detect_layout(source, split)
        if layout == WDS:
            table = self.wds_table(source, split)
        else:
            if spec.revision:
                raise UserError("dataset.revision applies to hub ids only", fix="remove it")
            assert source.local is not None
            table = self.local_table(source.local, layout, split)
        table.extra = {"layout": layout, **table.extra, **self.extra(table, layout)}
        if source.local is not None:
            table.extra["local_signature"] = local_signature(source.local)
        return build_dataset(spec, table, source=source.id, config=None, split=split,
                             revision=spec.revision)

    def detect_layout(self, source: Source, split: str) -> str:
        """``options.layout``, else webdataset for hub ids and tar shards, else the local tree."""
        if "layout" in self.spec.options:
            layout = str(self.option("layout", self.layouts))
            if layout != WDS and source.local is None:
                raise UserError(f"layout {layout} needs a local directory, not hub id '{source.id}'",
                                fix="set dataset.source to the extracted release directory")
            return layout
        if source.local is None or any((source.local / split).glob("*.tar")):
            return WDS
        detected = self.detect_local(source.local)
        if detected is None:
            raise DataError(
                f"cannot tell the layout of {source.local} (subfolders: "
                f"{', '.join(subfolders(source.local)[:8]) or 'none'})",
                fix=f"expected one of {', '.join(self.layouts)}: '{split}/*.tar' shards plus "
                    f"classnames.txt, or the release's folders; or set dataset.options.layout")
        return detected

    def detect_local(self, root: Path) -> str | None:
        return WNID if self.wnid_root(root, self.spec.split or "val") is not None else None

    def extra(self, table: Table, layout: str) -> dict[str, Any]:
        """Adapter-specific entries of ``DatasetInfo.extra`` (may also set ``table.border_crop``)."""
        return {}

    # -- webdataset ------------------------------------------------------------------------

    def wds_table(self, source: Source, split: str) -> Table:
        revision = self.spec.revision
        if source.local is not None:
            names_path = source.local / "classnames.txt"
            if not names_path.is_file():
                raise DataError(f"{names_path} not found", fix="the webdataset layout needs "
                                "classnames.txt (one class name per line, line i = label i)")
            names = _lines(names_path)
            tpl_path = source.local / "zeroshot_classification_templates.txt"
            templates = _lines(tpl_path) if tpl_path.is_file() else None
        else:
            names = _lines_of(hub_file(source.id, "classnames.txt", revision, split=split))
            tpl = hub_file(source.id, "zeroshot_classification_templates.txt", revision, split=split,
                           required=False)
            templates = _lines_of(tpl) if tpl is not None else None
        ds = open_split(source, config=None, split=split, revision=revision,
                        data_files={split: f"{split}/*.tar"})
        images = image_columns(ds.features)
        if not images or "cls" not in ds.features:
            raise DataError(f"'{source.id}' split {split} is not a classification webdataset "
                            f"(columns: {', '.join(ds.features)}); each sample needs an image and a .cls")
        raw = ds.select_columns(["__key__", "cls"]).to_pandas()
        index = raw["cls"].to_numpy(dtype=np.int64)
        bad = (index < 0) | (index >= len(names))
        if bad.any():
            raise DataError(f"'{source.id}': {int(bad.sum())} samples have labels outside "
                            f"classnames.txt's {len(names)} classes (e.g. {raw['__key__'][bad].iloc[0]})")
        meta = pd.DataFrame({IMAGE_ID: raw["__key__"].astype(str).to_numpy(),
                             TARGET: np.asarray(names, dtype=object)[index], TARGET_INDEX: index})
        return Table(meta, HFImages(ds, images), base_fingerprint=str(ds._fingerprint),
                     class_names=tuple(names), templates=tuple(templates) if templates else None,
                     extra={"image_columns": images})

    # -- original layouts ------------------------------------------------------------------

    def local_table(self, root: Path, layout: str, split: str) -> Table:
        wnids = self.universe()
        base = self.wnid_root(root, split)
        if base is None:
            raise DataError(f"no wnid folders (n########) found in {root}",
                            fix="point dataset.source at the folder holding the wnid folders")
        position = {w: i for i, w in enumerate(wnids)}
        unknown = [f for f in subfolders(base) if f not in position]
        if unknown:
            raise DataError(f"{base} has {len(unknown)} folders that are not classes of "
                            f"{self.spec.adapter}: {', '.join(unknown[:5])}",
                            fix="remove them, or check the adapter (imagenet, imagenet_r, imagenet_a)")
        folders = [(f, position[f]) for f in sorted(subfolders(base), key=position.__getitem__)]
        return folder_table(base, folders, self.class_names(root, len(wnids)))

    def universe(self) -> list[str]:
        """The wnids of this dataset's classes, in label order."""
        wnids = imagenet_wnids()
        return wnids if self.subset is None else [wnids[i] for i in subset_indices(self.subset)]

    @staticmethod
    def wnid_root(root: Path, split: str) -> Path | None:
        """The directory holding the wnid folders: root, root/<split>, root/val, or an only child."""
        children = subfolders(root)
        candidates = [root, root / split, root / "val"]
        if len(children) == 1:
            candidates.append(root / children[0])
        for c in candidates:
            if c.is_dir() and (names := subfolders(c)) and all(_WNID_RE.match(n) for n in names):
                return c
        return None

    def class_names(self, root: Path, n: int) -> tuple[str, ...]:
        """``root/classnames.txt`` if present, else OpenAI's names (of the subset, for R/A)."""
        path = root / "classnames.txt"
        if path.is_file():
            names = _lines(path)
            if len(names) != n:
                raise DataError(f"{path} lists {len(names)} names; {self.spec.adapter} has {n} classes")
            return tuple(names)
        names_1k = openai_classnames()
        return names_1k if self.subset is None else tuple(names_1k[i] for i in subset_indices(self.subset))


class ImageNetSketchAdapter(ImageNetAdapter):
    """ImageNet-Sketch (``clip-benchmark/wds_imagenet_sketch``), or its ``sketch/<wnid>`` tree."""

    default_source: ClassVar[str | None] = "clip-benchmark/wds_imagenet_sketch"


class _SubsetAdapter(ImageNetAdapter):
    def extra(self, table: Table, layout: str) -> dict[str, Any]:
        assert self.subset is not None
        indices = subset_indices(self.subset)
        if table.class_names is not None and len(table.class_names) != len(indices):
            raise DataError(f"{self.spec.adapter} has {len(table.class_names)} class names; "
                            f"expected the {len(indices)} of the ImageNet subset")
        return {"imagenet_indices": indices}


class ImageNetRAdapter(_SubsetAdapter):
    """ImageNet-R, 200 classes (``clip-benchmark/wds_imagenet-r``, or ``imagenet-r/<wnid>``)."""

    default_source: ClassVar[str | None] = "clip-benchmark/wds_imagenet-r"
    subset: ClassVar[str | None] = "r"


class ImageNetAAdapter(_SubsetAdapter):
    """ImageNet-A, 200 classes (``clip-benchmark/wds_imagenet-a``, or ``imagenet-a/<wnid>``)."""

    default_source: ClassVar[str | None] = "clip-benchmark/wds_imagenet-a"
    subset: ClassVar[str | None] = "a"


class ImageNetV2Adapter(ImageNetAdapter):
    """ImageNet-V2. The webdataset repo holds matched-frequency; the other variants are read
    from the extracted tarballs (``imagenetv2-<variant>-format-val/0..999``)."""

    default_source: ClassVar[str | None] = "clip-benchmark/wds_imagenetv2"
    layouts: ClassVar[tuple[str, ...]] = (WDS, V2)
    options: ClassVar[dict[str, Option]] = {
        "layout": Option("choice", "webdataset | imagenetv2_folders (default: detected)", choices=(WDS, V2)),
        "variant": Option("choice", "matched-frequency (default) | threshold0.7 | top-images",
                          choices=V2_VARIANTS),
    }
    options_help: ClassVar[dict[str, str]] = option_help(options)

    def detect_local(self, root: Path) -> str | None:
        return V2 if self._v2_base(root, strict=False) is not None else None

    def _v2_base(self, root: Path, strict: bool = True) -> Path | None:
        variant = str(self.option("variant", V2_VARIANTS, "matched-frequency"))
        names = subfolders(root)
        if names and all(n.isdigit() for n in names):
            named = [v for v in V2_VARIANTS if v in root.name]
            if strict and named and named[0] != variant and "variant" in self.spec.options:
                raise UserError(f"{root} looks like ImageNetV2 {named[0]}, but options.variant "
                                f"is {variant}", fix="fix options.variant or dataset.source")
            return root
        for name in (f"imagenetv2-{variant}-format-val", f"imagenetv2-{variant}", variant):
            if (root / name).is_dir():
                return root / name
        return None

    def local_table(self, root: Path, layout: str, split: str) -> Table:
        base = self._v2_base(root)
        if base is None:
            raise DataError(f"no ImageNetV2 folders 0..999 in {root}",
                            fix="extract imagenetv2-<variant>.tar.gz and point dataset.source at it")
        bad = [f for f in subfolders(base) if not f.isdigit() or not 0 <= int(f) < 1000]
        if bad:
            raise DataError(f"{base} has folders that are not ImageNet indices 0..999: {bad[:5]}")
        # The label is int(folder): string order would put folder '10' at position 2.
        folders = [(f, int(f)) for f in sorted(subfolders(base), key=int)]
        return folder_table(base, folders, self.class_names(root, 1000))

    def extra(self, table: Table, layout: str) -> dict[str, Any]:
        variant = str(self.option("variant", V2_VARIANTS, "matched-frequency"))
        if layout == WDS and variant != "matched-frequency":
            raise UserError(f"the ImageNetV2 webdataset holds matched-frequency, not {variant}",
                            fix=f"download imagenetv2-{variant}.tar.gz (vaishaal/ImageNetV2), "
                                "extract it and set dataset.source to the folder")
        return {"variant": variant}


def read_objectnet_mappings(mappings: Path) -> tuple[dict[str, str], dict[str, list[int]]]:
    """The release's ``mappings/`` -> (folder -> ObjectNet label, mapped folder -> ImageNet
    indices). ImageNet labels go through the 2012 ids to pytorch (sorted-wnid) indices."""
    missing = [m for m in _MAPPINGS if not (mappings / m).is_file()]
    if missing:
        raise DataError(f"ObjectNet mapping files missing in {mappings}: {', '.join(missing)}",
                        fix="point at the release's objectnet-1.0/mappings folder")
    folder_to_label: dict[str, str] = json.loads((mappings / _MAPPINGS[0]).read_text(encoding="utf-8"))
    label_to_in: dict[str, str] = json.loads((mappings / _MAPPINGS[1]).read_text(encoding="utf-8"))
    pid_to_2012: dict[str, int] = json.loads((mappings / _MAPPINGS[2]).read_text(encoding="utf-8"))
    lines = (mappings / _MAPPINGS[3]).read_text(encoding="utf-8").splitlines()
    label_to_2012 = {v.strip(): i for i, v in enumerate(lines)}
    id2012_to_pid = {int(v): int(k) for k, v in pid_to_2012.items()}
    label_to_folder = {v: k for k, v in folder_to_label.items()}
    try:
        folder_to_pids = {
            label_to_folder[on]: [id2012_to_pid[label_to_2012[name]] for name in names.split("; ")]
            for on, names in label_to_in.items()
        }
    except KeyError as err:
        raise DataError(f"ObjectNet mappings in {mappings} are inconsistent: {err} is not listed") from err
    return folder_to_label, folder_to_pids


class ObjectNetAdapter(ImageNetAdapter):
    """ObjectNet's 113 classes that overlap ImageNet (``clip-benchmark/wds_objectnet``, or the
    release). Class index = position of the folder among the sorted mapped folders.

    ``objectnet_mode``: ``objectnet_113`` (113-way over ObjectNet's lower-cased names,
    clip_benchmark's way) or ``imagenet_collapse`` (1000-way ImageNet scores, max over the mapped
    classes, after a 2-px border crop: the imagenet-testbed's way). ``extra["objectnet_to_imagenet"]``
    maps class index -> ImageNet indices; the webdataset repo lacks it, so it comes from
    ``options.mappings_dir`` (the release's ``mappings/``) and is None without it.
    In ``imagenet_collapse`` mode ``class_names`` are ImageNet's 1000 (what is scored),
    ``extra["collapse_groups"]`` lists each ObjectNet class's ImageNet indices and
    ``extra["collapse_names"]`` the 113 ObjectNet names; ``target_index`` stays 0..112.
    """

    default_source: ClassVar[str | None] = "clip-benchmark/wds_objectnet"
    layouts: ClassVar[tuple[str, ...]] = (WDS, OBJECTNET)
    options: ClassVar[dict[str, Option]] = {
        "layout": Option("choice", "webdataset | objectnet_release (default: detected)",
                         choices=(WDS, OBJECTNET)),
        "objectnet_mode": Option("choice", "objectnet_113 (default) | imagenet_collapse",
                                 choices=OBJECTNET_MODES),
        "mappings_dir": Option("dir", "the release's objectnet-1.0/mappings folder (for the webdataset layout)"),
        "border_crop": Option("int", "pixels cropped from each border (default 2 for imagenet_collapse, else 0)",
                              bounds=(0, 4096)),
    }
    options_help: ClassVar[dict[str, str]] = option_help(options)

    @staticmethod
    def release_base(root: Path) -> Path | None:
        for base in (root, root / "objectnet-1.0"):
            if (base / "mappings").is_dir() and (base / "images").is_dir():
                return base
        return None

    def detect_local(self, root: Path) -> str | None:
        return OBJECTNET if self.release_base(root) is not None else None

    def local_table(self, root: Path, layout: str, split: str) -> Table:
        base = self.release_base(root)
        if base is None:
            raise DataError(f"no ObjectNet release (images/ and mappings/) in {root}",
                            fix="point dataset.source at the extracted objectnet-1.0 folder")
        folder_to_label, folder_to_pids = read_objectnet_mappings(base / "mappings")
        folders = sorted(folder_to_pids)
        absent = [f for f in folders if not (base / "images" / f).is_dir()]
        if absent:
            raise DataError(f"{base / 'images'} lacks {len(absent)} mapped class folders: {absent[:5]}")
        names = [folder_to_label[f].lower() for f in folders]
        table = folder_table(base / "images", [(f, i) for i, f in enumerate(folders)], names)
        table.extra["objectnet_to_imagenet"] = {i: folder_to_pids[f] for i, f in enumerate(folders)}
        return table

    def extra(self, table: Table, layout: str) -> dict[str, Any]:
        mode = str(self.option("objectnet_mode", OBJECTNET_MODES, "objectnet_113"))
        mapping = table.extra.get("objectnet_to_imagenet")
        if mapping is None and "mappings_dir" in self.spec.options:
            _, folder_to_pids = read_objectnet_mappings(self.resolve(str(self.spec.options["mappings_dir"])))
            folders = sorted(folder_to_pids)
            n = len(table.class_names or ())
            if len(folders) != n:
                raise DataError(f"the mappings list {len(folders)} ObjectNet classes; the dataset has {n}")
            # clip_benchmark's classnames.txt follows the sorted mapped folders.
            mapping = {i: folder_to_pids[f] for i, f in enumerate(folders)}
        if mode == "imagenet_collapse" and mapping is None:
            raise UserError(
                "objectnet_mode imagenet_collapse needs the ObjectNet -> ImageNet mapping, which "
                "the webdataset repo does not hold",
                fix="set dataset.options.mappings_dir to the release's objectnet-1.0/mappings "
                    "folder, or use objectnet_mode: objectnet_113")
        border = self.spec.options.get("border_crop", 2 if mode == "imagenet_collapse" else 0)
        if isinstance(border, bool) or not isinstance(border, int) or border < 0:
            raise UserError(f"dataset.options.border_crop must be a whole number >= 0, not {border!r}")
        table.border_crop = border
        out: dict[str, Any] = {"objectnet_mode": mode, "objectnet_to_imagenet": mapping,
                               "border_crop_px": border}
        if mode == "imagenet_collapse":
            assert mapping is not None
            # Score over ImageNet's 1000 names, then max over each ObjectNet class's group.
            out["collapse_names"] = list(table.class_names or ())
            out["collapse_groups"] = [mapping[i] for i in range(len(mapping))]
            table.class_names = openai_classnames()
        return out
