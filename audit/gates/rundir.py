"""A saved run directory, judged again without recomputing: the face ``audit check`` and pytest use."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from pydantic import TypeAdapter, ValidationError

from audit.errors import UserError
from audit.gates.evaluators import evaluate, gate_label
from audit.gates.judge import GateContext
from audit.gates.result import GateResult, GateVerdict, exit_code, verdicts
from audit.results import MANIFEST, METRICS, Manifest, RunDir, read_run
from audit.spec.models import GateBase, GateSpec, Judge, ProbeSpec

_GATE_ADAPTER: TypeAdapter[Any] = TypeAdapter(GateSpec)


def run_probe_spec(run_dir: Path, manifest: Manifest | Mapping[str, Any]) -> ProbeSpec:
    """The probe a run was made with, from ``manifest.probe.resolved``."""
    from audit.spec.load import parse

    if isinstance(manifest, Manifest):
        resolved = manifest.probe.resolved
    else:
        probe = manifest.get("probe")
        resolved = probe.get("resolved") if isinstance(probe, Mapping) else None
    if not isinstance(resolved, dict):
        raise UserError(
            f"{run_dir / MANIFEST} has no resolved probe (manifest key probe.resolved)",
            fix="pass the policy explicitly with --probe PROBE.yaml, or re-run with this version of audit",
        )
    return parse(ProbeSpec, resolved, run_dir / MANIFEST, "resolved probe (probe.resolved)")


class AuditRun:
    """A run directory plus the policy that judges it.

    Attributes:
        run_dir: The directory a run wrote (``runs/<probe>/<timestamp>``).
        rundir: The run as read by :func:`audit.results.read_run` (typed manifest, lazy tables).
        manifest: ``manifest.json`` as JSON data.
        run_spec: The probe the run was made with.
        probe: The policy: the run's own probe, or the one given with ``--probe``.
        metrics: ``metrics.csv``.
        robustness: ``robustness.csv``, or None when the run has none.
    """

    def __init__(self, rundir: RunDir, run_spec: ProbeSpec, probe: ProbeSpec, probe_path: Path | None = None,
                 baseline: RunDir | None = None) -> None:
        self.rundir = rundir
        self.run_dir = rundir.path
        self.manifest = rundir.manifest_dict
        self.run_spec = run_spec
        self.probe = probe
        self.probe_path = probe_path
        self.metrics = rundir.metrics
        self.robustness = rundir.robustness
        self.baseline = baseline

    @classmethod
    def load(cls, run_dir: str | Path, probe_path: str | Path | None = None, *,
             baseline: str | Path | None = None) -> AuditRun:
        """Read a run directory; raise :class:`UserError` when it is not one.

        Args:
            run_dir: The run directory.
            probe_path: A probe whose gates and stats replace the run's own (a stricter policy).
            baseline: A previous run directory, for ``no_regression`` gates.
        """
        rundir = read_run(run_dir, METRICS)
        run_spec = run_probe_spec(rundir.path, rundir.manifest)
        probe = run_spec
        if probe_path is not None:
            from audit.spec.load import load_probe

            # Names were checked when the run was made; here only the gates matter, and checking
            # adapters would import them.
            probe = load_probe(probe_path, check_names=False).spec
        base = read_run(baseline, METRICS) if baseline is not None else None
        return cls(rundir, run_spec, probe, Path(probe_path) if probe_path is not None else None, base)

    @property
    def predictions(self) -> pd.DataFrame:
        """``predictions.parquet`` (read on first use)."""
        return self.rundir.predictions

    @cached_property
    def context(self) -> GateContext:
        return GateContext.from_probe(self.probe, self.metrics, self.robustness, run_spec=self.run_spec)

    @cached_property
    def comparison(self) -> pd.DataFrame | None:
        """The comparison of this run with ``baseline`` (comparison.csv rows), or None without one."""
        if self.baseline is None:
            return None
        from audit.compare import compare_runs

        return compare_runs(self.baseline, self.rundir, stats=self.probe.stats)

    def _evaluate(self, gates: list[GateBase]) -> list[GateResult]:
        if self.baseline is None:
            return evaluate(gates, self.context)
        from audit.gates.regression import baseline_comparison

        with baseline_comparison(lambda: self.comparison):  # type: ignore[arg-type,return-value]
            return evaluate(gates, self.context)

    @cached_property
    def results(self) -> list[GateResult]:
        """The policy's gates judged on this run, one result per gate x model x variant x group."""
        return self._evaluate(list(self.probe.gates))

    @property
    def verdicts(self) -> list[GateVerdict]:
        return verdicts(self.results)

    @property
    def exit_code(self) -> int:
        return exit_code(self.results)

    # ----------------------------------------------------------------- assertions for tests

    def evaluate_gate(self, gate: GateBase | Mapping[str, Any]) -> list[GateResult]:
        """Judge one gate, given as a spec model or as the dict a probe would hold."""
        return self._evaluate([_as_gate(gate)])

    def assert_gate(self, gate: GateBase | Mapping[str, Any]) -> list[GateResult]:
        """Raise AssertionError listing every group that blocks ``gate``; return all results.

        Severity is ignored here: an assertion either holds or not.
        """
        __tracebackhide__ = True  # pytest shows the caller's line, not this helper
        gate = _as_gate(gate)
        results = self._evaluate([gate])
        blocking = [r for r in results if r.blocking]
        if blocking:
            head = f"{gate_label(gate)}: {len(blocking)} of {len(results)} group result(s) do not pass"
            lines = [f"  {r.model} / {r.variant}{f' / {r.dataset}' if r.dataset else ''}: "
                     f"{r.outcome.upper()} {r.message}" for r in blocking]
            raise AssertionError("\n".join([head, *lines]))
        return results

    def assert_rate_below(self, category: str, threshold: float, *, group_col: str = "overall",
                          judge: Judge = "upper", **options: Any) -> list[GateResult]:
        """Every group's rate of ``category`` <= ``threshold`` (default: the interval's upper bound).

        ``options``: min_n, insufficient ('fail'/'pass'), models, variants.
        """
        __tracebackhide__ = True  # pytest shows the caller's line, not this helper
        return self.assert_gate({"type": "max_rate", "category": category, "threshold": threshold,
                                 "group_col": group_col, "judge": judge, **options})

    def assert_accuracy_above(self, threshold: float, *, metric: str = "accuracy", group_col: str = "overall",
                              judge: Judge = "lower", **options: Any) -> list[GateResult]:
        """Every group's ``metric`` >= ``threshold`` (default: the interval's lower bound).

        ``options``: datasets, min_n, insufficient, models, variants.
        """
        __tracebackhide__ = True  # pytest shows the caller's line, not this helper
        return self.assert_gate({"type": "min_accuracy", "metric": metric, "threshold": threshold,
                                 "group_col": group_col, "judge": judge, **options})

    def assert_disparity_below(self, category: str, group_col: str, threshold: float, *,
                               measure: Literal["difference", "ratio"] = "difference", judge: Judge = "upper",
                               **options: Any) -> list[GateResult]:
        """The gap (or ratio) between the extreme groups of ``group_col`` <= ``threshold``."""
        __tracebackhide__ = True  # pytest shows the caller's line, not this helper
        return self.assert_gate({"type": "max_disparity", "category": category, "group_col": group_col,
                                 "threshold": threshold, "measure": measure, "judge": judge, **options})

    def assert_no_significant_difference(self, category: str, group_col: str, **options: Any) -> list[GateResult]:
        """No group's rate differs from the rest with Holm-adjusted p < stats.alpha."""
        __tracebackhide__ = True  # pytest shows the caller's line, not this helper
        return self.assert_gate({"type": "no_significant_difference", "category": category,
                                 "group_col": group_col, **options})


def _as_gate(gate: GateBase | Mapping[str, Any]) -> GateBase:
    if isinstance(gate, GateBase):
        return gate
    try:
        return _GATE_ADAPTER.validate_python(dict(gate))  # type: ignore[no-any-return]
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'][1:])) or '(gate)'}: {e['msg']}" for e in err.errors())
        raise ValueError(f"not a valid gate {dict(gate)!r}: {problems}") from None


def load_run(run_dir: str | Path, probe_path: str | Path | None = None) -> AuditRun:
    """Shorthand for :meth:`AuditRun.load`."""
    return AuditRun.load(run_dir, probe_path)

