"""What a run is doing, for people: a bar on a terminal, plain lines in CI logs, nothing when quiet.

Library code never prints. It reports steps through the ``audit`` logger (``log.info``) and counts
long loops through :func:`counter`; the CLI decides where that goes (:func:`to_stderr`). On a
terminal a counter is a tqdm bar; elsewhere (a CI log, a file) it is a line such as
``embedding demo_world_test: 288/576 images`` at most every :data:`LINE_INTERVAL_S` seconds and
at the end, so a log shows progress without a carriage-return bar.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger("audit")

#: Seconds between two plain progress lines (``$AUDIT_PROGRESS_INTERVAL`` overrides it).
LINE_INTERVAL_S = 10.0


class Counter(Protocol):
    """A progress counter: :meth:`update` by a number of items, :meth:`close` at the end."""

    def update(self, n: int = 1) -> Any: ...

    def close(self) -> None: ...


class _Silent:
    def update(self, n: int = 1) -> None:
        return None

    def close(self) -> None:
        return None


class LineCounter:
    """Plain ``desc: done/total unit`` lines through the ``audit`` logger, at most every ``interval``
    seconds (the last count is always reported on :meth:`close`)."""

    def __init__(self, total: int, desc: str, unit: str, interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total, self.desc, self.unit, self.interval, self.clock = total, desc, unit, interval, clock
        self.done = 0
        self._shown = -1
        self._last = clock()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = self.clock()
        if now - self._last >= self.interval and self.done < self.total:
            self._emit()
            self._last = now

    def _emit(self) -> None:
        log.info("%s: %d/%d %s", self.desc, self.done, self.total, self.unit)
        self._shown = self.done

    def close(self) -> None:
        if self._shown != self.done:
            self._emit()


def _interval() -> float:
    try:
        return max(0.0, float(os.environ.get("AUDIT_PROGRESS_INTERVAL", LINE_INTERVAL_S)))
    except ValueError:
        return LINE_INTERVAL_S


def counter(total: int, desc: str, unit: str = "images", *, quiet: bool = False) -> Counter:
    """A tqdm bar when stderr is a terminal, else a :class:`LineCounter`; nothing when ``quiet``."""
    if quiet or total <= 0:
        return _Silent()
    if sys.stderr.isatty():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)  # type: ignore[no-any-return]
    return LineCounter(total, desc, unit, _interval())


class _Stderr(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (tests swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # a closed pipe must not end the run
            self.handleError(record)


def to_stderr(quiet: bool = False) -> None:
    """Show the ``audit`` logger's messages on stderr (INFO and up; warnings only when ``quiet``).

    For the CLI; calling it again replaces the handler it added before.
    """
    for h in [h for h in log.handlers if isinstance(h, _Stderr)]:
        log.removeHandler(h)
    handler = _Stderr()
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.WARNING if quiet else logging.INFO)


__all__ = ["Counter", "LINE_INTERVAL_S", "LineCounter", "counter", "log", "to_stderr"]
