"""One call per report section: figure or table, caption, or a one-line "not computed".

The notebooks are a list of these calls, so each cell stays one or two lines.
"""

from __future__ import annotations

from audit.reporting import fairness as ff
from audit.reporting import provenance as pv
from audit.reporting import robustness as rb
from audit.reporting import tables as tb
from audit.reporting import verdict as vd
from audit.reporting.display import banner, count, markdown, show, skip, status_table, table
from audit.reporting.escape import md_join, md_text
from audit.reporting.load import ACCURACY_METRICS, RunData, clip_paper_reference

ALPHA = 0.05


def header(run: RunData) -> None:
    """Title, the probe's description and the notice banner (if any)."""
    kind = "Robustness" if run.kind == "robustness" else "Fairness"
    markdown(f"# {kind} audit: {md_text(run.probe.get('name', run.run_dir.name))}")
    desc = run.resolved.get("description")
    if desc:
        markdown(md_text(desc))
    banner(run.notices)
    datasets = ", ".join(f"{md_text(d.get('name'))} ({count(d.get('num_rows'))} images)"
                         for d in run.manifest.get("datasets", []))
    markdown(f"Models: {md_join(run.models) or '–'}. Data: {datasets or '–'}. "
             f"Run: {md_text(run.manifest.get('created', ''))}, results in "
             f"{md_text(run.run_dir.name)}.")


def show_verdict(run: RunData) -> None:
    """The ten-second summary: the headline, each gate's status (colour and text) and the
    forest plot of each gate's worst group."""
    if run.gates is None:
        skip("Verdict", "no release gates in this run (add gates: to the probe)")
        return
    markdown(f"## Verdict: {vd.headline(run.gates)}")
    colours = {text: colour for text, colour in vd.STATUS.values()}
    status_table(vd.verdict_table(run), colours, "Gates",
                 "One row per gate, model and prompt variant. FAIL blocks the release; WARN is "
                 "reported but does not block. 'compared' is the number the gate tested and "
                 "what it was held against.")
    show(vd.plot_gate_forest(run),
         "Each gate's worst group: the dot is the estimate, the bar its 95% interval, the "
         "dashed line the gate's threshold (or zero difference for a significance test); the "
         "colour and the [label] give the gate's status.", what="Worst group per gate")


def show_gates(run: RunData) -> None:
    """Verdict per gate x model x variant, then every group that did not pass."""
    if run.gates is None:
        skip("Release gates", "no gates.json in this run")
        return
    c = tb.gate_counts(run)
    markdown(f"**Release gates {vd.headline(run.gates)}.** Group checks: {c['pass']} pass, {c['fail']} fail, "
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
              "Every group that failed a gate or had too few images to judge; under a warn "
              "gate such a group says WARN (reported, not blocking).")


def datasets_with(run: RunData, metric: str) -> list[str]:
    """Datasets that have rows of ``metric``, in first-seen order."""
    return tb.ordered(run.rows(metric)["dataset"])


def _each_dataset(run: RunData, metric: str) -> list[str | None]:
    """The datasets to show a section for; a heading line precedes each when there are several."""
    names: list[str | None] = list(datasets_with(run, metric))
    return [None] if len(names) <= 1 else names


def _dataset_heading(dataset: str | None) -> None:
    if dataset is not None:
        markdown(f"**Dataset: {md_text(dataset)}**")


def show_category_rates(run: RunData, group_col: str) -> None:
    """Rates of every reported category by one subgroup column: figure, then the numbers."""
    for dataset in _each_dataset(run, "category_rate"):
        _dataset_heading(dataset)
        fig = ff.plot_category_rates(run.metrics, run.categories, group_col, dataset=dataset,
                                     models=run.models, reference=clip_paper_reference())
        col = md_text(group_col)
        show(fig, f"Look for bars whose interval clears the dashed overall line: those "
                  f"{col} groups are put into the category more (or less) often than "
                  "images overall.", what=f"Category rates by {col}")
        if fig is not None:
            rows = run.rows("category_rate", group_col=group_col, dataset=dataset)
            table(tb.rate_table(run, group_col, dataset=dataset), f"Rates by {col}",
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
                 f"Darker cells are {md_text(col)} groups put into the category more often; "
                 "compare along a row and down a column to see whether one attribute's gap "
                 "holds within the other's groups.", what=md_text(col))


def show_variant_comparisons(run: RunData) -> None:
    """:func:`show_variant_comparison` for each column the probe compares variants on."""
    if len(run.variants) < 2:
        skip("Prompt variants", "this probe declares one label-set variant")
        return
    cols = tb.variant_columns(run)
    if not cols:
        skip("Prompt variants")
    for col in cols:
        show_variant_comparison(run, col)


def show_variant_comparison(run: RunData, group_col: str) -> None:
    """Each category's rate by ``group_col`` under the base and each other variant, then the
    paired changes."""
    col = md_text(group_col)
    for dataset in _each_dataset(run, "category_rate"):
        _dataset_heading(dataset)
        shown = 0
        for compare in [v for v in run.variants if v != run.base_variant]:
            for category in run.categories:
                fig = ff.plot_variant_comparison(
                    run.metrics, group_col, category=category, base=run.base_variant,
                    compare=compare, dataset=dataset, models=run.models,
                    reference=clip_paper_reference())
                if fig is None:
                    continue
                show(fig, f"If the {md_text(compare)} variant is a fix for "
                          f"'{md_text(category)}', its bars drop for the {col} groups it "
                          "concerns; changes elsewhere are side effects.",
                     what=f"Prompt variants by {col}")
                shown += 1
        if not shown:
            skip(f"Prompt variants by {col}")
        rows = run.rows("variant_change", group_col=group_col, dataset=dataset)
        if not rows.empty:
            table(tb.variant_change_table(run, group_col, dataset=dataset),
                  f"Change between variants by {col}",
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
                 f"Gaps between {md_text(col)} groups larger than their intervals mean the "
                 "model recognises some groups' images less well.",
                 what=f"{metric} by {md_text(col)}")
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


NOTE_PERCEIVED = ("FairFace's race, gender and age labels are annotators' *perceived* attributes, "
                  "not self-identification; the groups are coarse.")
NOTE_PAPER = ("The CLIP paper did not publish its prompts, so its values are a historical "
              "reference, not a target.")
NOTE_VOCAB = ("Rates depend on the label vocabulary and the prompt templates as much as on the "
              "model (see *Template sensitivity*).")
NOTE_SMALL_N = ("Estimates marked small_n (\u2020) rest on few images; gates treat them as "
                "insufficient data, not as a pass.")


def show_reading_notes(run: RunData) -> None:
    """Caveats for reading the report; the FairFace ones only for FairFace-shaped data."""
    notes = [NOTE_VOCAB, NOTE_SMALL_N]
    if run.fairface_shaped:
        notes = [NOTE_PERCEIVED, NOTE_PAPER, *notes]
    markdown("\n".join(f"- {n}" for n in notes))
