"""Errors the CLI maps to exit codes.

Every user-facing error names where the problem is (file, field), what is wrong and how to fix
it. ``UserError`` (exit 2) is the user's input; ``DataError`` (exit 3) is the world: data or
weights that are not available, a corrupt cache, unreadable files.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

EXIT_OK = 0
EXIT_GATE_FAILED = 1
EXIT_USER = 2
EXIT_DATA = 3


@dataclass(frozen=True)
class Problem:
    """One located problem: ``field`` is a dotted path such as ``dataset.subgroups[1]``."""

    field: str
    message: str

    def render(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class AuditError(Exception):
    """Base class for errors printed without a traceback."""

    exit_code = EXIT_DATA

    def __init__(self, message: str, *, file: str | None = None,
                 problems: Sequence[Problem] = (), fix: str | None = None) -> None:
        self.message = message
        self.file = file
        self.problems = tuple(problems)
        self.fix = fix
        super().__init__(self.render())

    def render(self) -> str:
        head = self.message
        if self.file and self.file not in head:
            head = f"{self.file}: {head}"
        if self.problems:
            n = len(self.problems)
            head += f" ({n} problem{'s' if n != 1 else ''})"
        lines = [head]
        lines += [f"  {p.render()}" for p in self.problems]
        if self.fix:
            lines.append(f"  fix: {self.fix}")
        return "\n".join(lines)


class UserError(AuditError):
    """The user's input is wrong: bad YAML, unknown key or name, missing file, bad flag."""

    exit_code = EXIT_USER


class DataError(AuditError):
    """Data, weights or cache not available or not readable (exit 3)."""

    exit_code = EXIT_DATA


class MissingDependency(UserError):
    """An optional dependency is not installed."""

    def __init__(self, package: str, purpose: str, extra: str | None = None) -> None:
        fix = f"pip install {package}" if extra is None else f"pip install 'audit[{extra}]'"
        super().__init__(f"{purpose} needs the package '{package}', which is not installed", fix=fix)
