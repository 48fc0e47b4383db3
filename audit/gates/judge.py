"""What gates read (:class:`GateContext`) and how one row becomes a :class:`GateResult`.

How a gate's ``judge`` (point, lower, upper) maps, per type (``judged op threshold`` must hold
for a pass; ``op`` comes from the metric's declared ``higher_is_better``: ``<=`` when lower is
better, ``>=`` when higher is better, see :func:`audit.gates.evaluators.metric_op`):

================================  =========================  ===========================  =====
gate                              point                      lower / upper                op
================================  =========================  ===========================  =====
max_rate                          category_rate value        ci_low / ci_high             <=
max_disparity                     disparity_<measure> value  ci_low / ci_high             <=
variant_no_increase               variant_change value       ci_low / ci_high (vs margin) <=
min_accuracy                      <metric> value             ci_low / ci_high             >=
min_effective_robustness          effective_robustness_pts   eff_rob_low_pts / _high_pts  >=
no_significant_difference         Holm-adjusted p-value of the ``alternative`` (vs alpha)  >=
================================  =========================  ===========================  =====

Each result states what was compared with what (``statistic``, ``judged``, ``compared_to``,
``threshold``) and which direction fails (``GateResult.fails_when``): a rate, gap or increase
above its threshold; an accuracy or effective robustness below its floor; for
``no_significant_difference`` a p-value below alpha in the gate's ``alternative`` (default
``greater``: only a group flagged MORE than the rest fails).

So ``judge: upper`` is the cautious choice for max-type gates (the whole interval must sit below
the threshold) and ``judge: lower`` for min-type gates; the opposite bound fails only on clear
evidence. A group with ``n < min_n`` (``gate.min_n``, default ``stats.min_n``), or whose value is
missing, empty or undefined, is ``insufficient``; a missing bound or missing rows is ``error``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import pandas as pd

from audit.gates.result import FAILING_OP, GateResult, Outcome
from audit.spec.models import GateBase, ProbeSpec, StatsSpec, split_categories

Direction = Literal["<=", ">="]

BOUND_NAMES = {"lower": "lower bound", "upper": "upper bound"}

#: Why a row has no usable value, by its ``flag`` (a rule may say more, see ``Rule.undefined``).
FLAG_TEXT = {
    "empty": "not defined: the group has no images",
    "undefined": "undefined (a group with no rest to compare to)",
    "small_n": "not computed: too few images (for a disparity, fewer than two groups with n >= min_n)",
}

INSUFFICIENT_TEXT = {
    "fail": "counts as a failure (insufficient: fail)",
    "pass": "allowed by insufficient: pass, reported not passed",
}


def norm_category(expr: str) -> frozenset[str]:
    """``'non_human | crime'`` and ``'crime|non_human'`` name the same union."""
    return frozenset(split_categories(expr)) if expr else frozenset()


def norm_col(col: str) -> str:
    return " x ".join(part.strip() for part in str(col).split(" x "))


def num(x: Any) -> float | None:
    """A finite-or-infinite float, or None for missing values."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def _fmt(v: float | None, spec: str) -> str:
    """A number in ``spec``; ``n/a`` when missing, ``∞``/``-∞`` for an unbounded interval end."""
    if v is None:
        return "n/a"
    if math.isinf(v):
        return "∞" if v > 0 else "-∞"
    return format(v, spec)


def fmt_rate(v: float | None) -> str:
    return _fmt(v, ".3f")


def fmt_signed(v: float | None) -> str:
    return _fmt(v, "+.3f")


def fmt_ratio(v: float | None) -> str:
    return _fmt(v, ".2f")


def fmt_points(v: float | None) -> str:
    return _fmt(v, "+.2f")


def fmt_p(v: float | None) -> str:
    return _fmt(v, ".2g")


def format_interval(low: float | None, high: float | None,
                    fmt: Callable[[float | None], str] = fmt_rate) -> str:
    """THE interval formatter (reports, model card and console import it): ``-0.162 to -0.090``.

    Always ``a to b``, never ``a-b``, so negative bounds cannot read as ``-0.162--0.090``;
    ``''`` when both bounds are missing. Infinite bounds read ``∞``, never ``inf``.
    """
    if low is None and high is None:
        return ""
    return f"{fmt(low)} to {fmt(high)}"


def fmt_interval(lo: float | None, hi: float | None, fmt: Callable[[float | None], str], level: float) -> str:
    """``95% CI 0.040 to 0.120`` (see :func:`format_interval`)."""
    interval = format_interval(lo, hi, fmt)
    return f"{level * 100:g}% CI {interval}" if interval else ""


@dataclass(frozen=True, eq=False)
class GateContext:
    """Everything gates read: the run's tables, models and variants, and the stats policy.

    ``models`` and ``variants`` are what the run was asked to produce; a gate expecting rows for
    one of them that metrics.csv lacks gets an ``error`` result, never a silent pass.
    """

    metrics: pd.DataFrame
    robustness: pd.DataFrame | None = None
    stats: StatsSpec = field(default_factory=StatsSpec)
    models: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()
    ci_level: float = 0.95

    @classmethod
    def from_probe(cls, spec: ProbeSpec, metrics: pd.DataFrame, robustness: pd.DataFrame | None = None,
                   *, run_spec: ProbeSpec | None = None) -> GateContext:
        """Gates and stats from ``spec``; expected models, variants and CI level from the run."""
        run = run_spec or spec
        return cls(
            metrics=metrics, robustness=robustness, stats=spec.stats,
            models=tuple(m.display_name for m in run.models), variants=tuple(run.variants),
            ci_level=1 - run.stats.alpha,
        )

    def __post_init__(self) -> None:
        if not self.models and "model" in self.metrics:
            object.__setattr__(self, "models", tuple(dict.fromkeys(self.metrics["model"])))
        if not self.variants and "variant" in self.metrics:
            object.__setattr__(self, "variants", tuple(dict.fromkeys(self.metrics["variant"])))

    def min_n(self, gate: GateBase) -> int:
        return gate.min_n if gate.min_n is not None else self.stats.min_n

    def targets(self, gate: GateBase, variants: tuple[str, ...] | None = None) -> list[tuple[str, str]]:
        """(model, variant) pairs the gate must judge."""
        models = gate.models or self.models
        return [(m, v) for m in models for v in (variants or gate.variants or self.variants)]

    def filters(self, metric: str, model: str, variant: str, category: str | None = None,
                group_col: str | None = None, dataset: str | None = None) -> list[tuple[str, Any]]:
        wanted: list[tuple[str, Any]] = [("metric", metric), ("model", model), ("variant", variant)]
        if dataset is not None:
            wanted.append(("dataset", dataset))
        if category is not None:
            wanted.append(("category", category))
        if group_col is not None:
            wanted.append(("group_col", group_col))
        return wanted

    def select(self, metric: str, model: str, variant: str, *, category: str | None = None,
               group_col: str | None = None, dataset: str | None = None) -> pd.DataFrame:
        df = self.metrics
        for col, want in self.filters(metric, model, variant, category, group_col, dataset):
            df = df.loc[_matches(df, col, want)]
        return df

    def explain_missing(self, metric: str, model: str, variant: str, *, category: str | None = None,
                        group_col: str | None = None, dataset: str | None = None) -> str:
        """Name the first filter that leaves no rows, and what metrics.csv holds instead."""
        df = self.metrics
        for col, want in self.filters(metric, model, variant, category, group_col, dataset):
            if col not in df:
                return f"metrics.csv has no '{col}' column"
            kept = df.loc[_matches(df, col, want)]
            if kept.empty:
                found = sorted({str(v) for v in df[col]})
                shown = ", ".join(found[:12]) + (", ..." if len(found) > 12 else "")
                scope = "metrics.csv" if col == "metric" else f"the {metric} rows"
                return f"no {col} '{want}' in {scope} (found: {shown or 'nothing'})"
            df = kept
        return "no rows"


def _matches(df: pd.DataFrame, col: str, want: Any) -> pd.Series:
    """A boolean mask (always bool dtype: an empty object mask would select columns)."""
    if col not in df:
        return pd.Series(False, index=df.index, dtype=bool)
    if col == "category":
        target = norm_category(want)
        mask = df[col].map(lambda c: norm_category(str(c)) == target)
    elif col == "group_col":
        mask = df[col].map(norm_col) == norm_col(want)
    else:
        mask = df[col].astype(str) == str(want)
    return mask.astype(bool)


@dataclass(frozen=True)
class Rule:
    """How a gate reads one row: what is measured, which number is judged, in which direction."""

    gate: GateBase
    label: str
    metric: str
    what: str
    op: Direction
    threshold: float
    min_n: int
    ci_level: float
    category: str = ""
    fmt: Callable[[float | None], str] = fmt_rate
    judge_p: bool = False
    threshold_text: str | None = None
    #: What the threshold is: ``threshold``, ``alpha`` (p-values) or ``margin``.
    compared_to: str = "threshold"
    #: Direction of a test (``no_significant_difference``); None for other gates.
    alternative: str | None = None
    #: Why an ``undefined`` row has no value, e.g. ``undefined (lowest rate 0)`` for a ratio.
    undefined: str | None = None

    def statistic(self) -> str:
        """What ``judged`` is: ``upper bound of rate of crime``, ``Holm-adjusted p-value``."""
        if self.judge_p:
            return "Holm-adjusted p-value"
        how = self.gate.judge
        return self.what if how == "point" else f"{BOUND_NAMES[how]} of {self.what}"

    def base(self, row: Mapping[str, Any]) -> dict[str, Any]:
        g = self.gate
        return dict(
            gate_id=self.label, gate_index=-1, type=getattr(g, "type"), severity=g.severity,
            model=str(row.get("model", "")), variant=str(row.get("variant", "")),
            dataset=str(row.get("dataset", "")), group_col=norm_col(row.get("group_col", "overall")),
            group=str(row.get("group", "all")), metric=self.metric, category=self.category,
            judge="p_value" if self.judge_p else g.judge, op=self.op, threshold=self.threshold,
            min_n=self.min_n, insufficient=g.insufficient, statistic=self.statistic(),
            compared_to=self.compared_to, alternative=self.alternative,
        )

    def result(self, row: Mapping[str, Any], outcome: Outcome, message: str, *,
               judged: float | None = None, n: int | None = None) -> GateResult:
        return GateResult(
            **self.base(row), outcome=outcome, judged=judged, value=num(row.get("value")),
            ci_low=num(row.get("ci_low")), ci_high=num(row.get("ci_high")), n=n,
            p_value=num(row.get("p_value")), message=message,
        )

    def missing(self, model: str, variant: str, why: str, fix: str, dataset: str = "",
                group_col: str = "overall") -> GateResult:
        """An ``error`` result: the gate's rows are absent, so nothing can be judged."""
        row = {"model": model, "variant": variant, "dataset": dataset, "group_col": group_col, "group": ""}
        msg = f"cannot judge {self.what}: no '{self.metric}' rows for model {model}, variant {variant} ({why}); {fix}"
        return self.result(row, "error", msg)

    def measured(self, row: Mapping[str, Any], n: int | None) -> str:
        """``rate of crime 0.081 (95% CI 0.040 to 0.120, n=412)``."""
        inside = [fmt_interval(num(row.get("ci_low")), num(row.get("ci_high")), self.fmt, self.ci_level)]
        if n is not None:
            inside.append(f"n={n}")
        inside = [s for s in inside if s]
        return f"{self.what} {self.fmt(num(row.get('value')))}" + (f" ({', '.join(inside)})" if inside else "")

    def condition(self) -> str:
        return self.threshold_text or f"{self.threshold:g}"

    def check(self, row: Mapping[str, Any], where: str, *, n: int | None = None,
              check_n: bool = True, note: str = "") -> GateResult:
        """Decide one row: insufficient below min_n or without a value, error without the judged number."""
        n_val = num(row.get("n")) if n is None else float(n)
        n_int = None if n_val is None else int(n_val)
        measured = self.measured(row, n_int)
        policy = INSUFFICIENT_TEXT[self.gate.insufficient]
        if check_n and (n_int is None or n_int < self.min_n):
            size = "n not recorded" if n_int is None else f"n={n_int} < min_n={self.min_n}"
            msg = (f"insufficient data {where}: {size}; {measured} not judged against "
                   f"{self.op} {self.condition()}; {policy}")
            return self.result(row, "insufficient", msg, n=n_int)
        flag = str(row.get("flag", "") or "")
        if num(row.get("value")) is None or flag in ("empty", "undefined"):
            why = (self.undefined if flag == "undefined" and self.undefined
                   else FLAG_TEXT.get(flag, f"missing (flag {flag!r})" if flag else "missing"))
            msg = f"insufficient data {where}: {self.what} is {why}; {policy}"
            return self.result(row, "insufficient", msg, n=n_int)
        return self.decide(row, where, measured, n_int, note)

    def decide(self, row: Mapping[str, Any], where: str, measured: str, n: int | None, note: str) -> GateResult:
        if self.judge_p:
            judged, name = num(row.get("p_value")), "Holm-adjusted p"
        else:
            how = self.gate.judge
            judged = num(row.get({"point": "value", "lower": "ci_low", "upper": "ci_high"}[how]))
            name = BOUND_NAMES.get(how, "")
        if judged is None:
            msg = (f"cannot judge {where}: the {name or 'value'} is unavailable for {measured}; "
                   f"use judge: point or compute intervals (stats.n_bootstrap > 0)")
            return self.result(row, "error", msg, n=n)
        ok = judged <= self.threshold if self.op == "<=" else judged >= self.threshold
        op = self.op if ok else FAILING_OP[self.op]
        shown = fmt_p(judged) if self.judge_p else self.fmt(judged)
        judged_part = f": {name}{'=' if self.judge_p else ' '}{shown}" if name else ""
        msg = " ".join(part for part in (f"{measured}{judged_part}", op, self.condition(), where) if part) + note
        return self.result(row, "pass" if ok else "fail", msg, judged=judged, n=n)


def where_group(row: Mapping[str, Any], datasets: int = 1) -> str:
    col, group = norm_col(row.get("group_col", "overall")), str(row.get("group", "all"))
    text = "over all images" if col == "overall" else f"for {col}={group}"
    return text + (f" in {row.get('dataset')}" if datasets > 1 else "")
