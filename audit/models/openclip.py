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
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
import torch

import open_clip
from audit.errors import DataError, UserError
from audit.models.base import ModelInfo, l2_normalize
from audit.models.text_trim import SELF_CHECK_RTOL, self_check, trimmed_text_encoder
from audit.registry import did_you_mean

log = logging.getLogger(__name__)
CONFIG_DIR = Path(__file__).parent / "configs"
RANDOM = "random"
_registered = False


def register_configs() -> None:
    """Make the package's own small configs (e.g. ``audit-tiny-vit``) known to open_clip."""
    global _registered
    if not _registered:
        open_clip.add_model_config(CONFIG_DIR)
        _registered = True


def pick_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was given but no CUDA device is available",
                        fix="use --device cpu or --device auto")
    return device


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


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


class OpenClipModel:
    """An open_clip model with its own preprocessing, tokenizer, logit_scale and logit_bias."""

    def __init__(self, model_id: str, *, name: str | None = None, device: str = "cpu",
                 seed: int = 0, resolve: Callable[[str], Path] | None = None) -> None:
        register_configs()
        self.device = pick_device(device)
        resolve = resolve or (lambda p: Path(p).expanduser().resolve())
        model_name, pretrained, kwargs, weights, key, random_weights = self._parse(model_id, seed, resolve)
        self._model_name = model_name
        try:
            with local_seed(seed) if random_weights else nullcontext(), _quiet_random_init(random_weights):
                model, _, preprocess = open_clip.create_model_and_transforms(
                    model_name, pretrained=pretrained, device=self.device, **kwargs
                )
            self.tokenizer = open_clip.get_tokenizer(model_name)
        except ImportError as exc:
            raise DataError(f"model '{model_id}' needs a package that is not installed: {exc}",
                            fix="pip install transformers (SigLIP, xlm-roberta, mt5 ... tokenizers)") from None
        except RuntimeError as exc:
            if "Failed to download" in str(exc) or "LocalEntryNotFound" in repr(exc.__cause__):
                raise _missing_weights(str(exc).splitlines()[0], model_id) from None
            raise DataError(f"cannot load model '{model_id}': {exc}") from None
        model.eval()
        self.model = model
        self.preprocess = preprocess
        self._encode_text, text_context = self._text_encoder()
        self.precision = "amp_bf16" if self.device == "cuda" and torch.cuda.is_bf16_supported() else (
            "amp_fp16" if self.device == "cuda" else "fp32")
        scale = float(model.logit_scale.exp().item())
        bias = getattr(model, "logit_bias", None)
        self.info = ModelInfo(
            id=model_id, name=name or model_id, scheme=model_id.split(":", 1)[0] if model_id.startswith(("hf-hub:", "local-dir:")) else "open_clip",
            weights=weights, cache_key=f"{key}|{preprocess!r}|{self.precision}", logit_scale=scale,
            logit_bias=float(bias.item()) if bias is not None else None, random_weights=random_weights,
            preprocess=repr(preprocess), device=self.device, precision=self.precision,
            extra={"open_clip_version": open_clip.__version__, "model_name": model_name,
                   "text_context": text_context},
        )

    def _text_encoder(self) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
        """open_clip's ``encode_text``, or the padding-trimmed one where it is exact for this tower
        (:mod:`audit.models.text_trim`) and agrees with open_clip's on these weights."""
        trimmed = trimmed_text_encoder(self.model)
        if trimmed is None:
            return self.model.encode_text, "full: open_clip encode_text (the tower is not causal with one pooled token)"
        diff = self_check(self.model, self.tokenizer, trimmed, self.device)
        if not diff <= SELF_CHECK_RTOL:
            log.warning("%s: the padding-trimmed text encoder differs from open_clip's by %.2g (relative); "
                        "using open_clip's encode_text", self._model_name, diff)
            return self.model.encode_text, f"full: trimmed encoder failed its self-check ({diff:.2g})"
        return trimmed, f"trimmed to the longest prompt of each batch (self-check {diff:.1g})"

    @staticmethod
    def _parse(model_id: str, seed: int, resolve: Callable[[str], Path]) -> tuple[str, str | None, dict[str, Any], str, str, bool]:
        """-> (open_clip model name, pretrained, kwargs, weights description, cache key, random)."""
        if model_id.startswith("hf-hub:"):
            repo = model_id.removeprefix("hf-hub:")
            if _cached_hf_file(repo, ("open_clip_config.json",)) is None and not hub_reachable():
                raise _missing_weights(f"hub repo '{repo}'", model_id)
            return model_id, None, {}, model_id, model_id, False
        if model_id.startswith("local-dir:"):
            path = resolve(model_id.removeprefix("local-dir:"))
            if not (path / "open_clip_config.json").exists():
                raise UserError(f"model '{model_id}': {path} has no open_clip_config.json",
                                fix="point local-dir: at a directory with open_clip_config.json and open_clip_model.safetensors")
            digest = hashlib.sha256(b"".join(_file_digest(p).encode() for p in sorted(path.iterdir()) if p.is_file())).hexdigest()[:16]
            return f"local-dir:{path}", None, {}, str(path), f"local-dir:{digest}", False
        arch, _, pretrained = model_id.partition(":")
        if arch not in open_clip.list_models():
            raise UserError(f"model '{model_id}': unknown open_clip architecture '{arch}'{did_you_mean(arch, open_clip.list_models())}",
                            fix="see open_clip.list_models() or `python -m audit list`")
        if pretrained == RANDOM:
            return arch, None, {}, f"random init (seed {seed})", f"{arch}:random:{seed}", True
        tags = open_clip.list_pretrained_tags_by_model(arch)
        if pretrained in tags:
            resolved, kwargs = resolve_pretrained_tag(arch, pretrained, model_id)
            return arch, resolved, kwargs, pretrained, f"{arch}:{pretrained}", False
        if _looks_like_path(pretrained):
            path = resolve(pretrained)
            if not path.is_file():
                raise UserError(f"model '{model_id}': checkpoint file not found: {path}",
                                fix="check the path, or use an open_clip pretrained tag: " + ", ".join(tags[:6]))
            return arch, str(path), {}, str(path), f"{arch}:{_file_digest(path)}", False
        raise UserError(
            f"model '{model_id}': '{pretrained}' is not a pretrained tag of {arch}{did_you_mean(pretrained, tags)}",
            fix=f"use one of: {', '.join(tags) or '(none: pass a checkpoint path)'}, 'random', or a checkpoint path",
        )

    def autocast(self) -> AbstractContextManager[Any]:
        if self.device == "cuda":
            dtype = torch.bfloat16 if self.precision == "amp_bf16" else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return nullcontext()

    def encode_images(self, batch: torch.Tensor) -> np.ndarray:
        with torch.inference_mode(), self.autocast():
            feats = self.model.encode_image(batch.to(self.device, non_blocking=True))
        return l2_normalize(feats.float().cpu().numpy())

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        tokens = self.tokenizer(list(texts)).to(self.device)
        with torch.inference_mode(), self.autocast():
            feats = self._encode_text(tokens)
        return l2_normalize(feats.float().cpu().numpy())


def _looks_like_path(s: str) -> bool:
    return "/" in s or "\\" in s or s.endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))


class _DropRandomInitWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return "No pretrained weights loaded" not in record.getMessage()


@contextmanager
def _quiet_random_init(active: bool) -> Iterator[None]:
    """ARCH:random asks for random weights; open_clip's warning about them is noise there."""
    root = logging.getLogger()
    flt = _DropRandomInitWarning()
    if active:
        root.addFilter(flt)
    try:
        yield
    finally:
        root.removeFilter(flt)


class local_seed:
    """Seed torch for model init without touching the caller's global RNG state."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._fork: Any = None

    def __enter__(self) -> None:
        self._fork = torch.random.fork_rng(devices=[])
        self._fork.__enter__()
        torch.manual_seed(self.seed)

    def __exit__(self, *exc: object) -> None:
        self._fork.__exit__(*exc)
