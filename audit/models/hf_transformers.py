"""The Hugging Face ``transformers`` model adapter: CLIP, SigLIP, SigLIP 2 and other dual encoders.

Model ids: ``transformers:ORG/NAME[@REVISION]`` (a hub repo, read from the local Hugging Face cache
or downloaded when the hub is reachable) and ``transformers:/path`` (a ``save_pretrained``
directory). The model loads through ``AutoModel``, its tokenizer through ``AutoTokenizer`` and its
image processor through ``AutoImageProcessor``, as transformers' own
``zero-shot-image-classification`` pipeline loads them; prompts are tokenized with the settings
that pipeline uses for the model type (:func:`text_settings`). ``transformers`` itself is imported
only when a model loads.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audit.cache import digest
from audit.errors import DataError, UserError
from audit.models.base import LazyWeights, ModelInfo, l2_normalize
from audit.models.ids import OPEN_CLIP_CONFIG, TRANSFORMERS_CONFIG, ModelIdError, check_model_id, parse_model_id
from audit.models.openclip import OpenClipModel, _file_digest, hub_reachable, pick_device, pick_precision

#: The pipeline's rule (``ZeroShotImageClassificationPipeline.preprocess``): model types whose name
#: contains ``siglip`` get their text padded to 64 tokens (the length they were trained at, and the
#: text tower pools the last position), everything else is padded to the longest prompt.
SIGLIP_TEXT: dict[str, Any] = {"padding": "max_length", "max_length": 64, "truncation": True}
DEFAULT_TEXT: dict[str, Any] = {"padding": True}
FEATURE_METHODS = ("get_image_features", "get_text_features")


def text_settings(model_type: str, context: int | None = None) -> dict[str, Any]:
    """Tokenizer arguments for prompts as the zero-shot pipeline chooses them. With ``context``
    (the text tower's positions), a non-SigLIP prompt longer than that is truncated to it, as
    open_clip's tokenizer does, where the pipeline would fail; shorter prompts are unaffected."""
    if "siglip" in model_type:
        return dict(SIGLIP_TEXT)
    return {**DEFAULT_TEXT, **({"max_length": context, "truncation": True} if context else {})}


def pipeline_scores(model_type: str) -> str:
    """What the pipeline reports as a label's score: sigmoid for SigLIP types, else softmax."""
    return "sigmoid" if "siglip" in model_type else "softmax"


def _offline_fix(repo: str) -> str:
    return (f"run `huggingface-cli download {repo}` once with network access (then HF_HUB_OFFLINE=1 works "
            "offline), or save the model with save_pretrained(DIR) and use transformers:/path/to/DIR")


def cached_hub_file(repo: str, filename: str, revision: str | None = None) -> Path | None:
    """A file of a hub repo in the local Hugging Face cache (no network), or None."""
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo, filename, revision=revision)
    return Path(hit) if isinstance(hit, str) else None


def transformers_repo_hint(repo: str) -> str | None:
    """For ``hf-hub:REPO``: a message naming ``transformers:`` when the cached repo is a transformers
    model without open_clip's config; None otherwise (for the open_clip adapter)."""
    if cached_hub_file(repo, OPEN_CLIP_CONFIG) is None and cached_hub_file(repo, TRANSFORMERS_CONFIG) is not None:
        return (f"hub repo '{repo}' is a transformers model ({TRANSFORMERS_CONFIG}, no {OPEN_CLIP_CONFIG}); "
                f"use transformers:{repo}")
    return None


@dataclass(frozen=True)
class _Target:
    """Where the weights are, worked out without loading them."""

    source: str               # what from_pretrained gets: a directory or a repo id
    revision: str | None      # hub revision as written (None: the default branch, or a directory)
    weights: str              # for provenance
    key: str                  # identity of the files; part of every cache key
    resolved: Any             # commit hash of the hub snapshot, or {file: sha256[:16]} of a directory
    local_only: bool          # load from the cache without any network call


def _parse(model_id: str, resolve: Callable[[str], Path], memo: Path | None) -> _Target:
    try:
        ref = parse_model_id(model_id)
    except ModelIdError as exc:
        raise UserError(str(exc)) from None
    if ref.kind == "dir":
        problem = check_model_id(model_id, resolve)
        if problem:
            raise UserError(f"model '{model_id}': {problem}")
        path = resolve(str(ref.path))
        files = {p.relative_to(path).as_posix(): _file_digest(p, memo) for p in sorted(path.rglob("*"))
                 if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)}
        key = hashlib.sha256(json.dumps(files, sort_keys=True).encode()).hexdigest()[:16]
        return _Target(str(path), None, str(path), f"transformers-dir:{key}", files, True)
    repo, rev = str(ref.repo), ref.revision
    config = cached_hub_file(repo, TRANSFORMERS_CONFIG, rev)
    if config is None and cached_hub_file(repo, OPEN_CLIP_CONFIG, rev) is not None:
        raise UserError(f"model '{model_id}': hub repo '{repo}' is in open_clip's layout ({OPEN_CLIP_CONFIG}, "
                        f"no {TRANSFORMERS_CONFIG})", fix=f"use hf-hub:{repo}")
    if config is None and not hub_reachable():
        raise DataError(f"model '{model_id}': hub repo '{repo}'{f' at {rev!r}' if rev else ''} is not in the local "
                        "Hugging Face cache and the hub cannot be reached", fix=_offline_fix(repo))
    commit = config.parent.name if config is not None else None  # .../snapshots/<commit>/config.json
    weights = f"{repo}@{commit}" if commit else f"{repo}@{rev or 'main'}"
    # A cached repo loads from the cache alone (as pinned by its snapshot), so that what was
    # recorded is what runs; `huggingface-cli download` again to move to a newer commit.
    return _Target(repo, commit or rev, weights, f"transformers:{weights}", commit, config is not None)


class _Preprocess:
    """PIL image -> one tensor: the image processor's ``pixel_values``, or, for processors that
    return several arrays (SigLIP 2: patches, patch mask, spatial shape), all of them flattened
    into one float tensor that :meth:`unpack` splits again."""

    def __init__(self, processor: Any, names: Sequence[str]) -> None:
        from PIL import Image

        self.processor, self.names = processor, tuple(names)
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.dtypes: dict[str, torch.dtype] = {}
        probe = self._arrays(Image.new("RGB", (37, 23)))  # fixes the layout before any worker forks
        if list(probe) != ["pixel_values"]:
            self.shapes = {k: tuple(v.shape) for k, v in probe.items()}
            self.dtypes = {k: v.dtype for k, v in probe.items()}

    def _arrays(self, image: Any) -> dict[str, torch.Tensor]:
        out = self.processor(images=[image.convert("RGB")], return_tensors="pt")
        return {k: out[k][0] for k in self.names if k in out}

    def __call__(self, image: Any) -> torch.Tensor:
        arrays = self._arrays(image)
        if not self.shapes:
            return arrays["pixel_values"].float()
        return torch.cat([arrays[k].reshape(-1).float() for k in self.shapes])

    def unpack(self, batch: torch.Tensor) -> dict[str, torch.Tensor]:
        """A batch from :meth:`__call__` -> the model's keyword arguments."""
        if not self.shapes:
            return {"pixel_values": batch}
        out, start = {}, 0
        for k, shape in self.shapes.items():
            size = int(np.prod(shape))
            out[k] = batch[:, start:start + size].reshape(len(batch), *shape).to(self.dtypes[k])
            start += size
        return out

    def __repr__(self) -> str:
        return f"{type(self.processor).__name__}({json.dumps(self.processor.to_dict(), sort_keys=True, default=str)})"


def _features(out: Any) -> torch.Tensor:
    """``get_*_features`` returns a tensor (transformers 4) or an output whose ``pooler_output``
    holds the projected features (transformers 5)."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """While loading: no weight-loading bars or init notes from transformers (restored after)."""
    from transformers.utils import logging as hf_logging

    level, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        if bars:
            hf_logging.enable_progress_bar()


def _check_dual_encoder(model: Any, model_id: str) -> None:
    missing = [m for m in FEATURE_METHODS if not callable(getattr(model, m, None))]
    if missing:
        model_type = getattr(model.config, "model_type", "?")
        raise DataError(f"model '{model_id}' is a {type(model).__name__} (model type '{model_type}'), not a "
                        f"dual encoder: it has no {' or '.join(missing)}",
                        fix="use a contrastive image-text model such as CLIP, SigLIP or SigLIP 2")


def _scale_and_bias(model: Any, model_id: str) -> tuple[float, float | None]:
    if getattr(model, "logit_scale", None) is not None:
        scale = float(model.logit_scale.detach().float().exp().reshape(-1)[0])
    elif getattr(model, "temperature", None) is not None:  # ALIGN: logits = cos / temperature
        scale = 1.0 / float(model.temperature.detach().float().reshape(-1)[0])
    else:
        raise DataError(f"model '{model_id}' ({type(model).__name__}) has no logit_scale or temperature",
                        fix="use a contrastive dual encoder such as CLIP, SigLIP or SigLIP 2")
    bias = getattr(model, "logit_bias", None)
    return scale, None if bias is None else float(bias.detach().float().reshape(-1)[0])


class TransformersModel(LazyWeights):
    """A transformers dual encoder with its own image processor, tokenizer, logit_scale and bias.

    Implements :class:`audit.models.base.ImageTextModel` like
    :class:`~audit.models.openclip.OpenClipModel`, including the model-description cache: with
    ``info_cache`` a re-run whose embeddings are all cached does not load the weights.
    """

    #: The optional run settings ``audit.run`` passes to this adapter.
    run_options = ("info_cache", "precision")
    autocast = OpenClipModel.autocast  # one rule for autocast: uses .device and .precision

    def __init__(self, model_id: str, *, name: str | None = None, device: str = "cpu",
                 seed: int = 0, resolve: Callable[[str], Path] | None = None,
                 info_cache: Path | None = None, precision: str = "auto") -> None:
        self.device = pick_device(device)
        self._precision = pick_precision(precision, self.device)
        self._id, self._name, self._seed = model_id, name or model_id, seed
        self._target = _parse(model_id, resolve or (lambda p: Path(p).expanduser().resolve()),
                              None if info_cache is None else Path(info_cache) / "digests")
        self._loaded: tuple[Any, _Preprocess, Any, dict[str, Any]] | None = None
        pinned = info_cache is not None and self._target.resolved is not None
        self._init_info(Path(info_cache) / f"{self._card_key()}.json" if pinned and info_cache else None)

    def _card_key(self) -> str:
        import importlib.metadata as md

        return digest({"id": self._id, "weights": self._target.key, "device": self.device,
                       "precision": self._precision, "transformers": md.version("transformers"),
                       "torch": torch.__version__, "format": 1})

    def _from_pretrained(self) -> tuple[Any, Any, Any]:
        t = self._target
        kwargs: dict[str, Any] = {"revision": t.revision, "local_files_only": t.local_only}
        try:
            from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

            with _quiet_transformers():
                model = AutoModel.from_pretrained(t.source, **kwargs).float()  # autocast decides precision
                _check_dual_encoder(model, self._id)
                tokenizer = AutoTokenizer.from_pretrained(t.source, **kwargs)
                processor = AutoImageProcessor.from_pretrained(t.source, **kwargs)
        except ImportError as exc:
            why = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), type(exc).__name__)
            raise DataError(f"model '{self._id}' needs a package that is not installed: {why}",
                            fix="pip install transformers sentencepiece protobuf") from None
        except (OSError, ValueError, KeyError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            fix = (_offline_fix(t.source) if t.revision is not None or not Path(t.source).is_dir()
                   else f"check that {t.source} holds a complete save_pretrained() model, tokenizer and image processor")
            raise DataError(f"cannot load model '{self._id}' with transformers: {first}", fix=fix) from None
        return model, tokenizer, processor

    def _load(self) -> ModelInfo:
        import transformers

        model, tokenizer, processor = self._from_pretrained()
        model_type = str(getattr(model.config, "model_type", ""))
        scale, bias = _scale_and_bias(model, self._id)
        model.eval().to(self.device)
        names = getattr(processor, "model_input_names", None) or ["pixel_values"]
        preprocess = _Preprocess(processor, names)
        text_config = getattr(model.config, "text_config", None)
        settings = text_settings(model_type, getattr(text_config, "max_position_embeddings", None))
        self._loaded = (model, preprocess, tokenizer, settings)
        t = self._target
        resolved = t.resolved
        if resolved is None:  # downloaded just now: the snapshot it landed in
            hit = cached_hub_file(t.source, TRANSFORMERS_CONFIG, t.revision)
            resolved = hit.parent.name if hit is not None else None
        key = f"transformers:{t.source}@{resolved}" if isinstance(resolved, str) else t.key
        text = {"tokenizer": type(tokenizer).__name__, **settings}
        return ModelInfo(
            id=self._id, name=self._name, scheme="transformers", weights=t.weights,
            cache_key=f"{key}|{preprocess!r}|{json.dumps(text, sort_keys=True)}|{self._precision}",
            logit_scale=scale, logit_bias=bias, random_weights=False, preprocess=repr(preprocess),
            device=self.device, precision=self._precision,
            extra={"transformers_version": transformers.__version__, "model_type": model_type,
                   "model_class": type(model).__name__, "tokenizer": type(tokenizer).__name__,
                   "padding": settings["padding"], "max_length": settings.get("max_length"),
                   "truncation": settings.get("truncation", False),
                   "pipeline_scores": pipeline_scores(model_type), "revision": resolved},
        )

    def encode_images(self, batch: torch.Tensor) -> np.ndarray:
        model, preprocess = self.model, self.preprocess
        inputs = {k: v.to(self.device) for k, v in preprocess.unpack(batch).items()}
        with torch.inference_mode(), self.autocast():
            feats = _features(model.get_image_features(**inputs))
        return l2_normalize(feats.float().cpu().numpy())

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        model, _, tokenizer, settings = self._ensure_loaded()
        tokens = tokenizer(list(texts), return_tensors="pt", **settings).to(self.device)
        with torch.inference_mode(), self.autocast():
            feats = _features(model.get_text_features(**tokens))
        return l2_normalize(feats.float().cpu().numpy())
