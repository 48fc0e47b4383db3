"""Report sections for retrieval bias and the (opt-in) gallery of flagged images."""

from __future__ import annotations

import base64

import numpy as np
import pandas as pd

from audit.reporting.display import caption, markdown, new_figure, show, skip, table
from audit.reporting.escape import html_text, md_text, mpl_text
from audit.reporting.load import RunData


def _retrieval_rows(run: RunData) -> pd.DataFrame:
    m = run.metrics
    return m[m["metric"].str.contains("@", regex=False)]


def show_retrieval(run: RunData) -> None:
    """MaxSkew@k / NDKL@k per query set (mean over queries) and a per-query chart."""
    rows = _retrieval_rows(run)
    if not run.resolved.get("retrieval"):
        skip("Retrieval bias", "not part of this probe (add a retrieval: section to rank images by text queries)")
        return
    if rows.empty:
        skip("Retrieval bias")
        return
    means = rows[rows["category"].str.endswith("/mean") & rows["metric"].str.match(r"(max_skew|ndkl)@")]
    shown = means.assign(
        query_set=means["category"].str.removesuffix("/mean"),
        value=means["value"].map(lambda v: f"{v:.3f}"),
        interval=[f"{a:.3f} to {b:.3f}" if pd.notna(a) else "\u2013" for a, b in zip(means["ci_low"], means["ci_high"])],
    )[["model", "query_set", "metric", "group_col", "group", "value", "interval", "n", "flag"]]
    table(shown, "Retrieval bias (mean over each query set)",
          "MaxSkew@k = ln(share of the most over-represented group in the top k / its target share); "
          "0 is perfectly balanced, ln(#groups) means one group fills the top k. NDKL is 0 when "
          "every prefix of the ranking matches the target.")
    per_query = rows[rows["metric"].str.startswith("max_skew@") & ~rows["category"].str.endswith("/mean")]
    for (model, metric, col), block in per_query.groupby(["model", "metric", "group_col"], sort=False):
        block = block.sort_values("value")
        fig = new_figure(8, max(2.5, 0.28 * len(block)))
        ax = fig.subplots()
        y = np.arange(len(block))
        err = np.vstack([block["value"] - block["ci_low"], block["ci_high"] - block["value"]]).clip(min=0)
        ax.barh(y, block["value"], xerr=err, color="#0173b2", capsize=2)
        ax.set_yticks(y, [mpl_text(f"{q.split('/', 1)[-1]} ({g})")
                          for q, g in zip(block["category"], block["group"])])
        ax.set_xlabel(mpl_text(f"{metric} (log ratio; 0 = balanced)"))
        ax.set_title(mpl_text(f"{metric} by query, groups: {col} ({model})"))
        show(fig, "Longer bars: the top results for that query over-represent the group in brackets.",
             what="Retrieval by query")


def show_gallery(run: RunData, per_row: int = 6) -> None:
    """Thumbnails of images put into flagged categories, grouped by subgroup (opt-in)."""
    index = run.run_dir / "gallery.csv"
    if not index.exists():
        skip("Gallery", "off (set report: {gallery: true} in the probe to show flagged images)")
        return
    from IPython.display import HTML, display

    df = pd.read_csv(index)
    markdown("Images the model put into a flagged category, sampled reproducibly."
             + (" Subgroup labels are FairFace's perceived attributes, assigned by annotators."
                if run.fairface_shaped else ""))
    subgroup_cols = [c for c in df.columns if c not in {"dataset", "model", "variant", "image_id", "target",
                                                         "target_index", "top1_label", "top1_category", "top1_score",
                                                         "correct", "top5_correct", "file", "template"}]
    by = subgroup_cols[0] if subgroup_cols else None
    for (model, variant), block in df.groupby(["model", "variant"], sort=False):
        parts = [f"<h4>{html_text(model)} | {html_text(variant)}</h4>"]
        for group, g in (block.groupby(by, sort=False) if by else [("all", block)]):
            cells = []
            for r in g.itertuples(index=False):
                data = base64.b64encode((run.run_dir / "gallery" / r.file).read_bytes()).decode()
                label = ", ".join(str(getattr(r, c)) for c in subgroup_cols)
                cells.append(f'<figure style="display:inline-block;margin:4px;width:110px;font-size:11px">'
                             f'<img src="data:image/jpeg;base64,{data}" width="96" '
                             f'alt="image {html_text(r.image_id)} labelled {html_text(r.top1_label)}"/>'
                             f"<figcaption>{html_text(r.top1_label)} (score {r.top1_score:.2f})"
                             f"{_true_class(r)}<br>{html_text(label)}</figcaption></figure>")
            parts.append(f"<p><b>{html_text(by)}={html_text(group)}</b></p>" + "".join(cells))
        display(HTML("".join(parts)))
    caption("Under each image: the top-1 label and its score (cosine similarity \u00d7 the model's "
            "logit scale), the true class when the dataset has one, then the image's subgroup "
            "labels.")


def _true_class(r: object) -> str:
    """' / true: star' from the gallery row's class name (never its index)."""
    target = getattr(r, "target", None)
    if target is None or pd.isna(target) or str(target) == "":
        return ""
    return f"<br>true: {html_text(target)}"


def show_planted(run: RunData) -> None:
    """For generated worlds with a planted association: the planted caption rate beside the
    rate the audit measured, per group. Shows nothing for real datasets."""
    for ds in run.manifest.get("datasets", []):
        planted = (ds.get("extra") or {}).get("flagged_rates")
        if not planted:
            continue
        rates = run.metrics[(run.metrics["metric"] == "category_rate") & (run.metrics["dataset"] == ds["name"])
                            & run.metrics["group"].isin(list(planted))]
        if rates.empty:
            continue
        base = str(rates["variant"].iloc[0])
        rates = rates[rates["variant"] == base]
        shown = pd.DataFrame({
            "model": rates["model"], "category": rates["category"], rates["group_col"].iloc[0]: rates["group"],
            "planted in training captions": rates["group"].map(lambda g: f"{100 * planted[g]:.0f}%"),
            "measured top-1 rate": [f"{100 * v:.1f}% ({100 * a:.1f}-{100 * b:.1f})"
                                    for v, a, b in zip(rates["value"], rates["ci_low"], rates["ci_high"])],
            "n": rates["n"],
        })
        markdown("## What this world is")
        table(shown, "Planted vs measured",
              f"This dataset is generated with a planted association (variant '{md_text(base)}'): the share of "
              "training captions that used the flagged word for each group, beside how often the "
              "trained model now puts that group's held-out images into the flagged category "
              "(95% interval). It is a teaching example, not a measurement of any real model or people.")
