"""The retrieval-bias step of a run: rank the images for each text query, measure the top k.

It reuses the run's cached image embeddings, so it costs only the text encoding of the queries.
Rows land in metrics.csv with ``category`` = ``<query set>/<query>`` (and ``<query set>/mean``).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

from audit.classify import class_weights
from audit.data.base import LoadedDataset
from audit.labels import fill
from audit.metrics.breakdown import group_labels, groupings
from audit.metrics.retrieval import retrieval_metrics
from audit.spec import DatasetSpec, Probe


def retrieval_rows(probe: Probe, dspec: DatasetSpec, data: LoadedDataset, model_name: str,
                   encode_texts: Callable[[Sequence[str]], np.ndarray], embeddings: np.ndarray,
                   rows: np.ndarray, variant: str) -> pd.DataFrame:
    """Retrieval-bias metrics for one model on one dataset (rows: metadata rows of ``embeddings``;
    ``encode_texts``: prompts -> unit embeddings in the images' space, e.g. through the text cache)."""
    spec = probe.spec.retrieval
    if spec is None:
        return pd.DataFrame()
    meta = data.metadata.iloc[rows].reset_index(drop=True)
    wanted = spec.group_cols
    frames = []
    for qspec, loaded in zip(spec.query_sets, probe.query_sets):
        texts = [lb.text for lb in loaded.spec.labels]
        prompts = [fill(t, q) for q in texts for t in qspec.templates]
        flat = encode_texts(prompts)
        query_emb = class_weights(flat.reshape(len(texts), len(qspec.templates), -1))
        for grouping in groupings(dspec, overall=False):
            if wanted is not None and grouping.name not in wanted:
                continue
            labels = group_labels(meta, grouping)
            keep = labels.notna().to_numpy()  # images without the attribute are not ranked for it
            seed = zlib.crc32(f"{probe.spec.seed}|{loaded.spec.name}|{grouping.name}".encode())
            df = retrieval_metrics(
                embeddings[keep], pd.DataFrame({grouping.name: labels[keep].to_numpy()}), query_emb, texts,
                list(spec.ks), spec.desired, probe.spec.stats.n_bootstrap, np.random.default_rng(seed),
                dspec.display_name, model_name, variant, alpha=probe.spec.stats.alpha,
            )
            df["category"] = loaded.spec.name + "/" + df["category"].astype(str)
            frames.append(df)
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
