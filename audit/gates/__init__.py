"""Release gates: metrics --> pass, fail or insufficient data, each with the numbers that decided it.

The evaluation functions named in :data:`audit.registries.GATES` live here as
``audit.gates:eval_<type>``; :func:`evaluate_gates` runs a probe's gates on a run's tables,
:func:`write_gates_json` and :func:`exit_code` turn the results into the run's verdict, and
:class:`AuditRun` judges a saved run directory again (``audit check``, the pytest plugin).
"""

from audit.gates.association import eval_max_association, eval_max_recall_disparity
from audit.gates.disparity import eval_max_disparity
from audit.gates.evaluators import (
    eval_max_rate,
    eval_min_accuracy,
    eval_variant_no_increase,
    evaluate,
    evaluate_gates,
    gate_label,
    gate_labels,
)
from audit.gates.judge import GateContext, format_interval
from audit.gates.significance import eval_no_significant_difference
from audit.gates.retrieval import eval_max_retrieval_skew
from audit.gates.robustness import eval_min_effective_robustness
from audit.gates.result import (
    GateResult,
    GateVerdict,
    Outcome,
    Status,
    exit_code,
    gates_document,
    summarize,
    verdict,
    verdicts,
    write_gates_json,
)
from audit.gates.rundir import AuditRun, load_run, run_probe_spec
from audit.gates.regression import eval_no_regression

__all__ = [
    "AuditRun",
    "GateContext",
    "GateResult",
    "GateVerdict",
    "Outcome",
    "eval_max_association",
    "Status",
    "eval_max_disparity",
    "eval_max_recall_disparity",
    "eval_max_rate",
    "eval_max_retrieval_skew",
    "eval_min_accuracy",
    "eval_min_effective_robustness",
    "eval_no_significant_difference",
    "eval_variant_no_increase",
    "evaluate",
    "evaluate_gates",
    "exit_code",
    "format_interval",
    "gate_label",
    "gate_labels",
    "gates_document",
    "load_run",
    "run_probe_spec",
    "summarize",
    "verdict",
    "verdicts",
    "write_gates_json",
    "eval_no_regression",
]
