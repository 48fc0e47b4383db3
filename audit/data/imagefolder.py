"""Datasets that are plain trees of image files: ``root/<class>/<image>``.

:class:`ImageFolderAdapter` reads any such tree (class names = sorted folder names, as
torchvision's ``ImageFolder``). :func:`folder_table` is shared with the original-layout ImageNet
readers, which decide the label of each folder themselves (wnid position, ``int(folder)``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

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
from audit.data.hf import resolve_source
from audit.errors import DataError, UserError

#: File endings read as images (case-insensitive); other files are ignored.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".jfif", ".png", ".webp", ".bmp", ".gif", ".tif",
                              ".tiff", ".ppm", ".pgm", ".pbm"})
_SPLIT_NAMES = {"train", "val", "valid", "validation", "test"}


def list_images(folder: Path) -> list[Path]:
    """Image files under ``folder`` (recursively, hidden entries skipped), sorted by path."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [Path(dirpath, f) for f in sorted(filenames)
                  if not f.startswith(".") and os.path.splitext(f)[1].lower() in IMAGE_EXTENSIONS]
    return found


def subfolders(root: Path) -> list[str]:
    """Names of the non-hidden directories directly under ``root``, sorted as strings."""
    return sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))


class FileImages:
    """Picklable fetcher: row -> (None, path)."""

    def __init__(self, paths: Sequence[str]) -> None:
        self._paths = list(paths)

    def __call__(self, row: int) -> tuple[bytes | None, str | None]:
        return None, self._paths[row]


def folder_table(root: Path, folders: Sequence[tuple[str, int]], class_names: Sequence[str]) -> Table:
    """Rows for each ``(folder, label index)`` in the given order, files sorted within a folder.

    ``image_id`` is the file's path relative to ``root``; ``target`` is ``class_names[label]``.
    """
    paths: list[str] = []
    labels: list[int] = []
    for folder, label in folders:
        files = list_images(root / folder)
        paths += [str(p) for p in files]
        labels += [label] * len(files)
    if not paths:
        raise DataError(f"no image files found under {root} (looked in {len(folders)} folders)",
                        fix=f"image files end in one of {', '.join(sorted(IMAGE_EXTENSIONS))}")
    names = np.asarray(list(class_names), dtype=object)
    index = np.asarray(labels, dtype=np.int64)
    meta = pd.DataFrame({
        IMAGE_ID: [Path(p).relative_to(root).as_posix() for p in paths],
        TARGET: names[index],
        TARGET_INDEX: index,
    })
    # Content changes are covered by the caller's ``local_signature`` of the source root.
    return Table(meta, FileImages(paths), class_names=tuple(class_names))


class ImageFolderAdapter(AdapterBase):
    """A local tree ``root/<class>/<image>`` (or ``root/<split>/<class>/<image>`` with
    ``dataset.split``). ``target`` is the folder name; class names are the sorted folder names."""

    columns: ClassVar[tuple[str, ...] | None] = ("target",)
    default_source: ClassVar[str | None] = None
    default_split: ClassVar[str] = "all"
    not_applicable: ClassVar[tuple[str, ...]] = ("revision", "config")
    options: ClassVar[dict[str, Option]] = {}
    options_help: ClassVar[dict[str, str]] = option_help(options)

    def load(self) -> TableDataset:
        spec = self.spec
        check_options(spec, self.options, self.resolve)
        if spec.target not in (None, TARGET):
            raise UserError(f"dataset.target: imagefolder's target is the folder name, column "
                            f"'{TARGET}', not '{spec.target}'", fix="remove dataset.target")
        if spec.revision or spec.config:
            raise UserError("dataset.revision / dataset.config do not apply to imagefolder",
                            fix="remove them")
        source = resolve_source(spec.source, None, self.resolve, spec.adapter)
        if source.local is None:
            raise UserError(f"imagefolder needs a local directory; '{spec.source}' is not one",
                            fix="point dataset.source at root/<class>/<image>, or use adapter hf "
                                "for a hub id")
        root = source.local
        if spec.split is not None:
            root = root / spec.split
            if not root.is_dir():
                raise UserError(f"split folder not found: {root}",
                                fix=f"set dataset.split to one of {subfolders(source.local)}")
        classes = subfolders(root)
        if spec.split is None and classes and set(classes) <= _SPLIT_NAMES:
            raise UserError(f"{root} holds split folders ({', '.join(classes)}), not class folders",
                            fix="set dataset.split to the one to audit")
        table = folder_table(root, [(c, i) for i, c in enumerate(classes)], classes)
        table.extra["local_signature"] = local_signature(root)
        return build_dataset(spec, table, source=source.id, config=None,
                             split=spec.split or self.default_split, revision=None)
