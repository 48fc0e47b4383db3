"""The padding-trimmed text encoder equals open_clip's encode_text, and is used only where exact."""

from __future__ import annotations

import copy
import json
import logging

import numpy as np
import pytest
import torch

import open_clip
from audit.models import openclip as oc
from audit.models.openclip import CONFIG_DIR, OpenClipModel
from audit.models.text_trim import trimmed_text_encoder

TINY = json.loads((CONFIG_DIR / "audit-tiny-vit.json").read_text())
PROMPTS = ["a photo of a dog.", "a", "a bad photo of the large cassette player with a scratched lid.",
           "itap of a tench.", " ".join(["word"] * 60)]  # the last one fills the 32-token context


def _model(text_cfg: dict | None = None, custom: bool = False, seed: int = 0):
    cfg = copy.deepcopy(TINY)
    cfg["text_cfg"].update(text_cfg or {})
    torch.manual_seed(seed)
    cls = open_clip.CustomTextCLIP if custom else open_clip.CLIP
    return cls(**cfg).eval()


def _tokens(prompts=PROMPTS):
    return open_clip.tokenize(prompts, context_length=TINY["text_cfg"]["context_length"])


@pytest.mark.parametrize("custom", [False, True], ids=["CLIP", "CustomTextCLIP"])
def test_trimmed_equals_open_clip_encode_text(custom):
    model = _model(custom=custom)
    enc = trimmed_text_encoder(model)
    assert enc is not None
    tokens = _tokens()
    with torch.inference_mode():
        full, trimmed = model.encode_text(tokens), enc(tokens)
    assert full.shape == trimmed.shape == (len(PROMPTS), TINY["embed_dim"])
    torch.testing.assert_close(trimmed, full, rtol=1e-5, atol=1e-5)
    # each prompt alone (its own length) gives the same features as in the mixed batch
    with torch.inference_mode():
        alone = torch.cat([enc(tokens[i:i + 1]) for i in range(len(PROMPTS))])
    torch.testing.assert_close(alone, full, rtol=1e-5, atol=1e-5)


def test_trimmed_runs_only_the_needed_positions():
    model = _model()
    enc = trimmed_text_encoder(model)
    seen = []
    hook = model.transformer.register_forward_hook(lambda m, args, out: seen.append(args[0].shape[1]))
    tokens = _tokens(["a photo of a dog.", "a"])
    with torch.inference_mode():
        enc(tokens)
    hook.remove()
    assert seen == [int(tokens.argmax(-1).max()) + 1] and seen[0] < tokens.shape[1]


def test_eos_pooling_tower_is_trimmed_exactly():
    eos = 7
    model = _model({"pool_type": "eos", "eos_id": eos})
    enc = trimmed_text_encoder(model)
    assert enc is not None
    tokens = torch.zeros(3, TINY["text_cfg"]["context_length"], dtype=torch.long)
    for i, n in enumerate([4, 11, 7]):
        tokens[i, :n - 1] = torch.arange(100, 100 + n - 1)
        tokens[i, n - 1] = eos
    with torch.inference_mode():
        torch.testing.assert_close(enc(tokens), model.encode_text(tokens), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("text_cfg, custom", [
    ({"no_causal_mask": True}, False),                                   # bidirectional: padding is seen
    ({"no_causal_mask": True, "pool_type": "last"}, True),               # SigLIP's tower
    ({"embed_cls": True}, True),                                         # CoCa-style class token
], ids=["no-causal-mask", "siglip-last", "cls-token"])
def test_towers_where_padding_matters_are_not_trimmed(text_cfg, custom):
    assert trimmed_text_encoder(_model(text_cfg, custom=custom)) is None


def test_padding_really_matters_for_a_bidirectional_tower():
    """The reason for the guard: trimming a non-causal tower would change its features."""
    model = _model({"no_causal_mask": True})
    tokens = _tokens(["a photo of a dog."])
    length = int(tokens.argmax(-1).max()) + 1
    with torch.inference_mode():
        full = model.encode_text(tokens)
        x = model.token_embedding(tokens[:, :length]) + model.positional_embedding[:length]
        x = model.ln_final(model.transformer(x))
        cut = x[:, length - 1] @ model.text_projection
    assert (full - cut).abs().max() > 1e-3


def test_adapter_uses_trimmed_encoder_and_records_it():
    tiny = OpenClipModel("audit-tiny-vit:random", seed=0)
    assert tiny.info.extra["text_context"].startswith("trimmed")
    tokens = tiny.tokenizer(PROMPTS)
    with torch.inference_mode():
        full = torch.nn.functional.normalize(tiny.model.encode_text(tokens), dim=-1).numpy()
    np.testing.assert_allclose(tiny.encode_texts(PROMPTS), full, atol=1e-6)
    coca = OpenClipModel("audit-tiny-coca:random", seed=0)
    assert coca.info.extra["text_context"].startswith("full")


def test_adapter_falls_back_when_self_check_disagrees(monkeypatch, caplog):
    real = oc.trimmed_text_encoder
    monkeypatch.setattr(oc, "trimmed_text_encoder", lambda m: (lambda tokens: real(m)(tokens) + 1.0))  # a broken one
    with caplog.at_level(logging.WARNING, logger="audit.models.openclip"):
        tiny = OpenClipModel("audit-tiny-vit:random", seed=0)
    assert tiny.info.extra["text_context"].startswith("full: trimmed encoder failed")
    assert "differs from open_clip's" in caplog.text
    tokens = tiny.tokenizer(PROMPTS)
    with torch.inference_mode():
        full = torch.nn.functional.normalize(tiny.model.encode_text(tokens), dim=-1).numpy()
    np.testing.assert_allclose(tiny.encode_texts(PROMPTS), full, atol=1e-6)
