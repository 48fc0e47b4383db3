"""Retrieval bias: rank a dataset's images by similarity to a text query and measure how the
top ``k`` results spread over the groups of a subgroup column, against a desired distribution.

Metrics (Geyik, Ambler & Kenthapadi 2019, "Fairness-Aware Ranking in Search & Recommendation
Systems"; used for CLIP by Berg et al. 2022, "A Prompt Array Keeps the Bias Away"):

* ``skew@k`` of group ``g``: ``ln(share of g in the top k / desired share of g)``. 0 is parity,
  positive means over-represented.
* ``max_skew@k`` / ``min_skew@k``: the largest / smallest skew over the groups. With a desired
  distribution over the groups present, ``max_skew@k >= 0`` always.
* ``ndkl@k``: ``(1/Z) sum_{i=1..k} KL(D_i || D*) / log2(i + 1)``, ``Z = sum_{i=1..k} 1/log2(i + 1)``,
  ``D_i`` the group distribution of the top ``i``; KL in nats with ``0 ln 0 = 0``. ``ndkl >= 0``,
  and 0 only when every prefix matches ``D*``.

Choices, each deliberate:

* **Absent groups are not smoothed.** A group with no image in the top ``k`` has skew
  ``ln 0 = -inf``; its ``skew@k`` row (and ``min_skew@k`` when it is the minimum) carries the flag
  :data:`FLAG_ABSENT`. Smoothing would invent a number that depends on an arbitrary constant and
  would move ``max_skew@k`` off its closed form ``ln(1 / desired share)``; ``max_skew@k`` and
  ``ndkl@k`` are unaffected by the choice. A mean over queries is ``-inf`` as soon as one query
  misses the group: read ``max_skew`` and ``ndkl`` for small ``k``.
* **k larger than the dataset**: all ``n`` images are used and the row is flagged
  :data:`FLAG_K_EXCEEDS_N`; the metric name keeps the requested ``k``.
* **Ties** in similarity break toward the lower row index (stable sort), in the point estimate
  and in every bootstrap resample.
* **Desired distribution**: ``uniform`` over the groups present in the column, or its
  ``marginal`` (each group's share of the images). It is computed once from all images and held
  fixed in the bootstrap, which therefore measures how much the ranking's top ``k`` varies.
* **Bootstrap over images**: each resample draws ``n`` images with replacement and re-ranks them.
  A resample is stored as how often each image was drawn; its ranking is the full-data ranking with
  image ``j`` repeated ``count[j]`` times (duplicates tie and share a group, distinct images keep
  the stable order), so only the first ``~k`` ranked images are touched and nothing is re-sorted.
  The same resamples serve every query, ``k`` and group column, so the ``mean`` rows' intervals
  are intervals of the mean. ``value`` is the full-data estimate.
* **Intervals are median-recentred percentile intervals**: the percentile interval
  (:func:`audit.metrics.base.percentile_interval`) shifted by ``median(resamples) - value``, then
  clipped to the metric's range (``max_skew`` in ``[0, ln(1/min share)]``, ``ndkl >= 0``,
  ``min_skew <= 0``, ``skew <= ln(1/share)``). Why: a resample draws about 26% of the images
  twice or more; the copies tie and share a group, so they clump in the top k and push skew and
  NDKL *up*, and the plain percentile interval sits above the estimate (N = 10,000, 7 groups,
  k = 100, no bias in the ranking: bootstrap mean of MaxSkew 0.41 against an expected 0.30).
  Simulated coverage of the expected value over fresh datasets (N = 5,000, 7 groups, ranking
  bias none / mild / strong, k = 10/100/1000, 150 datasets x 300 resamples, nominal 95%): plain
  percentile 35-100% (NDKL, no bias, k = 1000: 35%), median-recentred 87-99%. The median, not
  the mean, so resamples at ``-inf`` do no harm; a shift that is not finite is not applied.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
from scipy.special import rel_entr

from audit.metrics.base import NAN, MetricRow, percentile_interval, rows_to_frame
from audit.metrics.breakdown import ALL, column_levels
from audit.models.base import l2_normalize

__all__ = [
    "DESIRED_MODES", "FLAG_ABSENT", "FLAG_K_EXCEEDS_N", "HIGHER_IS_BETTER", "MEAN",
    "desired_distribution", "max_skew_at_k", "min_skew_at_k", "ndkl", "rank_images",
    "retrieval_metrics", "skew_at_k",
]

Desired = Literal["uniform", "marginal"]
DESIRED_MODES: tuple[str, ...] = ("uniform", "marginal")
#: ``category`` of the rows that average a metric over the query set.
MEAN = "mean"
#: A group with no image in the top k: its skew is ``-inf``.
FLAG_ABSENT = "absent"
#: ``k`` exceeds the number of images ranked: all images were used.
FLAG_K_EXCEEDS_N = "k_exceeds_n"
#: Direction of each metric family (``skew`` is best at 0, so it has none).
HIGHER_IS_BETTER: dict[str, bool | None] = {
    "max_skew": False, "min_skew": True, "ndkl": False, "skew": None,
}
#: Upper bound on the elements of one bootstrap chunk's largest work array.
_CHUNK_ELEMENTS = 1 << 22
#: Up to this many groups, prefix counts come from one running count per group, else a sort.
_LOOP_GROUPS = 16


# --------------------------------------------------------------------------- single rankings


def desired_distribution(groups: Sequence[object] | pd.Series, mode: Desired = "uniform") -> pd.Series:
    """The target share of each group present in ``groups``.

    Args:
        groups: One group label per image (no missing values).
        mode: ``uniform`` (``1/G`` for each of the ``G`` groups present) or ``marginal`` (each
            group's share of the images).

    Returns:
        Shares indexed by group label (as ``str``, in the breakdown engine's level order), summing to 1.
    """
    if mode not in DESIRED_MODES:
        raise ValueError(f"desired must be one of {DESIRED_MODES}, got {mode!r}")
    values = pd.Series(groups) if not isinstance(groups, pd.Series) else groups
    if values.empty:
        raise ValueError("no group labels: a desired distribution needs at least one image")
    if values.isna().any():
        raise ValueError("group labels contain missing values; drop those images first")
    counts = values.astype(str).value_counts()
    levels = [lv for lv in column_levels(values) if lv in counts.index]
    counts = counts.reindex(levels)
    share = counts / counts.sum() if mode == "marginal" else pd.Series(1.0 / len(levels), index=levels)
    return share.astype(float).rename("desired")


def _desired_series(desired: Mapping[str, float] | pd.Series) -> pd.Series:
    share = pd.Series(desired, dtype=float)
    share.index = share.index.map(str)
    if share.empty or (share <= 0).any() or not np.isclose(share.sum(), 1.0):
        raise ValueError(f"desired shares must be positive and sum to 1, got {dict(share)}")
    return share


def _prefix_counts(groups_ranked: Sequence[object], desired: pd.Series, k: int) -> np.ndarray:
    """``[k_eff, G]``: how many of the top ``i`` images fall in each desired group."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    ranked = [str(g) for g in groups_ranked][:k]
    if not ranked:
        raise ValueError("the ranking is empty")
    unknown = sorted(set(ranked) - set(desired.index))
    if unknown:
        raise ValueError(f"groups {unknown} are not in the desired distribution {list(desired.index)}")
    onehot = np.array([[g == d for d in desired.index] for g in ranked], dtype=float)
    return np.cumsum(onehot, axis=0)


def skew_at_k(groups_ranked: Sequence[object], desired: Mapping[str, float] | pd.Series,
              k: int) -> pd.Series:
    """``ln(share in the top k / desired share)`` for each group of ``desired``.

    Args:
        groups_ranked: The group of each ranked image, best first.
        desired: Target share per group (e.g. from :func:`desired_distribution`), positive, sum 1.
        k: Cut-off; above ``len(groups_ranked)`` the whole ranking is used.

    Returns:
        Skew per group, indexed like ``desired``; ``-inf`` for a group absent from the top k.
    """
    share = _desired_series(desired)
    top = _prefix_counts(groups_ranked, share, k)[-1]
    with np.errstate(divide="ignore"):
        return pd.Series(np.log(top / top.sum() / share.to_numpy()), index=share.index, name="skew")


def max_skew_at_k(groups_ranked: Sequence[object], desired: Mapping[str, float] | pd.Series,
                  k: int) -> float:
    """MaxSkew@k: the largest :func:`skew_at_k` over the groups (``>= 0``)."""
    return float(skew_at_k(groups_ranked, desired, k).max())


def min_skew_at_k(groups_ranked: Sequence[object], desired: Mapping[str, float] | pd.Series,
                  k: int) -> float:
    """MinSkew@k: the smallest :func:`skew_at_k` over the groups (``<= 0``; ``-inf`` if one is absent)."""
    return float(skew_at_k(groups_ranked, desired, k).min())


def ndkl(groups_ranked: Sequence[object], desired: Mapping[str, float] | pd.Series, k: int) -> float:
    """Normalized discounted KL divergence of the top-``k`` prefixes from ``desired`` (nats).

    Above ``len(groups_ranked)`` the whole ranking is used (``k`` and ``Z`` shrink with it).
    """
    share = _desired_series(desired)
    prefix = _prefix_counts(groups_ranked, share, k)
    i = np.arange(1, len(prefix) + 1)
    kl = rel_entr(prefix / i[:, None], share.to_numpy()[None, :]).sum(axis=1)
    weights = 1.0 / np.log2(i + 1)
    return float((weights * kl).sum() / weights.sum())


def rank_images(image_emb: np.ndarray, query_emb: np.ndarray) -> np.ndarray:
    """Image indices by cosine similarity to each query, best first; ties go to the lower index.

    Args:
        image_emb: ``[N, D]`` image embeddings (normalized here).
        query_emb: ``[Q, D]`` query embeddings (normalized here).

    Returns:
        ``[Q, N]`` integer array: row ``q`` is the ranking for query ``q``.
    """
    image_emb, query_emb = np.asarray(image_emb), np.asarray(query_emb)
    if image_emb.ndim != 2 or query_emb.ndim != 2 or image_emb.shape[1] != query_emb.shape[1]:
        raise ValueError(f"expected image_emb [N, D] and query_emb [Q, D], got "
                         f"{image_emb.shape} and {query_emb.shape}")
    scores = l2_normalize(query_emb) @ l2_normalize(image_emb).T
    return np.argsort(-scores, axis=1, kind="stable")


# --------------------------------------------------------------------------- vectorized engine


def _top_images(order: np.ndarray, counts: np.ndarray, kmax: int) -> np.ndarray:
    """``[B, kmax]``: the top ``kmax`` images of each resample, given as draw counts ``[B, N]``.

    A resample's ranking is ``order`` with image ``j`` repeated ``counts[:, j]`` times (duplicates
    tie; distinct images keep the full-data order), so only the first ``~kmax`` ranked images matter.
    """
    b, n = counts.shape
    m = min(n, kmax + 8 * int(np.sqrt(kmax)) + 64)  # covers kmax draws almost surely; else widen
    while True:
        drawn = counts[:, order[:m]]
        totals = drawn.sum(axis=1, dtype=np.int64)
        if m == n or totals.min() >= kmax:
            break
        m = min(n, 4 * m)
    expanded = np.repeat(np.broadcast_to(order[:m], (b, m)).ravel(), drawn.ravel())
    starts = np.concatenate(([0], np.cumsum(totals)[:-1]))
    return expanded[starts[:, None] + np.arange(kmax)]


def _occurrences(codes: np.ndarray, g: int, ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``occ[r, i]``: how many of the top ``i + 1`` images of resample ``r`` share image ``i``'s
    group; and the group counts of the top ``k`` for each ``k`` in ``ks``, ``[B, K, G]``."""
    b, kmax = codes.shape
    if g <= _LOOP_GROUPS:  # one cumulative count per group: fastest for few groups
        occ = np.zeros((b, kmax), dtype=np.int32)
        top = np.empty((b, ks.size, g), dtype=np.int32)
        for level in range(g):
            hit = codes == level
            running = np.cumsum(hit, axis=1, dtype=np.int32)
            occ += running * hit
            top[:, :, level] = running[:, ks - 1]
        return occ, top
    by_group = np.argsort(codes, axis=1, kind="stable")  # many groups: rank within group runs
    sorted_codes = np.take_along_axis(codes, by_group, axis=1)
    pos = np.arange(kmax)
    run_start = np.where(np.diff(sorted_codes, axis=1, prepend=-1) != 0, pos, 0)
    occ = np.empty((b, kmax), dtype=np.int32)
    np.put_along_axis(occ, by_group, pos - np.maximum.accumulate(run_start, axis=1) + 1, axis=1)
    rows = np.arange(b)[:, None] * g
    top = np.stack([np.bincount((codes[:, :k] + rows).ravel(), minlength=b * g).reshape(b, g)
                    for k in ks], axis=1)
    return occ, top


def _column_stats(codes: np.ndarray, log_desired: np.ndarray,
                  ks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Group codes of ranked images ``[B, kmax]`` -> skew ``[B, K, G]`` and NDKL ``[B, K]``.

    ``KL(D_i || D*) = (sum_g c_g ln c_g) / i - ln i - (sum_g c_g ln p_g) / i`` with ``c_g`` the
    prefix counts; both sums grow by one term per rank, so no ``[B, k, G]`` float array is built.
    """
    kmax = codes.shape[1]
    occ, top = _occurrences(codes, log_desired.size, ks)
    c = np.arange(kmax + 1, dtype=float)
    c_ln_c = c * np.log(np.maximum(c, 1.0))  # 0 ln 0 = 0
    i = np.arange(1, kmax + 1, dtype=float)
    kl = np.cumsum(np.diff(c_ln_c)[occ - 1] - log_desired[codes], axis=1) / i
    kl = np.maximum(kl - np.log(i), 0.0)  # KL >= 0; clip float round-off
    weights = 1.0 / np.log2(i + 1)
    at = ks - 1
    ndkl_k = np.cumsum(kl * weights, axis=1)[:, at] / np.cumsum(weights)[at]
    with np.errstate(divide="ignore"):
        skew = np.log(top / ks[None, :, None]) - log_desired
    return skew, ndkl_k


def _statistics(orders: np.ndarray, counts: np.ndarray, codes: Sequence[np.ndarray],
                desired: Sequence[np.ndarray], ks: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per group column: skew ``[B, Q, K, G]`` and NDKL ``[B, Q, K]`` for resamples ``counts``."""
    log_desired = [np.log(d) for d in desired]
    per_query = []  # query-major, so one [B, kmax] ranking is alive at a time
    for order in orders:
        top = _top_images(order, counts, int(ks.max()))
        per_query.append([_column_stats(col[top], logs, ks) for col, logs in zip(codes, log_desired)])
    return [(np.stack([q[c][0] for q in per_query], axis=1), np.stack([q[c][1] for q in per_query], axis=1))
            for c in range(len(codes))]


def _resample_counts(rng: np.random.Generator, n: int, n_bootstrap: int,
                     chunk: int) -> Iterator[np.ndarray]:
    """Yield ``[b, n]`` draw counts; resample ``r`` is ``rng.integers(0, n, size=(b, n))[r]``."""
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        idx = rng.integers(0, n, size=(b, n))
        flat = (idx + np.arange(b)[:, None] * n).ravel()
        yield np.bincount(flat, minlength=b * n).reshape(b, n).astype(np.int32)


# --------------------------------------------------------------------------- rows


def retrieval_metrics(image_emb: np.ndarray, groups: pd.DataFrame, query_emb: np.ndarray,
                      queries: list[str], ks: list[int], desired: str, n_bootstrap: int,
                      rng: np.random.Generator, dataset: str, model: str, variant: str,
                      alpha: float = 0.05) -> pd.DataFrame:
    """Skew@k, MaxSkew@k, MinSkew@k and NDKL@k of every query's ranking, with bootstrap intervals.

    Args:
        image_emb: ``[N, D]`` image embeddings.
        groups: ``N`` rows in image order, one column per subgroup column (no missing values;
            pass an intersection as its own column, e.g. ``race x gender``).
        query_emb: ``[Q, D]`` query embeddings (template-averaged; normalized here anyway).
        queries: The ``Q`` query texts; they become the ``category`` column.
        ks: Cut-offs, e.g. ``[10, 100, 1000]``.
        desired: ``uniform`` or ``marginal`` (see :func:`desired_distribution`).
        n_bootstrap: Image resamples for the intervals; 0 leaves them NaN.
        rng: The only source of randomness.
        dataset, model, variant: Copied into every row.
        alpha: 1 - confidence level of the percentile intervals.

    Returns:
        A :data:`audit.results.METRIC_COLUMNS` frame. For each group column, ``k`` and query (then
        ``category = "mean"`` over the queries): ``max_skew@k`` and ``min_skew@k`` (``group`` = the
        group attaining it, first in level order on ties; ``all`` on mean rows), ``ndkl@k``
        (``group = all``) and ``skew@k`` per group. ``n`` is the number of images ranked.
    """
    n = _check_inputs(image_emb, groups, query_emb, queries, ks, desired, n_bootstrap, alpha)
    columns = [str(c) for c in groups.columns]
    shares = [desired_distribution(groups[c], desired) for c in groups.columns]  # type: ignore[arg-type]
    codes = [pd.Categorical(groups[c].astype(str), categories=s.index).codes.astype(np.int16)
             for c, s in zip(groups.columns, shares)]
    targets = [s.to_numpy() for s in shares]
    k_eff = np.minimum(np.asarray(ks, dtype=np.int64), n)
    orders = rank_images(image_emb, query_emb)

    point = _statistics(orders, np.ones((1, n), dtype=np.int32), codes, targets, k_eff)
    widest = max(n, int(k_eff.max()) * max(t.size for t in targets))
    chunk = max(1, _CHUNK_ELEMENTS // widest)
    boots: list[list[tuple[np.ndarray, np.ndarray]]] = [
        _statistics(orders, counts, codes, targets, k_eff)
        for counts in _resample_counts(rng, n, n_bootstrap, chunk)
    ]
    rows: list[MetricRow] = []
    for c, (col, share) in enumerate(zip(columns, shares)):
        point_c = _families(*point[c])
        boot_c = {name: np.concatenate([_families(*b[c])[name] for b in boots]) if boots
                  else arr[:0] for name, arr in point_c.items()}
        cell = _Cell(dataset, model, variant, col, n, alpha, share)
        for j, k in enumerate(ks):
            for q, query in [*enumerate(queries), (None, MEAN)]:
                rows += cell.rows(k, query, {name: (_pick(arr, q, j)[0], _pick(boot_c[name], q, j))
                                             for name, arr in point_c.items()})
    return rows_to_frame(rows)


def _families(skew: np.ndarray, ndkl_k: np.ndarray) -> dict[str, np.ndarray]:
    """Each metric family per resample, query and k (``skew`` also per group)."""
    return {"max_skew": skew.max(axis=3), "min_skew": skew.min(axis=3), "ndkl": ndkl_k, "skew": skew}


def _pick(stat: np.ndarray, q: int | None, j: int) -> np.ndarray:
    """Statistic of query ``q`` (or its mean over the queries when None) at the ``j``-th k."""
    return stat.mean(axis=1)[:, j] if q is None else stat[:, q, j]


class _Cell:
    """Builds the rows of one (group column, k, query) from point and bootstrap statistics."""

    def __init__(self, dataset: str, model: str, variant: str, group_col: str, n: int,
                 alpha: float, desired: pd.Series) -> None:
        self.dataset, self.model, self.variant = dataset, model, variant
        self.group_col, self.n, self.alpha = group_col, n, alpha
        self.levels, self.desired = [str(v) for v in desired.index], desired.to_numpy()

    def row(self, metric: str, k: int, category: str, group: str, value: float,
            samples: np.ndarray, bounds: tuple[float, float]) -> MetricRow:
        low, high = _interval(samples, float(value), self.alpha, bounds)
        flag = FLAG_K_EXCEEDS_N if k > self.n else FLAG_ABSENT if value == -np.inf else ""
        return MetricRow(
            dataset=self.dataset, model=self.model, variant=self.variant, metric=f"{metric}@{k}",
            category=category, group_col=self.group_col, group=group, n=self.n,
            value=float(value), ci_low=low, ci_high=high, flag=flag,
        )

    def rows(self, k: int, category: str,
             stats: dict[str, tuple[np.ndarray, np.ndarray]]) -> list[MetricRow]:
        """``stats``: family -> (full-data value, bootstrap samples), for this query and k."""
        skew, skew_b = stats["skew"]
        # The group attaining the extreme is only defined per query; a mean mixes queries.
        mean = category == MEAN
        hi = ALL if mean else self.levels[int(np.argmax(skew))]
        lo = ALL if mean else self.levels[int(np.argmin(skew))]
        top = float(-np.log(self.desired.min()))
        return [
            self.row("max_skew", k, category, hi, *stats["max_skew"], (0.0, top)),
            self.row("min_skew", k, category, lo, *stats["min_skew"], (-np.inf, 0.0)),
            self.row("ndkl", k, category, ALL, *stats["ndkl"], (0.0, np.inf)),
            *(self.row("skew", k, category, level, skew[g], skew_b[:, g],
                       (-np.inf, float(-np.log(self.desired[g]))))
              for g, level in enumerate(self.levels)),
        ]


def _interval(samples: np.ndarray, value: float, alpha: float,
              bounds: tuple[float, float]) -> tuple[float, float]:
    """Percentile interval shifted by ``median(samples) - value``, clipped to ``bounds``.

    See the module docstring for why the shift: repeated images clump in a resample's top k.
    """
    if samples.size == 0:
        return NAN, NAN
    low, high = percentile_interval(samples, alpha)
    shift = float(np.median(samples)) - value
    if np.isfinite(shift):
        low, high = low - shift, high - shift
    return float(np.clip(low, *bounds)), float(np.clip(high, *bounds))


def _check_inputs(image_emb: np.ndarray, groups: pd.DataFrame, query_emb: np.ndarray,
                  queries: Sequence[str], ks: Sequence[int], desired: str, n_bootstrap: int,
                  alpha: float) -> int:
    """All problems with the arguments at once, as one ValueError; returns the number of images."""
    problems = []
    n = int(np.shape(image_emb)[0]) if np.ndim(image_emb) == 2 else -1
    if n < 1:
        problems.append(f"image_emb must be [N, D] with N >= 1, got shape {np.shape(image_emb)}")
    if np.ndim(query_emb) != 2 or np.shape(query_emb)[0] < 1:
        problems.append(f"query_emb must be [Q, D] with Q >= 1, got shape {np.shape(query_emb)}")
    elif np.shape(query_emb)[0] != len(queries):
        problems.append(f"{len(queries)} queries for {np.shape(query_emb)[0]} query embeddings")
    if len(set(queries)) != len(queries) or MEAN in queries:
        problems.append(f"query texts must be unique and not {MEAN!r}: {list(queries)}")
    if len(groups) != n or groups.shape[1] == 0:
        problems.append(f"groups must have one row per image ({n}) and at least one column, "
                        f"got shape {groups.shape}")
    missing = [str(c) for c in groups.columns if groups[c].isna().any()]
    if missing:
        problems.append(f"group columns {missing} have missing values; drop those images first")
    if not ks or any(int(k) != k or k < 1 for k in ks) or len(set(ks)) != len(ks):
        problems.append(f"ks must be distinct positive integers, got {list(ks)}")
    if desired not in DESIRED_MODES:
        problems.append(f"desired must be one of {DESIRED_MODES}, got {desired!r}")
    if n_bootstrap < 0 or not 0 < alpha < 1:
        problems.append(f"need n_bootstrap >= 0 and 0 < alpha < 1, got {n_bootstrap} and {alpha}")
    if problems:
        raise ValueError("retrieval_metrics: " + "; ".join(problems))
    return n
