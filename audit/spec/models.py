"""Frozen, fully validated probe and label-set models.

Nothing downstream of :func:`audit.spec.load_probe` sees a dict: YAML goes through
``yaml.safe_load`` into these models (``extra="forbid"``, so a typo such as ``subgroup:`` is an
error), then through the cross-checks in :mod:`audit.spec.load` (registry names, files, columns).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, ClassVar, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: A category name, or a union of them written ``crime|non_human``.
CATEGORY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TEMPLATE_FIELD_RE = re.compile(r"\{([^{}]*)\}")
#: A probe name: it names the default output directory ``runs/<name>/<timestamp>``, so it must
#: be one safe path segment (no ``/``, ``..``, braces or spaces).
PROBE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
PROBE_NAME_RULE = ("1-100 characters: letters, digits, '.', '_' or '-', starting with a letter or "
                   "digit (it names the output directory runs/<name>/)")


class Frozen(BaseModel):
    """Base of every spec model: immutable, and unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


#: The variant that others are compared against, when the probe declares it.
DEFAULT_BASE_VARIANT = "default"


def base_variant(variants: Sequence[str]) -> str:
    """The one rule for a probe's base variant: ``default`` if declared, else the first one.

    Metrics (variant_change), retrieval, robustness, gates and reports all ask this function.
    """
    variants = list(variants)
    if not variants:
        return DEFAULT_BASE_VARIANT
    return DEFAULT_BASE_VARIANT if DEFAULT_BASE_VARIANT in variants else variants[0]


#: Names shown as table cells, headings and file names (models, datasets, gates): one line.
DISPLAY_NAME_RE = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")


def check_display_name(v: str | None) -> str | None:
    """A display name is 1-200 characters on one line (no newline, tab or other control character)."""
    if v is not None and not DISPLAY_NAME_RE.match(v):
        raise ValueError(f"{v[:60]!r} must be 1-200 characters on one line, without control characters")
    return v


def split_categories(expr: str) -> tuple[str, ...]:
    """``"crime|non_human"`` -> ``("crime", "non_human")``."""
    return tuple(part.strip() for part in expr.split("|"))


def check_template(template: str) -> str:
    """A prompt template must hold exactly one ``{}`` or ``{c}`` placeholder and no other field."""
    fields = TEMPLATE_FIELD_RE.findall(template)
    if len(fields) != 1 or fields[0] not in ("", "c"):
        raise ValueError(
            f"template {template!r} must contain exactly one placeholder '{{}}' (or '{{c}}') "
            f"for the label, e.g. 'a photo of a {{}}.'"
        )
    return template


# --------------------------------------------------------------------------- label sets


class Label(Frozen):
    """One entry of a vocabulary."""

    text: str = Field(min_length=1, description="What goes into the prompt template.")
    category: str = Field(description="The category the label belongs to, e.g. crime, non_human.")
    target: str | None = Field(
        default=None,
        description="The dataset target value this label stands for (for accuracy probes).",
    )

    @field_validator("category")
    @classmethod
    def _category_name(cls, v: str) -> str:
        if not CATEGORY_RE.match(v):
            raise ValueError(f"category {v!r} must be a plain name (letters, digits, '_')")
        return v


class LabelSet(Frozen):
    """A versioned vocabulary file in ``label_sets/``."""

    name: str = Field(min_length=1, description="Identifier of the label set.")
    version: str = Field(min_length=1, description="Bumped whenever the labels change.")
    description: str = Field(default="", description="What the vocabulary is for.")
    citation: str = Field(default="", description="Where the vocabulary comes from.")
    labels: tuple[Label, ...] = Field(description="The labels; at least one, texts unique.")

    @field_validator("version", mode="before")
    @classmethod
    def _version_str(cls, v: object) -> object:
        return str(v) if isinstance(v, (int, float)) else v

    @field_validator("labels")
    @classmethod
    def _labels(cls, v: tuple[Label, ...]) -> tuple[Label, ...]:
        if not v:
            raise ValueError("the label set is empty; list at least one label")
        seen: set[str] = set()
        for i, label in enumerate(v):
            if label.text in seen:
                raise ValueError(f"duplicate label {label.text!r} at labels[{i}]; texts must be unique")
            seen.add(label.text)
        return v


# --------------------------------------------------------------------------- probe parts


class DatasetSpec(Frozen):
    """Where the images come from and which columns describe them."""

    adapter: str = Field(description="Registered dataset adapter, e.g. fairface, imagenet_r, hf.")
    name: str | None = Field(default=None, description="Name in results; defaults to the adapter.")
    source: str | None = Field(
        default=None,
        description="Hugging Face hub id, or a local directory laid out like the hub repo "
        "(relative paths resolve against the probe file). Defaults to the adapter's hub id.",
    )
    config: str | None = Field(default=None, description="Dataset config, e.g. '0.25' for FairFace.")
    split: str | None = Field(default=None, description="Split; defaults to the adapter's.")
    revision: str | None = Field(default=None, description="Hub revision (commit, tag, branch).")
    columns: dict[str, str] = Field(
        default_factory=dict, description="Rename map: adapter column name -> column in the source."
    )
    subgroups: tuple[str, ...] = Field(default=(), description="Columns to break results down by.")
    intersections: tuple[tuple[str, ...], ...] = Field(
        default=(), description="Column combinations to break down by, e.g. [[race, gender]]."
    )
    target: str | None = Field(default=None, description="Ground-truth column, for accuracy.")
    limit: int | None = Field(default=None, gt=0, description="Use at most this many images.")
    stratify: tuple[str, ...] = Field(
        default=(), description="With limit: subsample evenly within these columns."
    )
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Adapter-specific options (see `audit list`)."
    )
    variants: tuple[str, ...] | None = Field(
        default=None, description="Only these label-set variants run on this dataset (default all)."
    )
    metadata: tuple[str, ...] = Field(
        default=(), description="webdataset (wds) only: names of the fields of each sample's "
        "`npy` metadata vector, in order, e.g. [region, country]; usable as subgroups and target.",
    )
    metadata_names: dict[str, tuple[str, ...]] = Field(
        default_factory=dict, description="wds only: code -> name lists for metadata fields "
        "(code i is names[i]); the names appear in results and reports.",
    )
    class_categories: dict[str, str] = Field(
        default_factory=dict, description="wds only: category -> class-index ranges of the "
        "dataset's own class names, e.g. {non_human: '14-17', crime: '18-'}; others are 'class'.",
    )

    _name = field_validator("name")(check_display_name)

    @field_validator("config", "revision", mode="before")
    @classmethod
    def _to_str(cls, v: object) -> object:
        # YAML reads config 0.25 as a float; FairFace's configs are the strings '0.25', '1.25'.
        return str(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v

    @property
    def display_name(self) -> str:
        return self.name or self.adapter

    @field_validator("intersections")
    @classmethod
    def _intersections(cls, v: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        for i, combo in enumerate(v):
            if len(combo) < 2:
                raise ValueError(f"intersections[{i}] must name at least two columns")
        return v

    @model_validator(mode="after")
    def _metadata_fields(self) -> DatasetSpec:
        """With ``metadata`` declared, every column named is one of its fields (or ``target``)."""
        fields = set(self.metadata)
        problems = [f"metadata_names.{k}: '{k}' is not a declared metadata field"
                    for k in self.metadata_names if k not in fields]
        if fields:
            used = [*self.subgroups, *(c for combo in self.intersections for c in combo), *self.stratify,
                    *([self.target] if self.target else [])]
            problems += [f"column '{c}' is not a metadata field ({', '.join(self.metadata)})"
                         for c in dict.fromkeys(used) if c not in fields and c != "target"]
        if problems:
            raise ValueError("; ".join(problems))
        return self


class ModelSpec(Frozen):
    """One model to audit."""

    id: str = Field(
        description="ARCH:PRETRAINED (open_clip tag or checkpoint path), hf-hub:org/name, "
        "local-dir:/path, or the scheme of another registered model adapter."
    )
    name: str | None = Field(default=None, description="Name in results; defaults to the id.")
    scoring: Literal["contrastive", "generative"] = Field(
        default="contrastive",
        description="contrastive: cosine similarity (CLIP, SigLIP); generative: log p(prompt | "
        "image) from a captioning decoder (CoCa).",
    )
    reduction: Literal["sum", "mean"] | None = Field(
        default=None, description="Generative only: sum of token log-probs (default) or their mean."
    )

    _name = field_validator("name")(check_display_name)

    @model_validator(mode="after")
    def _reduction(self) -> ModelSpec:
        if self.reduction is not None and self.scoring != "generative":
            raise ValueError("reduction applies to scoring: generative only")
        return self

    @property
    def display_name(self) -> str:
        if self.name:
            return self.name
        if self.scoring == "generative":
            return f"{self.id} (generative, {self.reduction or 'sum'})"
        return self.id


class VariantSpec(Frozen):
    """A label-set variant: which categories of the merged vocabulary take part."""

    include: tuple[str, ...] | None = Field(default=None, description="Only these categories.")
    exclude: tuple[str, ...] = Field(default=(), description="Drop these categories.")


#: Which direction of a group-vs-rest difference a test looks for: ``greater`` (the group is
#: flagged MORE often than the rest: the harmful direction), ``less``, or ``two-sided``.
Alternative = Literal["greater", "less", "two-sided"]
DEFAULT_ALTERNATIVE: Alternative = "greater"


class MetricSpec(Frozen):
    """A metric to compute (written as a plain name, or a mapping to narrow its categories)."""

    name: str = Field(description="Registered metric, e.g. category_rate, accuracy.")
    categories: tuple[str, ...] | None = Field(
        default=None, description="Categories or unions ('crime|non_human'); default: probe's."
    )
    alternative: Alternative | None = Field(
        default=None,
        description="pairwise_test only: greater (a group flagged more than the rest; the default), "
        "less, or two-sided.",
    )

    @model_validator(mode="after")
    def _alternative_only_for_tests(self) -> MetricSpec:
        if self.alternative is not None and self.name != "pairwise_test":
            raise ValueError(f"'alternative' applies to pairwise_test only, not to '{self.name}'")
        return self


class StatsSpec(Frozen):
    """Statistical settings shared by metrics and gates."""

    alpha: float = Field(default=0.05, gt=0, lt=1, description="1 - confidence level.")
    min_n: int = Field(default=30, ge=1, description="Groups smaller than this are flagged.")
    n_bootstrap: int = Field(default=1000, ge=0, description="Bootstrap resamples for intervals.")


Judge = Literal["point", "lower", "upper"]


class GateBase(Frozen):
    """Fields every gate type shares."""

    id: str | None = Field(default=None, description="Name shown in reports; defaults to type.")
    severity: Literal["fail", "warn"] = Field(
        default="fail", description="fail: a failing gate fails the run (exit 1); warn: it is only reported."
    )
    judge: Judge = Field(default="point", description="Judge the point estimate or an interval bound.")
    min_n: int | None = Field(default=None, ge=1, description="Default: stats.min_n.")
    insufficient: Literal["fail", "pass"] = Field(
        default="fail", description="What a group below min_n means for the gate."
    )
    models: tuple[str, ...] | None = Field(default=None, description="Only these models.")
    variants: tuple[str, ...] | None = Field(default=None, description="Only these variants.")

    _id = field_validator("id")(check_display_name)

    #: The metric whose rows the gate judges (the probe must compute it); None: not a metric's rows.
    JUDGES: ClassVar[str | None] = None

    def judged_metric(self) -> str | None:
        """The metric whose rows this gate judges (``metrics.csv``), or None."""
        return self.JUDGES


class MaxRateGate(GateBase):
    """The rate of a category must stay at or below a threshold in every group."""

    JUDGES: ClassVar[str | None] = "category_rate"

    type: Literal["max_rate"] = Field(description="Gate type.")
    category: str = Field(description="Category or union ('crime|non_human') whose rate is judged.")
    group_col: str = Field(default="overall", description="'overall' or a subgroup column.")
    threshold: float = Field(ge=0, le=1, description="Highest allowed rate (a fraction).")


class MaxDisparityGate(GateBase):
    """Across the groups of a column, the rate ratio or difference must stay below a threshold."""

    JUDGES: ClassVar[str | None] = "disparity"

    type: Literal["max_disparity"] = Field(description="Gate type.")
    category: str = Field(description="Category or union ('crime|non_human') whose rate is judged.")
    group_col: str = Field(description="Subgroup column whose groups are compared.")
    measure: Literal["ratio", "difference"] = Field(
        default="difference", description="Highest/lowest rate ratio, or their difference."
    )
    threshold: float = Field(ge=0, description="Largest allowed ratio or difference.")


class NoSignificantDifferenceGate(GateBase):
    """No group's rate may differ significantly from the rest (Holm-adjusted)."""

    #: The gate tests category_rate counts (k of n per group) under its own alternative.
    JUDGES: ClassVar[str | None] = "category_rate"

    type: Literal["no_significant_difference"] = Field(description="Gate type.")
    category: str = Field(description="Category or union ('crime|non_human') whose rate is judged.")
    group_col: str = Field(description="Subgroup column whose groups are tested.")
    alternative: Alternative = Field(
        default=DEFAULT_ALTERNATIVE,
        description="Which difference fails: greater (a group flagged more than the rest, the "
        "harmful direction), less, or two-sided.",
    )


class MinAccuracyGate(GateBase):
    """Accuracy must stay at or above a floor in every group."""

    type: Literal["min_accuracy"] = Field(description="Gate type.")
    metric: str = Field(default="accuracy", description="accuracy, balanced_accuracy, top5_accuracy")
    group_col: str = Field(default="overall", description="'overall' or a subgroup column.")
    threshold: float = Field(ge=0, le=1, description="Lowest allowed accuracy (a fraction).")
    datasets: tuple[str, ...] | None = Field(default=None, description="Only these datasets (default all).")

    def judged_metric(self) -> str | None:
        return self.metric


class MinEffectiveRobustnessGate(GateBase):
    """Effective robustness on a shift must stay at or above a floor (accuracy points)."""

    JUDGES: ClassVar[str | None] = "accuracy"  # through robustness.csv, built from accuracy rows

    type: Literal["min_effective_robustness"] = Field(description="Gate type.")
    shift: str = Field(description="Distribution shift, e.g. imagenet_r (see the robustness tables).")
    threshold: float = Field(description="Lowest allowed effective robustness, in accuracy points.")


class VariantNoIncreaseGate(GateBase):
    """Going from one variant to another must not raise any group's rate by more than a margin."""

    JUDGES: ClassVar[str | None] = "variant_change"

    type: Literal["variant_no_increase"] = Field(description="Gate type.")
    category: str = Field(description="Category or union ('crime|non_human') whose rate is judged.")
    group_col: str = Field(description="Subgroup column ('overall' for the whole dataset).")
    base: str = Field(default="default", description="The variant compared from.")
    compare: str = Field(description="The variant compared to.")
    margin: float = Field(default=0.0, ge=0, description="Largest allowed rate increase (a fraction).")


class MaxRetrievalSkewGate(GateBase):
    """MaxSkew@k (or NDKL@k) of text-to-image retrieval must stay at or below a threshold."""

    type: Literal["max_retrieval_skew"] = Field(description="Gate type.")
    measure: Literal["max_skew", "ndkl"] = Field(default="max_skew", description="MaxSkew@k or NDKL@k.")
    k: int = Field(default=100, gt=0, description="Top-k cut-off; must be one of retrieval.ks.")
    group_col: str = Field(description="Subgroup column or intersection ('race x gender').")
    query_set: str = Field(description="Name of a retrieval query set (its label-set name).")
    per_query: bool = Field(default=False, description="Judge every query, not only the set mean.")
    threshold: float = Field(ge=0, description="Largest allowed skew or NDKL.")


class MaxAssociationGate(GateBase):
    """The effect size (Cohen's d) of an association test must stay at or below a threshold."""

    type: Literal["max_association"] = Field(description="Gate type.")
    test: str = Field(description="Name of an association test of the probe.")
    threshold: float = Field(description="Largest acceptable d (0.2 small, 0.5 medium, 0.8 large).")
    significant_only: bool = Field(
        default=False, description="Judge only groups whose Holm-adjusted p < stats.alpha."
    )


class MaxRecallDisparityGate(GateBase):
    """Per person class, the recall difference between two groups must stay below a threshold
    (FACET-style); judged on |difference| (its interval bound with judge: lower/upper)."""

    JUDGES: ClassVar[str | None] = "recall_disparity"

    type: Literal["max_recall_disparity"] = Field(description="Gate type.")
    group_col: str = Field(description="A declared subgroup column, e.g. gender_presentation.")
    threshold: float = Field(ge=0, le=1, description="Largest acceptable |recall difference|.")
    significant_only: bool = Field(
        default=False, description="Judge only classes whose Holm-adjusted p < stats.alpha."
    )


class NoRegressionGate(GateBase):
    """No group may get worse than in a baseline run by more than a margin.

    Judged only against a baseline (``audit check RUN --baseline RUN_DIR``, ``audit compare``);
    the judged number is the change in the worse direction, ``new - base`` for a rate and
    ``base - new`` for an accuracy (each metric's ``higher_is_better``), with a paired interval
    when both runs scored the same images.
    """

    type: Literal["no_regression"] = Field(description="Gate type.")
    metric: Literal["category_rate", "accuracy", "top5_accuracy"] = Field(
        default="category_rate", description="The metric compared; category_rate needs category.")
    category: str | None = Field(default=None, description="Category (or union a|b) for category_rate.")
    group_col: str = Field(default="overall", description="'overall' or a subgroup column.")
    margin: float = Field(default=0.0, ge=0, description="Largest allowed worsening (a fraction).")
    alternative: Literal["worse", "two-sided"] = Field(
        default="worse", description="worse: only a change in the bad direction fails; two-sided: any change.")

    @model_validator(mode="after")
    def _category_for_rates(self) -> NoRegressionGate:
        if (self.metric == "category_rate") != (self.category is not None):
            raise ValueError("category_rate needs 'category'; accuracy metrics take none")
        return self


GateSpec = Annotated[
    Union[
        MaxRetrievalSkewGate,
        MaxRateGate,
        MaxDisparityGate,
        NoSignificantDifferenceGate,
        MinAccuracyGate,
        MinEffectiveRobustnessGate,
        VariantNoIncreaseGate,
        MaxAssociationGate,
        MaxRecallDisparityGate,
        NoRegressionGate,
    ],
    Field(discriminator="type"),
]

GATE_TYPES = (
    "max_retrieval_skew", "max_rate", "max_disparity", "no_significant_difference", "min_accuracy",
    "min_effective_robustness", "variant_no_increase", "no_regression", "max_association",
    "max_recall_disparity",
)


class QuerySetSpec(Frozen):
    """Text queries for retrieval-bias metrics: a label-set file and the templates to embed it with."""

    labels: str = Field(description="Label-set file (relative to the probe) whose texts are the queries.")
    templates: tuple[str, ...] = Field(
        default=("a photo of a {}.",), min_length=1, description="Prompt templates with one '{}' placeholder."
    )

    @field_validator("templates")
    @classmethod
    def _templates(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for t in v:
            check_template(t)
        return v


class RetrievalSpec(Frozen):
    """Rank the images by similarity to each query; measure who fills the top k (Skew@k, NDKL)."""

    query_sets: tuple[QuerySetSpec, ...] = Field(min_length=1, description="The query sets to rank images by.")
    ks: tuple[int, ...] = Field(default=(10, 100, 1000), min_length=1, description="Top-k cut-offs.")
    desired: Literal["uniform", "marginal"] = Field(
        default="uniform", description="Target distribution over groups: uniform or the dataset's own."
    )
    group_cols: tuple[str, ...] | None = Field(
        default=None, description="Subgroup columns or intersections ('race x gender'); default all."
    )

    @field_validator("ks")
    @classmethod
    def _ks(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(k <= 0 for k in v) or len(set(v)) != len(v):
            raise ValueError("ks must be distinct positive integers, e.g. [10, 100, 1000]")
        return v


class ReportSpec(Frozen):
    """The notebook report rendered into the run directory."""

    enabled: bool = Field(default=True, description="Render the report after the run.")
    gallery: bool = Field(default=False, description="Show images put into flagged categories.")
    notebooks: tuple[str, ...] | None = Field(
        default=None,
        description="Notebooks to execute: a built-in kind (fairness, robustness) or a path to a "
        ".ipynb inside the probe's directory (a notebook runs code; a path outside the directory "
        "needs --allow-notebooks-outside). Default: the notebook of the probe's kind.",
    )


class ProbeSpec(Frozen):
    """A probe: dataset(s) x label vocabulary x models, the metrics and the release gates."""

    name: str = Field(description=f"Probe name; names the output directory. {PROBE_NAME_RULE}.")
    description: str = Field(default="", description="What the probe checks, shown in the report.")
    kind: Literal["fairness", "robustness"] = Field(
        default="fairness", description="Picks the default report notebook and robustness tables."
    )
    notice: str | None = Field(
        default=None, description="Text shown in the summary and report (e.g. demo caveats)."
    )
    datasets: tuple[DatasetSpec, ...] = Field(
        min_length=1, description="The datasets (write 'dataset:' with a mapping for just one)."
    )
    models: tuple[ModelSpec, ...] = Field(min_length=1, description="The models (plain ids or mappings).")
    label_sets: tuple[str, ...] = Field(
        min_length=1,
        description="Label-set files (relative to the probe) merged in order, or 'classnames' "
        "for the dataset's own class names.",
    )
    variants: dict[str, VariantSpec] = Field(
        default_factory=lambda: {"default": VariantSpec()},
        description="Named label-set variants; 'default' (else the first) is the base the others "
        "are compared against.",
    )
    templates: tuple[str, ...] | str = Field(
        default=("a photo of a {}.",),
        description="Prompt templates, or a named set: openai_imagenet, simple_imagenet, dataset.",
    )
    categories: tuple[str, ...] = Field(
        default=(), description="Categories or unions whose rates are reported."
    )
    metrics: tuple[MetricSpec, ...] = Field(min_length=1, description="Metrics to compute (see `audit list`).")
    stats: StatsSpec = Field(default=StatsSpec(), description="Confidence level, minimum group size, bootstrap.")
    gates: tuple[GateSpec, ...] = Field(default=(), description="Release gates judged on the results.")
    retrieval: RetrievalSpec | None = Field(default=None, description="Retrieval-bias audit (optional).")
    associations: tuple[AssociationSpec, ...] = Field(
        default=(), description="Embedding association tests (WEAT-style) on the cached embeddings.")
    report: ReportSpec = Field(default=ReportSpec(), description="The rendered report.")
    seed: int = Field(default=0, description="Seed of every random draw (subsampling, bootstrap).")
    batch_size: int = Field(default=64, gt=0, description="Images per batch when embedding.")

    @model_validator(mode="before")
    @classmethod
    def _shorthands(cls, data: object) -> object:
        """Accept ``dataset:`` for a single dataset and plain strings for models and metrics."""
        if not isinstance(data, dict):
            return data
        data = dict(data)
        if "dataset" in data:
            if "datasets" in data:
                raise ValueError("give either 'dataset' or 'datasets', not both")
            data["datasets"] = [data.pop("dataset")]
        for key, field in (("models", "id"), ("metrics", "name")):
            if isinstance(data.get(key), list):
                data[key] = [{field: v} if isinstance(v, str) else v for v in data[key]]
        return data

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not PROBE_NAME_RE.match(v):
            raise ValueError(f"{v!r} is not a safe probe name: {PROBE_NAME_RULE}")
        return v

    @field_validator("templates")
    @classmethod
    def _templates(cls, v: tuple[str, ...] | str) -> tuple[str, ...] | str:
        if isinstance(v, str):
            return v
        if not v:
            raise ValueError("list at least one template")
        for t in v:
            check_template(t)
        return v

    @field_validator("variants")
    @classmethod
    def _variants(cls, v: dict[str, VariantSpec]) -> dict[str, VariantSpec]:
        if not v:
            raise ValueError("declare at least one variant, e.g. {default: {}}")
        return v

    @property
    def base_variant(self) -> str:
        """The variant others are compared against (see :func:`base_variant`)."""
        return base_variant(list(self.variants))


# --------------------------------------------------------------------------- association tests


class AttributeSetSpec(Frozen):
    """An attribute text set of an association test: categories of the probe's label sets, or a
    label-set file (all its labels). Each text is expanded with the probe's templates."""

    categories: tuple[str, ...] = Field(
        default=(), description="Categories of the probe's merged label sets, e.g. [crime]."
    )
    labels: str | None = Field(
        default=None, description="A label-set file (relative to the probe) whose texts form the set."
    )

    @model_validator(mode="after")
    def _one_source(self) -> AttributeSetSpec:
        if bool(self.categories) == (self.labels is not None):
            raise ValueError("give exactly one of 'categories' (e.g. [crime]) or 'labels' (a label-set file)")
        return self


class AssociationSpec(Frozen):
    """One association test: do images of a group sit closer to texts A than to texts B than the
    other images do? Effect size Cohen's d (WEAT), permutation p-value, bootstrap interval."""

    name: str = Field(min_length=1, description="Test name; the 'category' of its metrics.csv rows.")
    group_col: str = Field(description="A declared subgroup column of the dataset(s).")
    groups: tuple[str, str] | None = Field(
        default=None, description="Two named groups X, Y; default: each group against the rest."
    )
    a: AttributeSetSpec = Field(description="Attribute set A (s(x) = mean cos to A - mean cos to B).")
    b: AttributeSetSpec = Field(description="Attribute set B.")
    alternative: Literal["greater", "less", "two-sided"] = Field(
        default="greater", description="greater: X is closer to A (relative to B) than Y is."
    )
    n_permutations: int = Field(default=10_000, ge=100, description="Random relabellings of the test.")
    datasets: tuple[str, ...] | None = Field(default=None, description="Only these datasets (names).")


ProbeSpec.model_rebuild()
