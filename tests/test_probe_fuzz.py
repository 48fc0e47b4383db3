"""Random mutations of the shipped probes: the loader refuses or accepts each, never with a traceback."""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from audit.cli import main
from tests.conftest import REPO

#: Values a mutation puts in place of another: wrong types, hostile strings, unusable paths.
VALUES: list[Any] = [None, 0, -1, 1.5, "", "x", "../../x", "{x}", "/abs/path", "a\x00b", "a" * 300, [], {},
                     [1, "a"], {"a": 1}, True, "crime", "default", 10**12, "<script>alert(1)</script>"]


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        yield from _paths(value, (*prefix, key))


def _mutate(data: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    data = copy.deepcopy(data)
    for _ in range(rng.randint(1, 4)):
        path = rng.choice([p for p in _paths(data) if p])
        parent: Any = data
        for key in path[:-1]:
            parent = parent[key]
        roll = rng.random()
        if roll < 0.5:
            parent[path[-1]] = rng.choice(VALUES)
        elif roll < 0.7 and isinstance(parent, dict):
            del parent[path[-1]]
        elif roll < 0.85 and isinstance(parent, dict):
            parent[f"{path[-1]}x"] = parent.pop(path[-1])
        elif isinstance(parent, list):
            parent.append(copy.deepcopy(parent[path[-1]]))
    return data


def test_mutated_probes_never_end_in_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(0)
    shipped = sorted((REPO / "probes").glob("*.yaml"))
    (tmp_path / "probes").mkdir()
    (tmp_path / "label_sets").symlink_to(REPO / "label_sets")  # the probes' ../label_sets/ paths
    for i in range(50):
        source = rng.choice(shipped)
        path = tmp_path / "probes" / f"m{i}.yaml"
        path.write_text(yaml.safe_dump(_mutate(yaml.safe_load(source.read_text()), rng)))
        code = main(["validate", str(path)])  # an unexpected exception fails the test here
        err = capsys.readouterr().err
        assert code in (0, 2), err
        assert "Traceback" not in err
