"""The predictions table: one row per readable image x model x variant, from ``[images, labels]`` scores."""

from __future__ import annotations

import numpy as np
import pandas as pd

from audit.classify import collapse_max, top_k
from audit.data.base import IMAGE_ID, TARGET_INDEX, LoadedDataset
from audit.labels import Vocabulary
from audit.spec import DatasetSpec


def predict_from_scores(dspec: DatasetSpec, data: LoadedDataset, model_name: str, vocab: Vocabulary,
                        scores: np.ndarray, rows: np.ndarray, *, uses_classnames: bool) -> pd.DataFrame:
    """One prediction row per readable image for one model x variant, from ``[images, labels]`` scores."""
    texts = np.array(vocab.texts, dtype=object)
    categories = np.array(vocab.categories, dtype=object)
    targets = np.array([lb.target for lb in vocab.labels], dtype=object)
    groups = data.info.extra.get("collapse_groups")
    if groups is not None:  # e.g. ObjectNet scored 1000-way, collapsed to its 113 classes
        scores = collapse_max(scores, groups)
        texts = np.array(data.info.extra["collapse_names"], dtype=object)
        categories = np.array(["class"] * len(texts), dtype=object)
        targets = np.array([str(i) for i in range(len(texts))], dtype=object)
    best = top_k(scores, 5)
    meta = data.metadata.iloc[rows].reset_index(drop=True)
    out = pd.DataFrame({"dataset": dspec.display_name, "model": model_name, "variant": vocab.variant,
                        IMAGE_ID: meta[IMAGE_ID].astype(str)})
    order = data.info.extra.get("label_order", {})
    for col in dspec.subgroups:  # label strings; a missing attribute stays missing, not "nan"
        values = meta[col].map(lambda v: None if pd.isna(v) else str(v))
        # keep the dataset's own label order (age bins 0-2, 3-9, ...), not string order
        out[col] = pd.Categorical(values, categories=order[col]) if col in order else values.to_numpy()
    has_target = dspec.target is not None or TARGET_INDEX in meta.columns
    out["target"] = meta["target"].astype(str).to_numpy() if has_target and "target" in meta else None
    # class index of the target: class names may repeat (OpenAI's ImageNet names do), indices don't
    out["target_index"] = (meta[TARGET_INDEX].astype("Int64").to_numpy() if TARGET_INDEX in meta
                           else pd.array([pd.NA] * len(out), dtype="Int64"))
    out["top1_label"] = texts[best[:, 0]]
    out["top1_category"] = categories[best[:, 0]]
    out["top5_labels"] = [list(texts[r]) for r in best]
    out["top1_score"] = scores[np.arange(len(best)), best[:, 0]].astype(float)
    if has_target:
        key = (meta[TARGET_INDEX].astype(str) if uses_classnames or groups is not None else meta["target"].astype(str)).to_numpy()
        out["correct"] = targets[best[:, 0]] == key
        out["top5_correct"] = (targets[best] == key[:, None]).any(axis=1)
    else:
        out["correct"] = pd.array([pd.NA] * len(out), dtype="boolean")
        out["top5_correct"] = pd.array([pd.NA] * len(out), dtype="boolean")
    return out


__all__ = ["predict_from_scores"]
