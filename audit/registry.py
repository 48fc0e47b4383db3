"""Name -> component registries with lazy ``"module:attr"`` targets and did-you-mean."""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


#: Above this many choices a message points to ``python -m audit list`` instead of listing them.
MAX_LISTED = 12


def did_you_mean(name: str, choices: list[str] | tuple[str, ...] | Iterator[str]) -> str:
    """Return ``" -- did you mean 'x'?"`` for the closest choice, else the valid names (or, when
    there are many, where to see them): messages stay short."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    if close:
        return f" -- did you mean '{close[0]}'?"
    if len(choices) > MAX_LISTED:
        return f" ({len(choices)} known; see `python -m audit list`)"
    return f" (known: {', '.join(choices)})" if choices else ""


class Registry(Generic[T]):
    """A declared table of named components, resolved on first use.

    Targets are ``"package.module:attribute"`` strings so that listing or validating names never
    imports heavy modules (torch, open_clip).
    """

    def __init__(self, kind: str, targets: Mapping[str, str]) -> None:
        self.kind = kind
        self._targets = dict(targets)
        self._loaded: dict[str, T] = {}

    def names(self) -> list[str]:
        return sorted(self._targets)

    def __contains__(self, name: object) -> bool:
        return name in self._targets

    def unknown_message(self, name: str) -> str:
        return f"unknown {self.kind} '{name}'{did_you_mean(name, self.names())}"

    def register(self, name: str, target: str) -> None:
        if name in self._targets and self._targets[name] != target:
            raise ValueError(f"{self.kind} '{name}' is already registered as {self._targets[name]}")
        self._targets[name] = target

    def get(self, name: str) -> T:
        if name not in self._targets:
            raise KeyError(self.unknown_message(name))
        if name not in self._loaded:
            module_name, _, attr = self._targets[name].partition(":")
            module = importlib.import_module(module_name)
            self._loaded[name] = getattr(module, attr)
        return self._loaded[name]
