"""Random mutations of a run directory's files never end ``check`` or the report reader in a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from audit.cli import main
from audit.errors import AuditError
from audit.testing.gates import metric_row, probe_dict, write_run
from audit.reporting import load_run

GATE = [{"type": "max_rate", "category": "crime", "group_col": "race", "threshold": 0.5}]
ROWS = [metric_row(group_col="race", group=g, value=v) for g, v in (("Black", 0.1), ("White", 0.2))]
JUNK: list[Any] = [None, [], {}, "x", -1, 1e308, True, "\u0000", [1, 2], {"a": []}]


def _mutate_json(data: Any, rng: np.random.Generator) -> Any:
    if isinstance(data, dict) and data:
        key = list(data)[rng.integers(len(data))]
        if rng.random() < 0.5:
            data[key] = JUNK[rng.integers(len(JUNK))]
        else:
            data[key] = _mutate_json(data[key], rng)
    elif isinstance(data, list) and data:
        data[rng.integers(len(data))] = _mutate_json(data[rng.integers(len(data))], rng)
    else:
        return JUNK[rng.integers(len(JUNK))]
    return data


def _mutate_bytes(raw: bytes, rng: np.random.Generator) -> bytes:
    how = rng.integers(3)
    if how == 0:
        return raw[: rng.integers(len(raw) + 1)]
    data = bytearray(raw)
    for _ in range(rng.integers(1, 6)):
        data[rng.integers(len(data))] = int(rng.integers(256))
    return bytes(data) if how == 1 else bytes(data) + b"\n,,,\n"


def _mutate(run: Path, rng: np.random.Generator) -> None:
    target = run / ["manifest.json", "metrics.csv", "gates.json"][rng.integers(3)]
    if target.name == "gates.json" and not target.exists():
        target.write_text(json.dumps({"exit_code": 0, "passed": True, "results": [{"gate_id": "g"}]}))
    raw = target.read_bytes()
    if target.suffix == ".json" and rng.random() < 0.6:
        target.write_text(json.dumps(_mutate_json(json.loads(raw), rng)))
    else:
        target.write_bytes(_mutate_bytes(raw, rng))


def test_mutated_run_directories_never_crash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pristine = write_run(tmp_path / "pristine", probe_dict(GATE, variants={"default": {}}), ROWS)
    rng = np.random.default_rng(17)
    codes: set[int] = set()
    for i in range(150):
        run = tmp_path / f"m{i}"
        shutil.copytree(pristine, run)
        _mutate(run, rng)
        codes.add(main(["check", str(run)]))
        try:
            load_run(run)
        except AuditError:
            pass
        _, err = capsys.readouterr()
        assert "Traceback" not in err
        shutil.rmtree(run)
    assert codes <= {0, 1, 2, 3} and {2, 3} & codes
