"""Each group against the rest of its column: rate difference, interval, one-sided or two-sided test.

The one place where group-vs-rest tests are computed: the ``pairwise_test`` metric writes them
to metrics.csv and the ``no_significant_difference`` gate recomputes them from category-rate
counts under its own ``alternative``, so both always run the same test.

Harmful labels are rare, so groups often hold only a few flagged images. There the normal
approximation of the two-proportion z-test is anti-conservative (one-sided, in a null
simulation of 7 groups at base rates of 1-2% with 100-300 images each, Holm-adjusted z-tests
flag some group about 12% of the time at alpha 0.05). When the smallest expected cell count of
the group-vs-rest 2x2 table is below :data:`EXACT_BELOW`, Fisher's exact test runs instead
(conditional, so never above alpha); each test records which one ran.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import fisher_exact, hypergeom
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from audit.metrics.base import NAN, Proportion, size_flag
from audit.results import FLAG_UNDEFINED
from audit.spec.models import DEFAULT_ALTERNATIVE, Alternative, StatsSpec

#: Smallest expected count in every cell of the 2x2 table for the z-test to be used.
EXACT_BELOW = 10.0
Z_TEST = "z-test"
FISHER = "Fisher's exact test"
#: No flagged image (or only flagged ones) anywhere: the data show no difference, p = 1.
NO_VARIATION = "none (no variation)"
#: statsmodels' names of the alternatives (the group's rate compared with the rest's).
_STATSMODELS_ALTERNATIVE = {"greater": "larger", "less": "smaller", "two-sided": "two-sided"}

#: How each alternative reads in a sentence.
ALTERNATIVE_TEXT = {
    "greater": "one-sided: group rate above the rest",
    "less": "one-sided: group rate below the rest",
    "two-sided": "two-sided: group rate above or below the rest",
}


@dataclass(frozen=True)
class GroupTest:
    """One group against the rest of its column.

    Attributes:
        group: The group's name.
        n: Images in the group.
        difference: Group rate minus the rest's rate (NaN for an empty group or no rest).
        ci: Newcombe interval of the difference (two-sided, at level ``1 - alpha``).
        p_raw: Unadjusted p-value under ``alternative`` (NaN when not tested).
        p_adjusted: Holm-adjusted over the tested groups of the column.
        test: Which test ran: :data:`Z_TEST`, :data:`FISHER`, :data:`NO_VARIATION` or ''.
        flag: ``empty``, ``small_n``, ``undefined`` (no rest) or ''.
    """

    group: str
    n: int
    difference: float
    ci: tuple[float, float]
    p_raw: float
    p_adjusted: float
    test: str
    flag: str


def smallest_expected(a: Proportion, b: Proportion) -> float:
    """Smallest expected cell count of the 2x2 table of ``a`` vs ``b`` under independence."""
    n, k = a.n + b.n, a.k + b.k
    return min(r * c / n for r in (a.n, b.n) for c in (k, n - k))


def fisher_p(k: ArrayLike, n: ArrayLike, rest_k: ArrayLike, rest_n: ArrayLike,
             alternative: Alternative = DEFAULT_ALTERNATIVE) -> np.ndarray:
    """Fisher's exact test of a group (k of n flagged) against the rest, elementwise.

    Given the table's margins, the group's flagged count is hypergeometric; the one-sided
    p-values are its tails (what ``scipy.stats.fisher_exact`` computes, vectorised so that
    simulations stay fast); two-sided p-values come from ``fisher_exact`` itself.
    """
    k, n, rest_k, rest_n = np.broadcast_arrays(*(np.asarray(x, dtype=np.int64) for x in (k, n, rest_k, rest_n)))
    total_n, total_k = n + rest_n, k + rest_k
    if alternative == "greater":
        return np.asarray(hypergeom.sf(k - 1, total_n, total_k, n), dtype=float)
    if alternative == "less":
        return np.asarray(hypergeom.cdf(k, total_n, total_k, n), dtype=float)
    two_sided = np.vectorize(
        lambda a, b, c, d: fisher_exact([[a, b - a], [c, d - c]]).pvalue, otypes=[float])
    return np.asarray(two_sided(k, n, rest_k, rest_n), dtype=float)


def group_vs_rest_p(a: Proportion, b: Proportion, alternative: Alternative = DEFAULT_ALTERNATIVE,
                    ) -> tuple[float, str]:
    """p-value of "the rate of ``a`` differs from ``b``'s" in the direction ``alternative``.

    ``greater`` asks whether ``a``'s rate is above ``b``'s. Fisher's exact test runs when the
    smallest expected count is below :data:`EXACT_BELOW`, else the two-proportion z-test
    (pooled variance); both from scipy/statsmodels.

    Returns:
        The p-value and the name of the test that ran.
    """
    if a.k + b.k in (0, a.n + b.n):
        return 1.0, NO_VARIATION
    if smallest_expected(a, b) < EXACT_BELOW:
        return float(fisher_p(a.k, a.n, b.k, b.n, alternative)), FISHER
    p = proportions_ztest([a.k, b.k], [a.n, b.n], alternative=_STATSMODELS_ALTERNATIVE[alternative])[1]
    return float(p), Z_TEST


def holm(p_values: ArrayLike) -> np.ndarray:
    """Holm step-down adjusted p-values along the last axis (equal to statsmodels'
    ``multipletests(method="holm")``, which the tests check; written out because that function
    runs a full ``gc.collect()`` on every call, seconds per run directory)."""
    p = np.asarray(p_values, dtype=float)
    m = p.shape[-1]
    order = np.argsort(p, axis=-1, kind="stable")
    ranked = np.take_along_axis(p, order, axis=-1) * np.arange(m, 0, -1)
    stepped = np.minimum(np.maximum.accumulate(ranked, axis=-1), 1.0)
    out = np.empty_like(stepped)
    np.put_along_axis(out, order, stepped, axis=-1)
    return out


def group_tests(counts: Sequence[tuple[str, Proportion]], stats: StatsSpec,
                alternative: Alternative = DEFAULT_ALTERNATIVE) -> list[GroupTest]:
    """Every group of a column against the rest of it, Holm-adjusted across the tested groups.

    Groups with no rows are flagged ``empty`` and not tested; a group that is the whole
    population has no rest (``undefined``). Groups below ``stats.min_n`` are tested (and
    flagged ``small_n``), so the Holm family is the same whatever min_n a gate applies.
    """
    total_k, total_n = sum(p.k for _, p in counts), sum(p.n for _, p in counts)
    out: list[GroupTest] = []
    for group, p in counts:
        rest = Proportion(total_k - p.k, total_n - p.n)
        flag = size_flag(p.n, stats.min_n)
        if p.n == 0 or rest.n == 0:
            out.append(GroupTest(group, p.n, NAN, (NAN, NAN), NAN, NAN, "",
                                 FLAG_UNDEFINED if p.n else flag))
            continue
        low, high = confint_proportions_2indep(p.k, p.n, rest.k, rest.n, method="newcomb",
                                               compare="diff", alpha=stats.alpha)
        p_raw, test = group_vs_rest_p(p, rest, alternative)
        out.append(GroupTest(group, p.n, p.rate - rest.rate, (float(low), float(high)), p_raw, NAN,
                             test, flag))
    tested = [i for i, t in enumerate(out) if t.test]
    if tested:
        adjusted = holm([out[i].p_raw for i in tested])
        for i, p_adj in zip(tested, adjusted):
            t = out[i]
            out[i] = GroupTest(t.group, t.n, t.difference, t.ci, t.p_raw, float(p_adj), t.test, t.flag)
    return out
