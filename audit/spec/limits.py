"""Size limits on probe and label-set files, checked before and right after YAML parsing.

A probe is a few kilobytes; these caps stop a hostile or mistaken file (a 20 MB probe, a template
list of a million entries, a YAML alias bomb) before it costs time or memory. Each limit has a
default and an environment variable that raises it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from audit.errors import Problem


@dataclass(frozen=True)
class Limit:
    """A cap with its default and the environment variable that overrides it."""

    env: str
    default: int
    what: str

    @property
    def value(self) -> int:
        """The cap in force: the environment variable if it holds a positive integer, else the default."""
        raw = os.environ.get(self.env, "")
        return int(raw) if raw.strip().isdigit() and int(raw) > 0 else self.default

    def exceeded(self, actual: int) -> str:
        """A message saying ``actual`` is over this cap, naming the cap and how to raise it."""
        return (f"{self.what} is {actual:,}, over the limit of {self.value:,} "
                f"(raise it with the environment variable {self.env}=N)")


#: Probe files are read only up to this size.
PROBE_BYTES = Limit("AUDIT_MAX_PROBE_BYTES", 1_000_000, "the probe file's size in bytes")
#: Label-set files (ImageNet's 1000 classes take about 60 kB).
LABEL_SET_BYTES = Limit("AUDIT_MAX_LABEL_SET_BYTES", 10_000_000, "the label-set file's size in bytes")
#: Any one list or mapping in a probe (templates, models, datasets, gates, variants, ...).
PROBE_ITEMS = Limit("AUDIT_MAX_PROBE_ITEMS", 10_000, "the number of items in one list or mapping of a probe")
#: Any one list in a label set (its labels).
LABEL_SET_ITEMS = Limit("AUDIT_MAX_LABEL_SET_ITEMS", 100_000, "the number of items in one list of a label set")
#: Total nodes of a parsed YAML document, counted through aliases (stops alias bombs).
YAML_NODES = Limit("AUDIT_MAX_YAML_NODES", 2_000_000, "the number of YAML values (aliases expanded)")


def shape_problems(data: Any, items: Limit) -> list[Problem]:
    """Lists or mappings longer than ``items``, and documents with more values than
    :data:`YAML_NODES` once aliases are expanded; each problem is located by its field path."""
    problems: list[Problem] = []
    max_items, budget = items.value, YAML_NODES.value
    stack: list[tuple[str, Any]] = [("", data)]
    seen = 0
    while stack:
        path, node = stack.pop()
        seen += 1
        if seen > budget:
            return [Problem("(top level)", YAML_NODES.exceeded(seen) + "; the file is far too large "
                            "or uses YAML aliases to multiply its content")]
        if isinstance(node, dict):
            if len(node) > max_items:
                problems.append(Problem(path or "(top level)", items.exceeded(len(node))))
                continue
            stack += [(f"{path}.{k}" if path else str(k), v) for k, v in node.items()]
        elif isinstance(node, list):
            if len(node) > max_items:
                problems.append(Problem(path or "(top level)", items.exceeded(len(node))))
                continue
            stack += [(f"{path}[{i}]", v) for i, v in enumerate(node)]
    return problems
