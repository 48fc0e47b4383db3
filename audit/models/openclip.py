"""The open_clip model adapter: loading, preprocessing, tokenizing and encoding.

Model ids: ``ARCH:TAG`` (an ``open_clip.list_pretrained()`` pair, e.g. ``ViT-B-32:openai``),
``ARCH:/path/ckpt.pt`` (a local checkpoint), ``ARCH:random`` (deterministic random weights, for
plumbing only), ``hf-hub:org/name`` and ``local-dir:/path`` (open_clip's own layout).
"""

from __future__ import annotations

import hashlib
import logging
import os
import socket
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch

from audit.cache import digest
from audit.errors import AuditError, DataError, UserError
from audit.models.base import LazyWeights, ModelInfo, l2_normalize
from audit.models.building import local_seed, quiet_random_init, skip_random_init
from audit.models.catalog import architectures, pretrained_tags
from audit.models.text_trim import SELF_CHECK_RTOL, self_check, trimmed_text_encoder
from audit.registry import did_you_mean
from audit.fileio import atomic_write

log = logging.getLogger(__name__)
CONFIG_DIR = Path(__file__).parent / "configs"
RANDOM = "random"
_registered = False


def register_configs() -> None:
    """Make the package's own small configs (e.g. ``audit-tiny-vit``) known to open_clip."""
    global _registered
    if not _registered:
        import open_clip

        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was given but no CUDA device is available",
                        fix="use --device cpu or --device auto")
    return device


PRECISIONS = ("auto", "fp32", "amp_bf16", "amp_fp16")


def pick_precision(precision: str, device: str) -> str:
    """``auto``: bf16 autocast on CUDA where supported, else fp16 autocast; fp32 on the CPU."""
    if precision not in PRECISIONS:
        raise UserError(f"precision '{precision}' is not one of {', '.join(PRECISIONS)}")
    if precision != "auto":
        return precision
    if device == "cuda":
        return "amp_bf16" if torch.cuda.is_bf16_supported() else "amp_fp16"
    return "fp32"


def hub_reachable(timeout: float = 3.0) -> bool:
    """False at once under HF_HUB_OFFLINE; else a short TCP probe instead of long retries."""
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _missing_weights(what: str, model_id: str) -> DataError:
    return DataError(
        f"weights for '{model_id}' are not in the local cache and the Hugging Face hub cannot be "
        f"reached ({what})",
        fix="run once with network access to fill the cache (then HF_HUB_OFFLINE=1 works offline), "
        "or download the weights and pass ARCH:/path/to/checkpoint (or local-dir:/path)",
    )


def _cached_hf_file(repo_id: str, filenames: Sequence[str], revision: str | None = None) -> str | None:
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        hit = try_to_load_from_cache(repo_id, name, revision=revision)
        if isinstance(hit, str):
            return hit
    return None


WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


def resolve_pretrained_tag(arch: str, tag: str, model_id: str) -> tuple[str, dict[str, Any]]:
    """A cached local file for ``ARCH:TAG`` (no network), or the tag itself when reachable."""
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    kwargs: dict[str, Any] = {}
    if cfg.get("quick_gelu"):
        kwargs["force_quick_gelu"] = True
    for key, arg in (("mean", "image_mean"), ("std", "image_std"),
                     ("interpolation", "image_interpolation"), ("resize_mode", "image_resize_mode")):
        if cfg.get(key) is not None:
            kwargs[arg] = cfg[key]
    local = None
    if cfg.get("hf_hub"):
        parts = cfg["hf_hub"].rstrip("/").split("/")
        repo_id, filename = "/".join(parts[:2]), "/".join(parts[2:])
        local = _cached_hf_file(repo_id, [filename] if filename else WEIGHT_FILES)
    if local is None and cfg.get("url"):
        candidate = Path(os.path.expanduser("~/.cache/clip")) / os.path.basename(cfg["url"])
        local = str(candidate) if candidate.exists() else None
    if local is not None:
        return local, kwargs
    if not hub_reachable():
        raise _missing_weights(f"pretrained tag '{tag}'", model_id)
    return tag, {}


def _unloadable(model_id: str, target: _Target, exc: BaseException) -> DataError:
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    if target.pretrained is not None and not target.tag:
        return DataError(f"model '{model_id}': the checkpoint {target.pretrained} cannot be loaded "
                         f"({type(exc).__name__}: {first})",
                         fix="pass a state dict saved with torch.save(model.state_dict(), path) or a "
                             ".safetensors file for this architecture (a pickled model object is refused, "
                             "since torch.load(weights_only=True) runs no code from the file)")
    return DataError(f"cannot load model '{model_id}': {type(exc).__name__}: {first}")


def _hash_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def _file_digest(path: Path, memo: Path | None = None) -> str:
    """The file's sha256 (16 hex digits). With ``memo`` (a directory) it is remembered under the
    file's path, size, mtime, ctime and inode, so a multi-GB checkpoint is hashed once, not on
    every run; any write to the file changes its ctime and so its memo entry."""
    if memo is None:
        return _hash_file(path)
    st = path.stat()
    entry = memo / f"{digest([str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino])}.sha256"
    try:
        known = entry.read_text(encoding="utf-8").strip()
    except OSError:
        known = ""
    if len(known) == 16:
        return known
    value = _hash_file(path)
    atomic_write(entry, lambda tmp: tmp.write_text(value, encoding="utf-8"))
    return value


@dataclass(frozen=True)
class _Target:
    """What a model id points at, worked out without loading anything."""

    model_name: str           # open_clip's name: an architecture, hf-hub:... or local-dir:...
    pretrained: str | None    # a checkpoint path, an open_clip tag (tag=True), or None
    weights: str              # for provenance
    key: str                  # identity of the weights; part of every cache key
    random_weights: bool
    tag: bool = False         # ``pretrained`` is a tag, resolved to a local file when loading


class OpenClipModel(LazyWeights):
    """An open_clip model with its own preprocessing, tokenizer, logit_scale and logit_bias.

    With ``info_cache`` (a directory) the model's :class:`ModelInfo` is kept there once the model
    has loaded, and a later construction with the same id, weights, device and versions reads it
    back instead of loading the weights. The weights then load on first use of :attr:`model`,
    :attr:`preprocess`, :attr:`tokenizer` or an ``encode_*`` method, so a re-run whose image and
    prompt embeddings are all cached never loads them.
    """

    #: The optional run settings ``audit.run`` passes to this adapter.
    run_options = ("info_cache", "precision")

    def __init__(self, model_id: str, *, name: str | None = None, device: str = "cpu",
                 seed: int = 0, resolve: Callable[[str], Path] | None = None,
                 info_cache: Path | None = None, precision: str = "auto") -> None:
        self.device = pick_device(device)
        self._precision = pick_precision(precision, self.device)
        self._id, self._name, self._seed = model_id, name or model_id, seed
        self._target = self._parse(model_id, seed, resolve or (lambda p: Path(p).expanduser().resolve()),
                                   memo=None if info_cache is None else Path(info_cache) / "digests")
        self._model_name = self._target.model_name
        self._loaded: tuple[Any, Any, Any, Callable[[torch.Tensor], torch.Tensor]] | None = None
        self._init_info(None if info_cache is None else Path(info_cache) / f"{self._card_key()}.json")

    @classmethod
    def check_available(cls, model_id: str, *, seed: int = 0,
                        resolve: Callable[[str], Path] | None = None) -> None:
        """Raise what loading would raise for weights that are missing (offline) or ids that name
        nothing, without loading any weights."""
        target = cls._parse(model_id, seed, resolve or (lambda p: Path(p).expanduser().resolve()), hashing=False)
        if target.tag:
            resolve_pretrained_tag(target.model_name, str(target.pretrained), model_id)

    def _load(self) -> ModelInfo:
        import open_clip

        register_configs()
        t = self._target
        pretrained, kwargs = t.pretrained, {}
        if t.tag:
            pretrained, kwargs = resolve_pretrained_tag(t.model_name, str(t.pretrained), self._id)
        try:
            with local_seed(self._seed) if t.random_weights else nullcontext(), quiet_random_init(t.random_weights), \
                    skip_random_init(not t.random_weights):
                model, _, preprocess = open_clip.create_model_and_transforms(
                    t.model_name, pretrained=pretrained, device=self.device, **kwargs
                )
            tokenizer = open_clip.get_tokenizer(t.model_name)
        except ImportError as exc:
            raise DataError(f"model '{self._id}' needs a package that is not installed: {exc}",
                            fix="pip install transformers (SigLIP, xlm-roberta, mt5 ... tokenizers)") from None
        except RuntimeError as exc:
            if "Failed to download" in str(exc) or "LocalEntryNotFound" in repr(exc.__cause__):
                raise _missing_weights(str(exc).splitlines()[0], self._id) from None
            raise _unloadable(self._id, t, exc) from None
        except (AuditError, MemoryError):
            raise
        except Exception as exc:  # a pickle torch.load(weights_only=True) refuses, random bytes ...
            if t.pretrained is None or t.tag:
                raise
            raise _unloadable(self._id, t, exc) from None
        model.eval()
        if self.device == "cuda":  # convolutions (ResNet, ConvNeXt, patch embeddings) run NHWC on tensor cores
            model.to(memory_format=torch.channels_last)
        encode_text, text_context = _text_encoder(model, tokenizer, self.device, t.model_name)
        self._loaded = (model, preprocess, tokenizer, encode_text)
        precision = self._precision
        bias = getattr(model, "logit_bias", None)
        return ModelInfo(
            id=self._id, name=self._name,
            scheme=self._id.split(":", 1)[0] if self._id.startswith(("hf-hub:", "local-dir:")) else "open_clip",
            weights=t.weights, cache_key=f"{t.key}|{preprocess!r}|{precision}",
            logit_scale=float(model.logit_scale.exp().item()),
            logit_bias=float(bias.item()) if bias is not None else None, random_weights=t.random_weights,
            preprocess=repr(preprocess), device=self.device, precision=precision,
            extra={"open_clip_version": open_clip.__version__, "model_name": t.model_name,
                   "text_context": text_context},
        )

    def _card_key(self) -> str:
        from importlib.metadata import version

        return digest({"id": self._id, "weights": self._target.key, "device": self.device,
                       "precision": self._precision, "open_clip": version("open_clip_torch"), "torch": torch.__version__, "format": 1})

    @staticmethod
    def _parse(model_id: str, seed: int, resolve: Callable[[str], Path], memo: Path | None = None,
               hashing: bool = True) -> _Target:
        """What ``model_id`` points at; ``hashing=False`` skips the weight digests (a check only)."""
        def file_digest(path: Path, memo: Path | None) -> str:
            return _file_digest(path, memo) if hashing else "-" * 16

        if model_id.startswith("hf-hub:"):
            repo = model_id.removeprefix("hf-hub:")
            from audit.models.hf_transformers import transformers_repo_hint

            hint = transformers_repo_hint(repo)
            if hint:
                raise UserError(f"model '{model_id}': {hint}")
            if _cached_hf_file(repo, ("open_clip_config.json",)) is None and not hub_reachable():
                raise _missing_weights(f"hub repo '{repo}'", model_id)
            return _Target(model_id, None, model_id, model_id, False)
        if model_id.startswith("local-dir:"):
            path = resolve(model_id.removeprefix("local-dir:"))
            if not (path / "open_clip_config.json").exists():
                raise UserError(f"model '{model_id}': {path} has no open_clip_config.json",
                                fix="point local-dir: at a directory with open_clip_config.json and open_clip_model.safetensors")
            files = b"".join(file_digest(p, memo).encode() for p in sorted(path.iterdir()) if p.is_file())
            return _Target(f"local-dir:{path}", None, str(path), f"local-dir:{hashlib.sha256(files).hexdigest()[:16]}", False)
        from audit.models.ids import ModelIdError, parse_model_id

        try:
            ref = parse_model_id(model_id)
        except ModelIdError as exc:
            raise UserError(str(exc)) from None
        arch = str(ref.arch)
        if arch not in architectures():
            raise UserError(f"model '{model_id}': unknown open_clip architecture '{arch}'{did_you_mean(arch, sorted(architectures()))}",
                            fix="see open_clip.list_models() or `python -m audit list`")
        if ref.kind == "random":
            return _Target(arch, None, f"random init (seed {seed})", f"{arch}:random:{seed}", True)
        tags = pretrained_tags().get(arch, ())
        if ref.kind == "checkpoint":
            path = resolve(str(ref.path))
            if not path.is_file():
                raise UserError(f"model '{model_id}': checkpoint file not found: {path}",
                                fix="check the path, or use an open_clip pretrained tag: " + ", ".join(tags[:6]))
            return _Target(arch, str(path), str(path), f"{arch}:{file_digest(path, memo)}", False)
        if ref.tag in tags:
            return _Target(arch, ref.tag, str(ref.tag), f"{arch}:{ref.tag}", False, tag=True)
        raise UserError(
            f"model '{model_id}': '{ref.tag}' is not a pretrained tag of {arch}{did_you_mean(str(ref.tag), tags)}",
            fix=f"use one of: {', '.join(tags[:8]) or '(none: pass a checkpoint path)'}, 'random', or a checkpoint path",
        )

    def autocast(self) -> AbstractContextManager[Any]:
        if self.precision == "fp32":
            return nullcontext()
        return torch.autocast(self.device, dtype=torch.bfloat16 if self.precision == "amp_bf16" else torch.float16)

    def encode_images(self, batch: torch.Tensor) -> np.ndarray:
        nhwc = self.device == "cuda" and batch.ndim == 4
        batch = batch.to(self.device, non_blocking=True,
                         memory_format=torch.channels_last if nhwc else torch.preserve_format)
        with torch.inference_mode(), self.autocast():
            feats = self.model.encode_image(batch)
        return l2_normalize(feats.float().cpu().numpy())

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        tokens = self.tokenizer(list(texts)).to(self.device)
        with torch.inference_mode(), self.autocast():
            feats = self._ensure_loaded()[3](tokens)
        return l2_normalize(feats.float().cpu().numpy())


def _text_encoder(model: Any, tokenizer: Any, device: str, name: str) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    """open_clip's ``encode_text``, or the padding-trimmed one where it is exact for this tower
    (:mod:`audit.models.text_trim`) and agrees with open_clip's on these weights."""
    trimmed = trimmed_text_encoder(model)
    if trimmed is None:
        return model.encode_text, "full: open_clip encode_text (the tower is not causal with one pooled token)"
    diff = self_check(model, tokenizer, trimmed, device)
    if not diff <= SELF_CHECK_RTOL:
        log.warning("%s: the padding-trimmed text encoder differs from open_clip's by %.2g (relative); "
                    "using open_clip's encode_text", name, diff)
        return model.encode_text, f"full: trimmed encoder failed its self-check ({diff:.2g})"
    return trimmed, f"trimmed to the longest prompt of each batch (self-check {diff:.1g})"
