"""Atomic file writes: the one place that turns a full or read-only disk into a clear error.

Every output file and cache entry is written through :func:`atomic_write`: a temp file in the same
directory, then ``os.replace``. A failed write leaves the previous file (if any) intact and no temp
file behind, and an ``OSError`` (disk full, read-only filesystem, permission denied) becomes a
:class:`audit.errors.DataError` (exit 3) that names the path.
"""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from audit.errors import DataError

_FIX = {
    errno.ENOSPC: "free disk space (or point --out / --cache-dir / AUDIT_CACHE_DIR elsewhere) and re-run",
    errno.EDQUOT: "free space within your disk quota and re-run",
    errno.EROFS: "the filesystem is read-only: choose a writable --out / --cache-dir (or AUDIT_CACHE_DIR)",
    errno.EACCES: "you may not write there: choose a writable --out / --cache-dir (or AUDIT_CACHE_DIR)",
    errno.EPERM: "you may not write there: choose a writable --out / --cache-dir (or AUDIT_CACHE_DIR)",
}


def write_error(path: Path, exc: OSError) -> DataError:
    """The :class:`DataError` for an ``OSError`` raised while writing ``path``."""
    reason = exc.strerror or str(exc)
    return DataError(f"cannot write {path}: {reason}",
                     fix=_FIX.get(exc.errno or 0, "check that the directory exists and is writable"))


def make_dirs(path: Path) -> None:
    """``mkdir -p`` that reports a read-only or full filesystem as a :class:`DataError`."""
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise DataError(f"cannot create directory {path}: a file of that name exists",
                        fix="remove the file or choose another path") from None
    except OSError as exc:
        raise write_error(Path(path), exc) from None


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` and move ``tmp`` over ``path`` only if it succeeded.

    Raises:
        DataError: the directory cannot be created or written (full, read-only, no permission).
    """
    path = Path(path)
    make_dirs(path.parent)
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise write_error(path, exc) from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; results are meant to be shared
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        if isinstance(exc, (IsADirectoryError, NotADirectoryError)) or exc.errno in _FIX:
            raise write_error(path, exc) from None
        raise
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


__all__ = ["atomic_write", "make_dirs", "write_error"]
