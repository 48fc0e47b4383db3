"""Probe and label-set specifications: the models, the loader and its cross-checks."""

from audit.spec.load import CLASSNAMES, LoadedLabelSet, Probe, load_label_set, load_probe
from audit.spec.models import (
    DatasetSpec,
    GateSpec,
    Label,
    LabelSet,
    MetricSpec,
    ModelSpec,
    ProbeSpec,
    StatsSpec,
    VariantSpec,
    split_categories,
)

__all__ = [
    "CLASSNAMES", "DatasetSpec", "GateSpec", "Label", "LabelSet", "LoadedLabelSet", "MetricSpec",
    "ModelSpec", "Probe", "ProbeSpec", "StatsSpec", "VariantSpec", "load_label_set", "load_probe",
    "split_categories",
]
