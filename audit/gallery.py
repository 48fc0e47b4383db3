"""Galleries of flagged images: thumbnails a report can show, written at run time (opt-in).

These are images of people, so a probe must ask for them (``report: {gallery: true}``). The
sample is reproducible (seeded from the probe) and balanced over the first subgroup column.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from audit.data.base import IMAGE_ID, LoadedDataset, UnreadableImage
from audit.fileio import atomic_write, make_dirs
from audit.results import write_csv
from audit.spec import Probe, split_categories

GALLERY_DIR = "gallery"
GALLERY_INDEX = "gallery.csv"


def write_gallery(run_dir: Path, probe: Probe, predictions: pd.DataFrame,
                  datasets: dict[str, LoadedDataset], per_group: int = 6, size: int = 96,
                  rng: np.random.Generator | None = None) -> Path | None:
    """Thumbnails of images whose top-1 label is in a flagged category, ``per_group`` per group,
    sampled with ``rng`` (the run passes its gallery stream; default: seeded from the probe)."""
    spec = probe.spec
    flagged = {c for expr in spec.categories for c in split_categories(expr)}
    if not spec.report.gallery or not flagged or predictions.empty:
        return None
    rng = rng if rng is not None else np.random.default_rng(spec.seed)
    picked = []
    hits = predictions[predictions["top1_category"].isin(flagged)]
    for (ds_name, _model, _variant), block in hits.groupby(["dataset", "model", "variant"], sort=False):
        dspec = next(d for d in spec.datasets if d.display_name == ds_name)
        by = dspec.subgroups[0] if dspec.subgroups else None
        groups = block.groupby(by, observed=True, sort=False) if by else [("all", block)]
        for _, g in groups:
            take = g.iloc[np.sort(rng.choice(len(g), size=min(per_group, len(g)), replace=False))]
            picked.append(take)
    if not picked:
        return None
    sample = pd.concat(picked, ignore_index=True)
    out_dir = run_dir / GALLERY_DIR
    make_dirs(out_dir)
    files = []
    for i, row in enumerate(sample.itertuples(index=False)):
        data = datasets[row.dataset]
        where = np.flatnonzero(data.metadata[IMAGE_ID].astype(str).to_numpy() == row.image_id)
        name = f"{i:04d}.jpg"
        try:
            img = data.load_image(int(where[0]))
            img.thumbnail((size, size))
        except (UnreadableImage, IndexError, OSError):  # the image, not the disk: left out
            files.append("")
            continue
        # a full or read-only disk is a DataError naming the file, not a silently missing thumbnail
        atomic_write(out_dir / name, lambda p, img=img: img.convert("RGB").save(p, format="JPEG", quality=85))
        files.append(name)
    sample = sample.assign(file=files).drop(columns=["top5_labels"], errors="ignore")
    index = run_dir / GALLERY_INDEX
    write_csv(index, sample[sample["file"] != ""])
    return index
