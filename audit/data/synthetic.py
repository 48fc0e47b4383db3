"""``synthetic_fairface``: a generated, FairFace-shaped dataset for the offline demo.

It writes (once, deterministically in ``n``/``seed``/``size``) a local directory in FairFace's
exact hub layout and features -- drawn cartoon heads, no real people -- under the cache root
(``--cache-dir``, else ``$AUDIT_CACHE_DIR``, else the user cache dir: :mod:`audit.cache` owns the
layout) ``/synthetic/<hash>``, then loads it through
:class:`~audit.data.fairface.FairFaceAdapter`'s own code path. Results on it say nothing about
any real model's behaviour on real faces.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from audit.cache import cache_root, synthetic_dir
from audit.data.base import Option, option_help
from audit.data.fairface import FairFaceAdapter
from audit.data.hf import Source
from audit.errors import UserError
from audit.fileio import make_dirs, write_error
from audit.spec import DatasetSpec

#: Bumped whenever the generator's output changes, so old cached copies are not reused.
GENERATOR_VERSION = 1
_DEFAULTS = {"n": 280, "seed": 0, "size": 64}
_BOUNDS = {"n": (1, 1_000_000), "seed": (0, 2**32 - 1), "size": (8, 1024)}


def ensure_synthetic_fairface(n: int = 280, seed: int = 0, size: int = 64,
                              root: Path | None = None) -> Path:
    """Generate the directory if it is not there yet (atomically: temp dir, then rename).

    ``root`` is the cache root (:func:`audit.cache.cache_root` when None); the data goes under
    :func:`audit.cache.synthetic_dir` of it.
    """
    from audit.testing.fixtures import write_fairface_dir

    params = {"n": n, "seed": seed, "size": size, "version": GENERATOR_VERSION}
    key = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:16]
    parent = synthetic_dir(root if root is not None else cache_root())
    final = parent / key
    if (final / "README.md").is_file():
        return final
    make_dirs(parent)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=parent))
    except OSError as exc:
        raise write_error(parent, exc) from None
    try:
        write_fairface_dir(tmp, n=n, seed=seed, size=size)
        (tmp / "synthetic.json").write_text(json.dumps(params, indent=1), encoding="utf-8")
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / "README.md").is_file():  # not a concurrent writer's finished copy
                raise
    except OSError as exc:  # disk full, read-only: a DataError naming the path
        raise write_error(final, exc) from None
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


class SyntheticFairFaceAdapter(FairFaceAdapter):
    """FairFace-shaped drawn figures (no real people) for the offline demo.

    Options: ``n`` (images, default 280), ``seed`` (default 0), ``size`` (pixels, default 64).
    Race x gender are balanced; age bins follow FairFace's rough shares. ``extra["synthetic"]``
    records the options and generator version.
    """

    default_source: ClassVar[str | None] = None
    #: Run settings ``audit.run`` passes in: the cache root (``--cache-dir``).
    run_options: ClassVar[tuple[str, ...]] = ("cache_dir",)
    not_applicable: ClassVar[tuple[str, ...]] = ("source", "revision")
    options: ClassVar[dict[str, Option]] = {
        "n": Option("int", "number of images (default 280)", bounds=_BOUNDS["n"]),
        "seed": Option("int", "generator seed (default 0)", bounds=_BOUNDS["seed"]),
        "size": Option("int", "image side in pixels (default 64)", bounds=_BOUNDS["size"]),
    }
    options_help: ClassVar[dict[str, str]] = option_help(options)

    def __init__(self, spec: DatasetSpec, resolve: Callable[[str], Path], cache_dir: Path | None = None) -> None:
        super().__init__(spec, resolve)
        self.cache_dir = cache_dir

    def _params(self) -> dict[str, int]:
        spec = self.spec
        for field, given in (("source", spec.source), ("revision", spec.revision)):
            if given is not None:
                raise UserError(f"dataset.{field}: synthetic_fairface generates its data; remove {field}")
        if spec.config not in (None, "0.25") or spec.split not in (None, "validation"):
            raise UserError("synthetic_fairface has only config '0.25', split 'validation'",
                            fix="remove dataset.config / dataset.split")
        params = dict(_DEFAULTS)
        for key, value in spec.options.items():
            lo, hi = _BOUNDS.get(key, (0, 0))
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise UserError(f"dataset.options.{key} must be a whole number in [{lo}, {hi}], "
                                f"not {value!r}")
            params[key] = value
        return params

    def _source(self) -> Source:
        p = self._params()
        root = ensure_synthetic_fairface(n=p["n"], seed=p["seed"], size=p["size"], root=self.cache_dir)
        return Source(str(root), root)

    def _extra(self) -> dict[str, Any]:
        return {"synthetic": {**self._params(), "generator_version": GENERATOR_VERSION}}
