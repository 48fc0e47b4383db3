"""Gate results, their roll-up into verdicts, the exit code and ``gates.json``.

A gate is judged once per group (:class:`GateResult`); the results of one gate for one model and
variant roll up into a :class:`GateVerdict`, the unit that ``audit check``, JUnit and the pytest
plugin report. Severity ``warn`` verdicts are reported everywhere but never change the exit code.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from audit.errors import EXIT_GATE_FAILED, EXIT_OK
from audit.results import FORMAT_VERSION, GATES, write_json

Outcome = Literal["pass", "fail", "insufficient", "error"]
#: An outcome as shown to people: ``warn`` for a failed row of a warn-severity gate.
Status = Literal["pass", "fail", "warn", "insufficient", "error"]
#: The comparison that fails, for each passing comparison.
FAILING_OP = {"<=": ">", ">=": "<"}
#: Worst first: the outcome a verdict shows is the worst of its groups'.
OUTCOME_ORDER: tuple[Outcome, ...] = ("fail", "error", "insufficient", "pass")


@dataclass(frozen=True)
class GateResult:
    """The decision of one gate for one group (dataset x model x variant x group).

    The gate passes for the group when ``judged <op> threshold`` holds. ``judged`` is the number
    the gate's ``judge`` selects: the point estimate (``value``), ``ci_low`` or ``ci_high``; for
    ``no_significant_difference`` it is always the Holm-adjusted p-value against ``stats.alpha``.
    """

    gate_id: str = field(metadata={"doc": "Gate label: the gate's id, or type[detail]."})
    gate_index: int = field(metadata={"doc": "Position of the gate in probe.gates."})
    type: str = field(metadata={"doc": "Gate type, e.g. max_rate."})
    severity: Literal["fail", "warn"] = field(metadata={"doc": "warn never changes the exit code."})
    model: str = field(metadata={"doc": "Model display name."})
    variant: str = field(metadata={"doc": "Label-set variant (the compared one for variant gates)."})
    dataset: str = field(metadata={"doc": "Dataset display name ('' when rows were missing)."})
    group_col: str = field(metadata={"doc": "'overall', a subgroup column or 'a x b'."})
    group: str = field(metadata={"doc": "'all', a group, or 'A / B' for a disparity."})
    outcome: Outcome = field(metadata={"doc": "pass, fail, insufficient (n < min_n) or error."})
    metric: str = field(metadata={"doc": "The metrics.csv metric (or robustness column) read."})
    category: str = field(metadata={"doc": "Category or union judged ('' for accuracy)."})
    judge: str = field(metadata={"doc": "point, lower or upper ('p_value' for significance gates)."})
    judged: float | None = field(metadata={"doc": "The number compared with the threshold."})
    op: Literal["<=", ">="] = field(metadata={"doc": "Passing condition: judged op threshold."})
    threshold: float = field(metadata={"doc": "The gate's threshold (margin, alpha)."})
    value: float | None = field(metadata={"doc": "Point estimate."})
    ci_low: float | None = field(metadata={"doc": "Lower interval bound, if any."})
    ci_high: float | None = field(metadata={"doc": "Upper interval bound, if any."})
    n: int | None = field(metadata={"doc": "Images behind the estimate (None: not recorded)."})
    p_value: float | None = field(metadata={"doc": "p-value of the row, if any."})
    min_n: int | None = field(metadata={"doc": "Smallest n judged (gate.min_n or stats.min_n)."})
    insufficient: Literal["fail", "pass"] = field(metadata={"doc": "Gate policy for small n."})
    message: str = field(metadata={"doc": "One line: what, value, interval, threshold, group."})
    statistic: str = field(default="", metadata={
        "doc": "What judged is, e.g. 'upper bound of rate of crime', 'Holm-adjusted p-value'."})
    compared_to: str = field(default="threshold", metadata={
        "doc": "What threshold is: 'threshold', 'alpha' (a p-value) or 'margin'."})
    alternative: str | None = field(default=None, metadata={
        "doc": "Direction of a test: greater, less or two-sided (None for non-test gates)."})
    test: str | None = field(default=None, metadata={
        "doc": "Which test produced p_value, e.g. \"Fisher's exact test\" or 'z-test'."})

    @property
    def blocking(self) -> bool:
        """Whether this result makes its gate fail (whatever the severity)."""
        if self.outcome == "insufficient":
            return self.insufficient == "fail"
        return self.outcome in ("fail", "error")

    @property
    def status(self) -> Status:
        """The outcome as shown: a failed row of a ``warn`` gate is ``warn``, not ``fail``."""
        return "warn" if self.outcome == "fail" and self.severity == "warn" else self.outcome

    @property
    def statistic_value(self) -> float | None:
        """The number compared with ``threshold`` (the same as ``judged``)."""
        return self.judged

    @property
    def fails_when(self) -> str:
        """Which direction fails: ``upper bound of rate of crime > 0.05``."""
        return f"{self.statistic or self.metric} {FAILING_OP[self.op]} {self.compared_to} {self.threshold:g}"

    @property
    def where(self) -> str:
        """``overall``, ``race=Black``, or ``race (no rows)`` for an error without a group."""
        if self.group_col == "overall" and self.group in ("all", ""):
            return "overall"
        return f"{self.group_col}={self.group}" if self.group else f"{self.group_col} (no rows)"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(blocking=self.blocking, status=self.status, statistic_value=self.statistic_value,
                 fails_when=self.fails_when)
        for key, v in d.items():
            if isinstance(v, float) and not math.isfinite(v):
                d[key] = None if math.isnan(v) else str(v)
        return d


def worst(outcomes: Iterable[Outcome]) -> Outcome:
    seen = set(outcomes)
    return next((o for o in OUTCOME_ORDER if o in seen), "pass")


@dataclass(frozen=True)
class GateVerdict:
    """All groups of one gate for one model and variant: one test case, one pytest item."""

    gate_id: str
    gate_index: int
    type: str
    severity: Literal["fail", "warn"]
    model: str
    variant: str
    results: tuple[GateResult, ...]

    @property
    def passed(self) -> bool:
        """No group fails, errs, or is insufficient under ``insufficient: fail``."""
        return not any(r.blocking for r in self.results)

    @property
    def outcome(self) -> Outcome:
        return worst(r.outcome for r in self.results)

    @property
    def status(self) -> Literal["pass", "fail", "warn"]:
        """``fail`` counts against the exit code; ``warn`` is a failed warn-severity gate."""
        if self.passed:
            return "pass"
        return "fail" if self.severity == "fail" else "warn"

    @property
    def label(self) -> str:
        """``PASS``, ``FAIL``, ``WARN``, qualified when the worst outcome is not plain."""
        qualifier = {"insufficient": " (insufficient data)", "error": " (error)"}.get(self.outcome, "")
        return self.status.upper() + qualifier

    @property
    def message(self) -> str:
        """One line: the counts, then the deciding result: the worst failure, else the first
        blocking result, else (all pass) the one closest to the threshold."""
        n = len(self.results)
        bad = [r for r in self.results if r.outcome != "pass"]
        if not bad:
            return f"all {n} group(s) pass; closest: {closest(self.results).message}"
        if n == 1:
            return bad[0].message
        counts = ", ".join(
            f"{sum(r.outcome == o for r in bad)} {o}" for o in OUTCOME_ORDER[:3] if any(r.outcome == o for r in bad)
        )
        fails = [r for r in bad if r.outcome == "fail"]
        deciding = closest(fails) if fails else next((r for r in bad if r.blocking), bad[0])
        allowed = " (allowed by insufficient: pass)" if self.passed else ""
        return f"{counts} of {n} group(s){allowed}; {deciding.message}"

    def details(self) -> list[str]:
        """One line per group that did not pass, worst first."""
        bad = [r for r in self.results if r.outcome != "pass"]
        bad.sort(key=lambda r: OUTCOME_ORDER.index(r.outcome))
        return [f"{r.status.upper()} {r.message}" for r in bad]

    def to_dict(self) -> dict[str, Any]:
        return {
            "gate_id": self.gate_id, "gate_index": self.gate_index, "type": self.type,
            "severity": self.severity, "model": self.model, "variant": self.variant,
            "status": self.status, "passed": self.passed, "outcome": self.outcome,
            "groups": len(self.results), "message": self.message,
        }


def closest(results: Sequence[GateResult]) -> GateResult:
    """The result with the least slack to the threshold: the closest pass, or the worst failure."""
    def slack(r: GateResult) -> float:
        if r.judged is None:
            return -math.inf
        return r.threshold - r.judged if r.op == "<=" else r.judged - r.threshold
    return min(results, key=slack)


def verdicts(results: Iterable[GateResult]) -> list[GateVerdict]:
    """Group results by gate x model x variant, in first-seen order."""
    groups: dict[tuple[int, str, str], list[GateResult]] = {}
    for r in results:
        groups.setdefault((r.gate_index, r.model, r.variant), []).append(r)
    out = []
    for (index, model, variant), rs in groups.items():
        first = rs[0]
        out.append(GateVerdict(first.gate_id, index, first.type, first.severity, model, variant, tuple(rs)))
    return out


def exit_code(results: Iterable[GateResult]) -> int:
    """1 when any fail-severity gate is blocked (fail, error, or insufficient with the fail policy)."""
    blocked = any(r.blocking and r.severity == "fail" for r in results)
    return EXIT_GATE_FAILED if blocked else EXIT_OK


def summarize(results: Sequence[GateResult]) -> dict[str, Any]:
    """Counts per verdict status and per group outcome."""
    vs = verdicts(results)
    return {
        "verdicts": {
            "total": len(vs),
            **{s: sum(v.status == s for v in vs) for s in ("pass", "fail", "warn")},
            "with_insufficient_data": sum(any(r.outcome == "insufficient" for r in v.results) for v in vs),
        },
        "results": {o: sum(r.outcome == o for r in results) for o in ("pass", "fail", "insufficient", "error")},
    }


def gates_document(results: Sequence[GateResult]) -> dict[str, Any]:
    """The content of ``gates.json``."""
    code = exit_code(results)
    return {
        "format_version": FORMAT_VERSION,
        "exit_code": code,
        "passed": code == EXIT_OK,
        "summary": summarize(results),
        "verdicts": [v.to_dict() for v in verdicts(results)],
        "results": [r.to_dict() for r in results],
    }


def write_gates_json(run_dir: str | Path, results: Sequence[GateResult]) -> Path:
    """Write ``gates.json`` atomically and return its path.

    ``run_dir`` is the run directory, or the file itself (a path ending in ``.json``).
    """
    path = Path(run_dir)
    if path.is_dir() or path.suffix != ".json":
        path = path / GATES
    write_json(path, gates_document(results))
    return path


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def verdict(results: Sequence[GateResult]) -> str:
    """THE overall verdict line for report, model card and console.

    ``passed``, ``passed with N warnings``, or ``failed: N gates`` (plus ``, N warnings``);
    a gate counts once however many models and variants it judged. ``no gates`` when nothing
    was judged. Consistent with :func:`exit_code`: ``failed`` exactly when it is non-zero.
    """
    if not results:
        return "no gates"
    vs = verdicts(results)
    failed = {v.gate_index for v in vs if v.status == "fail"}
    warned = {v.gate_index for v in vs if v.status == "warn"} - failed
    warnings = f"{_plural(len(warned), 'warning')}" if warned else ""
    if failed:
        return f"failed: {_plural(len(failed), 'gate')}" + (f", {warnings}" if warnings else "")
    return f"passed with {warnings}" if warnings else "passed"
