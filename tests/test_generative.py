"""Generative (captioning log-likelihood) scoring on a tiny random-weight CoCa, checked independently."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
import torch
from PIL import Image

from audit.errors import EXIT_DATA, DataError, UserError
from audit.models.generative import CocaScorer, label_scores, scored_mask
from audit.provenance import model_record

TEXTS = ["a photo of a cat.", "a dog", "a blurry photo of a red bicycle leaning on a wall"]


@pytest.fixture(scope="module")
def scorer() -> CocaScorer:
    return CocaScorer("audit-tiny-coca:random", seed=0)


@pytest.fixture(scope="module")
def images(scorer: CocaScorer) -> torch.Tensor:
    return torch.stack([scorer.preprocess(Image.new("RGB", (40, 30), c)) for c in ("red", "navy")])


def token_by_token(scorer: CocaScorer, images: torch.Tensor, text: str) -> tuple[np.ndarray, int]:
    """Per image, sum of log p(next token | prefix, image) from the model's own forward, one prefix at a time."""
    ids = scorer.tokenizer([text]).expand(len(images), -1)
    eot = int((ids[0] == scorer.eot_id).nonzero()[0])
    total = np.zeros(len(images))
    with torch.no_grad():
        for k in range(1, eot + 1):  # targets t_1 .. EOT; SOT (position 0) is never a target
            logits = scorer.model(images, ids[:, :k], output_labels=False)["logits"][:, -1]
            total += torch.log_softmax(logits.double(), dim=-1)[:, ids[0, k]].numpy()
    return total, eot


def test_batched_score_matches_token_by_token_forward(scorer, images):
    got_sum = scorer.score(images, TEXTS, "sum")
    got_mean = scorer.score(images, TEXTS, "mean")
    assert got_sum.shape == (2, 3) and got_sum.dtype == np.float64
    for t, text in enumerate(TEXTS):
        want, n = token_by_token(scorer, images, text)
        np.testing.assert_allclose(got_sum[:, t], want, atol=1e-4)
        np.testing.assert_allclose(got_mean[:, t], want / n, atol=1e-5)
    assert not np.allclose(got_sum[0], got_sum[1]), "scores must depend on the image"


def test_trimmed_score_matches_open_clips_padded_teacher_forcing(scorer, images):
    ids = scorer.tokenizer(TEXTS)  # full context, as open_clip trains the caption loss
    with torch.no_grad():
        out = scorer.model(images[:1].expand(len(TEXTS), -1, -1, -1), ids)
    logp = torch.log_softmax(out["logits"].double(), dim=-1).gather(-1, out["labels"][..., None])[..., 0]
    eot = (ids == scorer.eot_id).long().argmax(dim=1)
    want = [float(logp[t, :eot[t]].sum()) for t in range(len(TEXTS))]  # labels t_1 .. EOT
    np.testing.assert_allclose(scorer.score(images[:1], TEXTS)[0], want, atol=1e-4)


def test_padding_and_batching_do_not_change_scores(scorer, images):
    alone = scorer.score(images, ["a dog"])[:, 0]
    mixed = scorer.score(images, ["a dog", TEXTS[2], "a dog in the snow at night"])[:, 0]
    np.testing.assert_allclose(alone, mixed, atol=1e-4)
    one_pair = CocaScorer(adapter=scorer.contrastive, seed=0, pair_batch=1)
    np.testing.assert_allclose(one_pair.score(images, TEXTS), scorer.score(images, TEXTS), atol=1e-4)


def test_encoded_prompts_are_reusable_across_image_batches(scorer, images):
    prompts = scorer.encode_prompts(TEXTS)
    np.testing.assert_allclose(scorer.score(images, prompts), scorer.score(images, TEXTS), atol=1e-9)
    both = scorer.score_tokens(scorer.image_tokens(images), prompts)
    np.testing.assert_allclose(both[1:], scorer.score(images[1:], prompts), atol=1e-4)


def test_scored_positions_are_text_tokens_and_eot_not_sot_or_padding(scorer):
    prompts = scorer.encode_prompts(TEXTS)
    lengths = [len(scorer.tokenizer.encode(t)) for t in TEXTS]  # BPE tokens without SOT/EOT
    assert prompts.n_tokens.tolist() == [n + 1 for n in lengths]  # + EOT
    assert prompts.ids.shape[1] == max(lengths) + 2  # trimmed to SOT + longest + EOT
    ids = torch.tensor([[49406, 5, 6, 49407, 0, 0], [49406, 7, 49407, 9, 9, 0]])
    assert scored_mask(ids, 49407).tolist() == [[True, True, True, False, False],
                                                [True, True, False, False, False]]


def test_mean_is_sum_over_scored_tokens_exactly(scorer, images):
    prompts = scorer.encode_prompts(TEXTS)
    np.testing.assert_array_equal(scorer.score(images, prompts, "mean"),
                                  scorer.score(images, prompts, "sum") / prompts.n_tokens)


class ConstantDecoder(torch.nn.Module):
    """Logits that ignore the image: ``boost`` on one token id, 0 elsewhere."""

    def __init__(self, vocab: int, token: int, boost: float) -> None:
        super().__init__()
        self.text_projection = torch.nn.Parameter(torch.zeros(1, vocab))
        self.width, self.token, self.boost = 1, token, boost

    def forward(self, image_embs: torch.Tensor, text_embs: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*text_embs.shape[:2], self.text_projection.shape[1])
        logits[..., self.token] = self.boost
        return logits


@contextmanager
def swapped_decoder(model: torch.nn.Module, decoder: torch.nn.Module) -> Iterator[None]:
    """``model.text_decoder = decoder`` for the block. (Not monkeypatch: a submodule lives in
    ``_modules``, not the instance ``__dict__``, and pytest >= 9.2 undoes such a patch with delattr.)"""
    old = model.text_decoder
    model.text_decoder = decoder
    try:
        yield
    finally:
        model.text_decoder = old


def test_sum_and_mean_rank_hand_made_cases(scorer, images):
    vocab = scorer.model.text_decoder.text_projection.shape[1]
    cat = scorer.tokenizer.encode("cat")[0]
    assert scorer.tokenizer.encode("cat cat cat") == [cat] * 3
    # uniform logits: every token costs log V, so sum = -n log V and mean = -log V
    with swapped_decoder(scorer.model, ConstantDecoder(vocab, cat, 0.0)):
        s, m = scorer.score(images, ["cat", "cat cat cat"], "sum"), scorer.score(images, ["cat", "cat cat cat"], "mean")
    np.testing.assert_allclose(s, [[-2 * math.log(vocab), -4 * math.log(vocab)]] * 2, rtol=1e-6)
    np.testing.assert_allclose(m, -math.log(vocab), rtol=1e-6)
    # 'cat' likely (p_cat >> p_eot): the longer text has the lower sum but the higher mean
    with swapped_decoder(scorer.model, ConstantDecoder(vocab, cat, 12.0)):
        s, m = scorer.score(images, ["cat", "cat cat cat"], "sum"), scorer.score(images, ["cat", "cat cat cat"], "mean")
    z = math.exp(12.0) + vocab - 1
    lp_cat, lp_eot = 12.0 - math.log(z), -math.log(z)
    np.testing.assert_allclose(s[0], [lp_cat + lp_eot, 3 * lp_cat + lp_eot], rtol=1e-5)
    np.testing.assert_allclose(m[0], [(lp_cat + lp_eot) / 2, (3 * lp_cat + lp_eot) / 4], rtol=1e-5)
    assert s[0, 0] > s[0, 1] and m[0, 1] > m[0, 0]
    assert not isinstance(scorer.model.text_decoder, ConstantDecoder)  # restored for the tests sharing the scorer


def test_label_scores_average_templates_label_major():
    per_prompt = np.array([[1.0, 3.0, -2.0, -4.0, 10.0, 0.0],
                           [0.0, 0.0, 5.0, 7.0, -1.0, -1.0]])  # 3 labels x 2 templates
    want = np.array([[(1 + 3) / 2, (-2 - 4) / 2, (10 + 0) / 2],
                     [0.0, (5 + 7) / 2, -1.0]])
    np.testing.assert_array_equal(label_scores(per_prompt, 3, 2), want)
    assert label_scores(per_prompt, 3, 2).argmax(axis=1).tolist() == [2, 1]
    with pytest.raises(ValueError, match="3 labels x 3 templates"):
        label_scores(per_prompt, 3, 3)


def test_info_records_generative_rule_and_reduction(scorer):
    record = model_record(CocaScorer(adapter=scorer.contrastive, reduction="mean").info)
    assert record["scoring"].startswith("generative: log p(prompt | image)") and "/ n_tokens" in record["scoring"]
    assert record["reduction"] == "mean" and record["random_weights"] is True
    assert "decoder_projection" in record
    assert "softmax" in scorer.contrastive.info.scoring  # the same CoCa, audited contrastively


def test_random_decoder_is_initialized_and_deterministic(scorer, images):
    proj = scorer.model.text_decoder.text_projection
    assert float(proj.detach().abs().max()) > 0 and torch.isfinite(proj.detach()).all()
    again = CocaScorer("audit-tiny-coca:random", seed=0)
    np.testing.assert_array_equal(again.score(images, TEXTS), scorer.score(images, TEXTS))


def test_prompt_encoder_caches_sums_under_a_prompt_specific_key(scorer, images):
    enc = scorer.prompt_encoder(TEXTS)
    np.testing.assert_allclose(enc.encode_images(images), scorer.score(images, TEXTS, "sum"), rtol=1e-6)
    assert enc.encode_images(images).dtype == np.float32
    assert enc.info.cache_key != scorer.prompt_encoder(TEXTS[:2]).info.cache_key
    assert enc.n_tokens.tolist() == scorer.encode_prompts(TEXTS).n_tokens.tolist()


def test_offline_pretrained_coca_fails_fast_naming_the_weights():
    start = time.monotonic()
    with pytest.raises(DataError) as err:
        CocaScorer("coca_ViT-B-32:laion2b_s13b_b90k")
    assert time.monotonic() - start < 5
    assert err.value.exit_code == EXIT_DATA == 3
    assert "weights for 'coca_ViT-B-32:laion2b_s13b_b90k' are not in the local cache" in err.value.message
    assert "pretrained tag 'laion2b_s13b_b90k'" in err.value.message


def test_non_coca_models_and_bad_reduction_are_user_errors(scorer):
    with pytest.raises(UserError, match="'ViT-B-32:openai' has no text decoder"):
        CocaScorer("ViT-B-32:openai")  # refused before any weight lookup
    with pytest.raises(UserError, match="'audit-tiny-vit:random' has no text decoder"):
        CocaScorer("audit-tiny-vit:random")
    with pytest.raises(UserError, match="unknown reduction 'max'"):
        CocaScorer(adapter=scorer.contrastive, reduction="max")
