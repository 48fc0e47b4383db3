"""What the report notebooks call: load a run directory, then show its sections.

Nothing here computes a metric. Every number comes from the run's files (``metrics.csv``,
``gates.json``, ``robustness.csv``, ``manifest.json``); the figures and tables only select,
reshape and draw them. Plot functions return a :class:`matplotlib.figure.Figure` (or None when
the run has no rows for them) so they can be used outside a notebook too; the ``show_*``
functions display a section with its caption, or one "not computed in this run" line.

Typical notebook::

    import audit.reporting as rp
    rp.setup(dpi=100)
    run = rp.load_run(run_dir)
    rp.header(run)
    rp.show_gates(run)
    rp.show_category_rates(run, "race")
"""

from __future__ import annotations

from audit.reporting.display import caption, figure_png, markdown, setup, show, skip, table
from audit.reporting.fairness import (
    plot_accuracy_by_group,
    plot_category_rates,
    plot_intersection,
    plot_template_sensitivity,
    plot_variant_comparison,
)
from audit.reporting.load import RunData, clip_paper_reference, load_run, read_gates, read_robustness
from audit.reporting.robustness import (
    accuracy_table,
    plot_effective_robustness,
    plot_effective_robustness_scatter,
    robustness_table,
)
from audit.reporting.sections import (
    header,
    show_accuracy_by_group,
    show_accuracy_table,
    show_category_rates,
    show_clip_paper,
    show_disparities,
    show_effective_robustness,
    show_gates,
    show_intersections,
    show_provenance,
    show_reading_notes,
    show_skipped,
    show_subgroup_rates,
    show_template_sensitivity,
    show_variant_comparison,
    show_variant_comparisons,
    show_verdict,
)
from audit.reporting.tables import clip_paper_table, format_rows, gate_table, rate_table

__all__ = [
    "RunData", "load_run", "read_gates", "read_robustness", "clip_paper_reference",
    "setup", "show", "table", "caption", "markdown", "skip", "figure_png",
    "plot_category_rates", "plot_intersection", "plot_variant_comparison",
    "plot_accuracy_by_group", "plot_template_sensitivity",
    "plot_effective_robustness_scatter", "plot_effective_robustness",
    "accuracy_table", "robustness_table", "rate_table", "gate_table", "clip_paper_table",
    "format_rows",
    "header", "show_gates", "show_category_rates", "show_intersections",
    "show_variant_comparison", "show_accuracy_by_group", "show_template_sensitivity",
    "show_disparities", "show_clip_paper", "show_accuracy_table", "show_effective_robustness",
    "show_provenance", "show_skipped", "show_subgroup_rates", "show_verdict",
    "show_variant_comparisons", "show_reading_notes",
]
