"""Figures of the fairness report. Each takes ``metrics.csv`` rows and returns a Figure (or None
when the run has no rows for it); nothing here computes a metric."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from audit.reporting.display import SMALL_N_MARK, new_figure
from audit.reporting.escape import mpl_text
from audit.reporting.load import ACCURACY_METRICS, reference_for
from audit.reporting.tables import group_order, ordered, pick_dataset, pick_variant
from audit.results import FLAG_SMALL_N

RATE_LABEL = "rate (% of images)"
PAPER_LABEL = "CLIP paper (published)"


def _select(metrics: pd.DataFrame, metric: str | Sequence[str], **where: object) -> pd.DataFrame:
    names = [metric] if isinstance(metric, str) else list(metric)
    mask = metrics["metric"].isin(names)
    for col, value in where.items():
        if value is not None:
            mask &= metrics[col] == value
    return metrics[mask]


def _tick(group: str, rows: pd.DataFrame) -> str:
    group = mpl_text(group)
    if "n" not in rows:
        return group
    n = rows["n"].max()
    small = (rows["flag"] == FLAG_SMALL_N).any()
    return f"{group}\nn={int(n):,}{SMALL_N_MARK if small else ''}" if pd.notna(n) else group


def bars(ax: Axes, rows: pd.DataFrame, *, x: str = "group", hue: str = "model",
         hue_order: Sequence[str] = (), colors: Mapping[str, Any] | None = None,
         horizontal: bool = False, x_order: Sequence[str] = (), scale: float = 100.0,
         ) -> list[str]:
    """Grouped bars of ``value * scale`` with ``ci_low``-``ci_high`` error bars.

    ``scale`` is 100 for fractions shown as percent, 1 for values already in points. Estimates
    flagged small_n are hatched and pale. Returns the category order used.
    """
    xs = ordered(rows[x], x_order) if x_order or x != "group" else group_order(rows[x])
    hues = ordered(rows[hue], hue_order)
    colors = colors or dict(zip(hues, sns.color_palette("colorblind", len(hues))))
    width = 0.8 / max(len(hues), 1)
    for j, h in enumerate(hues):
        sub = rows[rows[hue] == h].drop_duplicates(x).set_index(x).reindex(xs)
        pos = np.arange(len(xs)) - 0.4 + width * (j + 0.5)
        val = scale * sub["value"].to_numpy(dtype=float)
        err = np.nan_to_num(np.clip(np.vstack([
            val - scale * sub["ci_low"].to_numpy(dtype=float),
            scale * sub["ci_high"].to_numpy(dtype=float) - val]), 0, None))
        style = {"fmt": "none", "ecolor": "#222222", "elinewidth": 1, "capsize": 2}
        if horizontal:
            drawn = ax.barh(pos, np.nan_to_num(val), width, color=colors[h], label=mpl_text(h))
            ax.errorbar(val, pos, xerr=err, **style)  # type: ignore[arg-type]
        else:
            drawn = ax.bar(pos, np.nan_to_num(val), width, color=colors[h], label=mpl_text(h))
            ax.errorbar(pos, val, yerr=err, **style)  # type: ignore[arg-type]
        for patch, flag in zip(drawn, sub.get("flag", [])):
            if flag == FLAG_SMALL_N:
                patch.set_hatch("///")
                patch.set_alpha(0.45)
    ticks = [_tick(g, rows[rows[x] == g]) if x == "group" else mpl_text(g) for g in xs]
    if horizontal:
        ax.set_yticks(np.arange(len(xs)), ticks)
        ax.invert_yaxis()
    else:
        ax.set_xticks(np.arange(len(xs)), ticks, rotation=30 if len(xs) > 5 else 0,
                      ha="right" if len(xs) > 5 else "center")
    return xs


def _legend(ax: Axes, small_n: bool, extra: Sequence[Artist] = (), overall: bool = False) -> None:
    """Legend right of the axes: labelled artists once each, plus explanations of the marks."""
    handles, labels = ax.get_legend_handles_labels()
    seen: dict[str, Artist] = {}
    for label, handle in zip(labels, handles):
        if isinstance(handle, BarContainer) and handle.patches:
            # the container's first bar may be hatched (small n); the legend shows plain colour
            face = handle.patches[0].get_facecolor()
            handle = Patch(facecolor=(*face[:3], 1.0))
        seen.setdefault(label, handle)
    for h in extra:
        seen.setdefault(str(h.get_label()), h)
    if overall:
        seen["overall rate (dashed)"] = Line2D([], [], color="grey", ls="--", lw=1)
    if small_n:
        seen[f"n < min_n ({SMALL_N_MARK}): not trusted"] = Patch(
            facecolor="white", edgecolor="grey", hatch="///")
    ax.legend(list(seen.values()), list(seen), loc="upper left", bbox_to_anchor=(1.01, 1.0),
              fontsize=9, frameon=False)


def model_colors(models: Sequence[str]) -> dict[str, Any]:
    return dict(zip(models, sns.color_palette("colorblind", len(models))))


def plot_category_rates(metrics: pd.DataFrame, category: str | Sequence[str], group_col: str, *,
                        variant: str | None = None, dataset: str | None = None,
                        models: Sequence[str] = (), reference: pd.DataFrame | None = None,
                        ) -> Figure | None:
    """Rate of each category by group, one panel per category, one bar colour per model.

    Error bars are the run's intervals; dashed lines are each model's overall rate; black
    diamonds are the CLIP paper's published values when ``reference`` has them.
    """
    variant = pick_variant(metrics, "category_rate", variant)
    dataset = pick_dataset(metrics, "category_rate", dataset)
    cats = [category] if isinstance(category, str) else list(category)
    rows = _select(metrics, "category_rate", group_col=group_col, variant=variant, dataset=dataset)
    cats = [c for c in cats if (rows["category"] == c).any()]
    if not cats:
        return None
    models = ordered(rows["model"], models)
    colors = model_colors(models)
    fig = new_figure(10, 3.4 * len(cats))
    axes = fig.subplots(len(cats), 1, squeeze=False)[:, 0]
    for ax, cat in zip(axes, cats):
        sub = rows[rows["category"] == cat]
        xs = bars(ax, sub, hue_order=models, colors=colors)
        overall = _select(metrics, "category_rate", group_col="overall", variant=variant,
                          dataset=dataset, category=cat)
        for _, r in overall.iterrows():
            if r["model"] in colors:
                ax.axhline(100 * r["value"], color=colors[r["model"]], ls="--", lw=1)
        ref = reference_for(reference, cat, group_col, variant or "", xs)
        if ref is not None:
            ys = [100 * ref.get(g, np.nan) for g in xs]
            ax.scatter(range(len(xs)), ys, marker="D", color="black", zorder=5, s=28,
                       label=PAPER_LABEL)
        ax.set_title(mpl_text(f"'{cat}' rate by {group_col} ({dataset}, {variant} prompts)"))
        ax.set_xlabel(mpl_text(group_col))
        ax.set_ylabel(RATE_LABEL)
        ax.set_ylim(bottom=0)
        _legend(ax, (sub["flag"] == FLAG_SMALL_N).any(), overall=not overall.empty)
    return fig


def _split_groups(group_col: str, groups: pd.Series) -> pd.DataFrame:
    parts = [p.strip() for p in group_col.split(" x ")]
    for sep in (" x ", "|", " & ", ", ", "/"):
        split = groups.str.split(sep, n=len(parts) - 1, regex=False)
        if split.map(len).eq(len(parts)).all():
            return pd.DataFrame(split.tolist(), index=groups.index, columns=parts)
    raise ValueError(f"cannot split groups of '{group_col}' such as {groups.iloc[0]!r}")


def _heatmap_ticks(ax: Axes, rows: Sequence[str], cols: Sequence[str]) -> None:
    """Every row and column labelled, horizontal when the labels are short enough to sit side
    by side (seaborn's default drops or turns them so that they run into each other)."""
    longest = max((len(str(c)) for c in cols), default=0)
    turn = longest * len(cols) > 36
    ax.set_xticks(np.arange(len(cols)) + 0.5, [mpl_text(c) for c in cols],
                  rotation=30 if turn else 0, ha="right" if turn else "center", fontsize=9)
    ax.set_yticks(np.arange(len(rows)) + 0.5, [mpl_text(r) for r in rows], rotation=0,
                  fontsize=9)


def plot_intersection(metrics: pd.DataFrame, category: str | Sequence[str],
                      group_col: str = "race x gender", *, variant: str | None = None,
                      dataset: str | None = None, models: Sequence[str] = ()) -> Figure | None:
    """Heatmap of a category's rate over a two-column intersection: one row of panels per
    model, one panel per category; each cell shows the rate and its n."""
    variant = pick_variant(metrics, "category_rate", variant)
    dataset = pick_dataset(metrics, "category_rate", dataset)
    rows = _select(metrics, "category_rate", group_col=group_col, variant=variant, dataset=dataset)
    cats = [category] if isinstance(category, str) else list(category)
    cats = [c for c in cats if (rows["category"] == c).any()]
    if not cats or len(group_col.split(" x ")) != 2:
        return None
    models = ordered(rows["model"], models)
    rows = pd.concat([rows, _split_groups(group_col, rows["group"])], axis=1)
    row_col, col_col = [p.strip() for p in group_col.split(" x ")]
    r_order, c_order = group_order(rows[row_col]), group_order(rows[col_col])
    fig = new_figure(4.2 * len(cats) + 1, 0.45 * len(r_order) * len(models) + 1.2 * len(models))
    axes = fig.subplots(len(models), len(cats), squeeze=False)
    for j, cat in enumerate(cats):
        vmax = 100 * rows.loc[rows["category"] == cat, "value"].max()
        for i, model in enumerate(models):
            sub = rows[(rows["category"] == cat) & (rows["model"] == model)]
            value = sub.pivot(index=row_col, columns=col_col, values="value").reindex(
                index=r_order, columns=c_order) * 100
            text = sub.assign(t=[
                f"{100 * v:.1f}%\nn={int(n):,}{SMALL_N_MARK if f == FLAG_SMALL_N else ''}"
                if pd.notna(v) and pd.notna(n) else "\u2013"
                for v, n, f in zip(sub["value"], sub["n"], sub["flag"])
            ]).pivot(index=row_col, columns=col_col, values="t").reindex(index=r_order, columns=c_order)
            ax = axes[i, j]
            sns.heatmap(value, annot=text.fillna("\u2013").to_numpy(), fmt="", cmap="rocket_r",
                        vmin=0, vmax=vmax if vmax > 0 else 1, ax=ax, annot_kws={"fontsize": 8},
                        cbar_kws={"label": RATE_LABEL}, linewidths=0.5, linecolor="white",
                        xticklabels=False, yticklabels=False)
            _heatmap_ticks(ax, r_order, c_order)
            ax.set_title(mpl_text(f"'{cat}' rate, {model}"), fontsize=11)
            ax.set_xlabel(mpl_text(col_col))
            ax.set_ylabel(mpl_text(row_col))
    fig.suptitle(mpl_text(f"{group_col} ({dataset}, {variant} prompts)"), fontweight="bold")
    return fig


def plot_variant_comparison(metrics: pd.DataFrame, group_col: str = "age", *,
                            category: str | None = None, base: str = "default",
                            compare: str | None = None, dataset: str | None = None,
                            models: Sequence[str] = (), reference: pd.DataFrame | None = None,
                            ) -> Figure | None:
    """A category's rate by group under two prompt variants (e.g. default vs with_child), one
    panel per model."""
    rows = _select(metrics, "category_rate", group_col=group_col,
                   dataset=pick_dataset(metrics, "category_rate", dataset))
    variants = ordered(rows["variant"])
    if compare is None:
        compare = next((v for v in variants if v != base), None)
    if compare is None or base not in variants or compare not in variants:
        return None
    cats = ordered(rows["category"])
    category = category or ("crime|non_human" if "crime|non_human" in cats else cats[0])
    rows = rows[(rows["category"] == category) & rows["variant"].isin([base, compare])]
    models = ordered(rows["model"], models)
    colors = {base: "#4c72b0", compare: "#dd8452"}
    fig = new_figure(10, 3.4 * len(models))
    axes = fig.subplots(len(models), 1, squeeze=False)[:, 0]
    for ax, model in zip(axes, models):
        sub = rows[rows["model"] == model]
        xs = bars(ax, sub, hue="variant", hue_order=[base, compare], colors=colors)
        for k, (v, marker) in enumerate(((base, "D"), (compare, "s"))):
            ref = reference_for(reference, category, group_col, v, xs)
            if ref is not None:
                ax.scatter(np.arange(len(xs)) + (-0.2 if k == 0 else 0.2),
                           [100 * ref.get(g, np.nan) for g in xs], marker=marker, color="black",
                           s=24, zorder=5, label=mpl_text(f"{PAPER_LABEL}, {v}"))
        ax.set_title(mpl_text(f"'{category}' rate by {group_col}: {base} vs {compare} prompts ({model})"))
        ax.set_xlabel(mpl_text(group_col))
        ax.set_ylabel(RATE_LABEL)
        ax.set_ylim(bottom=0)
        _legend(ax, (sub["flag"] == FLAG_SMALL_N).any())
    return fig


def plot_accuracy_by_group(metrics: pd.DataFrame, group_col: str, *, metric: str = "accuracy",
                           variant: str | None = None, dataset: str | None = None,
                           models: Sequence[str] = ()) -> Figure | None:
    """Accuracy (or another accuracy-type metric) by group, one bar colour per model."""
    if metric not in ACCURACY_METRICS:
        raise ValueError(f"metric must be one of {ACCURACY_METRICS}, not {metric!r}")
    variant = pick_variant(metrics, metric, variant)
    dataset = pick_dataset(metrics, metric, dataset)
    rows = _select(metrics, metric, group_col=group_col, variant=variant, dataset=dataset)
    if rows.empty:
        return None
    models = ordered(rows["model"], models)
    fig = new_figure(10, 3.6)
    ax = fig.subplots()
    bars(ax, rows, hue_order=models, colors=model_colors(models))
    ax.set_title(mpl_text(f"{metric.replace('_', ' ')} by {group_col} ({dataset}, {variant} prompts)"))
    ax.set_xlabel(mpl_text(group_col))
    ax.set_ylabel(mpl_text(f"{metric.replace('_', ' ')} (% of images)"))
    ax.set_ylim(0, 100)
    _legend(ax, (rows["flag"] == FLAG_SMALL_N).any())
    return fig


def plot_template_sensitivity(metrics: pd.DataFrame, category: str | Sequence[str] | None = None,
                              *, variant: str | None = None, dataset: str | None = None,
                              models: Sequence[str] = ()) -> Figure | None:
    """Each category's rate when prompting with one template at a time (horizontal bars)."""
    rows = _select(metrics, "template_sensitivity", group_col="template",
                   dataset=pick_dataset(metrics, "template_sensitivity", dataset))
    variant = pick_variant(rows, "template_sensitivity", variant)
    rows = rows[rows["variant"] == variant]
    cats = ordered(rows["category"]) if category is None else (
        [category] if isinstance(category, str) else list(category))
    cats = [c for c in cats if (rows["category"] == c).any()]
    if not cats:
        return None
    models = ordered(rows["model"], models)
    colors = model_colors(models)
    n_t = rows["group"].nunique()
    fig = new_figure(10, sum(0.3 * n_t * max(1, len(models) / 2) + 1.2 for _ in cats))
    axes = fig.subplots(len(cats), 1, squeeze=False)[:, 0]
    for ax, cat in zip(axes, cats):
        sub = rows[rows["category"] == cat].copy()
        sub["group"] = sub["group"].map(lambda t: t if len(t) <= 60 else t[:57] + "...")
        bars(ax, sub, hue_order=models, colors=colors, horizontal=True)
        overall = _select(metrics, "category_rate", group_col="overall", variant=variant,
                          category=cat, dataset=sub["dataset"].iloc[0])
        for _, r in overall.iterrows():
            if r["model"] in colors:
                ax.axvline(100 * r["value"], color=colors[r["model"]], ls="--", lw=1)
        ax.set_title(mpl_text(f"'{cat}' rate per prompt template ({variant} prompts)"))
        ax.set_xlabel(RATE_LABEL)
        ax.set_ylabel("template")
        _legend(ax, (sub["flag"] == FLAG_SMALL_N).any(), overall=not overall.empty)
    return fig
