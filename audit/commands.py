"""One function per CLI command: call the API, print for humans, return the exit code."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from audit.errors import EXIT_OK, EXIT_USER, AuditError
from audit.spec import load_probe


def _out(msg: str = "") -> None:
    print(msg, flush=True)


def cmd_validate(args: argparse.Namespace) -> int:
    worst = EXIT_OK
    for path in args.probes:
        try:
            probe = load_probe(path, allow_notebooks_outside=args.allow_notebooks_outside)
        except AuditError as exc:
            print(f"error: {exc.render()}", file=sys.stderr)
            worst = max(worst, exc.exit_code)
            continue
        spec = probe.spec
        _out(f"ok: {path} (probe '{spec.name}': {len(spec.datasets)} dataset(s), {len(spec.models)} model(s), "
             f"{len(spec.variants)} variant(s), {len(spec.metrics)} metric(s), {len(spec.gates)} gate(s))")
        for notebook in probe.notebooks:
            _out(f"  note: this probe executes notebook {notebook} when its report is rendered: "
                 "a notebook runs code, so read it first")
    return worst


def cmd_schema(args: argparse.Namespace) -> int:
    from audit.errors import UserError
    from audit.spec.schema import SCHEMAS, json_schema, markdown

    unknown = [n for n in args.names if n not in SCHEMAS]
    if unknown:
        raise UserError("; ".join(SCHEMAS.unknown_message(n) for n in unknown),
                        fix=f"use one of {', '.join(SCHEMAS.names())}")
    if args.markdown:
        sys.stdout.write(markdown(args.names))
    elif len(args.names) != 1:
        raise UserError("give one document name for a JSON Schema (several only with --markdown)")
    else:
        sys.stdout.write(json_schema(args.names[0]))
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    from audit import registries

    _out("datasets:")
    for name in registries.DATASETS.names():
        cls = registries.DATASETS.get(name)
        cols = getattr(cls, "columns", None)
        opts = ", ".join(getattr(cls, "options_help", {}) or {}) or "none"
        source = getattr(cls, "default_source", None) or "(set in the probe, or generated)"
        _out(f"  {name:<19} source {source}; columns {', '.join(cols) if cols else '(from the data)'}; options: {opts}")
    _out("metrics:  " + ", ".join(registries.METRICS.names()))
    _out("gates:    " + ", ".join(registries.GATES.names()))
    from audit.models.ids import SYNTAX

    _out(f"models:   {SYNTAX} (transformers: CLIP, SigLIP, SigLIP 2 and other dual encoders)")
    from audit.models.catalog import pretrained_tags

    tags = pretrained_tags()
    examples = [f"{a}:{t}" for a, ts in list(tags.items())[:2] for t in ts[:2]]
    _out(f"          {sum(map(len, tags.values()))} open_clip pretrained pairs over {len(tags)} architectures, "
         f"e.g. {', '.join(examples)}")
    roots = [Path("label_sets"), Path(__file__).resolve().parent.parent / "label_sets"]
    seen: set[Path] = set()
    _out("label sets:")
    for root in roots:
        for path in sorted(root.glob("*.yaml")) if root.is_dir() else []:
            if path.resolve() in seen:
                continue
            seen.add(path.resolve())
            try:
                from audit.spec import load_label_set

                ls = load_label_set(path)
                cats = sorted({lb.category for lb in ls.labels})
                _out(f"  {path}: {ls.name} v{ls.version}, {len(ls.labels)} labels ({', '.join(cats)})")
            except AuditError as exc:
                _out(f"  {path}: INVALID ({exc.message})")
    return EXIT_OK


def cmd_run(args: argparse.Namespace) -> int:
    from audit.run import RunOptions, run_probe
    from audit.summary import print_summary

    probe = load_probe(args.probe, allow_notebooks_outside=args.allow_notebooks_outside)
    for m in args.model:
        from audit.registries import check_model_id

        problem = check_model_id(m)
        if problem:
            from audit.errors import UserError

            raise UserError(f"--model: {problem}")
    from audit.progress import to_stderr

    to_stderr(quiet=args.quiet or os.environ.get("RANK", "0") != "0")  # what the run is doing, on stderr
    if args.quiet or not sys.stderr.isatty():  # datasets' own split-generation bars
        import datasets

        datasets.disable_progress_bars()
    baseline = getattr(args, "baseline", None)
    if baseline is not None:  # a bad baseline is refused before anything is computed
        from audit.results import METRICS, read_run

        read_run(baseline, METRICS)
    options = RunOptions(out=args.out, models=tuple(args.model), limit=args.limit, device=args.device,
                         precision=args.precision,
                         batch_size=args.batch_size, num_workers=args.num_workers, quiet=args.quiet,
                         cache_dir=args.cache_dir, report=not args.no_report and baseline is None,
                         shard_rows=args.shard_rows)
    outcome = run_probe(probe, options)
    if baseline is not None and os.environ.get("RANK", "0") == "0":
        _judge_against_baseline(probe, outcome, baseline, report=not args.no_report)
    if not args.quiet and os.environ.get("RANK", "0") == "0":  # torchrun: rank 0 reports
        print_summary(probe, outcome)
    return outcome.exit_code


def _judge_against_baseline(probe: Any, outcome: Any, baseline: Path, report: bool) -> None:
    """``run --baseline``: judge no_regression gates on the finished run, then render the report."""
    from audit.check import rejudge_with_baseline
    from audit.errors import EXIT_DATA
    from audit.gates import exit_code

    outcome.gate_results = rejudge_with_baseline(outcome.run_dir, baseline)
    outcome.exit_code = EXIT_DATA if outcome.model_failures else exit_code(outcome.gate_results)
    if report and probe.spec.report.enabled:
        from audit.report import render_report

        try:
            render_report(outcome.run_dir)
        except AuditError as exc:
            outcome.report_error = exc.render()
            outcome.exit_code = EXIT_DATA


def cmd_check(args: argparse.Namespace) -> int:
    from audit.check import check_main

    return check_main(args.run_dir, probe_path=args.probe, junit=args.junit, strict=args.strict,
                      baseline=args.baseline)


def cmd_report(args: argparse.Namespace) -> int:
    from audit.report import report_main
    from audit.results import METRICS, read_run

    for line in read_run(args.run_dir, METRICS).load_all().integrity(args.strict):
        print(line, file=sys.stderr)
    return report_main(args.run_dir)


def cmd_robustness(args: argparse.Namespace) -> int:
    from audit.robustness import robustness_main

    return robustness_main(args.table, out=args.out, baseline=args.baseline)


def cmd_compare(args: argparse.Namespace) -> int:
    from audit.compare.output import compare_main

    return compare_main(args.base_run, args.new_run, out=args.out, probe=args.probe, junit=args.junit,
                        base_model=args.base_model, new_model=args.new_model)


def cmd_history(args: argparse.Namespace) -> int:
    from audit.history import history_main

    return history_main(args.runs, out=args.out)


def cmd_export(args: argparse.Namespace) -> int:
    from audit.export import export

    text = export(args.run_dir, args.format, out=args.out, model=args.model)
    if args.out is None:
        print(text, end="")
    return 0


__all__ = ["cmd_compare", "cmd_history", "cmd_validate", "cmd_schema", "cmd_list", "cmd_run", "cmd_check",
           "cmd_report", "cmd_robustness", "cmd_export", "EXIT_USER"]
