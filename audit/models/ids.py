"""The one rule for model ids: parse and check them without importing torch.

Every caller (``validate``, ``run --model``, the adapters, ``audit list``) goes through
:func:`parse_model_id` and :func:`check_model_id`; nothing else decides what a model id means.

Schemes:

* ``ARCH:PRETRAINED`` (open_clip): ``PRETRAINED`` is ``random``, a checkpoint path or a pretrained
  tag. It is a *path* when it contains a path separator or starts with ``~`` or ``.``, or ends in a
  checkpoint suffix (``.pt``, ``.pth``, ``.bin``, ``.safetensors``, ``.ckpt``); anything else is a
  tag, so a typo such as ``opnai.v2`` is reported as an unknown tag, not as a missing file.
* ``hf-hub:ORG/NAME``: an open_clip repo on the Hugging Face hub (``open_clip_config.json``).
* ``local-dir:/path``: open_clip's own directory layout.
* ``transformers:ORG/NAME[@REVISION]`` or ``transformers:/path``: a Hugging Face transformers
  dual encoder (``config.json``), loaded with the Auto classes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from audit.registry import did_you_mean

Scheme = Literal["open_clip", "hf-hub", "local-dir", "transformers"]
#: Schemes written as a prefix (``scheme:rest``); everything else is open_clip's ``ARCH:PRETRAINED``.
PREFIX_SCHEMES: tuple[str, ...] = ("hf-hub", "local-dir", "transformers")
#: ``ARCH:random``: deterministic random weights, for plumbing only.
RANDOM = "random"
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")
#: The files that tell the two directory layouts apart.
OPEN_CLIP_CONFIG = "open_clip_config.json"
TRANSFORMERS_CONFIG = "config.json"
HUB_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
#: What a user can write, for messages.
SYNTAX = ("ARCH:PRETRAINED (e.g. ViT-B-32:openai), ARCH:/path/ckpt.pt, ARCH:random, hf-hub:org/name, "
          "local-dir:/path, transformers:org/name[@revision] or transformers:/path")


@dataclass(frozen=True)
class ModelRef:
    """A parsed model id.

    Attributes:
        id: The id as written.
        scheme: Which adapter family loads it.
        kind: ``tag``, ``random``, ``checkpoint`` (open_clip); ``hub`` (hf-hub, transformers repo);
            ``dir`` (local-dir, transformers directory).
        arch: open_clip architecture (``open_clip`` scheme only).
        tag: open_clip pretrained tag (kind ``tag``).
        path: The path as written (kind ``checkpoint`` or ``dir``), not yet resolved.
        repo: Hub repo id (kind ``hub``).
        revision: Hub revision after ``@`` (transformers only).
    """

    id: str
    scheme: Scheme
    kind: Literal["tag", "random", "checkpoint", "hub", "dir"]
    arch: str | None = None
    tag: str | None = None
    path: str | None = None
    repo: str | None = None
    revision: str | None = None


class ModelIdError(ValueError):
    """A model id that cannot be parsed; the message says what was expected."""


def is_local_path(text: str) -> bool:
    """Whether a ``transformers:`` target is a directory: it starts with ``/``, ``.`` or ``~``
    (write ``./models/tiny`` for a relative one; ``org/name`` is a hub repo)."""
    return text.startswith(("/", ".", "~")) or "\\" in text


def _is_checkpoint_path(pretrained: str) -> bool:
    return "/" in pretrained or "\\" in pretrained or pretrained.startswith(("~", ".")) \
        or pretrained.lower().endswith(CHECKPOINT_SUFFIXES)


def scheme_of(model_id: str) -> Scheme:
    """The scheme of a model id: a known prefix, else open_clip's ``ARCH:PRETRAINED``."""
    head = model_id.split(":", 1)[0]
    return head if head in PREFIX_SCHEMES else "open_clip"  # type: ignore[return-value]


def parse_model_id(model_id: str) -> ModelRef:
    """Parse a model id; raise :class:`ModelIdError` when its syntax is wrong."""
    scheme = scheme_of(model_id)
    if scheme != "open_clip":
        rest = model_id.split(":", 1)[1].strip()
        if not rest:
            raise ModelIdError(f"model '{model_id}': nothing after '{scheme}:'; expected {SYNTAX}")
        if scheme == "local-dir":
            return ModelRef(model_id, scheme, "dir", path=rest)
        if scheme == "hf-hub":
            if not HUB_REPO_RE.match(rest):
                raise ModelIdError(f"model '{model_id}': '{rest}' is not a hub repo id (expected hf-hub:org/name)")
            return ModelRef(model_id, scheme, "hub", repo=rest)
        if is_local_path(rest):
            return ModelRef(model_id, scheme, "dir", path=rest)
        repo, _, revision = rest.partition("@")
        if not HUB_REPO_RE.match(repo):
            raise ModelIdError(f"model '{model_id}': '{repo}' is not a hub repo id (expected "
                               "transformers:org/name[@revision], or a directory starting with /, ./ or ~)")
        if "@" in rest and not revision:
            raise ModelIdError(f"model '{model_id}': nothing after '@'; give a branch, tag or commit hash")
        return ModelRef(model_id, scheme, "hub", repo=repo, revision=revision or None)
    arch, sep, pretrained = model_id.partition(":")
    if not sep or not arch or not pretrained:
        raise ModelIdError(f"model '{model_id}' is not a model id; expected {SYNTAX}")
    if pretrained == RANDOM:
        return ModelRef(model_id, scheme, "random", arch=arch)
    if _is_checkpoint_path(pretrained):
        return ModelRef(model_id, scheme, "checkpoint", arch=arch, path=pretrained)
    return ModelRef(model_id, scheme, "tag", arch=arch, tag=pretrained)


def _default_resolve(path: str) -> Path:
    return Path(path).expanduser().resolve()


def check_model_id(model_id: str, resolve: Callable[[str], Path] | None = None) -> str | None:
    """A problem with ``model_id`` that ``run`` would refuse, or None. Imports no torch.

    Checks the syntax, open_clip architectures and tags (from open_clip's own table), and that
    local paths exist with the files their layout needs. What only the network or the weights can
    tell (is a hub repo cached, does a checkpoint load) is left to the run, which exits 3.
    """
    resolve = resolve or _default_resolve
    try:
        ref = parse_model_id(model_id)
    except ModelIdError as exc:
        return str(exc)
    try:
        return _check_ref(ref, resolve)
    except (OSError, ValueError) as exc:  # e.g. a path component too long for the file system
        return f"model '{model_id}': not a usable path ({exc})"


def _check_ref(ref: ModelRef, resolve: Callable[[str], Path]) -> str | None:
    from audit.models.catalog import AUDIT_CONFIGS, architectures, pretrained_tags

    if ref.kind == "dir":
        return _check_dir(ref, resolve(str(ref.path)))
    if ref.scheme != "open_clip":
        return None
    assert ref.arch is not None
    archs = architectures()
    if archs and ref.arch not in archs:
        return f"unknown open_clip architecture '{ref.arch}'{did_you_mean(ref.arch, sorted(archs))}"
    if ref.kind == "checkpoint":
        path = resolve(str(ref.path))
        return None if path.is_file() else f"checkpoint file not found: {path}"
    if ref.kind == "random":
        return None
    tags = pretrained_tags().get(ref.arch, ())
    if tags and ref.tag not in tags:
        return f"'{ref.tag}' is not a pretrained tag of {ref.arch}{did_you_mean(str(ref.tag), tags)}"
    if not tags and not (AUDIT_CONFIGS / f"{ref.arch}.json").exists():
        return f"{ref.arch} has no pretrained tags; pass a checkpoint path (ARCH:/path/ckpt.pt) or ARCH:random"
    return None


def _check_dir(ref: ModelRef, path: Path) -> str | None:
    if not path.is_dir():
        return f"model directory not found: {path}"
    has_oc, has_tf = (path / OPEN_CLIP_CONFIG).is_file(), (path / TRANSFORMERS_CONFIG).is_file()
    if ref.scheme == "local-dir" and not has_oc:
        if has_tf:
            return (f"{path} holds a transformers model (config.json), not open_clip's layout; "
                    f"use transformers:{ref.path}")
        return f"{path} has no {OPEN_CLIP_CONFIG} (open_clip's layout: {OPEN_CLIP_CONFIG} + open_clip_model.safetensors)"
    if ref.scheme == "transformers" and not has_tf:
        if has_oc:
            return f"{path} is in open_clip's layout ({OPEN_CLIP_CONFIG}); use local-dir:{ref.path}"
        return f"{path} has no {TRANSFORMERS_CONFIG}; save the model with save_pretrained(dir)"
    return None


__all__ = ["CHECKPOINT_SUFFIXES", "ModelIdError", "ModelRef", "PREFIX_SCHEMES", "RANDOM", "SYNTAX",
           "check_model_id", "is_local_path", "parse_model_id", "scheme_of"]
