"""pytest plugin: gate a release on an audit run (``pytest --audit-run RUN_DIR [--audit-probe PROBE]
[--audit-baseline RUN_DIR]``; the baseline is what ``no_regression`` gates compare against).

Loaded in every pytest session through the ``pytest11`` entry point, so it imports only pytest at
module level and adds nothing but its options, the ``audit`` marker and the ``audit_run`` fixture
(which skips) unless ``--audit-run`` is given. With it, each gate of the run becomes one test item
per gate x model x variant, e.g. ``audit::ViT-B-32:openai::default::max_rate[crime|non_human by race]``,
all marked ``audit`` (``-m audit`` runs only them), so ``--junitxml`` and ``-k`` work unchanged.
Severity ``warn`` gates, and groups allowed by ``insufficient: pass``, pass with a warning that
carries the message.

``pytest --audit-run RUN`` with no test paths (e.g. from a project root in CI) collects the gate
items only, not the project's own tests; name test files too (``pytest tests/test_release.py
--audit-run RUN``) to run tests that use the ``audit_run`` fixture alongside the gates.

With ``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` set, enable it with ``-p audit`` (the entry point's name;
``-p audit.pytest_plugin`` would register the module a second time when autoload is on).
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from audit.gates import AuditRun, GateVerdict

RUN_KEY = pytest.StashKey["AuditRun"]()


class AuditGateWarning(UserWarning):
    """A warn-severity gate failed, or a group was allowed through with insufficient data."""


class GateFailed(Exception):
    """Raised by a gate item whose fail-severity gate is blocked."""

    def __init__(self, verdict: GateVerdict) -> None:
        self.verdict = verdict
        super().__init__(verdict.message)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("audit", "release gates on an audit run")
    group.addoption("--audit-run", metavar="RUN_DIR", default=None,
                    help="collect the gates of this audit run directory as test items")
    group.addoption("--audit-probe", metavar="PROBE", default=None,
                    help="judge the run with this probe's gates and stats instead of its own")
    group.addoption("--audit-baseline", metavar="RUN_DIR", default=None,
                    help="a previous run that no_regression gates compare against")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "audit: a release gate collected from an audit run (--audit-run)")
    run_dir = config.getoption("audit_run", None)
    if not run_dir:
        for option in ("probe", "baseline"):
            if config.getoption(f"audit_{option}", None):
                raise pytest.UsageError(f"--audit-{option} needs --audit-run RUN_DIR")
        return
    from audit.errors import AuditError
    from audit.gates import AuditRun

    try:
        config.stash[RUN_KEY] = AuditRun.load(run_dir, config.getoption("audit_probe"),
                                              baseline=config.getoption("audit_baseline", None))
    except AuditError as err:
        raise pytest.UsageError(f"audit plugin: {err.render()}") from None


def _gates_only(config: pytest.Config) -> bool:
    """``--audit-run`` without test paths on the command line: collect the gate items only."""
    return RUN_KEY in config.stash and config.args_source != pytest.Config.ArgsSource.ARGS


def pytest_ignore_collect(collection_path: Any, config: pytest.Config) -> bool | None:
    """With ``--audit-run`` and no test paths, skip the project's own tests (and their imports)."""
    return True if _gates_only(config) else None


@pytest.hookimpl(tryfirst=True)  # before -k/-m deselection, so those select gate items too
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    run = config.stash.get(RUN_KEY, None)
    if run is None:
        return
    collector = AuditCollector.from_parent(session, name="audit", nodeid="audit", path=run.run_dir)
    items.extend(session.genitems(collector))


@pytest.fixture(scope="session")
def audit_run(request: pytest.FixtureRequest) -> AuditRun:
    """The run given with ``--audit-run``: metrics, predictions, manifest, gates, ``assert_*`` helpers.

    Skips the test when pytest runs without ``--audit-run``.
    """
    run = request.config.stash.get(RUN_KEY, None)
    if run is None:
        pytest.skip("needs an audit run: pass --audit-run RUN_DIR")
    return run


class AuditCollector(pytest.Collector):
    """The gates of one run: ``audit::MODEL::VARIANT::GATE_ID``, one item per gate x model x variant.

    Models and variants are collectors, so the gate id (with its ``[label]``) ends the node id, as
    pytest expects of parameters: ``--junitxml`` gives classname ``audit.MODEL.VARIANT`` and name
    ``GATE_ID`` under every pytest version.
    """

    def collect(self) -> list[_Group]:
        verdicts = self.config.stash[RUN_KEY].verdicts
        return [_Group.from_parent(self, name=m, verdicts=[v for v in verdicts if v.model == m])
                for m in dict.fromkeys(v.model for v in verdicts)]


class _Group(pytest.Collector):
    """One model's verdicts (grouped by variant), or one model and variant's (one item per gate)."""

    def __init__(self, *, verdicts: list[GateVerdict], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.verdicts = verdicts

    def collect(self) -> list[pytest.Item | pytest.Collector]:
        if isinstance(self.parent, AuditCollector):
            return [_Group.from_parent(self, name=x, verdicts=[v for v in self.verdicts if v.variant == x])
                    for x in dict.fromkeys(v.variant for v in self.verdicts)]
        return [GateItem.from_parent(self, name=v.gate_id, verdict=v) for v in self.verdicts]


class GateItem(pytest.Item):
    """One gate for one model and variant; passes, fails, or passes with an AuditGateWarning."""

    def __init__(self, *, verdict: GateVerdict, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.verdict = verdict
        self.add_marker("audit")
        self.user_properties += [("gate_type", verdict.type), ("severity", verdict.severity),
                                 ("outcome", verdict.outcome), ("status", verdict.status)]

    def runtest(self) -> None:
        v = self.verdict
        for r in v.results:
            if r.outcome == "insufficient" and not r.blocking:
                warnings.warn(AuditGateWarning(f"{v.gate_id} {v.model} {v.variant}: {r.message}"), stacklevel=1)
        if v.status == "warn":
            warnings.warn(AuditGateWarning(f"warn-severity gate {v.gate_id} failed for {v.model} "
                                           f"{v.variant}: {v.message}"), stacklevel=1)
        elif v.status == "fail":
            raise GateFailed(v)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, GateFailed):
            v = excinfo.value.verdict
            head = f"{v.label}: gate {v.gate_id} for model {v.model}, variant {v.variant}: {v.message}"
            details = v.details()
            details = details if len(details) > 1 else []  # a single one is already in the head
            return "\n".join([head, *(f"  {line}" for line in details)])
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, f"audit gate {self.name}"
