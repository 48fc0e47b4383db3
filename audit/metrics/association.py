"""Embedding association tests (WEAT-style, after Caliskan et al. 2017), in pure numpy.

For each image ``x`` the association score is

    s(x) = mean_{a in A} cos(x, a) - mean_{b in B} cos(x, b)

where ``A`` and ``B`` are two attribute text sets. Each attribute text is one unit vector: its
prompt embeddings (one per template) are normalised, averaged and renormalised, exactly as the
zero-shot head builds a class weight (:func:`audit.classify.class_weights`); so "the model's
notion of 'an animal'" is the same vector here and in classification.

Between two image groups X (the group) and Y (the rest, or a second named group) the effect
size is Cohen's d with the standard deviation pooled over both groups, as in WEAT:

    d = (mean_X s - mean_Y s) / std_{X u Y} s          (sample std, ddof=1)

The p-value is a permutation test of the group labels: under permutation the pooled std is
fixed, so permuting the difference of means is permuting d. When the number of distinct
relabellings is at most :data:`EXACT_LIMIT` they are enumerated exactly; otherwise they are drawn
at random from the ``Generator`` passed in, and ``p = (1 + #{as extreme}) / (1 + draws)`` (never
0); two-sided counts relabellings with |difference| >= |observed|. The interval on d is a
percentile bootstrap resampling each group with replacement.
Holm's correction over the family is :func:`holm` (statsmodels).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd

from audit.metrics.base import MetricRow, size_flag
from audit.results import FLAG_UNDEFINED
from audit.spec.models import StatsSpec

Alternative = Literal["greater", "less", "two-sided"]
#: Exhaustive enumeration is used up to this many relabellings (whatever ``n_permutations``).
EXACT_LIMIT = 20_000


def unit(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float64)
    norm = np.linalg.norm(x, axis=-1, keepdims=True)
    return np.divide(x, norm, out=np.zeros_like(x), where=norm > 0)


def association_scores(images: np.ndarray, attr_a: np.ndarray, attr_b: np.ndarray) -> np.ndarray:
    """``s(x)`` for each image: mean cosine to the rows of ``attr_a`` minus mean cosine to ``attr_b``.

    Args:
        images: ``[N, D]`` image embeddings (normalised here).
        attr_a: ``[A, D]`` attribute vectors of set A (normalised here).
        attr_b: ``[B, D]`` attribute vectors of set B.
    """
    if len(attr_a) == 0 or len(attr_b) == 0:
        raise ValueError("both attribute sets need at least one vector")
    x = unit(images)
    return (x @ unit(attr_a).T).mean(axis=1) - (x @ unit(attr_b).T).mean(axis=1)


def effect_size(s_x: np.ndarray, s_y: np.ndarray) -> float:
    """Cohen's d: difference of means over the sample std of the pooled scores (NaN if undefined)."""
    if len(s_x) == 0 or len(s_y) == 0:
        return math.nan
    pooled = np.concatenate([s_x, s_y])
    sd = float(np.std(pooled, ddof=1)) if len(pooled) > 1 else 0.0
    if sd == 0.0:
        return math.nan
    return (float(np.mean(s_x)) - float(np.mean(s_y))) / sd


def _extreme(stats: np.ndarray, observed: float, alternative: Alternative) -> np.ndarray:
    # A tiny tolerance so that relabellings equal to the observed one (up to float rounding) count.
    tol = 1e-12 * max(1.0, abs(observed))
    if alternative == "greater":
        return stats >= observed - tol
    if alternative == "less":
        return stats <= observed + tol
    return np.abs(stats) >= abs(observed) - tol


def _mean_differences(s: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Mean of ``s`` inside each row mask minus mean outside it."""
    n_x = masks.sum(axis=1)
    sum_x = masks @ s
    return sum_x / n_x - (s.sum() - sum_x) / (len(s) - n_x)


def permutation_p(s_x: np.ndarray, s_y: np.ndarray, alternative: Alternative, n_permutations: int,
                  rng: np.random.Generator) -> tuple[float, bool]:
    """p-value of the difference of means under relabelling; returns ``(p, exact)``."""
    s = np.concatenate([s_x, s_y]).astype(np.float64)
    n, k = len(s), len(s_x)
    if k == 0 or k == n:
        return math.nan, True
    observed = float(np.mean(s_x) - np.mean(s_y))
    total = math.comb(n, k)
    if total <= EXACT_LIMIT:
        masks = np.zeros((total, n))
        for row, chosen in enumerate(itertools.combinations(range(n), k)):
            masks[row, list(chosen)] = 1.0
        return float(_extreme(_mean_differences(s, masks), observed, alternative).mean()), True
    # Random relabellings: draw the smaller side's members without replacement (fast for
    # unbalanced groups); the difference of means follows from the drawn side's sum.
    small = min(k, n - k)
    sums = np.array([s[rng.choice(n, small, replace=False)].sum() for _ in range(n_permutations)])
    sum_x = sums if small == k else s.sum() - sums
    stats = sum_x / k - (s.sum() - sum_x) / (n - k)
    hits = int(_extreme(stats, observed, alternative).sum())
    return (1 + hits) / (1 + n_permutations), False


def bootstrap_interval(s_x: np.ndarray, s_y: np.ndarray, n_bootstrap: int, alpha: float,
                       rng: np.random.Generator) -> tuple[float, float]:
    """Percentile interval of d, resampling each group with replacement (NaN without resamples)."""
    if n_bootstrap <= 0 or len(s_x) < 2 or len(s_y) < 2:
        return math.nan, math.nan
    parts = []
    step = max(1, 2_000_000 // (len(s_x) + len(s_y)))  # resamples per chunk: bounded memory
    for start in range(0, n_bootstrap, step):
        m = min(step, n_bootstrap - start)
        bx = s_x[rng.integers(0, len(s_x), size=(m, len(s_x)))]
        by = s_y[rng.integers(0, len(s_y), size=(m, len(s_y)))]
        sd = np.concatenate([bx, by], axis=1).std(axis=1, ddof=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            parts.append((bx.mean(axis=1) - by.mean(axis=1)) / sd)
    d = np.concatenate(parts)
    d = d[np.isfinite(d)]
    if len(d) == 0:
        return math.nan, math.nan
    low, high = np.quantile(d, [alpha / 2, 1 - alpha / 2], method="inverted_cdf")
    return float(low), float(high)


@dataclass(frozen=True)
class AssociationResult:
    """One test of group X against Y: effect size d, its interval and the raw p-value."""

    n_x: int
    n_y: int
    effect_size: float
    ci_low: float
    ci_high: float
    p_value: float
    exact: bool


def association_test(s_x: np.ndarray, s_y: np.ndarray, *, alternative: Alternative = "greater",
                     n_permutations: int = 10_000, n_bootstrap: int = 1000, alpha: float = 0.05,
                     rng: np.random.Generator) -> AssociationResult:
    """Effect size, bootstrap interval and permutation p-value of X against Y."""
    s_x = np.asarray(s_x, dtype=np.float64)
    s_y = np.asarray(s_y, dtype=np.float64)
    p, exact = permutation_p(s_x, s_y, alternative, n_permutations, rng)
    low, high = bootstrap_interval(s_x, s_y, n_bootstrap, alpha, rng)
    return AssociationResult(len(s_x), len(s_y), effect_size(s_x, s_y), low, high, p, exact)


def holm(p_values: list[float]) -> list[float]:
    """Holm-adjusted p-values (:func:`audit.metrics.pairwise.holm`, equal to statsmodels'
    ``multipletests``); NaN entries stay NaN and are not counted."""
    from audit.metrics.pairwise import holm as holm_step_down

    p = np.asarray(p_values, dtype=np.float64)
    out = np.full_like(p, math.nan)
    ok = ~np.isnan(p)
    if ok.any():
        out[ok] = holm_step_down(p[ok])
    return [float(v) for v in out]


#: ``metric`` of association rows in metrics.csv; ``category`` is the test's name.
ASSOCIATION_METRIC = "association_test"


def comparisons(groups: pd.Series, levels: Sequence[str],
                named: tuple[str, str] | None) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(group label, mask X, mask Y)`` for each comparison: every level against the rest (images
    with a missing group left out), or the two named groups (label ``"X vs Y"``)."""
    has = groups.notna().to_numpy()
    values = groups.astype(object).where(groups.notna(), None).map(lambda v: None if v is None else str(v)).to_numpy()
    if named is not None:
        x, y = named
        return [(f"{x} vs {y}", values == x, values == y)]
    return [(level, values == level, has & (values != level)) for level in levels]


def comparison_rows(scores: np.ndarray, groups: pd.Series, levels: Sequence[str], *, name: str, group_col: str,
              named: tuple[str, str] | None, alternative: Alternative, n_permutations: int,
              stats: StatsSpec, rng: np.random.Generator, key: Mapping[str, str]) -> list[MetricRow]:
    """One metrics.csv row per comparison of one test; ``p_value`` is raw (Holm comes later).

    ``n`` is the smaller of the two groups, so a gate's ``min_n`` guards both sides.
    """
    out = []
    for label, mx, my in comparisons(groups, levels, named):
        res = association_test(scores[mx], scores[my], alternative=alternative, n_permutations=n_permutations,
                               n_bootstrap=stats.n_bootstrap, alpha=stats.alpha, rng=rng)
        n = min(res.n_x, res.n_y)
        flag = size_flag(n, stats.min_n) or (FLAG_UNDEFINED if math.isnan(res.effect_size) else "")
        out.append(MetricRow(dataset=key["dataset"], model=key["model"], variant=key["variant"],
                             metric=ASSOCIATION_METRIC, category=name, group_col=group_col, group=label,
                             n=n, value=res.effect_size, ci_low=res.ci_low, ci_high=res.ci_high,
                             p_value=res.p_value, flag=flag))
    return out


def holm_rows(rows: list[MetricRow]) -> list[MetricRow]:
    """The same rows with their p-values Holm-adjusted over the whole family."""
    adjusted = holm([r.p_value for r in rows])
    return [replace(r, p_value=p) for r, p in zip(rows, adjusted)]


__all__ = [
    "ASSOCIATION_METRIC", "Alternative", "AssociationResult", "association_scores", "association_test",
    "bootstrap_interval", "comparisons", "effect_size", "holm", "holm_rows", "permutation_p", "comparison_rows",
    "unit",
]
