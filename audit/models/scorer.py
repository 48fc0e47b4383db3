"""The one model loop's seam: a :class:`Scorer` turns a dataset's images and a vocabulary into scores.

``audit.run`` calls every model through this protocol without asking what kind it is:

* :meth:`Scorer.features` -- per-image features of one dataset, through the cache (embeddings
  for a contrastive model, prompt log-likelihoods for a generative one, each under its own cache
  kind);
* :meth:`Scorer.scores` -- for one vocabulary (labels x templates), the ``[images, labels]`` score
  matrix of the template ensemble and of each template alone;
* :meth:`Scorer.embedding_space` -- image embeddings and a text encoder in the same space, for
  retrieval, or None when the model has none (generative scoring).

:class:`ContrastiveScorer` wraps ANY :class:`~audit.models.base.ImageTextModel` (open_clip,
transformers, test fakes); :class:`GenerativeScorer` wraps a CoCa label-likelihood scorer. Which
one a model gets is decided by its spec (``ModelSpec.scoring``, :data:`SCORINGS`); which adapter
class loads it by its id's scheme (``audit.registries.MODEL_SCHEMES``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from audit.cache import ImageStore, ScoreStore, TextStore, models_dir
from audit.classify import class_weights, zero_shot_scores
from audit.data.base import LoadedDataset
from audit.embed import EmbedJob, embed_texts, embed_through_cache
from audit.labels import Vocabulary
from audit.models.base import ImageTextModel, ModelInfo

if TYPE_CHECKING:
    from audit.models.generative import CocaScorer
    from audit.spec import ModelSpec

#: ``prompts -> [prompts, D]`` unit text embeddings (through the model's text cache).
TextEncoder = Callable[[Sequence[str]], np.ndarray]


@dataclass(frozen=True)
class ImageFeatures:
    """Per-image features of one dataset for one model; unreadable images are left out.

    ``columns`` names the columns of ``values`` when they are not embedding dimensions (a
    generative scorer's prompts), with ``column_tokens`` their scored token counts.
    """

    values: np.ndarray                      # [readable images, D or prompts]
    rows: np.ndarray                        # metadata row of each readable image
    errors: dict[int, str]                  # row -> why it was skipped
    computed_shards: int                    # cache shards encoded now (0: all from the cache)
    columns: tuple[str, ...] = ()
    column_tokens: np.ndarray | None = None


@dataclass(frozen=True)
class VocabScores:
    """``[images, labels]`` scores of one vocabulary: the template ensemble and each template alone."""

    ensemble: np.ndarray
    template: Callable[[int], np.ndarray]
    prompts_encoded: int = 0


class Scorer(Protocol):
    """What ``audit.run`` needs from a model, whatever its kind."""

    info: ModelInfo

    def features(self, data: LoadedDataset, vocabs: Sequence[Vocabulary], job: EmbedJob,
                 desc: str) -> ImageFeatures | None:
        """Features of every image through the cache (None on torchrun ranks other than 0)."""
        ...

    def scores(self, features: ImageFeatures, vocab: Vocabulary) -> VocabScores:
        """Scores of ``vocab``'s labels for the images of ``features``."""
        ...

    def embedding_space(self, features: ImageFeatures) -> tuple[np.ndarray, TextEncoder] | None:
        """Unit image embeddings and a text encoder in the same space, or None."""
        ...


def _fingerprint_key(model_key: str, data: LoadedDataset) -> dict[str, Any]:
    return {"model": model_key, "dataset": data.info.fingerprint}


class ContrastiveScorer:
    """``logit_scale * cos(image, class weight) (+ logit_bias)`` for any :class:`ImageTextModel`."""

    def __init__(self, model: ImageTextModel, root: Path, *, quiet: bool = False) -> None:
        self.model = model
        self.info = model.info
        self.texts = TextStore(root, model.info.cache_key)
        self.root = root
        self.quiet = quiet

    def features(self, data: LoadedDataset, vocabs: Sequence[Vocabulary], job: EmbedJob,
                 desc: str) -> ImageFeatures | None:
        store = ImageStore(self.root, _fingerprint_key(self.info.cache_key, data), shard_rows=job.shard_rows)
        res = embed_through_cache(self.model, data, store, job, desc)
        if res is None:
            return None
        return ImageFeatures(res.embeddings[res.ok], np.flatnonzero(res.ok), res.errors, res.computed_shards)

    def encode_texts(self, prompts: Sequence[str]) -> tuple[np.ndarray, int]:
        return embed_texts(self.model, prompts, self.texts, quiet=self.quiet)

    def scores(self, features: ImageFeatures, vocab: Vocabulary) -> VocabScores:
        flat, n_new = self.encode_texts([p for row in vocab.prompts() for p in row])
        prompt_emb = flat.reshape(len(vocab.labels), len(vocab.templates), -1)
        scale, bias = self.info.logit_scale, self.info.logit_bias

        def one(t: int) -> np.ndarray:
            return zero_shot_scores(features.values, class_weights(prompt_emb[:, t:t + 1]), scale, bias)

        return VocabScores(zero_shot_scores(features.values, class_weights(prompt_emb), scale, bias), one, n_new)

    def embedding_space(self, features: ImageFeatures) -> tuple[np.ndarray, TextEncoder]:
        return features.values, lambda prompts: self.encode_texts(prompts)[0]


class GenerativeScorer:
    """Label likelihood: ``log p(prompt | image)``, averaged over templates per label (CoCa)."""

    def __init__(self, scorer: CocaScorer, root: Path) -> None:
        self.scorer = scorer
        self.info = scorer.info
        self.root = root

    def features(self, data: LoadedDataset, vocabs: Sequence[Vocabulary], job: EmbedJob,
                 desc: str) -> ImageFeatures | None:
        prompts = list(dict.fromkeys(p for v in vocabs for row in v.prompts() for p in row))
        encoder = self.scorer.prompt_encoder(prompts)  # one decoder pass per image x distinct prompt
        store = ScoreStore(self.root, _fingerprint_key(encoder.info.cache_key, data), shard_rows=job.shard_rows)
        res = embed_through_cache(encoder, data, store, job, desc)
        if res is None:
            return None
        return ImageFeatures(res.embeddings[res.ok], np.flatnonzero(res.ok), res.errors, res.computed_shards,
                             columns=tuple(prompts), column_tokens=encoder.n_tokens)

    def scores(self, features: ImageFeatures, vocab: Vocabulary) -> VocabScores:
        from audit.models.generative import label_scores

        index = {p: i for i, p in enumerate(features.columns)}
        cols = [index[p] for row in vocab.prompts() for p in row]  # label-major
        per_prompt = features.values[:, cols].astype(np.float64)
        if self.scorer.reduction == "mean" and features.column_tokens is not None:
            per_prompt = per_prompt / features.column_tokens[cols]
        n_labels, n_templates = len(vocab.labels), len(vocab.templates)
        cube = per_prompt.reshape(len(per_prompt), n_labels, n_templates)
        return VocabScores(label_scores(per_prompt, n_labels, n_templates), lambda t: cube[:, :, t])

    def embedding_space(self, features: ImageFeatures) -> None:
        return None


@dataclass(frozen=True)
class ScorerSettings:
    """Run settings every scorer is built with."""

    root: Path                  # the cache root (``audit.cache.cache_root``)
    device: str = "cpu"
    seed: int = 0
    precision: str = "auto"
    quiet: bool = False


def _offered(adapter: Any, settings: ScorerSettings) -> dict[str, Any]:
    """The optional run settings an adapter declares it takes (``run_options``)."""
    offered = {"info_cache": models_dir(settings.root), "precision": settings.precision}
    return {k: offered[k] for k in getattr(adapter, "run_options", ()) if k in offered}


def _contrastive(mspec: ModelSpec, resolve: Callable[[str], Path], s: ScorerSettings) -> Scorer:
    from audit.registries import MODEL_SCHEMES, model_scheme

    adapter = MODEL_SCHEMES.get(model_scheme(mspec.id))
    model = adapter(mspec.id, name=mspec.display_name, device=s.device, seed=s.seed, resolve=resolve,
                    **_offered(adapter, s))
    return ContrastiveScorer(model, s.root, quiet=s.quiet)


def _generative(mspec: ModelSpec, resolve: Callable[[str], Path], s: ScorerSettings) -> Scorer:
    from audit.models.generative import CocaScorer

    coca = CocaScorer(mspec.id, name=mspec.display_name, device=s.device, seed=s.seed, resolve=resolve,
                      reduction=mspec.reduction or "sum", **_offered(CocaScorer, s))
    return GenerativeScorer(coca, s.root)


#: ``ModelSpec.scoring`` -> how such a model is built.
SCORINGS: dict[str, Callable[[ModelSpec, Callable[[str], Path], ScorerSettings], Scorer]] = {
    "contrastive": _contrastive,
    "generative": _generative,
}


def build_scorer(mspec: ModelSpec, resolve: Callable[[str], Path], settings: ScorerSettings) -> Scorer:
    """Load the model of ``mspec`` behind the scorer its ``scoring`` field names.

    Raises:
        DataError: the weights cannot be found or loaded.
        UserError: the id names something that does not exist.
    """
    return SCORINGS[mspec.scoring](mspec, resolve, settings)


def check_available(mspec: ModelSpec, resolve: Callable[[str], Path], seed: int = 0) -> None:
    """Raise what loading ``mspec`` would raise for missing weights, without loading them, where
    its adapter can tell (``check_available`` on the adapter class); otherwise do nothing."""
    from audit.registries import MODEL_SCHEMES, model_scheme

    adapter = MODEL_SCHEMES.get(model_scheme(mspec.id))
    check = getattr(adapter, "check_available", None)
    if check is not None:
        check(mspec.id, seed=seed, resolve=resolve)


__all__ = ["ContrastiveScorer", "GenerativeScorer", "ImageFeatures", "SCORINGS", "Scorer", "ScorerSettings",
           "TextEncoder", "VocabScores", "build_scorer", "check_available"]
