"""Label vocabularies, variants and prompt expansion. Pure: no I/O beyond what the loader read."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from audit.errors import UserError
from audit.spec import CLASSNAMES, Label, Probe, VariantSpec, split_categories


@dataclass(frozen=True)
class Vocabulary:
    """The labels of one variant, in order, with their categories and prompt texts."""

    variant: str
    labels: tuple[Label, ...]
    templates: tuple[str, ...]

    @property
    def texts(self) -> tuple[str, ...]:
        return tuple(label.text for label in self.labels)

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(label.category for label in self.labels)

    def prompts(self) -> list[list[str]]:
        """``prompts()[i][j]`` is template ``j`` filled with label ``i``."""
        return [[fill(t, label.text) for t in self.templates] for label in self.labels]

    def digest(self) -> str:
        payload = json.dumps([[lb.text, lb.category, lb.target] for lb in self.labels] + [list(self.templates)])
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def fill(template: str, text: str) -> str:
    """Fill a ``{}`` or ``{c}`` template. ``str.replace`` so braces in labels stay literal."""
    return template.replace("{c}", text) if "{c}" in template else template.replace("{}", text, 1)


def category_mask(categories: Sequence[str], expr: str) -> list[bool]:
    """Which labels fall into a category or a union such as ``crime|non_human``."""
    wanted = set(split_categories(expr))
    return [c in wanted for c in categories]


def merged_labels(probe: Probe, class_names: Sequence[str] | None = None,
                  class_categories: Sequence[str] | None = None) -> tuple[Label, ...]:
    """All labels of the probe's label sets, merged in order. Class names take their category
    from ``class_categories`` (the dataset's, e.g. wds ``class_categories``), else ``class``."""
    out: list[Label] = []
    loaded = iter(probe.label_sets)
    for entry in probe.spec.label_sets:
        if entry == CLASSNAMES:
            if class_names is None:
                raise UserError(
                    f"{probe.path}: label_sets uses 'classnames' but dataset has no class names",
                    fix="use a dataset with class names (imagenet*, objectnet) or list label-set files",
                )
            cats = class_categories or ["class"] * len(class_names)
            out += [Label(text=name, category=cats[i], target=str(i)) for i, name in enumerate(class_names)]
        else:
            out += list(next(loaded).spec.labels)
    return tuple(out)


def apply_variant(labels: Sequence[Label], variant: VariantSpec) -> tuple[Label, ...]:
    keep = [
        lb for lb in labels
        if (variant.include is None or lb.category in variant.include) and lb.category not in variant.exclude
    ]
    return tuple(keep)


def resolve_templates(
    templates: tuple[str, ...] | str, dataset_templates: Sequence[str] | None = None
) -> tuple[str, ...]:
    """A template list as given, or a named set from open_clip's metadata or the dataset."""
    if not isinstance(templates, str):
        return templates
    if templates == "dataset":
        if not dataset_templates:
            raise UserError("templates: 'dataset' but the dataset ships no templates",
                            fix="list templates in the probe or use openai_imagenet")
        return tuple(dataset_templates)
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES, SIMPLE_IMAGENET_TEMPLATES

    chosen: Sequence[Callable[[str], str]] = {
        "openai_imagenet": OPENAI_IMAGENET_TEMPLATES,
        "simple_imagenet": SIMPLE_IMAGENET_TEMPLATES,
    }[templates]
    # open_clip's templates are callables; turn them into '{}' strings so prompts are recorded
    # as data. The sentinel cannot occur in the templates themselves.
    sentinel = "\x00LABEL\x00"
    return tuple(t(sentinel).replace(sentinel, "{}") for t in chosen)


def vocabularies(probe: Probe, class_names: Sequence[str] | None = None,
                 dataset_templates: Sequence[str] | None = None,
                 class_categories: Sequence[str] | None = None) -> list[Vocabulary]:
    """One vocabulary per declared variant."""
    labels = merged_labels(probe, class_names, class_categories)
    templates = resolve_templates(probe.spec.templates, dataset_templates)
    out = []
    for name, variant in probe.spec.variants.items():
        chosen = apply_variant(labels, variant)
        if not chosen:
            raise UserError(f"{probe.path}: variant '{name}' leaves no labels", fix="check its include/exclude")
        out.append(Vocabulary(name, chosen, templates))
    return out
