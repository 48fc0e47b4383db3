"""The association-test step of a run, and the probe checks of its ``associations:`` section.

It reuses the run's cached image embeddings, so it costs only the text encoding of the attribute
texts (cached too). Each attribute text is embedded with the probe's templates and reduced to one
unit vector the way the zero-shot head builds a class weight (:func:`audit.classify.class_weights`).
Rows land in metrics.csv as metric ``association_test`` (see :mod:`audit.metrics.association`),
under the run's base variant: attribute texts come from the label sets, not from a variant.
Generative (captioning) models have no text embedding to compare with, so they get no rows.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from audit.classify import class_weights
from audit.data.base import LoadedDataset
from audit.errors import Problem, UserError
from audit.metrics.association import association_scores, comparison_rows, holm_rows
from audit.metrics.base import MetricRow, rows_to_frame
from audit.metrics.breakdown import column_levels
from audit.registry import did_you_mean
from audit.spec.models import AssociationSpec, AttributeSetSpec, DatasetSpec, LabelSet, ProbeSpec


def attribute_texts(aset: AttributeSetSpec, labels: Sequence[Any], resolve: Callable[[str], Path]) -> list[str]:
    """The texts of an attribute set: labels of the named categories, or every label of a file."""
    if aset.labels is not None:
        from audit.spec.load import load_label_set

        return [lb.text for lb in load_label_set(resolve(aset.labels)).labels]
    wanted = set(aset.categories)
    return [lb.text for lb in labels if lb.category in wanted]


def association_rows(probe: Any, dspec: DatasetSpec, data: LoadedDataset, model_name: str,
                     encode_texts: Callable[[Sequence[str]], np.ndarray], embeddings: np.ndarray,
                     rows: np.ndarray, variant: str) -> pd.DataFrame:
    """Association-test rows of one model on one dataset (``rows``: metadata rows of ``embeddings``;
    ``encode_texts``: prompts -> embeddings in the images' space, e.g. through the text cache)."""
    from audit.labels import fill, merged_labels, resolve_templates

    spec: ProbeSpec = probe.spec
    tests = [t for t in spec.associations if t.datasets is None or dspec.display_name in t.datasets]
    if not tests:
        return rows_to_frame([])
    meta = data.metadata.iloc[rows].reset_index(drop=True)
    labels = merged_labels(probe, data.info.class_names)
    templates = resolve_templates(spec.templates, data.info.templates)

    def vectors(texts: list[str]) -> np.ndarray:
        flat = np.asarray(encode_texts([fill(t, x) for x in texts for t in templates]))
        return class_weights(flat.reshape(len(texts), len(templates), -1))

    key = {"dataset": dspec.display_name, "model": model_name, "variant": variant}
    out: list[MetricRow] = []
    for i, test in enumerate(tests):
        scores = association_scores(embeddings, vectors(attribute_texts(test.a, labels, probe.resolve)),
                                    vectors(attribute_texts(test.b, labels, probe.resolve)))
        groups = meta[test.group_col]
        order = data.info.extra.get("label_order", {}).get(test.group_col)
        levels = [str(v) for v in order] if order else column_levels(groups)
        for g in test.groups or ():
            if g not in levels:
                raise UserError(f"associations[{i}].groups: group '{g}' is not in column '{test.group_col}' of "
                                f"dataset {dspec.display_name}{did_you_mean(g, levels)}",
                                fix=f"use groups among: {', '.join(levels)}")
        seed = zlib.crc32(f"{spec.seed}|{test.name}|{dspec.display_name}|{model_name}".encode())
        out += comparison_rows(scores, groups, levels, name=test.name, group_col=test.group_col,
                               named=test.groups, alternative=test.alternative,
                               n_permutations=test.n_permutations, stats=spec.stats,
                               rng=np.random.default_rng(seed), key=key)
    return rows_to_frame(holm_rows(out))


def check_associations(spec: ProbeSpec, label_sets: Sequence[LabelSet],
                       resolve: Callable[[str], Path]) -> list[Problem]:
    """Problems with the probe's ``associations:`` and the gates that read them (all at once)."""
    problems: list[Problem] = []
    categories = {lb.category for ls in label_sets for lb in ls.labels}
    names = [t.name for t in spec.associations]
    for i, test in enumerate(spec.associations):
        field = f"associations[{i}]"
        if names.count(test.name) > 1:
            problems.append(Problem(f"{field}.name", f"test name '{test.name}' is used twice; names must be unique"))
        problems += _check_groups(spec, test, field)
        for side in ("a", "b"):
            problems += _check_set(getattr(test, side), f"{field}.{side}", categories, resolve)
    for i, gate in enumerate(spec.gates):
        if getattr(gate, "type", "") == "max_association" and gate.test not in names:
            hint = did_you_mean(gate.test, names) if names else "; the probe has no 'associations:' section"
            problems.append(Problem(f"gates[{i}].test", f"unknown association test '{gate.test}'{hint}"))
    return problems


def _check_groups(spec: ProbeSpec, test: AssociationSpec, field: str) -> list[Problem]:
    """The test's datasets exist and declare its group column; two named groups differ."""
    problems: list[Problem] = []
    datasets = {d.display_name: d for d in spec.datasets}
    for j, name in enumerate(test.datasets or ()):
        if name not in datasets:
            problems.append(Problem(f"{field}.datasets[{j}]",
                                    f"unknown dataset '{name}'{did_you_mean(name, list(datasets))}"))
    for d in (datasets[n] for n in test.datasets or datasets if n in datasets):
        if test.group_col not in d.subgroups:
            problems.append(Problem(f"{field}.group_col", (
                f"'{test.group_col}' is not a declared subgroup of dataset {d.display_name}"
                f"{did_you_mean(test.group_col, list(d.subgroups))} (subgroups: {', '.join(d.subgroups)})")))
    if test.groups is not None and test.groups[0] == test.groups[1]:
        problems.append(Problem(f"{field}.groups", "name two different groups"))
    return problems


def _check_set(aset: AttributeSetSpec, field: str, categories: set[str],
               resolve: Callable[[str], Path]) -> list[Problem]:
    problems: list[Problem] = []
    for j, cat in enumerate(aset.categories):
        if cat not in categories:
            problems.append(Problem(f"{field}.categories[{j}]",
                                    f"unknown category '{cat}'{did_you_mean(cat, sorted(categories))}"))
    if aset.labels is not None:
        from audit.spec.load import load_label_set

        path = resolve(aset.labels)
        try:
            load_label_set(path)
        except UserError as err:
            problems.append(Problem(f"{field}.labels", err.render().replace("\n", " ")))
    return problems


__all__ = ["association_rows", "attribute_texts", "check_associations"]
