"""Report figures and tables for association tests and FACET-style recall disparities.

Nothing here computes a metric: the figures draw ``association_test`` and ``recall_disparity``
rows of ``metrics.csv``. User-written names (test names, groups, classes) are drawn as plain
text (matplotlib does not interpret them: ``$`` is escaped so no mathtext is parsed).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from audit.reporting.display import SMALL_N_MARK, caption, markdown, new_figure, show, skip, table
from audit.reporting.load import RunData
from audit.results import FLAG_SMALL_N

ASSOCIATION_METRIC = "association_test"
RECALL_DISPARITY_METRIC = "recall_disparity"


def _plain(text: object) -> str:
    return str(text).replace("$", r"\$")


def plot_association_forest(metrics: pd.DataFrame, alpha: float = 0.05) -> Figure | None:
    """Forest plot: one line per test x group x model, effect size d with its interval.

    Filled markers are significant (Holm-adjusted p < ``alpha``); groups below min_n carry a
    dagger. Returns None when the run has no association rows.
    """
    rows = metrics[metrics["metric"] == ASSOCIATION_METRIC].copy()
    if rows.empty:
        return None
    rows = rows.sort_values(["category", "model", "value"], ascending=[True, True, False]).reset_index(drop=True)
    models = list(dict.fromkeys(rows["model"].astype(str)))
    colors = dict(zip(models, sns.color_palette("colorblind", len(models))))
    fig = new_figure(7.5, 1.2 + 0.32 * len(rows))
    ax = fig.add_subplot(1, 1, 1)
    y = np.arange(len(rows))[::-1]
    for yi, row in zip(y, rows.itertuples()):
        color = colors[str(row.model)]
        if pd.notna(row.ci_low) and pd.notna(row.ci_high):
            ax.plot([row.ci_low, row.ci_high], [yi, yi], color=color, lw=1.5)
        significant = pd.notna(row.p_value) and row.p_value < alpha
        ax.plot([row.value], [yi], "o", color=color, markerfacecolor=color if significant else "white", ms=6)
    labels = [f"{_plain(r.category)} | {_plain(r.group)}" + (f" [{_plain(r.model)}]" if len(models) > 1 else "")
              + (SMALL_N_MARK if r.flag == FLAG_SMALL_N else "") for r in rows.itertuples()]
    ax.set_yticks(y, labels)
    ax.axvline(0, color="0.5", lw=0.8, ls="--")
    ax.set_xlabel("effect size d (Cohen's d, WEAT); filled: Holm-adjusted p < %g" % alpha)
    ax.set_title("Association tests: group vs the rest, attribute set A vs B", loc="left", fontsize=10)
    return fig


def association_table(metrics: pd.DataFrame) -> pd.DataFrame:
    """The association rows in reading order (largest effect first within a test)."""
    rows = metrics[metrics["metric"] == ASSOCIATION_METRIC]
    cols = ["model", "dataset", "category", "group_col", "group", "n", "value", "ci_low", "ci_high", "p_value", "flag"]
    out = rows.sort_values(["category", "model", "value"], ascending=[True, True, False])[cols]
    return out.rename(columns={"category": "test", "value": "effect size d", "p_value": "Holm p"}).reset_index(drop=True)


def show_associations(run: RunData, alpha: float = 0.05) -> None:
    """The association section: forest plot and table, or a one-line skip."""
    fig = plot_association_forest(run.metrics, alpha)
    if fig is None:
        skip("Association tests")
        return
    show(fig, "Association tests: for each image, s(x) = mean cosine to the texts of set A minus "
              "mean cosine to set B; d compares a group's mean s with the rest's, in units of the "
              "pooled standard deviation. Positive: the group sits closer to A than the rest does.",
         "Association tests")
    table(association_table(run.metrics), "Association tests",
          f"Bootstrap 95% intervals; permutation p-values, Holm-adjusted over the tests of a model (alpha {alpha:g}).")


def show_recall_disparities(run: RunData, alpha: float = 0.05, k: int = 10) -> None:
    """FACET-style: the classes with the largest significant recall differences."""
    from audit.metrics.person_recall import largest_disparities

    rows = run.metrics[run.metrics["metric"] == RECALL_DISPARITY_METRIC]
    if rows.empty:
        skip("Person-class recall disparities")
        return
    top = largest_disparities(run.metrics, alpha, k)
    if top.empty:
        markdown(f"**Person-class recall disparities:** none significant (Holm-adjusted p < {alpha:g}) "
                 f"in {len(rows)} class x group-pair tests.")
        return
    caption("Classes with the largest significant recall differences between two groups "
            "(Newcombe 95% interval; score test, Holm-adjusted).")
    table(top.drop(columns=["abs_difference", "metric"]).rename(columns={"category": "class", "value": "difference"}),
          "Recall disparities")


def show_association_sections(run: RunData, alpha: float | None = None) -> None:
    """Both sections, each with its heading, shown only when the run computed its rows; alpha
    defaults to the probe's ``stats.alpha``."""
    if alpha is None:
        alpha = float((run.resolved.get("stats") or {}).get("alpha", 0.05))
    names = set(run.metrics["metric"].astype(str))
    if ASSOCIATION_METRIC in names:
        markdown("## Association tests")
        show_associations(run, alpha)
    if RECALL_DISPARITY_METRIC in names:
        markdown("## Person-class recall disparities (FACET-style)")
        show_recall_disparities(run, alpha)


__all__ = ["association_table", "plot_association_forest", "show_association_sections", "show_associations",
           "show_recall_disparities"]
