"""The statistics of one comparison row: paired (same images) or unpaired (different images).

Paired: McNemar's exact test on the per-image 2x2 table and Newcombe's paired interval
(:func:`audit.metrics.base.paired_difference_interval`, as ``variant_change`` uses). Unpaired: the
two-proportion z-test and Newcombe's interval for independent proportions (statsmodels).
Differences are always ``new - base``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from statsmodels.stats.contingency_tables import mcnemar
from statsmodels.stats.proportion import confint_proportions_2indep, proportions_ztest

from audit.metrics.base import PairedCounts, paired_difference_interval

NAN = float("nan")


def paired_table(base: pd.Series, new: pd.Series) -> PairedCounts:
    """The 2x2 table of two boolean outcome series indexed by image id (inner join, NA dropped)."""
    joined = pd.concat([base.rename("b"), new.rename("n")], axis=1, join="inner").dropna()
    b, n = joined["b"].astype(bool).to_numpy(), joined["n"].astype(bool).to_numpy()
    return PairedCounts(both=int((b & n).sum()), base_only=int((b & ~n).sum()),
                        compare_only=int((~b & n).sum()), neither=int((~b & ~n).sum()))


def mcnemar_exact_p(t: PairedCounts) -> float:
    """McNemar's exact test (statsmodels ``mcnemar(exact=True)``); 1 with no discordant pair."""
    if t.base_only + t.compare_only == 0:
        return 1.0
    return float(mcnemar([[t.both, t.base_only], [t.compare_only, t.neither]], exact=True).pvalue)


def paired_stats(t: PairedCounts, alpha: float) -> tuple[float, float, float]:
    """``(ci_low, ci_high, p_value)`` of ``new - base`` on paired images."""
    if t.n == 0:
        return NAN, NAN, NAN
    low, high = paired_difference_interval(t, alpha)
    return low, high, mcnemar_exact_p(t)


def unpaired_stats(k_base: int, n_base: int, k_new: int, n_new: int, alpha: float) -> tuple[float, float, float]:
    """``(ci_low, ci_high, p_value)`` of ``new - base`` for independent samples."""
    if n_base == 0 or n_new == 0:
        return NAN, NAN, NAN
    low, high = confint_proportions_2indep(k_new, n_new, k_base, n_base, method="newcomb", alpha=alpha)
    if k_base + k_new in (0, n_base + n_new):  # z is 0/0: no difference in the data at all
        p = 1.0
    else:
        p = float(proportions_ztest([k_new, k_base], [n_new, n_base])[1])
    return float(low), float(high), p


def holm_adjust(p: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment over one family (the toolkit's one implementation,
    :func:`audit.metrics.pairwise.holm`, equal to statsmodels' ``multipletests``)."""
    from audit.metrics.pairwise import holm as holm_step_down

    return holm_step_down(np.asarray(p, dtype=float))


def holm(p_values: pd.Series) -> pd.Series:
    """Holm-adjusted p-values over one family; NaN stays NaN (and is not counted)."""
    out = pd.Series(NAN, index=p_values.index, dtype=float)
    ok = p_values.notna()
    if ok.any():
        out[ok] = holm_adjust(p_values[ok].to_numpy(dtype=float))
    return out


def count_of(value: float, n: float) -> int:
    """The hit count behind a proportion ``value`` of ``n`` (as metrics.csv stores it)."""
    return 0 if not (math.isfinite(value) and math.isfinite(n)) else int(np.rint(value * n))


__all__ = ["holm", "holm_adjust", "count_of", "mcnemar_exact_p", "paired_stats", "paired_table", "unpaired_stats"]
