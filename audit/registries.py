"""The declared component tables. Targets are lazy, so listing and validating import no torch."""

from __future__ import annotations

from audit.registry import Registry, did_you_mean

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
})

#: Gate types: name -> evaluation function in :mod:`audit.gates`.
GATES: Registry[object] = Registry("gate", {
    "max_retrieval_skew": "audit.gates:eval_max_retrieval_skew",
    "max_rate": "audit.gates:eval_max_rate",
    "max_disparity": "audit.gates:eval_max_disparity",
    "no_significant_difference": "audit.gates:eval_no_significant_difference",
    "min_accuracy": "audit.gates:eval_min_accuracy",
    "min_effective_robustness": "audit.gates:eval_min_effective_robustness",
    "variant_no_increase": "audit.gates:eval_variant_no_increase",
})

#: Model id schemes other than open_clip's ``ARCH:PRETRAINED``.
MODEL_SCHEMES: Registry[type] = Registry("model scheme", {
    "open_clip": "audit.models.openclip:OpenClipModel",
    "hf-hub": "audit.models.openclip:OpenClipModel",
    "local-dir": "audit.models.openclip:OpenClipModel",
})


def dataset_columns(adapter: str) -> tuple[str, ...] | None:
    """Columns an adapter is known to provide (None when only the data can tell)."""
    cls = DATASETS.get(adapter)
    return getattr(cls, "columns", None)


def model_scheme(model_id: str) -> str:
    """The registered scheme of a model id; plain ``ARCH:PRETRAINED`` ids are open_clip's."""
    head = model_id.split(":", 1)[0]
    return head if head in MODEL_SCHEMES and head != "open_clip" else "open_clip"


def check_model_id(model_id: str) -> str | None:
    """Return a problem message for a malformed or unknown model id, or None. Imports no torch."""
    from audit.models.catalog import AUDIT_CONFIGS, architectures, pretrained_tags

    if model_scheme(model_id) not in ("open_clip", "hf-hub", "local-dir"):
        return None  # another registered adapter checks its own ids
    if model_id.startswith(("hf-hub:", "local-dir:")):
        return None if model_id.split(":", 1)[1] else "nothing after the scheme; e.g. hf-hub:org/name"
    arch, sep, pretrained = model_id.partition(":")
    if not sep or not arch or not pretrained:
        return (
            f"model '{model_id}' must be ARCH:PRETRAINED (e.g. ViT-B-32:openai or "
            f"ViT-B-32:/path/ckpt.pt), hf-hub:org/name or local-dir:/path"
        )
    archs = architectures()
    if archs and arch not in archs:
        return f"unknown open_clip architecture '{arch}'{did_you_mean(arch, sorted(archs))}"
    tags = pretrained_tags().get(arch, ())
    if pretrained == "random" or "/" in pretrained or "\\" in pretrained or "." in pretrained:
        return None  # random init or a checkpoint path: checked when the run loads it
    if tags and pretrained not in tags:
        return f"'{pretrained}' is not a pretrained tag of {arch}{did_you_mean(pretrained, tags)}"
    if not tags and not (AUDIT_CONFIGS / f"{arch}.json").exists():
        return f"{arch} has no pretrained tags; pass a checkpoint path (ARCH:/path/ckpt.pt) or ARCH:random"
    return None
