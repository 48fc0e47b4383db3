"""The report section for DataComp's fairness evaluations: each worst group with its interval,
beside open_clip's published Dollar Street / GeoDE figure when the model is in that table.

The published figures (``audit/reference/openclip_datacomp.csv``, derived by
``scripts/make_openclip_datacomp.py`` from open_clip's results table, with a citation per row)
are DataComp's ``acc_top5_wg`` (Dollar Street: top-5 accuracy of the worst ``income_ds`` group)
and ``acc_wg`` (GeoDE: top-1 accuracy of the worst ``region``); a run's number lines up with them
only for the full test set, the repo's own class names and templates (``templates: dataset``)
and the same weights.
"""

from __future__ import annotations

import math

import pandas as pd

from audit.reporting.load import RunData

OPENCLIP_DATACOMP = "openclip_datacomp.csv"
WORST_METRICS = ("worst_group_accuracy", "worst_group_top5_accuracy")
#: (DataComp task short name, metric, group column) -> the published column it matches.
PUBLISHED = {
    ("dollar_street", "worst_group_top5_accuracy", "income_ds"): "dollar_street",
    ("geode", "worst_group_accuracy", "region"): "geode",
}


def openclip_datacomp() -> pd.DataFrame:
    """open_clip's published Dollar Street and GeoDE figures: ``arch, pretrained, dollar_street,
    geode, citation`` (fractions)."""
    from audit.reference import reference_path

    return pd.read_csv(reference_path(OPENCLIP_DATACOMP))


def _published(model_id: str, column: str, table: pd.DataFrame) -> float:
    arch, _, tag = model_id.partition(":")
    hit = table[(table["arch"] == arch) & (table["pretrained"] == tag)]
    return float(hit[column].iloc[0]) if len(hit) else math.nan


def _task(dataset: str, sources: dict[str, str]) -> str:
    """The DataComp task short name of a run dataset (by hub repo, else by name prefix)."""
    from audit.export import task_of

    task = task_of({"name": dataset, "source": sources.get(dataset, "")})
    return task.short if task is not None else ""


def _pct(v: float) -> str:
    return "\u2013" if pd.isna(v) else f"{100 * v:.1f}"


def worst_group_table(run: RunData) -> pd.DataFrame:
    """One row per worst-group metric row: which group, value and 95% CI (percent), n, flag,
    and open_clip's published figure (percent) where the task, grouping and model match."""
    rows = run.metrics[run.metrics["metric"].isin(WORST_METRICS)]
    if rows.empty:
        return pd.DataFrame()
    sources = {str(d.get("name")): str(d.get("source")) for d in run.manifest.get("datasets", [])}
    ids = {str(m.get("name") or m.get("id")): str(m.get("id")) for m in run.manifest.get("models", [])}
    table = openclip_datacomp()
    published = []
    for r in rows.itertuples():
        column = PUBLISHED.get((_task(r.dataset, sources), r.metric, r.group_col))
        published.append(_published(ids.get(r.model, r.model), column, table) if column else math.nan)
    out = pd.DataFrame({
        "dataset": rows["dataset"], "model": rows["model"], "variant": rows["variant"],
        "metric": rows["metric"], "by": rows["group_col"], "worst group": rows["group"],
        "value %": rows["value"].map(_pct),
        "95% CI": [f"{_pct(lo)}\u2013{_pct(hi)}" for lo, hi in zip(rows["ci_low"], rows["ci_high"])],
        "n": rows["n"], "flag": rows["flag"]})
    if not all(math.isnan(v) for v in published):
        out["open_clip published %"] = [_pct(v) for v in published]
    return out.reset_index(drop=True)


def show_worst_groups(run: RunData) -> None:
    """The worst-group section: the table with its caption and citation, or one skip line."""
    from audit.reporting.display import markdown, skip, table

    df = worst_group_table(run)
    if df.empty:
        skip("Worst groups", "the probe lists no worst_group_accuracy or worst_group_top5_accuracy metric")
        return
    table(df, "Worst groups",
          "The lowest accuracy of any group of each subgroup column, and which group it is. "
          "Dollar Street's and GeoDE's headline numbers in DataComp are these (top-5 by "
          "income_ds; top-1 by region).")
    if "open_clip published %" in df:
        markdown("*open_clip published %*: " + str(openclip_datacomp()["citation"].iloc[0])
                 + ". Comparable only on the full test set with the repo's own class names and "
                 "templates and the same weights.")
