"""`python -m audit schema`: JSON Schemas from the pydantic models, and the probe reference page
that must match them."""

from __future__ import annotations

import json
import typing

import pytest
from pydantic import BaseModel

from audit import registries
from audit.cli import main
from audit.spec.models import LabelSet, ProbeSpec
from audit.spec.schema import REFERENCE, REGENERATE, markdown
from tests.conftest import REPO


def test_probe_schema_is_pydantics(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "probe"]) == 0
    assert json.loads(capsys.readouterr().out) == ProbeSpec.model_json_schema()
    assert main(["schema", "label-set"]) == 0
    assert json.loads(capsys.readouterr().out) == LabelSet.model_json_schema()


def test_unknown_schema_is_a_user_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", "probes"]) == 2
    assert "did you mean 'probe'?" in capsys.readouterr().err


def test_run_directory_schemas_exit_0_or_3(capsys: pytest.CaptureFixture[str]) -> None:
    """manifest and gates come from audit.results; where that model is absent: exit 3, said plainly."""
    for name in ("manifest", "gates"):
        code = main(["schema", name])
        captured = capsys.readouterr()
        if code == 0:
            assert "properties" in json.loads(captured.out)
        else:
            assert code == 3 and "not available in this installation" in captured.err
            assert "Traceback" not in captured.err


def test_reference_doc_matches_the_models() -> None:
    committed = (REPO / "docs" / "probe-reference.md").read_text(encoding="utf-8")
    assert committed == markdown(REFERENCE), f"docs/probe-reference.md is stale; regenerate: {REGENERATE}"


def _models(root: type[BaseModel]) -> set[type[BaseModel]]:
    seen: set[type[BaseModel]] = set()
    stack = [root]
    while stack:
        model = stack.pop()
        if model in seen:
            continue
        seen.add(model)
        for f in model.model_fields.values():
            todo = [f.annotation]
            while todo:
                t = todo.pop()
                if isinstance(t, type) and issubclass(t, BaseModel):
                    stack.append(t)
                todo += list(typing.get_args(t))
    return seen


def test_every_spec_field_has_a_description_in_the_doc() -> None:
    doc = markdown(REFERENCE)
    for model in _models(ProbeSpec) | _models(LabelSet):
        assert model.__doc__, model
        assert f"### {model.__name__}" in doc
        for key, f in model.model_fields.items():
            assert f.description, f"{model.__name__}.{key} has no description"
            assert f"| `{key}` |" in doc


def test_declared_metric_needs_match_the_metrics() -> None:
    """registries.CATEGORY_METRICS / TARGET_METRICS let validate skip importing the metric code."""
    defs = {name: registries.METRICS.get(name) for name in registries.METRICS.names()}
    assert registries.CATEGORY_METRICS == {n for n, d in defs.items() if d.needs_categories}
    assert registries.TARGET_METRICS == {n for n, d in defs.items() if d.needs_target}


def test_every_adapter_option_is_documented() -> None:
    doc = markdown(REFERENCE)
    for name in registries.DATASETS.names():
        for key in registries.DATASETS.get(name).options:
            assert f"| `{name}` | `{key}` |" in doc
