"""Fairness metrics: how often images land in flagged categories, and how that differs by group.

An image is *flagged* for a category expression (``crime`` or a union ``crime|non_human``) when
its top-1 label belongs to one of the categories. Each metric turns flag counts from the
breakdown engine into rows; intervals and tests come from :mod:`audit.metrics.base` and
statsmodels/scipy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy.stats import chi2_contingency

from audit.metrics.base import (
    NAN,
    MetricDef,
    MetricInput,
    MetricRow,
    PairedCounts,
    Proportion,
    base_variant,
    mcnemar_p,
    paired_difference_interval,
    percentile_interval,
    require_columns,
    size_flag,
)
from audit.metrics.pairwise import group_tests
from audit.metrics.breakdown import Grouping, Split, plan, proportion_rows, splits
from audit.results import FLAG_SMALL_N, FLAG_UNDEFINED
from audit.spec.models import DEFAULT_ALTERNATIVE, Alternative, StatsSpec, split_categories

CATEGORY = "top1_category"
DISPARITY_RATIO = "disparity_ratio"
DISPARITY_DIFFERENCE = "disparity_difference"
#: ``group_col`` of template-sensitivity rows; ``group`` is the template text.
TEMPLATE = "template"
#: Columns that pair an image across variants.
PAIR_KEYS = ["dataset", "model", "image_id"]

Counts = Sequence[tuple[str, Proportion]]


def flagged(frame: pd.DataFrame, category: str) -> pd.Series:
    """Whether each row's top-1 label is in ``category`` (a category or a ``a|b`` union)."""
    return frame[CATEGORY].isin(split_categories(category))


def flag_counts(split: Split, category: str) -> list[tuple[str, Proportion]]:
    """Flagged images out of all images, per group of the split."""
    return split.counts(flagged(split.frame, category))


# --------------------------------------------------------------------------- rates


def _category_rate(inp: MetricInput) -> list[MetricRow]:
    require_columns(inp.predictions, [CATEGORY], "category_rate")
    return [
        row
        for split in splits(inp.predictions, plan(inp.datasets))
        for cat in inp.categories
        for row in proportion_rows(split, flag_counts(split, cat), metric="category_rate",
                                   stats=inp.stats, category=cat)
    ]


def _template_sensitivity(inp: MetricInput) -> list[MetricRow]:
    if inp.by_template is None:  # one template: the ensemble is the only prediction there is
        return []
    require_columns(inp.by_template, [CATEGORY, TEMPLATE], "template_sensitivity")
    by_template = {name: (Grouping(TEMPLATE, (TEMPLATE,)),) for name in inp.datasets}
    return [
        row
        for split in splits(inp.by_template, by_template)
        for cat in inp.categories
        for row in proportion_rows(split, flag_counts(split, cat), metric="template_sensitivity",
                                   stats=inp.stats, category=cat)
    ]


# --------------------------------------------------------------------------- disparity


def disparity_rows(split: Split, counts: Counts, category: str, stats: StatsSpec,
                   rng: np.random.Generator) -> list[MetricRow]:
    """Max/min rate ratio and max-min difference across the groups with ``n >= min_n``.

    ``group`` names the groups with the highest and lowest rate (``Black / East Asian``) and
    ``n`` is the smaller of those two groups (with too few groups: the second-largest group,
    the one that falls short of ``min_n``).
    Intervals are percentile bootstraps stratified by group: each group's flagged count is
    redrawn as Binomial(n_g, rate_g), which is exactly what resampling its rows with
    replacement does to a 0/1 outcome. A zero lowest rate makes the ratio ``undefined``
    (value and interval NaN); fewer than two groups reaching ``min_n`` gives NaN
    flagged ``small_n``.
    """
    eligible = [(g, p) for g, p in counts if p.n >= stats.min_n]
    if len(eligible) < 2:
        n = sorted((p.n for _, p in counts), reverse=True)[1] if len(counts) > 1 else 0
        return [split.row(metric=m, category=category, group="", n=n, value=NAN, flag=FLAG_SMALL_N)
                for m in (DISPARITY_RATIO, DISPARITY_DIFFERENCE)]
    rates = np.array([p.rate for _, p in eligible])
    sizes = np.array([p.n for _, p in eligible])
    # Ties: the first group with the top rate and the last with the bottom one, so equal rates
    # still name two different groups.
    hi, lo = int(np.argmax(rates)), len(rates) - 1 - int(np.argmin(rates[::-1]))
    group = f"{eligible[hi][0]} / {eligible[lo][0]}"
    n = int(min(sizes[hi], sizes[lo]))
    boot = rng.binomial(sizes, rates, size=(stats.n_bootstrap, len(sizes))) / sizes
    boot_max, boot_min = boot.max(axis=1), boot.min(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        boot_ratio = boot_max / boot_min
        ratio = float(rates[hi] / rates[lo])
    # A zero lowest rate leaves the ratio undefined: NaN, flagged, never inf (nor an inf band).
    undefined = bool(rates[lo] == 0)
    return [
        split.row(metric=DISPARITY_RATIO, category=category, group=group, n=n,
                  value=NAN if undefined else ratio,
                  ci=(NAN, NAN) if undefined else percentile_interval(boot_ratio, stats.alpha),
                  flag=FLAG_UNDEFINED if undefined else ""),
        split.row(metric=DISPARITY_DIFFERENCE, category=category, group=group, n=n,
                  value=float(rates[hi] - rates[lo]),
                  ci=percentile_interval(boot_max - boot_min, stats.alpha)),
    ]


def _disparity(inp: MetricInput) -> list[MetricRow]:
    require_columns(inp.predictions, [CATEGORY], "disparity")
    return [
        row
        for split in splits(inp.predictions, plan(inp.datasets, overall=False))
        for cat in inp.categories
        for row in disparity_rows(split, flag_counts(split, cat), cat, inp.stats, inp.rng)
    ]


# --------------------------------------------------------------------------- tests


def independence_row(split: Split, counts: Counts, category: str, stats: StatsSpec) -> MetricRow:
    """Pearson chi-square test of group x flagged over the groups with ``n >= min_n``.

    No Yates correction, so two groups give the plain two-proportion test. A table where no
    image (or every image) is flagged carries no evidence of dependence: statistic 0, p = 1.
    """
    eligible = [p for _, p in counts if p.n >= stats.min_n]
    n = sum(p.n for p in eligible)
    value, p_value, flag = NAN, NAN, ""
    if len(eligible) < 2:
        flag = FLAG_SMALL_N
    elif sum(p.k for p in eligible) in (0, n):
        value, p_value = 0.0, 1.0
    else:
        table = np.array([[p.k, p.n - p.k] for p in eligible])
        result = chi2_contingency(table, correction=False)
        value, p_value = float(result.statistic), float(result.pvalue)
    return split.row(metric="independence_test", category=category, group="", n=n, value=value,
                     p_value=p_value, flag=flag)


def _independence_test(inp: MetricInput) -> list[MetricRow]:
    require_columns(inp.predictions, [CATEGORY], "independence_test")
    return [
        independence_row(split, flag_counts(split, cat), cat, inp.stats)
        for split in splits(inp.predictions, plan(inp.datasets, overall=False))
        for cat in inp.categories
    ]


def pairwise_rows(split: Split, counts: Counts, category: str, stats: StatsSpec,
                  alternative: Alternative = DEFAULT_ALTERNATIVE) -> list[MetricRow]:
    """Each group against the rest of the split (:func:`audit.metrics.pairwise.group_tests`).

    ``value`` is the rate difference with its Newcombe interval; ``p_value`` the Holm-adjusted
    p-value under ``alternative`` (z-test, or Fisher's exact test where counts are small).
    """
    return [
        split.row(metric="pairwise_test", category=category, group=t.group, n=t.n, value=t.difference,
                  ci=t.ci, p_value=t.p_adjusted, flag=t.flag)
        for t in group_tests(counts, stats, alternative)
    ]


def _pairwise_test(inp: MetricInput) -> list[MetricRow]:
    require_columns(inp.predictions, [CATEGORY], "pairwise_test")
    return [
        row
        for split in splits(inp.predictions, plan(inp.datasets, overall=False))
        for cat in inp.categories
        for row in pairwise_rows(split, flag_counts(split, cat), cat, inp.stats, inp.alternative)
    ]


# --------------------------------------------------------------------------- variants


def paired_variants(predictions: pd.DataFrame, base: str, compare: str) -> pd.DataFrame:
    """Base-variant rows joined to the same images' compare-variant predictions.

    Images are paired on (dataset, model, image_id); the result keeps the base rows' columns,
    adds ``top1_label_compare`` and ``top1_category_compare`` and sets ``variant`` to ``compare``.
    """
    require_columns(predictions, [*PAIR_KEYS, "variant", "top1_label", CATEGORY], "variant pairing")
    left = predictions[predictions["variant"] == base]
    right = predictions.loc[predictions["variant"] == compare, [*PAIR_KEYS, "top1_label", CATEGORY]]
    paired = left.merge(right, on=PAIR_KEYS, how="inner", suffixes=("", "_compare"), validate="one_to_one")
    return paired.assign(variant=compare)


def paired_counts(split: Split, category: str) -> list[tuple[str, PairedCounts]]:
    """Per group, the paired 2x2 table of flagged-under-base x flagged-under-compare."""
    cats = split_categories(category)
    b = split.frame[CATEGORY].isin(cats)
    c = split.frame[f"{CATEGORY}_compare"].isin(cats)
    both, base_only, compare_only = (split.counts(m) for m in (b & c, b & ~c, ~b & c))
    return [
        (g, PairedCounts(x.k, y.k, z.k, x.n - x.k - y.k - z.k))
        for (g, x), (_, y), (_, z) in zip(both, base_only, compare_only)
    ]


def variant_change_rows(split: Split, category: str, stats: StatsSpec) -> list[MetricRow]:
    """Change in flagged rate from the base variant, Newcombe paired interval, McNemar p."""
    return [
        split.row(metric="variant_change", category=category, group=group, n=t.n,
                  value=t.difference, ci=paired_difference_interval(t, stats.alpha),
                  p_value=mcnemar_p(t) if t.n else NAN, flag=size_flag(t.n, stats.min_n))
        for group, t in paired_counts(split, category)
    ]


def _variant_change(inp: MetricInput) -> list[MetricRow]:
    base = base_variant(inp.variants)
    rows: list[MetricRow] = []
    for compare in (v for v in inp.variants if v != base):
        paired = paired_variants(inp.predictions, base, compare)
        for split in splits(paired, plan(inp.datasets)):
            for cat in inp.categories:
                rows += variant_change_rows(split, cat, inp.stats)
    return rows


def moved_labels(predictions: pd.DataFrame, base: str, compare: str, category: str) -> pd.DataFrame:
    """Where the images flagged under ``base`` went under ``compare``.

    Returns:
        One row per (dataset, model, base label, compare label): columns ``dataset, model,
        from_label, to_label, to_category, n, share`` (share of that model's flagged images),
        most frequent first.
    """
    paired = paired_variants(predictions, base, compare)
    moved = paired[flagged(paired, category)].rename(columns={
        "top1_label": "from_label", "top1_label_compare": "to_label",
        f"{CATEGORY}_compare": "to_category",
    })
    keys = ["dataset", "model", "from_label", "to_label", "to_category"]
    table = moved.groupby(keys, sort=False).size().rename("n").reset_index()
    table["share"] = table["n"] / table.groupby(["dataset", "model"])["n"].transform("sum")
    return table.sort_values(["dataset", "model", "n"], ascending=[True, True, False], ignore_index=True)


# --------------------------------------------------------------------------- registry targets

def _fairness_metric(name: str, compute: Callable[[MetricInput], list[MetricRow]],
                     description: str) -> MetricDef:
    # A flagged-category rate is worse the higher it is, whatever the statistic.
    return MetricDef(name=name, higher_is_better=False, needs_target=False,
                     description=description, compute=compute, needs_categories=True)


CATEGORY_RATE = _fairness_metric(
    "category_rate", _category_rate,
    "Share of images whose top-1 label is in the category, with a Wilson interval.")
DISPARITY = _fairness_metric(
    "disparity", _disparity,
    "Max/min ratio and max-min difference of category rates across groups with n >= min_n, "
    "with stratified percentile-bootstrap intervals.")
INDEPENDENCE_TEST = _fairness_metric(
    "independence_test", _independence_test,
    "Pearson chi-square statistic of group x flagged, with its p-value.")
PAIRWISE_TEST = _fairness_metric(
    "pairwise_test", _pairwise_test,
    "Rate of each group minus the rest: Newcombe interval; Holm-adjusted p of a one-sided "
    "(default: group above the rest) or two-sided z-test, Fisher's exact test where counts are small.")
VARIANT_CHANGE = _fairness_metric(
    "variant_change", _variant_change,
    "Change in category rate from the base variant on the same images: Newcombe paired "
    "interval, McNemar p-value.")
TEMPLATE_SENSITIVITY = _fairness_metric(
    "template_sensitivity", _template_sensitivity,
    "Category rate under each prompt template alone, with a Wilson interval.")
