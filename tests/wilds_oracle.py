"""DataComp's fairness evaluators, rebuilt on the ``wilds`` package exactly as
mlfoundations/datacomp's ``eval_utils/fairness_eval.py`` and ``wilds_eval.py`` do (including
their replacement of WILDS' torch_scatter-based ``avg_over_groups``). Test-only oracle."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("wilds")

import wilds.common.metrics.metric as wilds_metric  # noqa: E402
import wilds.common.utils as wilds_utils  # noqa: E402
from wilds.common.grouper import CombinatorialGrouper  # noqa: E402
from wilds.common.metrics.all_metrics import Accuracy  # noqa: E402
from wilds.datasets.wilds_dataset import WILDSDataset  # noqa: E402


def _avg_over_groups(v: Any, g: Any, n_groups: int) -> tuple[Any, Any]:
    """DataComp's replacement (wilds_eval.py): scatter-add, then divide by the counts."""
    group_count = wilds_utils.get_counts(g, n_groups)
    group_avgs = torch.zeros(n_groups, dtype=torch.float, device=v.device).scatter_(
        0, index=g, src=v, reduce="add")
    group_avgs /= group_count
    return group_avgs, group_count


class TopKAccuracy(Accuracy):
    """fairness_eval.py's TopKAccuracy: a hit if the target is anywhere in the row."""

    def _compute_element_wise(self, y_pred: Any, y_true: Any) -> Any:
        return (y_pred == y_true.unsqueeze(-1)).any(-1).float()


class Evaluator(WILDSDataset):  # type: ignore[misc]
    def __init__(self, metadata: Any, fields: list[str]) -> None:
        self._metadata_array = metadata
        self._metadata_fields = fields


def _patched() -> Any:
    return pytest.MonkeyPatch.context()


def group_eval(metric: Any, fields: list[str], groupby: list[str], y_pred: Any, y_true: Any,
               metadata: np.ndarray) -> dict[str, Any]:
    meta = torch.as_tensor(metadata, dtype=torch.long)
    with _patched() as mp:
        mp.setattr(wilds_utils, "avg_over_groups", _avg_over_groups)
        mp.setattr(wilds_metric, "avg_over_groups", _avg_over_groups)
        grouper = CombinatorialGrouper(dataset=Evaluator(meta, fields), groupby_fields=groupby)
        return dict(WILDSDataset.standard_group_eval(metric, grouper, y_pred, y_true, meta)[0])


def dollar_street(top5: np.ndarray, target: np.ndarray, metadata: np.ndarray) -> dict[str, Any]:
    """DollarStreetEvaluator.eval: top-5 accuracy grouped by income_ds."""
    return group_eval(TopKAccuracy(name="acc_top5"), ["income_ds", "income_meta", "region"], ["income_ds"],
                      torch.as_tensor(top5), torch.as_tensor(target), metadata)


def geode(pred: np.ndarray, target: np.ndarray, metadata: np.ndarray) -> dict[str, Any]:
    """GeoDEEvaluator.eval: top-1 accuracy grouped by region."""
    return group_eval(Accuracy(), ["region", "country"], ["region"], torch.as_tensor(pred),
                      torch.as_tensor(target), metadata)


def faces(y_pred: np.ndarray, metadata: np.ndarray) -> dict[str, Any]:
    """FairFaceEvaluator.eval; ``y_pred[:, k]`` is the argmax for race, gender, age, toxic."""
    fields = ["age", "gender", "race", "race_binary"]
    pred = torch.as_tensor(y_pred)
    meta = torch.as_tensor(metadata)
    out: dict[str, Any] = {}
    out.update(group_eval(Accuracy(name="acc_race"), fields, ["race_binary"], (pred[:, 0] != 1).int(),
                          meta[:, 3], metadata))
    for k, label in ((1, "gender"), (2, "age")):
        out.update(group_eval(Accuracy(name=f"acc_{label}"), fields, ["race_binary"], pred[:, k],
                              meta[:, fields.index(label)], metadata))
    out.update(group_eval(Accuracy(name="acc_gender_x"), fields, ["gender", "race"], pred[:, 1],
                          meta[:, 1], metadata))
    toxic = pred[:, 3]
    ones = torch.ones_like(toxic, dtype=torch.int)
    out.update(group_eval(Accuracy(name="toxicity_crime"), fields, ["race"], (toxic >= 18).int(), ones, metadata))
    out.update(group_eval(Accuracy(name="toxicity_nonhuman"), fields, ["race"],
                          ((toxic >= 14) & (toxic < 18)).int(), ones, metadata))
    return out
