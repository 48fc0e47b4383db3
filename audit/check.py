"""``audit check RUN_DIR [--probe PROBE] [--junit FILE]``: judge a saved run again, without recomputing.

The gates come from the run's own resolved probe (``manifest.json``, key ``probe.resolved``) or
from ``--probe``, e.g. a stricter release policy applied to last night's run. Prints one line per
gate x model x variant x group with the numbers that decided it; returns 0 or 1 (the caller maps a
:class:`audit.errors.AuditError` to 2 or 3).
"""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from audit.errors import UserError
from audit.gates import AuditRun, GateResult, GateVerdict, summarize, verdicts
from audit.results import atomic_write

TABLE_COLUMNS = ("gate", "model", "variant", "dataset", "group", "n", "value", "interval", "judged", "rule", "outcome")


def _num(v: float | None, spec: str = ".3f") -> str:
    return "" if v is None else format(v, spec)


def _row(r: GateResult) -> tuple[str, ...]:
    spec = "+.2f" if r.metric == "effective_robustness" else ".3f"
    has_interval = r.ci_low is not None or r.ci_high is not None
    interval = f"{_num(r.ci_low, spec)} .. {_num(r.ci_high, spec)}" if has_interval else ""
    judged = "" if r.judged is None else f"{r.judge} {_num(r.judged, '.2g' if r.judge == 'p_value' else spec)}"
    outcome = r.outcome.upper() + ("" if r.blocking or r.outcome == "pass" else " (allowed)")
    if r.blocking and r.severity == "warn":
        outcome += " (warn)"
    return (r.gate_id, r.model, r.variant, r.dataset, r.where, "" if r.n is None else str(r.n),
            _num(r.value, spec), interval, judged, f"{r.op} {r.threshold:g}", outcome)


def format_table(results: Sequence[GateResult]) -> str:
    """A plain, aligned text table: one line per result."""
    rows = [TABLE_COLUMNS, *(_row(r) for r in results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def format_summary(results: Sequence[GateResult]) -> str:
    s = summarize(results)["verdicts"]
    code = 1 if s["fail"] else 0
    return (f"{s['total']} gate check(s) (gate x model x variant): {s['pass']} passed, {s['fail']} failed, "
            f"{s['warn']} warned; {s['with_insufficient_data']} with insufficient data -> exit {code}")


def report(run: AuditRun, out: TextIO, quiet: bool = False) -> None:
    results = run.results
    if not run.probe.gates:
        print(f"{run.run_dir}: the probe declares no gates; nothing to check", file=out)
        return
    if not quiet:
        source = run.probe_path or f"{run.run_dir}/manifest.json (probe.resolved)"
        print(f"gates of {source} on {run.run_dir}\n", file=out)
        print(format_table(results), file=out)
        problems = [v for v in verdicts(results) if not (v.passed and v.outcome == "pass")]
        if problems:
            print("", file=out)
        for v in problems:
            print(f"{v.label} {v.gate_id} {v.model} {v.variant}: {v.message}", file=out)
        print("", file=out)
    print(format_summary(results), file=out)


def junit_xml(verdict_list: Sequence[GateVerdict], suite: str) -> ET.ElementTree:
    """One testcase per gate x model x variant: ``failure`` when it blocks, ``error`` when rows are missing.

    Warn-severity and insufficient-but-allowed checks pass and carry their messages in ``system-out``.
    """
    failing = [v for v in verdict_list if v.status == "fail"]
    errors = [v for v in failing if v.outcome == "error"]
    root = ET.Element("testsuites")
    ts = ET.SubElement(root, "testsuite", name=suite, tests=str(len(verdict_list)),
                       failures=str(len(failing) - len(errors)), errors=str(len(errors)), skipped="0", time="0")
    for v in verdict_list:
        case = ET.SubElement(ts, "testcase", classname=f"audit.{v.gate_id}", name=f"{v.model}::{v.variant}", time="0")
        props = ET.SubElement(case, "properties")
        for key, value in (("type", v.type), ("severity", v.severity), ("outcome", v.outcome), ("status", v.status)):
            ET.SubElement(props, "property", name=key, value=value)
        body = "\n".join(v.details()) or v.message
        if v.status == "fail":
            tag = "error" if v.outcome == "error" else "failure"
            ET.SubElement(case, tag, message=v.message, type=f"gate_{v.outcome}").text = body
        ET.SubElement(case, "system-out").text = f"{v.label}: {v.message}\n{body}"
    return ET.ElementTree(root)


def write_junit(path: str | Path, results: Sequence[GateResult], suite: str = "audit") -> Path:
    """Write JUnit XML for ``results`` atomically."""
    path = Path(path)
    tree = junit_xml(verdicts(results), suite)
    ET.indent(tree)
    atomic_write(path, lambda tmp: tree.write(tmp, encoding="utf-8", xml_declaration=True))
    return path


def rejudge_with_baseline(run_dir: str | Path, baseline: str | Path) -> list[GateResult]:
    """Judge a finished run's gates again with ``no_regression`` compared against ``baseline``;
    rewrite ``gates.json``, then the manifest (last, with the new checksums). Returns the results."""
    from audit.gates import write_gates_json
    from audit.results import GATES, read_run, write_manifest

    run = AuditRun.load(run_dir, baseline=baseline)
    results = run.results
    write_gates_json(run.run_dir / GATES, results)
    write_manifest(run.run_dir, read_run(run.run_dir).manifest)
    return results


def check_junit_target(junit: str | Path) -> Path:
    """``junit`` if it can name a file; UserError (exit 2) for a directory.

    Missing parent directories are created; an unwritable location is reported when writing
    (DataError, exit 3, naming the path).
    """
    path = Path(junit)
    if path.is_dir():
        raise UserError(f"--junit {path} is a directory", fix="pass a file path, e.g. --junit audit-junit.xml")
    return path


def check_main(run_dir: str | Path, probe_path: str | Path | None = None, junit: str | Path | None = None,
               quiet: bool = False, out: TextIO | None = None, strict: bool = False,
               baseline: str | Path | None = None) -> int:
    """Judge a saved run's gates again and report them.

    Args:
        run_dir: A directory written by ``audit run``.
        probe_path: Judge with this probe's gates and stats instead of the run's own.
        junit: Also write JUnit XML here.
        quiet: Print only the summary line.
        out: Where to print (default: stdout).
        strict: Refuse (exit 3) a run whose files no longer match the manifest's SHA-256s;
            without it, print one warning line per such file to stderr.
        baseline: A previous run directory that ``no_regression`` gates compare against.

    Returns:
        0 when every fail-severity gate passes, else 1.

    Raises:
        UserError: ``run_dir`` is not a run directory, the probe is invalid, or ``junit`` is a
            directory (exit 2).
        DataError: a results file cannot be read, or (``strict``) was edited (exit 3).
    """
    if junit is not None:
        check_junit_target(junit)
    run = AuditRun.load(run_dir, probe_path, baseline=baseline)
    for line in run.rundir.integrity(strict):
        print(line, file=sys.stderr)
    report(run, out or sys.stdout, quiet)
    if junit is not None:
        write_junit(junit, run.results, suite=f"audit.{run.probe.name}")
    return run.exit_code
