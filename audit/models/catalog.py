"""open_clip's architectures and pretrained tags, read without importing torch.

``validate`` must stay light, so instead of ``import open_clip`` (which imports torch) this reads
the package's own data: ``model_configs/*.json`` and the ``pretrained`` table, loading
``pretrained.py`` (which needs only ``constants`` and ``version``) under a private package name.
"""

from __future__ import annotations

import importlib.util
import sys
import types
from functools import lru_cache
from pathlib import Path

AUDIT_CONFIGS = Path(__file__).parent / "configs"


def _open_clip_dir() -> Path | None:
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


@lru_cache(maxsize=1)
def architectures() -> frozenset[str]:
    names = {p.stem for p in AUDIT_CONFIGS.glob("*.json")}
    root = _open_clip_dir()
    if root is not None:
        names |= {p.stem for p in (root / "model_configs").glob("*.json")}
    return frozenset(names)


@lru_cache(maxsize=1)
def pretrained_tags() -> dict[str, tuple[str, ...]]:
    """Architecture -> its pretrained tags, from open_clip's own table."""
    if "open_clip" in sys.modules:  # already imported: use the public API
        import open_clip

        return {a: tuple(open_clip.list_pretrained_tags_by_model(a)) for a in open_clip.list_models()}
    root = _open_clip_dir()
    if root is None:
        return {}
    pkg = types.ModuleType("_audit_open_clip_catalog")
    pkg.__path__ = [str(root)]
    sys.modules[pkg.__name__] = pkg
    # pretrained.py tries `import safetensors.torch` (which imports torch); a None entry makes
    # that import fail fast, which the module already tolerates.
    blocked = "safetensors.torch" not in sys.modules
    if blocked:
        sys.modules["safetensors.torch"] = None  # type: ignore[assignment]
    try:
        for name in ("constants", "version", "pretrained"):
            spec = importlib.util.spec_from_file_location(f"{pkg.__name__}.{name}", root / f"{name}.py")
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
        table = sys.modules[f"{pkg.__name__}.pretrained"]._PRETRAINED
    except Exception:  # a future open_clip layout: fall back to no tag checking
        return {}
    finally:
        for key in [k for k in sys.modules if k.startswith(pkg.__name__)]:
            del sys.modules[key]
        if blocked:
            del sys.modules["safetensors.torch"]
    return {arch: tuple(tags) for arch, tags in table.items()}
