"""The zero-shot head against independent computations and open_clip's own classifier builder."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from audit.classify import class_weights, collapse_max, top_k, zero_shot_scores


def test_class_weights_normalize_average_renormalize():
    rng = np.random.default_rng(0)
    emb = rng.normal(size=(4, 3, 8)).astype(np.float32) * rng.uniform(0.5, 3, size=(4, 3, 1))
    w = class_weights(emb)
    unit = emb / np.linalg.norm(emb, axis=2, keepdims=True)
    expected = unit.mean(1) / np.linalg.norm(unit.mean(1), axis=1, keepdims=True)
    np.testing.assert_allclose(w, expected, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), 1, atol=1e-6)
    # permuting templates leaves the class weights unchanged
    np.testing.assert_allclose(class_weights(emb[:, [2, 0, 1]]), w, atol=1e-6)


def test_scores_and_topk_with_ties_and_bias():
    img = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    w = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    s = zero_shot_scores(img, w, 10.0)
    np.testing.assert_allclose(s, [[10, 10, 0], [0, 0, 10]])
    assert top_k(s, 2).tolist() == [[0, 1], [2, 0]]  # tie -> lower index first
    np.testing.assert_allclose(zero_shot_scores(img, w, 10.0, -3.0), s - 3)


def test_collapse_max():
    s = np.array([[0.1, 0.9, 0.3, 0.2]])
    assert collapse_max(s, [[0, 2], [1, 3]]).tolist() == [[0.3, 0.9]]


def test_agrees_with_open_clip_build_zero_shot_classifier():
    import open_clip
    from open_clip.zero_shot_classifier import build_zero_shot_classifier

    from audit.labels import fill
    from audit.models.openclip import OpenClipModel

    model = OpenClipModel("audit-tiny-vit:random")
    names = ["thief", "child", "gorilla", "East Asian man"]
    templates = ["a photo of a {}.", "a close-up photo of a {c}.", "{} in the wild"]
    prompts = [fill(t, n) for n in names for t in templates]
    ours = class_weights(model.encode_texts(prompts).reshape(len(names), len(templates), -1))
    theirs = build_zero_shot_classifier(
        model.model, tokenizer=open_clip.get_tokenizer("audit-tiny-vit"), classnames=names,
        templates=[(lambda c, t=t: fill(t, c)) for t in templates], num_classes_per_batch=2,
        device="cpu", use_tqdm=False,
    )
    np.testing.assert_allclose(ours, theirs.T.numpy(), atol=1e-5)
    images = torch.randn(6, 3, 32, 32)
    feats = model.encode_images(images)
    with torch.no_grad():
        ref = model.model.encode_image(images)
        ref = ref / ref.norm(dim=-1, keepdim=True)
        ref_logits = (model.model.logit_scale.exp() * ref @ theirs).numpy()
    np.testing.assert_allclose(zero_shot_scores(feats, ours, model.info.logit_scale), ref_logits, atol=1e-3)
    assert top_k(zero_shot_scores(feats, ours, model.info.logit_scale), 1)[:, 0].tolist() == ref_logits.argmax(1).tolist()


def test_shape_check():
    with pytest.raises(ValueError):
        class_weights(np.zeros((2, 3)))
