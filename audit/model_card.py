"""``model_card.md``: a copy-pasteable model-card section summarising a run.

What was measured, on what data, headline tables, gate outcomes and caveats in markdown, then
the evaluation results in the Hugging Face ``model-index`` format (a fenced YAML block for the
card's front matter). Every number is read from the run's files, never recomputed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
import yaml

from audit.reporting.display import interval, pct
from audit.reporting.escape import md_join, md_text
from audit.reporting.load import ACCURACY_METRICS, RunData, load_run
from audit.reporting.tables import ordered, pick_variant, variant_rates
from audit.reporting.verdict import headline, verdict_table
from audit.results import atomic_write

MODEL_CARD = "model_card.md"
TASK = "zero-shot-image-classification"
#: Decimals kept in model-index values: fractions, and accuracy points.
DECIMALS, POINT_DECIMALS = 4, 2
_HUB_ID = re.compile(r"^[\w.-]+/[\w.-]+$")

CAVEAT_PROMPTS = (
    "The CLIP paper did not publish its FairFace prompts; its rates are a historical "
    "reference, not a target, and reproductions with released models come out lower."
)
CAVEAT_PERCEIVED = (
    "FairFace's race, gender and age labels are annotators' perceived attributes, not "
    "self-identification; the groups are coarse."
)
CAVEAT_VOCAB = (
    "Rates depend on the label vocabulary and prompt templates (listed in the run's "
    "manifest.json) as much as on the model."
)
CAVEAT_BASELINE = (
    "Effective robustness is measured against the imagenet-testbed's standard ImageNet models "
    "(Taori et al. 2020); shifts flagged with a low fit r are indicative only."
)


def _md_table(df: pd.DataFrame) -> str:
    """A GitHub markdown table; every cell escaped (no markup, pipes or line breaks)."""
    if df.empty:
        return "_none_"
    esc = md_text
    cells = df.map(esc)
    head = "| " + " | ".join(esc(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(row) + " |" for row in cells.itertuples(index=False)]
    return "\n".join([head, sep, *body])


def public_source(source: object) -> str:
    """A dataset source fit for a shared card: a hub id as is, a local path by its last
    folder name only (a card never shows where files lie on someone's machine)."""
    text = str(source or "")
    if text and not _HUB_ID.match(text) and (Path(text).is_absolute() or "/" in text
                                              or "\\" in text):
        return f"{Path(text).name} (local folder)"
    return text


def _dataset_type(d: dict[str, Any]) -> str:
    source = str(d.get("source") or "")
    return source if _HUB_ID.match(source) else str(d.get("adapter") or d.get("name"))


def model_index(run: RunData) -> list[dict[str, Any]]:
    """The ``model-index`` list: per model, per dataset, the headline metrics (base variant
    for accuracy and disparities, every variant for category rates)."""
    datasets = {str(d.get("name")): d for d in run.manifest.get("datasets", [])}
    base = run.base_variant
    rob = run.robustness
    if rob is not None and "variant" in rob:
        rob = rob[rob["variant"].astype(str) == pick_variant(run.metrics, "accuracy", None)]
    out = []
    for model in run.models:
        results = []
        for name in ordered(run.metrics["dataset"], list(datasets)):
            metrics = _metrics_for(run, model, name, base)
            if rob is not None:
                for _, r in rob[(rob["model"] == model) & (rob["dataset"] == name)].iterrows():
                    metrics.append({"type": "effective_robustness",
                                    "value": round(float(r["effective_robustness_pts"]), POINT_DECIMALS),
                                    "name": "Effective robustness (accuracy points)"})
            if not metrics:
                continue
            d = datasets.get(name, {"name": name})
            ds = {"name": name, "type": _dataset_type(d), "config": d.get("config"),
                  "split": d.get("split"), "revision": d.get("revision")}
            results.append({"task": {"type": TASK},
                            "dataset": {k: str(v) for k, v in ds.items() if v is not None},
                            "metrics": metrics})
        if results:
            out.append({"name": model, "results": results})
    return out


def _metrics_for(run: RunData, model: str, dataset: str, base: str) -> list[dict[str, Any]]:
    metrics: list[dict[str, Any]] = []
    for metric in ACCURACY_METRICS:
        for _, r in run.rows(metric, model=model, dataset=dataset, group_col="overall",
                             variant=base).iterrows():
            if pd.notna(r["value"]):
                metrics.append({"type": metric, "value": round(float(r["value"]), DECIMALS),
                                "name": f"{metric.replace('_', ' ')} ({r['variant']} prompts)"})
    for _, r in run.rows("category_rate", model=model, dataset=dataset,
                         group_col="overall").iterrows():
        if pd.notna(r["value"]):
            metrics.append({"type": "category_rate", "value": round(float(r["value"]), DECIMALS),
                            "name": f"{r['category']} rate ({r['variant']} prompts)"})
    for _, r in run.rows("disparity_difference", model=model, dataset=dataset,
                         variant=base).iterrows():
        if pd.notna(r["value"]) and " x " not in r["group_col"]:
            metrics.append({"type": "disparity_difference",
                            "value": round(float(r["value"]), DECIMALS),
                            "name": f"{r['category']} rate gap across {r['group_col']} "
                                    f"({r['group']}, {r['variant']} prompts)"})
    return metrics


def _rates_table(run: RunData) -> pd.DataFrame:
    rows = run.rows("category_rate", group_col="overall")
    if rows.empty:
        return pd.DataFrame()
    cell = [f"{pct(v)} ({interval(lo, hi)})" for v, lo, hi in
            zip(rows["value"], rows["ci_low"], rows["ci_high"])]
    wide = rows.assign(cell=cell).pivot_table(index=["model", "variant"], columns="category",
                                              values="cell", aggfunc="first", sort=False)
    return wide.reset_index().rename_axis(columns=None)


def _disparity_table(run: RunData) -> pd.DataFrame:
    """Per model and category, the largest gap across each single subgroup column."""
    rows = run.rows("disparity_difference", variant=run.base_variant)
    rows = rows[~rows["group_col"].str.contains(" x ", regex=False)]
    if rows.empty:
        return pd.DataFrame()
    cell = [f"{100 * v:.1f} ({interval(lo, hi)}; {g})" if pd.notna(v) else "\u2013"
            for v, lo, hi, g in zip(rows["value"], rows["ci_low"], rows["ci_high"], rows["group"])]
    wide = rows.assign(cell=cell).pivot_table(index=["model", "category"], columns="group_col",
                                              values="cell", aggfunc="first", sort=False)
    return wide.reset_index().rename_axis(columns=None)


def _accuracy_table(run: RunData) -> pd.DataFrame:
    rows = run.rows(ACCURACY_METRICS, group_col="overall", variant=run.base_variant)
    if rows.empty:
        return pd.DataFrame()
    cell = [f"{pct(v)} ({interval(lo, hi)})" for v, lo, hi in
            zip(rows["value"], rows["ci_low"], rows["ci_high"])]
    wide = rows.assign(cell=cell, col=rows["dataset"] + " " + rows["metric"].str.replace("_", " "))
    return wide.pivot_table(index="model", columns="col", values="cell", aggfunc="first",
                            sort=False).reset_index().rename_axis(columns=None)


def _robustness_table(run: RunData) -> pd.DataFrame:
    rob = run.robustness
    if rob is None or rob.empty:
        return pd.DataFrame()
    if "variant" in rob:
        rob = rob[rob["variant"].astype(str) == pick_variant(run.metrics, "accuracy", None)]
    cell = [f"{v:+.1f}" + (f" ({lo:+.1f} to {hi:+.1f})" if pd.notna(lo) and pd.notna(hi) else "")
            for v, lo, hi in zip(rob["effective_robustness_pts"],
                                 rob.get("eff_rob_low_pts", pd.Series(float("nan"), index=rob.index)),
                                 rob.get("eff_rob_high_pts", pd.Series(float("nan"), index=rob.index)))]
    wide = rob.assign(cell=cell).pivot_table(index="model", columns="dataset", values="cell",
                                             aggfunc="first", sort=False)
    return wide.reset_index().rename_axis(columns=None)


def caveats(run: RunData) -> list[str]:
    out: list[str] = []  # the notice stands at the top of the card, once
    if run.kind == "fairness":
        if run.fairface_shaped:
            out += [CAVEAT_PERCEIVED, CAVEAT_PROMPTS]
        out.append(CAVEAT_VOCAB)
    else:
        out.append(CAVEAT_BASELINE)
    small = int((run.metrics["flag"] == "small_n").sum())
    if small:
        out.append(f"{small} estimates rest on fewer images than the probe's min_n; they are "
                   "shown but gates treat them as insufficient data.")
    return out


def model_card_text(run: RunData) -> str:
    """The markdown of ``model_card.md``."""
    probe, m = run.probe, run.manifest
    what = ("how often images of each subgroup are put into the categories "
            f"{', '.join(run.categories) or '(none)'} by zero-shot classification, per prompt "
            f"variant ({', '.join(run.variants)})" if run.kind == "fairness" else
            "zero-shot top-1 on ImageNet and its natural distribution shifts, and effective "
            "robustness against standard ImageNet models")
    data = pd.DataFrame([{"dataset": d.get("name"), "source": public_source(d.get("source")),
                          "config": d.get("config") or "\u2013", "split": d.get("split") or "\u2013",
                          "revision": d.get("revision") or "not pinned",
                          "images": d.get("num_rows"), "skipped": len(d.get("skipped") or [])}
                         for d in m.get("datasets", [])])
    parts = [f"## Evaluation: {md_text(probe.get('name', ''))} ({run.kind} audit)", ""]
    parts += [f"> **Notice:** {md_text(n)}" for n in run.notices] + ([""] if run.notices else [])
    probe_file = Path(str(probe.get("path") or "")).name  # never a local absolute path
    parts += [f"**What was measured.** {md_text(what[0].upper() + what[1:])}. Models: "
              f"{md_join(run.models)}. Probe {md_text(probe_file)} "
              f"(sha256 `{str(probe.get('sha256') or '')[:12]}`), run "
              f"{md_text(m.get('created', ''))}, seed {md_text(m.get('seed', ''))}, "
              f"audit {md_text(m.get('audit_version', ''))}.", "",
              "**Data.**", "", _md_table(data), ""]
    verdicts = verdict_table(run)
    if not verdicts.empty:
        parts += [f"**Release gates: {headline(run.gates)}.** WARN rows are reported, FAIL rows "
                  "block the release; 'compared' is the number each gate tested against its "
                  "threshold.", "", _md_table(verdicts), ""]
    tables = [("Overall category rates (95% CI)", _rates_table(run)),
              ("Largest gap between groups: highest minus lowest rate in points (95% CI; which groups), "
               f"{md_text(run.base_variant)} prompts", _disparity_table(run)),
              ("Prompt variants: each group's rate under the base label set and under the "
               "variant, and the paired change (95% CI)", variant_rates(run)),
              ("Accuracy (95% CI)", _accuracy_table(run)),
              ("Effective robustness (accuracy points, 95% band)", _robustness_table(run))]
    for title, df in tables:
        if not df.empty:
            parts += [f"**{title}.**", "", _md_table(df), ""]
    parts += ["**Caveats.**", "", *[f"- {c}" for c in caveats(run)], ""]
    index = yaml.safe_dump({"model-index": model_index(run)}, sort_keys=False, allow_unicode=True)
    # a fence longer than any backtick run in the YAML (a model name may hold ```)
    fence = "`" * max(3, 1 + max((len(r) for r in re.findall(r"`+", index)), default=0))
    parts += ["**Evaluation results** (Hugging Face `model-index`, for the card's front matter):",
              "", f"{fence}yaml", index.rstrip(), fence, ""]
    return "\n".join(parts)


def write_model_card(run_dir: str | Path) -> Path:
    """Write ``model_card.md`` into the run directory (atomically) and return its path."""
    run = load_run(run_dir)
    path = run.run_dir / MODEL_CARD
    text = model_card_text(run)
    def write(tmp: Path) -> None:
        tmp.write_text(text, encoding="utf-8")

    atomic_write(path, write)
    return path
