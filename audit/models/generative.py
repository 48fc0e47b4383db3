"""Generative scoring: a label's score is the model's log-likelihood of its prompts given the image.

The contrastive head scores ``cos(image, text)``. A captioning model such as open_clip's CoCa
can instead be asked how likely it is to *write* each prompt about the image:

    score(image, prompt) = sum_k log p(token_k | tokens_<k, image)      (reduction "sum")
                         = that sum / number of scored tokens          (reduction "mean")
    score(image, label)  = mean over templates of score(image, template(label))
    prediction           = argmax over labels

Which positions count: the tokenizer gives ``[SOT, t_1 .. t_m, EOT, PAD ...]``. The decoder is
fed ``[SOT, t_1 .. t_m]`` (teacher forcing) and scored on ``[t_1 .. t_m, EOT]``: the start token
is conditioning only and never scored (it is always there, its probability means nothing); the
end token IS scored, so a prompt is scored as a whole caption and not as the prefix of a longer
one ("a photo of a cat" vs "a photo of a cat toy"). Padding (id 0) and anything after the first
end token are masked. ``mean`` divides by ``m + 1``.

Averaging log-likelihoods over templates ranks labels by the geometric mean of the template
probabilities, like CLIP's template ensembling averages embeddings rather than probabilities.

Cost: the image tower runs once per image and the unimodal text tower once per prompt; only the
multimodal decoder runs per (image, prompt) pair, i.e. ``images x prompts`` decoder passes of
``prompt length`` tokens each, plus a ``[tokens, vocab]`` output projection per pass.

The model is loaded through :class:`audit.models.openclip.OpenClipModel`, so ids, offline
fast-fail, random init and checkpoints behave exactly as for the contrastive adapter, and the
same loaded CoCa can be audited by its contrastive head (:attr:`CocaScorer.contrastive`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

import open_clip
from audit.errors import UserError
from audit.models.base import ModelInfo
from audit.models.building import local_seed
from audit.models.openclip import OpenClipModel, register_configs

Reduction = Literal["sum", "mean"]
REDUCTIONS: tuple[str, ...] = ("sum", "mean")
PAD_ID = 0
#: Floats of decoder logits held at once (``pairs x positions x vocab``): about 128 MiB in fp32.
LOGIT_BUDGET = 1 << 25


@dataclass(frozen=True)
class GenerativeModelInfo(ModelInfo):
    """:class:`ModelInfo` of a generatively scored model; ``scoring`` states the rule."""

    reduction: str = "sum"

    @property
    def scoring(self) -> str:
        norm = " / n_tokens" if self.reduction == "mean" else ""
        return (f"generative: log p(prompt | image) = sum of token log-probs{norm} under teacher forcing "
                "(start token not scored, end token scored); label score = mean over templates")


@dataclass(frozen=True)
class EncodedPrompts:
    """Prompts tokenized and run through the unimodal text tower, ready for the decoder.

    Shapes use ``T`` prompts and ``n`` = the longest prompt in tokens (SOT..EOT inclusive).
    """

    texts: tuple[str, ...]
    ids: torch.Tensor         # [T, n] token ids, trimmed to the longest prompt
    targets: torch.Tensor     # [T, n-1] next tokens: ids[:, 1:]
    mask: torch.Tensor        # [T, n-1] True where a target is scored (t_1 .. EOT)
    embeddings: torch.Tensor  # [T, n-1, width] text-tower token outputs for ids[:, :-1]

    @property
    def n_tokens(self) -> np.ndarray:
        """Scored tokens per prompt (label tokens + template tokens + EOT)."""
        return self.mask.sum(dim=1).cpu().numpy()


def scored_mask(ids: torch.Tensor, eot_id: int, pad_id: int = PAD_ID) -> torch.Tensor:
    """``[T, n]`` ids -> ``[T, n-1]`` mask over targets ``ids[:, 1:]``: not padding, not after EOT."""
    targets = ids[:, 1:]
    is_eot = (targets == eot_id).long()
    after_eot = (is_eot.cumsum(dim=1) - is_eot) > 0
    return (targets != pad_id) & ~after_eot


def label_scores(per_prompt_scores: np.ndarray, n_labels: int, n_templates: int) -> np.ndarray:
    """``[B, L*T]`` prompt scores, label-major (as ``Vocabulary.prompts()`` flattened) -> ``[B, L]``.

    Column ``i * n_templates + j`` is template ``j`` filled with label ``i``; the label score is
    the mean over its templates.
    """
    scores = np.asarray(per_prompt_scores)
    if scores.ndim != 2 or scores.shape[1] != n_labels * n_templates:
        raise ValueError(f"expected [images, {n_labels} labels x {n_templates} templates = "
                         f"{n_labels * n_templates}], got shape {scores.shape}")
    return scores.reshape(scores.shape[0], n_labels, n_templates).mean(axis=2)


def check_reduction(reduction: str) -> Reduction:
    if reduction not in REDUCTIONS:
        raise UserError(f"unknown reduction '{reduction}' for generative scoring",
                        fix="use 'sum' (log-likelihood of the prompt) or 'mean' (per token)")
    return reduction  # type: ignore[return-value]


def is_generative_arch(arch: str) -> bool:
    """Whether an open_clip architecture has a text decoder (CoCa)."""
    cfg = open_clip.get_model_config(arch)
    return bool(cfg and cfg.get("multimodal_cfg"))


class CocaScorer:
    """Scores prompts by an open_clip CoCa model's caption log-likelihood given the image.

    Args:
        model_id: an :class:`OpenClipModel` id with a CoCa architecture, e.g.
            ``coca_ViT-B-32:laion2b_s13b_b90k``, ``coca_ViT-B-32:/path/ckpt.pt``,
            ``audit-tiny-coca:random``.
        reduction: default reduction of :meth:`score` (``sum`` or ``mean``); recorded in ``info``.
        pair_batch: most (image, prompt) pairs per decoder pass (fewer when logits would
            exceed :data:`LOGIT_BUDGET`).
        adapter: an already loaded :class:`OpenClipModel` to share with the contrastive audit
            (``model_id``, ``device``, ``seed``, ``resolve``, ``precision`` are then ignored).
        precision: ``auto``, ``fp32``, ``amp_bf16`` or ``amp_fp16`` (see ``OpenClipModel``).
    """

    #: The optional run settings ``audit.run`` passes to this adapter.
    run_options = ("precision",)

    def __init__(self, model_id: str = "", *, name: str | None = None, device: str = "cpu", seed: int = 0,
                 resolve: Callable[[str], Path] | None = None, reduction: str = "sum",
                 pair_batch: int = 64, adapter: OpenClipModel | None = None, precision: str = "auto") -> None:
        self.reduction = check_reduction(reduction)
        if adapter is None:
            register_configs()
            arch, _, weights = model_id.partition(":")
            # refuse a non-CoCa architecture before loading (or downloading) any weights
            if weights and arch in open_clip.list_models() and not is_generative_arch(arch):
                raise _not_generative(model_id)
            adapter = OpenClipModel(model_id, name=name, device=device, seed=seed, resolve=resolve,
                                    precision=precision)
        if not hasattr(adapter.model, "text_decoder"):
            raise _not_generative(adapter.info.id)
        self.contrastive = adapter
        self.model = adapter.model
        self.tokenizer = adapter.tokenizer
        self.preprocess = adapter.preprocess
        self.device = adapter.device
        self.pair_batch = pair_batch
        self.eot_id = int(getattr(self.tokenizer, "eot_token_id", 49407))
        self.sot_id = int(getattr(self.tokenizer, "sot_token_id", 49406))
        self.pad_id = int(getattr(self.model, "pad_id", PAD_ID))
        base = {f.name: getattr(adapter.info, f.name) for f in fields(ModelInfo)}
        base["name"] = name or adapter.info.name
        base["extra"] = {**adapter.info.extra, "reduction": self.reduction,
                         "scored_positions": "tokens after SOT through EOT inclusive; padding masked"}
        if adapter.info.random_weights:
            base["extra"]["decoder_projection"] = _init_decoder_projection(self.model, seed)
        self.info = GenerativeModelInfo(**base, reduction=self.reduction)

    # -- the two towers, each run once per input ---------------------------------------------
    def image_tokens(self, batch: torch.Tensor) -> torch.Tensor:
        """Preprocessed images ``[B, 3, H, W]`` -> the decoder's image tokens ``[B, Q, width]``."""
        with torch.inference_mode(), self.contrastive.autocast():
            out = self.model.visual(batch.to(self.device, non_blocking=True))
        if not isinstance(out, tuple):
            raise UserError(f"model '{self.info.id}': its vision tower returns no tokens",
                            fix="generative scoring needs a CoCa config with vision_cfg.output_tokens: true")
        return out[1]

    def encode_prompts(self, texts: Sequence[str], batch: int = 256) -> EncodedPrompts:
        """Tokenize and run the unimodal text tower once per prompt (independent of images)."""
        ids = self.tokenizer(list(texts))
        valid = ids != self.pad_id
        n = int(valid.long().cumsum(dim=1).argmax(dim=1).max().item()) + 1 if len(texts) else 2
        ids = ids[:, :max(n, 2)]  # causal towers: positions up to n do not see what follows
        parts = []
        with torch.inference_mode(), self.contrastive.autocast():
            for start in range(0, len(texts), batch):
                chunk = ids[start:start + batch].to(self.device)
                parts.append(self.model.text(chunk)[1][:, :-1])
        width = self.model.text_decoder.width
        emb = torch.cat(parts) if parts else torch.empty(0, ids.shape[1] - 1, width, device=self.device)
        return EncodedPrompts(tuple(texts), ids, ids[:, 1:], scored_mask(ids, self.eot_id, self.pad_id), emb)

    # -- scoring ---------------------------------------------------------------------------------
    def score_tokens(self, image_tokens: torch.Tensor, prompts: EncodedPrompts,
                     reduction: str | None = None) -> np.ndarray:
        """Image tokens ``[B, Q, W]`` x encoded prompts -> ``[B, T]`` float64 log-likelihoods."""
        reduction = check_reduction(reduction or self.reduction)
        n_img, n_txt = image_tokens.shape[0], len(prompts.texts)
        sums = np.zeros(n_img * n_txt, dtype=np.float64)
        if n_img and n_txt:
            vocab = self.model.text_decoder.text_projection.shape[1]
            step = max(1, min(self.pair_batch, LOGIT_BUDGET // (prompts.targets.shape[1] * vocab)))
            targets, mask = prompts.targets.to(self.device), prompts.mask.to(self.device)
            for start in range(0, n_img * n_txt, step):
                pairs = torch.arange(start, min(start + step, n_img * n_txt), device=self.device)
                sums[start:start + len(pairs)] = self._pair_sums(
                    image_tokens[pairs // n_txt], prompts.embeddings, targets, mask, pairs % n_txt)
        scores = sums.reshape(n_img, n_txt)
        if reduction == "mean":
            scores = scores / np.maximum(prompts.n_tokens, 1)[None, :]
        return scores

    def _pair_sums(self, img: torch.Tensor, emb: torch.Tensor, targets: torch.Tensor,
                   mask: torch.Tensor, which: torch.Tensor) -> np.ndarray:
        m = mask[which]
        n = int(m.any(dim=0).nonzero().max().item()) + 1  # trim to the longest prompt of this chunk
        with torch.inference_mode(), self.contrastive.autocast():
            logits = self.model.text_decoder(img, emb[which, :n])
        logits = logits.float()
        tgt = targets[which, :n]
        logp = logits.gather(-1, tgt.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
        return (logp.double() * m[:, :n]).sum(dim=1).cpu().numpy()

    def score(self, images_batch: torch.Tensor, texts: Sequence[str] | EncodedPrompts,
              reduction: str | None = None) -> np.ndarray:
        """``log p(text | image)`` for every image and text: ``[B, T]`` float64.

        Args:
            images_batch: preprocessed images ``[B, 3, H, W]`` (``self.preprocess``).
            texts: prompt strings, or :meth:`encode_prompts` output to reuse across batches.
            reduction: ``sum`` over scored tokens, or their ``mean``; default ``self.reduction``.
        """
        prompts = texts if isinstance(texts, EncodedPrompts) else self.encode_prompts(texts)
        return self.score_tokens(self.image_tokens(images_batch), prompts, reduction)

    def prompt_encoder(self, prompts: Sequence[str]) -> PromptScoreEncoder:
        """An :class:`~audit.models.base.ImageTextModel`-shaped view for ``embed_images``."""
        return PromptScoreEncoder(self, prompts)


class PromptScoreEncoder:
    """Per-image summed log-likelihoods of a fixed prompt list, shaped like image embeddings.

    ``encode_images`` returns ``[B, P]`` float32 *sums* (``mean`` = sum / :attr:`n_tokens`, which
    depends on the text only), so ``audit.embed.embed_images`` and its ``ImageStore`` cache them
    unchanged; ``info.cache_key`` covers the model and the exact prompt list.
    """

    def __init__(self, scorer: CocaScorer, prompts: Sequence[str]) -> None:
        import hashlib
        import json

        self.scorer = scorer
        self.prompts = scorer.encode_prompts(prompts)
        self.preprocess = scorer.preprocess
        self.device = scorer.device
        digest = hashlib.sha256(json.dumps(list(prompts)).encode()).hexdigest()[:16]
        base = {f.name: getattr(scorer.info, f.name) for f in fields(GenerativeModelInfo)}
        base["cache_key"] = f"{scorer.info.cache_key}|generative-sum|prompts:{digest}"
        self.info = GenerativeModelInfo(**{**base, "reduction": "sum"})

    @property
    def n_tokens(self) -> np.ndarray:
        return self.prompts.n_tokens

    def encode_images(self, batch: torch.Tensor) -> np.ndarray:
        return self.scorer.score(batch, self.prompts, "sum").astype(np.float32)


def _init_decoder_projection(model: Any, seed: int) -> str:
    """Give a randomly initialized CoCa a defined vocabulary projection.

    open_clip 3.3 allocates ``text_decoder.text_projection`` with ``torch.empty`` and never
    initializes it (``MultimodalTransformer.init_parameters`` raises AttributeError), so a random
    CoCa's decoder logits are whatever memory held: often all zeros, i.e. uniform over the vocab.
    """
    proj = model.text_decoder.text_projection
    with local_seed(seed), torch.no_grad():
        torch.nn.init.normal_(proj, std=proj.shape[0] ** -0.5)
    return f"normal(0, width^-0.5), seed {seed} (open_clip leaves it uninitialized)"


def _not_generative(model_id: str) -> UserError:
    return UserError(f"model '{model_id}' has no text decoder, so it cannot be scored generatively",
                     fix="use scoring: contrastive for it, or a CoCa model (e.g. coca_ViT-B-32:laion2b_s13b_b90k)")


__all__ = ["CocaScorer", "EncodedPrompts", "GenerativeModelInfo", "PromptScoreEncoder", "REDUCTIONS",
           "Reduction", "check_reduction", "is_generative_arch", "label_scores", "scored_mask"]
