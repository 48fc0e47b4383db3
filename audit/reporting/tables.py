"""Tables the reports show: rows of ``metrics.csv`` selected and formatted, never recomputed."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

import pandas as pd

from audit.reporting.display import SMALL_N_MARK, count, interval, pct
from audit.reporting.load import RunData, clip_paper_reference, reference_for
from audit.results import FLAG_SMALL_N

#: Metrics whose values are proportions (shown as percent); the rest are shown as numbers.
PROPORTION_METRICS = frozenset({
    "category_rate", "disparity_difference", "variant_change", "template_sensitivity",
    "accuracy", "balanced_accuracy", "top5_accuracy", "mean_per_class_recall",
})


def pick_variant(metrics: pd.DataFrame, metric: str, variant: str | None) -> str | None:
    """``variant`` if given, else 'default' when it has rows, else the first variant with rows."""
    if variant is not None:
        return variant
    seen = list(dict.fromkeys(metrics.loc[metrics["metric"] == metric, "variant"]))
    if not seen:
        return None
    from audit.spec.models import base_variant

    return base_variant(seen)


def pick_dataset(metrics: pd.DataFrame, metric: str, dataset: str | None) -> str | None:
    if dataset is not None:
        return dataset
    seen = list(dict.fromkeys(metrics.loc[metrics["metric"] == metric, "dataset"]))
    return seen[0] if seen else None


def ordered(values: Sequence[str] | pd.Series, first: Sequence[str] = ()) -> list[str]:
    """Unique values in first-seen order, ``first`` (e.g. the manifest's model order) leading."""
    seen = list(dict.fromkeys(values))
    return [v for v in first if v in seen] + [v for v in seen if v not in first]


_NUMBER = re.compile(r"\d+(?:\.\d+)?")


def group_order(groups: Sequence[str] | pd.Series) -> list[str]:
    """Unique groups in first-seen order, except that bins named by numbers ('0-2', '3-9',
    '10-19', 'more than 70') go in numeric order rather than the string order ('10-19' < '3-9')
    a results table may hold them in."""
    seen = list(dict.fromkeys(groups))
    numbers = [_NUMBER.search(str(g)) for g in seen]
    if seen and all(numbers):
        return [g for _, g in sorted(zip([float(m.group()) for m in numbers if m], seen),
                                     key=lambda p: p[0])]
    return seen


def format_rows(rows: pd.DataFrame, keep: Sequence[str] = ()) -> pd.DataFrame:
    """Metric rows for reading: percent where the metric is a proportion, n, CI, p and flag.

    ``keep`` lists identifying columns to show (default: those that vary across the rows).
    """
    if rows.empty:
        return pd.DataFrame()
    ids = list(keep) or [c for c in ("dataset", "model", "variant", "metric", "category",
                                     "group_col", "group") if rows[c].nunique() > 1]
    out = rows[ids].copy()
    is_prop = rows["metric"].isin(PROPORTION_METRICS)
    out["n"] = rows["n"].map(count)
    out["value"] = [
        pct(v) if p else ("\u2013" if pd.isna(v) else f"{v:.3g}")
        for v, p in zip(rows["value"], is_prop)
    ]
    out["95% CI"] = [
        interval(lo, hi) if p else interval(lo, hi, scale=1.0, digits=3)
        for lo, hi, p in zip(rows["ci_low"], rows["ci_high"], is_prop)
    ]
    if rows["p_value"].notna().any():
        out["p"] = rows["p_value"].map(lambda p: "\u2013" if pd.isna(p) else f"{p:.3g}")
    out["flag"] = rows["flag"]
    return out.reset_index(drop=True)


def by_group_col(rows: pd.DataFrame, cell: list[str],
                 index: Sequence[str] = ("model", "variant", "category")) -> pd.DataFrame:
    """One row per ``index`` combination, one column per group column, holding ``cell``."""
    if rows.empty:
        return pd.DataFrame()
    index = [c for c in index if rows[c].nunique() > 1 or c == "model"]
    wide = rows.assign(_cell=cell).pivot_table(index=index, columns="group_col", values="_cell",
                                               aggfunc="first", sort=False)
    return wide.reset_index().rename_axis(columns=None).fillna("\u2013")


def disparity_table(run: RunData, metric: str = "disparity_difference") -> pd.DataFrame:
    """Largest gap (difference, in points) or ratio across each group column, with the two
    groups, interval and flag."""
    rows = run.rows(metric)
    diff = metric == "disparity_difference"
    def fmt(v: float, lo: float, hi: float, g: str, f: str) -> str:
        if pd.isna(v):
            return "\u2013"
        if not math.isfinite(v):  # a ratio over a zero rate
            return "undefined (lowest rate 0)" + (f" ({g})" if g else "")
        point = f"{100 * v:.1f} pts" if diff else f"{v:.2f}\u00d7"
        ci = interval(lo, hi, scale=100.0 if diff else 1.0, digits=1 if diff else 2)
        return point + f" ({ci}" + (f"; {g}" if g else "") + ")" + (f" [{f}]" if f else "")

    cell = [fmt(*r) for r in zip(rows["value"], rows["ci_low"], rows["ci_high"], rows["group"],
                                 rows["flag"])]
    return by_group_col(rows, cell)


def independence_table(run: RunData) -> pd.DataFrame:
    """Independence tests per group column: p-value, statistic and n."""
    rows = run.rows("independence_test")
    cell = [("\u2013" if pd.isna(p) else f"p={p:.3g}") + ("" if pd.isna(v) else f" (\u03c7\u00b2={v:.3g}")
            + f", n={count(n)})" + (f" [{f}]" if f else "")
            for p, v, n, f in zip(rows["p_value"], rows["value"], rows["n"], rows["flag"])]
    return by_group_col(rows, cell)


def variant_change_table(run: RunData, group_col: str, dataset: str | None = None) -> pd.DataFrame:
    """Paired change in rate from the base variant, one row per group, one column per compared
    variant, category and model: '+1.2 pts (interval) p=...'."""
    rows = run.rows("variant_change", group_col=group_col,
                    dataset=pick_dataset(run.metrics, "variant_change", dataset))
    if rows.empty:
        return pd.DataFrame()
    groups = group_order(rows["group"])
    out = pd.DataFrame({group_col: groups})
    out["n"] = [count(rows.loc[rows["group"] == g, "n"].max()) for g in groups]
    for (variant, cat, model), sub in rows.groupby(["variant", "category", "model"], sort=False):
        sub = sub.drop_duplicates("group").set_index("group").reindex(groups)
        label = f"{cat}: {model}" if rows["variant"].nunique() == 1 else f"{variant}, {cat}: {model}"
        out[label] = [
            "\u2013" if pd.isna(v) else
            f"{100 * v:+.1f} pts ({interval(lo, hi)})" + ("" if pd.isna(p) else f" p={p:.2g}")
            + (SMALL_N_MARK if f == FLAG_SMALL_N else "")
            for v, lo, hi, p, f in zip(sub["value"], sub["ci_low"], sub["ci_high"],
                                       sub["p_value"], sub["flag"])]
    return out


def rate_table(run: RunData, group_col: str, category: str | None = None,
               variant: str | None = None, dataset: str | None = None) -> pd.DataFrame:
    """Category rates by group, wide: one row per group with its n, one column per category
    and model ('rate (95% CI)', with a dagger when n < min_n), and the CLIP paper's value for
    the category when it published one."""
    m = run.metrics
    variant = pick_variant(m, "category_rate", variant)
    dataset = pick_dataset(m, "category_rate", dataset)
    rows = run.rows("category_rate", group_col=group_col, variant=variant, dataset=dataset,
                    category=category)
    if rows.empty:
        return pd.DataFrame()
    groups = group_order(rows["group"])
    out = pd.DataFrame({group_col: groups})
    out["n"] = [count(rows.loc[rows["group"] == g, "n"].max()) for g in groups]
    reference = clip_paper_reference()
    for cat in ordered(rows["category"]):
        for model in ordered(rows["model"], run.models):
            sub = rows[(rows["category"] == cat) & (rows["model"] == model)].drop_duplicates("group")
            sub = sub.set_index("group").reindex(groups)
            out[f"{cat}: {model}"] = [
                f"{pct(v)} ({interval(lo, hi)}){SMALL_N_MARK if f == FLAG_SMALL_N else ''}"
                for v, lo, hi, f in zip(sub["value"], sub["ci_low"], sub["ci_high"], sub["flag"])]
        ref = reference_for(reference, cat, group_col, variant or "", groups)
        if ref is not None:
            out[f"{cat}: CLIP paper"] = [pct(ref[g]) if g in ref.index else "\u2013" for g in groups]
    return out


def gate_verdicts(run: RunData) -> pd.DataFrame:
    """One row per gate x model x variant (gates.json ``verdicts``), worst status first."""
    verdicts = (run.gates or {}).get("verdicts") or []
    if not verdicts:
        return pd.DataFrame()
    df = pd.DataFrame(verdicts)
    for col in ("gate_id", "type", "severity", "model", "variant", "status", "outcome", "groups",
                "message"):
        if col not in df:
            df[col] = None
    status = [f"{s.upper()}{' (insufficient data)' if o == 'insufficient' else ''}"
              f"{' (error)' if o == 'error' else ''}"
              for s, o in zip(df["status"].fillna(""), df["outcome"].fillna(""))]
    out = pd.DataFrame({"status": status, "gate": df["gate_id"], "type": df["type"],
                        "severity": df["severity"], "model": df["model"],
                        "variant": df["variant"], "groups": df["groups"], "why": df["message"]})
    rank = {"FAIL": 0, "WARN": 1, "PASS": 2}
    order = sorted(range(len(out)), key=lambda i: rank.get(out["status"][i].split(" ")[0], 3))
    return out.iloc[order].reset_index(drop=True)


def gate_table(run: RunData, failing_only: bool = False) -> pd.DataFrame:
    """One row per gate result (gate x model x variant x group) with the deciding numbers."""
    results = (run.gates or {}).get("results") or []
    if failing_only:
        results = [r for r in results if r.get("outcome") != "pass"]
    if not results:
        return pd.DataFrame()
    from audit.reporting.verdict import compared, estimate

    df = pd.DataFrame(results)
    for col in ("gate_id", "gate", "type", "severity", "model", "variant", "dataset", "group_col",
                "group", "outcome", "n", "message"):
        if col not in df:
            df[col] = None
    outcome = df["outcome"].fillna("").str.upper().replace({"INSUFFICIENT": "INSUFFICIENT DATA"})
    # a failing group under a warn gate is a warning: it never blocks the release
    outcome = outcome.where(~((outcome == "FAIL") & (df["severity"] == "warn")), "WARN")
    return pd.DataFrame({
        "outcome": outcome,
        "gate": df["gate_id"].fillna(df["gate"]).fillna(df["type"]),
        "severity": df["severity"],
        "model": df["model"],
        "variant": df["variant"],
        "dataset": df["dataset"],
        "group": [f"{c}={g}" if c and c != "overall" else "overall"
                  for c, g in zip(df["group_col"].fillna(""), df["group"].fillna(""))],
        "n": pd.to_numeric(df["n"], errors="coerce").map(count),
        "estimate (95% CI)": [estimate(r) for r in results],
        "compared": [compared(r) for r in results],
        "why": df["message"],
    })


def gate_counts(run: RunData) -> dict[str, int]:
    """Number of gate results (groups) per outcome."""
    counts = {"pass": 0, "fail": 0, "insufficient": 0, "error": 0}
    for r in (run.gates or {}).get("results") or []:
        counts[str(r.get("outcome"))] = counts.get(str(r.get("outcome")), 0) + 1
    return counts


def clip_paper_table(run: RunData) -> pd.DataFrame:
    """This run's rates next to the CLIP paper's published ones, where the paper has a value."""
    reference = clip_paper_reference()
    if reference is None:
        return pd.DataFrame()
    pieces = []
    for (cat, gc, variant), ref in reference.groupby(["category", "group_col", "variant"], sort=False):
        rows = run.rows("category_rate", category=cat, group_col=gc, variant=variant)
        if rows.empty or reference_for(reference, cat, gc, variant, list(rows["group"])) is None:
            continue
        values = ref.set_index("group")["value"]
        rows = rows[rows["group"].isin(values.index)]
        pieces.append(pd.DataFrame({
            "model": rows["model"], "variant": rows["variant"], "category": rows["category"],
            "group": [f"{gc}={g}" for g in rows["group"]], "n": rows["n"].map(count),
            "this run": rows["value"].map(pct),
            "95% CI": [interval(lo, hi) for lo, hi in zip(rows["ci_low"], rows["ci_high"])],
            "CLIP paper": rows["group"].map(values).map(pct),
            "flag": rows["flag"],
        }))
    return pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame()


def small_n_note(rows: pd.DataFrame) -> str:
    """'3 of 42 estimates rest on fewer images than min_n (marked).' or ''."""
    k = int((rows["flag"] == FLAG_SMALL_N).sum())
    if not k:
        return ""
    return f" {k} of {len(rows)} estimates rest on fewer images than the probe's min_n (marked \u2020)."


def variant_columns(run: RunData) -> list[str]:
    """Subgroup columns to compare prompt variants on: those with paired ``variant_change``
    rows (the probe's variant comparison), else every single subgroup column."""
    changed = [c for c in ordered(run.rows("variant_change")["group_col"])
               if c not in ("overall", "template") and " x " not in c]
    return changed or [c for c in run.subgroup_cols if " x " not in c]


def variant_rates(run: RunData) -> pd.DataFrame:
    """Each group's rate under the base variant beside its rate under every other variant,
    with the paired change where the run computed it: one row per model, category, compared
    variant and group, for the columns of :func:`variant_columns`."""
    base = run.base_variant
    pieces = []
    for col in variant_columns(run):
        rates = run.rows("category_rate", group_col=col)
        key = ["dataset", "model", "category", "group"]
        before = rates[rates["variant"] == base].set_index(key)
        for variant in [v for v in run.variants if v != base]:
            after = rates[rates["variant"] == variant].set_index(key)
            shared = [k for k in after.index if k in before.index]
            if not shared:
                continue
            change = run.rows("variant_change", group_col=col, variant=variant).set_index(key)
            pieces.append(pd.DataFrame({
                "model": [k[1] for k in shared], "category": [k[2] for k in shared],
                "variant": variant, "group": [f"{col}={k[3]}" for k in shared],
                f"rate, {base}": [pct(before.loc[k, "value"]) for k in shared],
                "rate, variant": [pct(after.loc[k, "value"]) for k in shared],
                "change (95% CI)": [
                    f"{100 * change.loc[k, 'value']:+.1f} pts ("
                    f"{interval(change.loc[k, 'ci_low'], change.loc[k, 'ci_high'])})"
                    if k in change.index else "\u2013" for k in shared],
            }))
    return pd.concat(pieces, ignore_index=True) if pieces else pd.DataFrame()
