"""Command line: parse arguments, call the API, map errors to exit codes. Nothing else.

Exit codes, the same for every command: 0 success; 1 a release gate failed; 2 the user's input is
wrong; 3 a runtime or data problem.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from audit.errors import EXIT_DATA, EXIT_OK, EXIT_USER, AuditError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse's own errors: exit 2, no traceback
        self.print_usage(sys.stderr)
        print(f"error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USER)


#: report.notebooks run code: a notebook outside the probe's directory needs this explicit flag.
NOTEBOOKS_HELP = ("allow report.notebooks outside the probe's directory (notebooks run code: "
                  "read them first)")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m audit", description="Audit CLIP-like zero-shot classifiers for fairness and robustness.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    v = sub.add_parser("validate", help="check probes, their label sets and names (no torch)")
    v.add_argument("probes", nargs="+", type=Path)
    v.add_argument("--allow-notebooks-outside", action="store_true", help=NOTEBOOKS_HELP)

    s = sub.add_parser("schema", help="print the JSON Schema of a probe, label set, manifest or gates file")
    s.add_argument("names", nargs="+", metavar="NAME", help="probe, label-set, manifest or gates")
    s.add_argument("--markdown", action="store_true",
                   help="print the reference page (docs/probe-reference.md) instead of JSON Schema")

    sub.add_parser("list", help="show registered datasets, models, metrics, gates and label sets")

    r = sub.add_parser("run", help="run a probe and write a results directory")
    r.add_argument("probe", type=Path)
    r.add_argument("--out", type=Path, help="output directory (default runs/<probe>/<timestamp>)")
    r.add_argument("--model", action="append", default=[], metavar="SPEC",
                   help="ARCH:PRETRAINED, ARCH:/path/ckpt.pt, hf-hub:org/name or local-dir:/path; "
                        "repeatable; replaces the probe's models")
    r.add_argument("--limit", type=_positive_int, help="use at most N images per dataset")
    r.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto")
    r.add_argument("--precision", choices=("auto", "fp32", "amp_bf16", "amp_fp16"), default="auto",
                   help="auto: bf16 (else fp16) autocast on CUDA, fp32 on CPU; fp32 gives the same "
                        "results as other fp32 tools (e.g. clip_benchmark --no_amp)")
    r.add_argument("--batch-size", type=_positive_int)
    r.add_argument("--num-workers", type=_nonneg_int, help="DataLoader workers (default: by machine)")
    r.add_argument("--shard-rows", type=_positive_int, default=1024,
                   help="images per cache shard: the unit of resume and of torchrun work (default 1024)")
    r.add_argument("--cache-dir", type=Path, help="embedding cache (default $AUDIT_CACHE_DIR or user cache)")
    r.add_argument("--no-report", action="store_true", help="skip the notebook report")
    r.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    r.add_argument("--allow-notebooks-outside", action="store_true", help=NOTEBOOKS_HELP)
    r.add_argument("--baseline", type=Path, metavar="RUN_DIR",
                   help="previous run that no_regression gates compare against")

    c = sub.add_parser("check", help="re-evaluate gates on a saved run")
    c.add_argument("run_dir", type=Path)
    c.add_argument("--probe", type=Path, help="judge with this probe's gates instead of the run's")
    c.add_argument("--junit", type=Path, help="write JUnit XML here")
    c.add_argument("--strict", action="store_true",
                   help="refuse (exit 3) a run whose files no longer match the manifest's SHA-256s")
    c.add_argument("--baseline", type=Path, metavar="RUN_DIR", help="previous run for no_regression gates")

    rep = sub.add_parser("report", help="re-render the report of a saved run")
    rep.add_argument("run_dir", type=Path)
    rep.add_argument("--strict", action="store_true",
                     help="refuse (exit 3) a run whose files no longer match the manifest's SHA-256s")

    rob = sub.add_parser("robustness", help="effective robustness from a table of accuracies")
    rob.add_argument("table", type=Path, help="CSV with columns model,dataset,top1 (top1 in [0,1])")
    rob.add_argument("--out", type=Path)
    rob.add_argument("--baseline", type=Path, help="baseline table (default: imagenet-testbed standard models)")
    _add_compare_parsers(sub)

    exp = sub.add_parser("export", help="a run's results in DataComp's or clip_benchmark's format")
    exp.add_argument("run_dir", type=Path)
    exp.add_argument("--format", required=True, choices=("datacomp", "clip_benchmark"),
                     help="datacomp: eval_results.jsonl lines; clip_benchmark: its result JSON")
    exp.add_argument("--out", type=Path, help="write here (default: standard output)")
    exp.add_argument("--model", help="the model to export when the run holds several")
    return p


def _add_compare_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    cmp = sub.add_parser("compare", help="compare two runs (or two models of one run) with paired tests")
    cmp.add_argument("base_run", type=Path, help="the baseline run directory")
    cmp.add_argument("new_run", type=Path, nargs="?", help="the new run directory (omit to compare two models of BASE_RUN)")
    cmp.add_argument("--out", type=Path, help="output folder (default: compare/ next to NEW_RUN)")
    cmp.add_argument("--probe", type=Path, help="judge this probe's no_regression gates (default: the new run's)")
    cmp.add_argument("--junit", type=Path, help="write JUnit XML of the no_regression gates here")
    cmp.add_argument("--base-model", metavar="NAME", help="model of BASE_RUN to compare")
    cmp.add_argument("--new-model", metavar="NAME", help="model of NEW_RUN (or BASE_RUN) to compare")

    hist = sub.add_parser("history", help="one table and trend plots over many run directories")
    hist.add_argument("runs", type=Path, nargs="+", metavar="RUN_DIR")
    hist.add_argument("--out", type=Path, help="output folder (default: history/ in the current directory)")


def _positive_int(text: str) -> int:
    value = _nonneg_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _nonneg_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except AuditError as exc:
        print(f"error: {exc.render()}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted: completed cache shards are kept; re-run to resume", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `python -m audit robustness t.csv | head`
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _dispatch(args: argparse.Namespace) -> int:
    from audit import commands

    handler = getattr(commands, f"cmd_{args.command}")
    return int(handler(args))


__all__ = ["main", "build_parser", "EXIT_OK", "EXIT_DATA"]
