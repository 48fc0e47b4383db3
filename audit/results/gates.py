"""``gates.json``: the typed form of a run's gate decisions, as read back.

The writer is :func:`audit.gates.result.gates_document` (one dict per :class:`GateResult`); this
model types the fields every reader relies on and lets any other field through unchanged
(``extra="allow"``), so a field added to ``GateResult`` (e.g. ``alternative``) reaches readers
without a change here.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from audit.results.schema import FORMAT_VERSION

_ALLOW = ConfigDict(extra="allow")
#: A number as gates.json writes it: NaN becomes null, +-inf the strings "inf"/"-inf".
Number = float | str | None


class GateResultRecord(BaseModel):
    """One gate judged for one group (see :class:`audit.gates.result.GateResult`)."""

    model_config = _ALLOW
    gate_id: str = Field(description="Gate label: the gate's id, or type[detail].")
    type: str = Field(description="Gate type, e.g. max_rate.")
    model: str = Field(description="Model display name.")
    variant: str = Field(description="Label-set variant.")
    outcome: str = Field(description="pass, fail, insufficient or error.")
    message: str = Field("", description="One line: what, value, interval, threshold, group.")
    gate_index: int | None = Field(None, description="Position of the gate in probe.gates.")
    severity: str = Field("fail", description="fail or warn (warn never changes the exit code).")
    dataset: str = Field("", description="Dataset display name.")
    group_col: str = Field("overall", description="'overall', a subgroup column or 'a x b'.")
    group: str = Field("all", description="'all', a group, or 'A / B' for a disparity.")
    metric: str | None = Field(None, description="The metric read.")
    category: str | None = Field(None, description="Category judged.")
    judge: str | None = Field(None, description="point, lower, upper or p_value.")
    judged: Number = Field(None, description="The number compared with the threshold.")
    op: str | None = Field(None, description="Passing condition: judged op threshold.")
    threshold: Number = Field(None, description="The gate's threshold.")
    value: Number = Field(None, description="Point estimate.")
    ci_low: Number = Field(None, description="Lower interval bound.")
    ci_high: Number = Field(None, description="Upper interval bound.")
    n: int | None = Field(None, description="Images behind the estimate.")
    p_value: Number = Field(None, description="p-value, if any.")
    blocking: bool | None = Field(None, description="Whether this result makes its gate fail.")


class GateVerdictRecord(BaseModel):
    """All groups of one gate for one model and variant."""

    model_config = _ALLOW
    gate_id: str = Field(description="Gate label.")
    type: str = Field("", description="Gate type.")
    model: str = Field(description="Model display name.")
    variant: str = Field(description="Label-set variant.")
    status: str = Field(description="pass, fail or warn.")
    outcome: str = Field(description="The worst outcome of its groups.")
    message: str = Field("", description="The deciding result, in one line.")
    severity: str = Field("fail", description="fail or warn.")


class GatesFile(BaseModel):
    """``gates.json``: exit code, summary, verdicts and per-group results of a run's gates."""

    model_config = _ALLOW
    format_version: str = Field(FORMAT_VERSION, description="Run-directory format version.")
    exit_code: int = Field(description="0 all fail-severity gates pass, 1 otherwise.")
    passed: bool | None = Field(None, description="exit_code == 0.")
    verdict: str | None = Field(None, description="The overall verdict line shown in the console, report and "
                                "model card: 'passed', 'passed with N warnings' or 'failed: N gates' "
                                "(audit.gates.verdict); absent in files written before it existed.")
    summary: dict[str, Any] = Field(default_factory=dict, description="Counts per status and outcome.")
    verdicts: list[GateVerdictRecord] = Field(default_factory=list, description="One per gate x model x variant.")
    results: list[GateResultRecord] = Field(default_factory=list, description="One per gate x model x variant x group.")


__all__ = ["GateResultRecord", "GateVerdictRecord", "GatesFile"]
