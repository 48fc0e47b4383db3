"""The declared component tables. Targets are lazy, so listing and validating import no torch."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from audit.registry import Registry

#: Dataset adapters: name -> class implementing :class:`audit.data.base.DatasetAdapter`.
DATASETS: Registry[type] = Registry("dataset adapter", {
    "fairface": "audit.data.fairface:FairFaceAdapter",
    "hf": "audit.data.hf:HFAdapter",
    "imagefolder": "audit.data.imagefolder:ImageFolderAdapter",
    "imagenet": "audit.data.imagenet:ImageNetAdapter",
    "imagenet_v2": "audit.data.imagenet:ImageNetV2Adapter",
    "imagenet_sketch": "audit.data.imagenet:ImageNetSketchAdapter",
    "imagenet_r": "audit.data.imagenet:ImageNetRAdapter",
    "imagenet_a": "audit.data.imagenet:ImageNetAAdapter",
    "objectnet": "audit.data.imagenet:ObjectNetAdapter",
    "synthetic_fairface": "audit.data.synthetic:SyntheticFairFaceAdapter",
    "demo_world": "audit.demo.adapter:DemoWorldAdapter",
    "wds": "audit.data.wds:WdsAdapter",
    "facet": "audit.data.facet:FacetAdapter",
})

#: Metrics: name -> :class:`audit.metrics.base.MetricDef`.
METRICS: Registry[object] = Registry("metric", {
    "category_rate": "audit.metrics.fairness:CATEGORY_RATE",
    "disparity": "audit.metrics.fairness:DISPARITY",
    "independence_test": "audit.metrics.fairness:INDEPENDENCE_TEST",
    "pairwise_test": "audit.metrics.fairness:PAIRWISE_TEST",
    "variant_change": "audit.metrics.fairness:VARIANT_CHANGE",
    "template_sensitivity": "audit.metrics.fairness:TEMPLATE_SENSITIVITY",
    "accuracy": "audit.metrics.accuracy:ACCURACY",
    "balanced_accuracy": "audit.metrics.accuracy:BALANCED_ACCURACY",
    "top5_accuracy": "audit.metrics.accuracy:TOP5_ACCURACY",
    "mean_per_class_recall": "audit.metrics.accuracy:MEAN_PER_CLASS_RECALL",
    "worst_group_accuracy": "audit.metrics.worst_group:WORST_GROUP_ACCURACY",
    "worst_group_top5_accuracy": "audit.metrics.worst_group:WORST_GROUP_TOP5_ACCURACY",
    "accuracy_test": "audit.metrics.worst_group:ACCURACY_TEST",
    "class_recall": "audit.metrics.person_recall:CLASS_RECALL",
    "recall_disparity": "audit.metrics.person_recall:RECALL_DISPARITY",
})

#: More probe cross-checks, contributed by feature modules so that the one loader runs them all:
#: name -> "module:attr" of ``fn(spec, label_sets: list[LabelSet], resolve) -> list[Problem]``
#: (``resolve`` turns a path written in the probe into a Path). Must import no torch.
PROBE_CHECKS: Registry[object] = Registry("probe check", {
    "associations": "audit.association:check_associations",
})

#: Metrics that report category rates: the probe must name categories for them. Declared here,
#: beside the lazy table, so `validate` need not import the metric code (scipy, statsmodels);
#: tests check it against each MetricDef's ``needs_categories``.
CATEGORY_METRICS = frozenset({
    "category_rate", "disparity", "independence_test", "pairwise_test", "variant_change",
    "template_sensitivity",
})
#: Metrics that need a ground truth (``MetricDef.needs_target``).
TARGET_METRICS = frozenset({"accuracy", "balanced_accuracy", "top5_accuracy", "mean_per_class_recall",
                            "worst_group_accuracy", "worst_group_top5_accuracy", "accuracy_test",
                            "class_recall", "recall_disparity"})

#: Gate types: name -> evaluation function in :mod:`audit.gates`.
GATES: Registry[object] = Registry("gate", {
    "max_retrieval_skew": "audit.gates:eval_max_retrieval_skew",
    "max_rate": "audit.gates:eval_max_rate",
    "max_disparity": "audit.gates:eval_max_disparity",
    "no_significant_difference": "audit.gates:eval_no_significant_difference",
    "min_accuracy": "audit.gates:eval_min_accuracy",
    "min_effective_robustness": "audit.gates:eval_min_effective_robustness",
    "variant_no_increase": "audit.gates:eval_variant_no_increase",
    "max_association": "audit.gates:eval_max_association",
    "max_recall_disparity": "audit.gates:eval_max_recall_disparity",
    "no_regression": "audit.gates:eval_no_regression",
})

#: Model id schemes (:mod:`audit.models.ids` parses the ids) -> adapter class.
MODEL_SCHEMES: Registry[type] = Registry("model scheme", {
    "open_clip": "audit.models.openclip:OpenClipModel",
    "hf-hub": "audit.models.openclip:OpenClipModel",
    "local-dir": "audit.models.openclip:OpenClipModel",
    "transformers": "audit.models.hf_transformers:TransformersModel",
})


def dataset_columns(adapter: str) -> tuple[str, ...] | None:
    """Columns an adapter is known to provide (None when only the data can tell)."""
    cls = DATASETS.get(adapter)
    return getattr(cls, "columns", None)


def model_scheme(model_id: str) -> str:
    """The registered scheme of a model id (the rule lives in :mod:`audit.models.ids`); a scheme
    registered by a plugin (``MODEL_SCHEMES.register``) is taken as written."""
    from audit.models.ids import scheme_of

    head = model_id.split(":", 1)[0]
    return head if head in MODEL_SCHEMES and head != "open_clip" else scheme_of(model_id)


def check_model_id(model_id: str, resolve: Callable[[str], Path] | None = None) -> str | None:
    """A problem message for a malformed or unknown model id, or None. Imports no torch."""
    from audit.models.ids import PREFIX_SCHEMES
    from audit.models.ids import check_model_id as check

    scheme = model_scheme(model_id)
    if scheme != "open_clip" and scheme not in PREFIX_SCHEMES:
        return None  # a plugin's scheme: its adapter checks its own ids when the run loads it
    return check(model_id, resolve)
