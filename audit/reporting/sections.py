"""One call per report section: figure or table, caption, or a one-line "not computed".

The notebooks are a list of these calls, so each cell stays one or two lines.
"""

from __future__ import annotations

from audit.reporting import fairness as ff
from audit.reporting import provenance as pv
from audit.reporting import robustness as rb
from audit.reporting import tables as tb
from audit.reporting.display import banner, count, markdown, show, skip, table
from audit.reporting.load import ACCURACY_METRICS, RunData, clip_paper_reference

ALPHA = 0.05


def header(run: RunData) -> None:
    """Title, the probe's description and the notice banner (if any)."""
    kind = "Robustness" if run.kind == "robustness" else "Fairness"
    markdown(f"# {kind} audit: {run.probe.get('name', run.run_dir.name)}")
    desc = run.resolved.get("description")
    if desc:
        markdown(str(desc))
    banner(run.notices)
    datasets = ", ".join(f"{d.get('name')} ({count(d.get('num_rows'))} images)"
                         for d in run.manifest.get("datasets", []))
    markdown(f"Models: {', '.join(run.models) or '–'}. Data: {datasets or '–'}. "
             f"Run: {run.manifest.get('created', '')}, results in `{run.run_dir}`.")


def show_gates(run: RunData) -> None:
    """Verdict per gate x model x variant, then every group that did not pass."""
    if run.gates is None:
        skip("Release gates", "no gates.json in this run")
        return
    c = tb.gate_counts(run)
    code = run.gates.get("exit_code")
    verdict = {"0": "release gates passed (exit 0)", "1": "release blocked (exit 1)"}.get(
        str(code), f"exit code {code}")
    markdown(f"**{verdict}.** Group checks: {c['pass']} pass, {c['fail']} fail, "
             f"{c['insufficient']} insufficient data" + (f", {c['error']} error" if c["error"] else "") + ".")
    verdicts = tb.gate_verdicts(run)
    if verdicts.empty:
        verdicts = tb.gate_table(run)
    table(verdicts, "Release gates",
          "One row per gate, model and prompt variant; FAIL rows block the release, WARN rows "
          "are reported only; 'why' gives the numbers that decided.")
    failing = tb.gate_table(run, failing_only=True)
    if not failing.empty:
        table(failing, "Groups that did not pass",
              "Every group that failed a gate or had too few images to judge.")


def datasets_with(run: RunData, metric: str) -> list[str]:
    """Datasets that have rows of ``metric``, in first-seen order."""
    return tb.ordered(run.rows(metric)["dataset"])


def _each_dataset(run: RunData, metric: str) -> list[str | None]:
    """The datasets to show a section for; a heading line precedes each when there are several."""
    names: list[str | None] = list(datasets_with(run, metric))
    return [None] if len(names) <= 1 else names


def _dataset_heading(dataset: str | None) -> None:
    if dataset is not None:
        markdown(f"**Dataset: {dataset}**")


def show_category_rates(run: RunData, group_col: str) -> None:
    """Rates of every reported category by one subgroup column: figure, then the numbers."""
    for dataset in _each_dataset(run, "category_rate"):
        _dataset_heading(dataset)
        fig = ff.plot_category_rates(run.metrics, run.categories, group_col, dataset=dataset,
                                     models=run.models, reference=clip_paper_reference())
        show(fig, f"Look for bars whose interval clears the dashed overall line: those "
                  f"{group_col} groups are put into the category more (or less) often than "
                  "images overall.", what=f"Category rates by {group_col}")
        if fig is not None:
            rows = run.rows("category_rate", group_col=group_col, dataset=dataset)
            table(tb.rate_table(run, group_col, dataset=dataset), f"Rates by {group_col}",
                  f"Counts, intervals and flags behind the figure.{tb.small_n_note(rows)}")


def show_subgroup_rates(run: RunData) -> None:
    """:func:`show_category_rates` for every single subgroup column (e.g. race, gender, age)."""
    cols = [c for c in run.subgroup_cols if " x " not in c]
    if not cols or not run.categories:
        skip("Category rates by subgroup")
    for col in cols:
        show_category_rates(run, col)


def show_intersections(run: RunData) -> None:
    cols = [c for c in run.subgroup_cols if " x " in c]
    if not cols:
        skip("Intersections (e.g. race x gender)")
        return
    for dataset in _each_dataset(run, "category_rate"):
        _dataset_heading(dataset)
        for col in cols:
            show(ff.plot_intersection(run.metrics, run.categories, col, dataset=dataset,
                                      models=run.models),
                 f"Darker cells are {col} groups put into the category more often; compare "
                 "along a row and down a column to see whether one attribute's gap holds "
                 "within the other's groups.", what=col)


def show_variant_comparison(run: RunData, group_col: str = "age") -> None:
    for dataset in _each_dataset(run, "category_rate"):
        _dataset_heading(dataset)
        fig = ff.plot_variant_comparison(run.metrics, group_col, base=run.base_variant,
                                         dataset=dataset, models=run.models,
                                         reference=clip_paper_reference())
        show(fig, "If adding labels (e.g. 'child') is a fix, the second bar drops for the "
                  f"{group_col} groups it concerns; changes elsewhere are side effects.",
             what=f"Prompt variants by {group_col}")
        rows = run.rows("variant_change", group_col=group_col, dataset=dataset)
        if fig is not None and not rows.empty:
            table(tb.variant_change_table(run, group_col, dataset=dataset),
                  "Change between variants",
                  "Paired change in rate (same images; McNemar p): positive means more images "
                  f"in the category under the compared variant.{tb.small_n_note(rows)}")


def show_accuracy_by_group(run: RunData) -> None:
    metric = next((m for m in ACCURACY_METRICS if not run.rows(m).empty), None)
    cols = [c for c in run.subgroup_cols if " x " not in c]
    if metric is None or not cols:
        skip("Accuracy by subgroup")
        return
    for dataset in _each_dataset(run, metric):
        _dataset_heading(dataset)
        for col in cols:
            show(ff.plot_accuracy_by_group(run.metrics, col, metric=metric, dataset=dataset,
                                           models=run.models),
                 f"Gaps between {col} groups larger than their intervals mean the model "
                 "recognises some groups' images less well.", what=f"{metric} by {col}")
    rows = run.rows(ACCURACY_METRICS, group_col="overall")
    table(tb.format_rows(rows, keep=["dataset", "model", "variant", "metric"]), "Overall accuracy")


def show_template_sensitivity(run: RunData) -> None:
    for dataset in _each_dataset(run, "template_sensitivity"):
        _dataset_heading(dataset)
        show(ff.plot_template_sensitivity(run.metrics, run.categories, dataset=dataset,
                                          models=run.models),
             "A wide spread between templates means the rates depend on prompt wording as much "
             "as on the images; the dashed line is the rate with all templates ensembled.",
             what="Template sensitivity")


def show_disparities(run: RunData) -> None:
    """Largest gaps and ratios across groups, independence tests, significant pairwise tests."""
    table(tb.disparity_table(run, "disparity_difference"), "Disparities",
          "Highest minus lowest group rate among groups with at least min_n images, in "
          "percentage points (95% interval; which two groups).")
    table(tb.disparity_table(run, "disparity_ratio"), "Disparity ratios",
          "Highest over lowest group rate; 'undefined' when the lowest rate is zero.")
    table(tb.independence_table(run), "Independence tests",
          "Chi-square test that the rate does not depend on the group; a small p means it does.")
    pairs = run.rows("pairwise_test")
    sig = pairs[pairs["p_value"] < ALPHA]
    if pairs.empty:
        skip("Pairwise tests")
    elif sig.empty:
        markdown(f"**Pairwise tests:** no group's rate differs from the rest of its column "
                 f"(Holm-adjusted p < {ALPHA}) in any of {len(pairs)} tests.")
    else:
        table(tb.format_rows(sig, keep=["model", "variant", "category", "group_col", "group"]),
              "Pairwise tests", f"Groups whose rate differs from the rest of their column "
              f"(Holm-adjusted p < {ALPHA}); value: difference in rate.")


def show_clip_paper(run: RunData) -> None:
    df = tb.clip_paper_table(run)
    if df.empty:
        skip("CLIP paper reference", "not applicable (no published values for these groups)")
        return
    table(df, "CLIP paper reference",
          "Historical reference, not a target: the paper's prompts were not published and "
          "reproductions with released models come out lower.")


def show_accuracy_table(run: RunData) -> None:
    for metric in ACCURACY_METRICS:
        df = rb.accuracy_table(run, metric)
        if not df.empty:
            markdown(f"**{metric.replace('_', ' ')}** (percent, 95% CI, images)")
            table(df, metric)
    if run.rows(ACCURACY_METRICS).empty:
        skip("Accuracy per model and dataset")


def show_effective_robustness(run: RunData) -> None:
    show(rb.plot_effective_robustness_scatter(run),
         "Points above the grey line are more robust than standard ImageNet models of the same "
         "ImageNet accuracy; the dotted segment is the effective robustness.",
         what="Effective robustness scatter")
    show(rb.plot_effective_robustness(run),
         "Bars above zero mean robustness beyond what ImageNet accuracy alone predicts; read "
         "shifts whose note flags a low fit r as indicative only.", what="Effective robustness")
    table(rb.robustness_table(run), "Effective robustness table")


def show_provenance(run: RunData) -> None:
    for title, df in (("Run", pv.run_table(run)), ("Models", pv.models_table(run)),
                      ("Datasets", pv.datasets_table(run)), ("Prompts", pv.prompts_table(run)),
                      ("Label sets", pv.label_sets_table(run)),
                      ("Packages", pv.packages_table(run))):
        markdown(f"**{title}**")
        table(df, title)


def show_skipped(run: RunData) -> None:
    df = pv.skipped_table(run)
    if df.empty:
        markdown("No images were skipped.")
        return
    table(df, "Skipped images", f"{len(df)} image(s) could not be read and are in no number "
          "of this report.")
