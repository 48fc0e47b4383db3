"""Compare two runs (or two models of one run), row by row, with paired tests where images match.

Rows of ``metrics.csv`` are matched on :data:`KEYS`; only proportion metrics are compared
(:data:`OUTCOMES`: their per-image outcomes are in ``predictions.parquet``). ``direction`` comes
from each metric's declared ``higher_is_better``; ``p_holm`` is Holm-adjusted over the family
:data:`FAMILY` (all groups of one group column for one metric and category).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

from audit.compare.stats import count_of, holm, paired_stats, paired_table, unpaired_stats
from audit.errors import UserError
from audit.metrics.breakdown import SEP, Grouping, group_labels
from audit.results import FLAG_EMPTY, FLAG_SMALL_N, Manifest
from audit.spec.models import split_categories

KEYS = ["dataset", "variant", "metric", "category", "group_col", "group"]
FAMILY = ["dataset", "model_base", "model_new", "variant", "metric", "category", "group_col"]
#: Columns of comparison.csv, in order.
COMPARISON_COLUMNS = (
    "dataset", "model_base", "model_new", "variant", "metric", "category", "group_col", "group",
    "n_base", "n_new", "base", "new", "delta", "ci_low", "ci_high", "p_value", "p_holm", "paired",
    "direction", "flag",
)
#: ``flag`` values beyond metrics.csv's: a change significant after Holm, by direction.
FLAG_REGRESSION = "regression"
FLAG_IMPROVEMENT = "improvement"


def _flagged(frame: pd.DataFrame, category: str) -> pd.Series:
    return frame["top1_category"].isin(split_categories(category)).astype("boolean")


def _column(name: str) -> Callable[[pd.DataFrame, str], pd.Series]:
    return lambda frame, _category: frame[name].astype("boolean")


#: Metric -> per-image outcome (a boolean Series over the predictions rows; NA = not scored).
OUTCOMES: dict[str, Callable[[pd.DataFrame, str], pd.Series]] = {
    "category_rate": _flagged,
    "accuracy": _column("correct"),
    "top5_accuracy": _column("top5_correct"),
}


def higher_is_better(metric: str) -> bool:
    """The metric's declared direction (:data:`audit.registries.METRICS`)."""
    from audit.registries import METRICS

    return bool(getattr(METRICS.get(metric), "higher_is_better"))


@dataclass(frozen=True)
class Side:
    """One side of a comparison: a model's rows of a run.

    Attributes:
        model: Model display name.
        metrics: The run's metrics.csv.
        predictions: Reads the run's predictions.parquet (called only when pairing is possible).
        manifest: The run's manifest (dataset fingerprints, prompts, probe).
        label: How messages name the run (its directory).
    """

    model: str
    metrics: pd.DataFrame
    predictions: Callable[[], pd.DataFrame]
    manifest: Manifest
    label: str
    fingerprints: dict[str, str | None] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fingerprints", {d.name: d.fingerprint for d in self.manifest.datasets})


def check_comparable(base: Side, new: Side) -> None:
    """UserError (exit 2) naming what differs when two runs cannot be compared."""
    problems = []
    if base.manifest.probe.name != new.manifest.probe.name:
        problems.append(f"different probes: '{base.manifest.probe.name}' ({base.label}) vs "
                        f"'{new.manifest.probe.name}' ({new.label})")
    for variant in sorted(set(base.manifest.prompts) & set(new.manifest.prompts)):
        b, n = base.manifest.prompts[variant], new.manifest.prompts[variant]
        if (b.labels, b.categories) != (n.labels, n.categories):
            gone, added = sorted(set(b.labels) - set(n.labels)), sorted(set(n.labels) - set(b.labels))
            problems.append(f"variant '{variant}' has different label sets (only in base: {gone or 'none'}; "
                            f"only in new: {added or 'none'}; or categories differ)")
    for name, side in (("base", base), ("new", new)):
        if side.model not in set(side.metrics["model"]):
            models = ", ".join(sorted(set(side.metrics["model"]))) or "none"
            problems.append(f"{name} model '{side.model}' has no rows in {side.label} (models: {models})")
    if problems:
        raise UserError("the runs cannot be compared:\n  " + "\n  ".join(problems),
                        fix="compare runs of the same probe and label sets; pick models with --base-model/--new-model")


def _rows(side: Side) -> pd.DataFrame:
    m = side.metrics
    return m[(m["model"] == side.model) & m["metric"].isin(list(OUTCOMES))]


def _paired_datasets(base: Side, new: Side, datasets: list[str]) -> dict[str, _Paired | None]:
    """Dataset -> both sides' prediction rows when the images are the same (fingerprint and ids)."""
    out: dict[str, _Paired | None] = {d: None for d in datasets}
    same_fp = [d for d in datasets if base.fingerprints.get(d) == new.fingerprints.get(d)]
    if not same_fp:
        return out
    pb = base.predictions()
    pn = pb if new.predictions is base.predictions else new.predictions()
    for d in same_fp:
        b = pb[(pb["dataset"] == d) & (pb["model"] == base.model)]
        n = pn[(pn["dataset"] == d) & (pn["model"] == new.model)]
        if set(b["image_id"]) == set(n["image_id"]):
            out[d] = _Paired(pd.concat([b.assign(_side="base"), n.assign(_side="new")], ignore_index=True))
    return out


class _Paired:
    """Both sides' outcomes on one dataset's shared images, computed once per variant, metric and grouping."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self._outcomes: dict[tuple[str, str, str], tuple[pd.Series, pd.Series]] = {}
        self._labels: dict[tuple[str, str], pd.Series] = {}

    def outcomes(self, variant: str, metric: str, category: str) -> tuple[pd.Series, pd.Series]:
        key = (variant, metric, category)
        if key not in self._outcomes:
            sel = self.frame[self.frame["variant"] == variant]
            self._outcomes[key] = tuple(  # type: ignore[assignment]
                pd.Series(OUTCOMES[metric](rows, category).to_numpy(), index=rows["image_id"].to_numpy())
                for rows in (sel[sel["_side"] == s] for s in ("base", "new")))
        return self._outcomes[key]

    def labels(self, variant: str, group_col: str) -> pd.Series:
        """Group of each image (from the base side's subgroup columns), indexed by image id."""
        key = (variant, group_col)
        if key not in self._labels:
            rows = self.frame[(self.frame["variant"] == variant) & (self.frame["_side"] == "base")]
            grouping = Grouping(group_col, tuple(group_col.split(SEP)))
            self._labels[key] = pd.Series(group_labels(rows, grouping).to_numpy(), index=rows["image_id"].to_numpy())
        return self._labels[key]

    def stats(self, r: pd.Series, alpha: float) -> tuple[float, float, float]:
        b, n = self.outcomes(r["variant"], r["metric"], r["category"])
        if r["group_col"] != "overall":
            labels = self.labels(r["variant"], r["group_col"])
            ids = labels.index[labels.to_numpy() == r["group"]]
            b, n = b[b.index.isin(ids)], n[n.index.isin(ids)]
        return paired_stats(paired_table(b, n), alpha)


def compare_sides(base: Side, new: Side, alpha: float = 0.05, min_n: int = 30) -> pd.DataFrame:
    """The comparison table (:data:`COMPARISON_COLUMNS`), one row per shared metrics.csv row.

    Raises:
        UserError: different probes or label sets, or no shared rows (exit 2).
    """
    check_comparable(base, new)
    cols = [*KEYS, "n", "value"]
    rows = _rows(base)[cols].merge(_rows(new)[cols], on=KEYS, suffixes=("_base", "_new"), validate="one_to_one")
    if rows.empty:
        raise UserError(f"the runs share no comparable rows ({', '.join(OUTCOMES)}) for models "
                        f"'{base.model}' and '{new.model}'",
                        fix="compare runs of the same probe, datasets and subgroups")
    paired = _paired_datasets(base, new, sorted(set(rows["dataset"])))
    out = []
    for _, r in rows.iterrows():
        frame = paired[r["dataset"]]
        if frame is not None:
            low, high, p = frame.stats(r, alpha)
        else:
            low, high, p = unpaired_stats(count_of(r["value_base"], r["n_base"]), int(r["n_base"]),
                                          count_of(r["value_new"], r["n_new"]), int(r["n_new"]), alpha)
        out.append({
            **{k: r[k] for k in KEYS}, "model_base": base.model, "model_new": new.model,
            "n_base": r["n_base"], "n_new": r["n_new"], "base": r["value_base"], "new": r["value_new"],
            "delta": r["value_new"] - r["value_base"], "ci_low": low, "ci_high": high, "p_value": p,
            "paired": frame is not None,
        })
    table = pd.DataFrame(out)
    table[["n_base", "n_new"]] = table[["n_base", "n_new"]].astype("Int64")
    table["p_holm"] = table.groupby(FAMILY, sort=False)["p_value"].transform(holm)
    return _judge(table, alpha, min_n).loc[:, list(COMPARISON_COLUMNS)]


def _judge(table: pd.DataFrame, alpha: float, min_n: int) -> pd.DataFrame:
    up = table["metric"].map(higher_is_better)
    better = (table["delta"] > 0) == up
    table["direction"] = better.map({True: "better", False: "worse"}).where(table["delta"] != 0, "unchanged")
    table.loc[table["delta"].isna(), "direction"] = ""
    significant = table["p_holm"] < alpha
    flag = pd.Series("", index=table.index, dtype=object)
    flag[significant & (table["direction"] == "worse")] = FLAG_REGRESSION
    flag[significant & (table["direction"] == "better")] = FLAG_IMPROVEMENT
    small = table[["n_base", "n_new"]].astype(float).min(axis=1).fillna(0)
    flag[(flag == "") & (small < min_n)] = FLAG_SMALL_N
    flag[small == 0] = FLAG_EMPTY
    table["flag"] = flag
    return table


__all__ = ["COMPARISON_COLUMNS", "FAMILY", "KEYS", "OUTCOMES", "Side", "check_comparable", "compare_sides",
           "higher_is_better"]
