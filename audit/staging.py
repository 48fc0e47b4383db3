"""A run directory appears whole or not at all.

A run writes its files into a hidden sibling of the final directory (``.NAME.<random>.partial``)
and renames it into place once every file is written, so a run that fails for any reason (data
that cannot load, a model that cannot load, a full or read-only disk, Ctrl-C) leaves no empty or
half-written run directory, and parent directories it created are removed again. An existing
``--out`` that is a previous run directory (it holds ``manifest.json``) or empty is replaced only
at that final moment; anything else is refused before the run starts.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from audit.errors import UserError
from audit.fileio import make_dirs, write_error

#: The file whose presence marks a directory as a run directory.
MARKER = "manifest.json"


def check_out_dir(path: Path) -> None:
    """Refuse an output path that a run must not replace (exit 2), before any work is done."""
    if path.exists() and not path.is_dir():
        raise UserError(f"--out {path}: exists and is not a directory",
                        fix="choose a new output directory")
    if path.is_dir() and any(path.iterdir()) and not (path / MARKER).is_file():
        raise UserError(f"--out {path}: the directory exists, is not empty and is not a run directory "
                        f"(no {MARKER}), so a run will not replace it",
                        fix="choose a new output directory, or empty or delete this one")


def _missing_parents(path: Path) -> list[Path]:
    """The ancestors of ``path`` that do not exist yet, outermost first."""
    missing = []
    for parent in path.parents:
        if parent.exists():
            break
        missing.append(parent)
    return missing[::-1]


@contextmanager
def staged_dir(final: Path) -> Iterator[Path]:
    """Yield a temp directory next to ``final``; on success it becomes ``final``, on failure it is
    removed together with the parent directories made for it.

    Raises:
        DataError: the parent cannot be created or written, or the rename fails.
    """
    final = Path(final)
    created = _missing_parents(final)
    make_dirs(final.parent)
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(stage, 0o777 & ~umask)  # mkdtemp makes 0700; a run directory is meant to be shared
    except OSError as exc:
        _remove_empty(created)
        raise write_error(final, exc) from None
    try:
        yield stage
        _publish(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        _remove_empty(created)
        raise


def _publish(stage: Path, final: Path) -> None:
    old = None
    try:
        if final.exists():  # a previous run (or an empty directory): swap, then delete it
            check_out_dir(final)
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
            os.replace(final, old / final.name)
        os.replace(stage, final)
    except OSError as exc:
        if old is not None and (old / final.name).exists() and not final.exists():
            os.replace(old / final.name, final)  # put the previous run back
        raise write_error(final, exc) from None
    finally:
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)


def _remove_empty(dirs: list[Path]) -> None:
    for d in reversed(dirs):
        try:
            d.rmdir()
        except OSError:
            return


__all__ = ["MARKER", "check_out_dir", "staged_dir"]
