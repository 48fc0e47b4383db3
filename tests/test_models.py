"""The open_clip adapter on real open_clip factories: tiny config, local checkpoints, offline errors."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from PIL import Image

from audit.errors import DataError, UserError
from audit.models.openclip import CONFIG_DIR, OpenClipModel, register_configs


@pytest.fixture(scope="module")
def tiny() -> OpenClipModel:
    return OpenClipModel("audit-tiny-vit:random", seed=0, device="cpu")


def test_tiny_model_embeddings_are_unit_norm(tiny):
    batch = torch.stack([tiny.preprocess(Image.new("RGB", (40, 30), c)) for c in ("red", "blue", "white")])
    emb = tiny.encode_images(batch)
    assert emb.shape == (3, 64) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    text = tiny.encode_texts(["a photo of a thief.", "a photo of a child."])
    np.testing.assert_allclose(np.linalg.norm(text, axis=1), 1.0, atol=1e-5)


def test_model_info_uses_models_own_logit_scale(tiny):
    assert tiny.info.logit_scale == pytest.approx(float(tiny.model.logit_scale.detach().exp()))
    assert tiny.info.logit_bias is None
    assert tiny.info.random_weights is True
    assert "softmax" in tiny.info.scoring


def test_random_init_is_deterministic_and_leaves_global_rng_alone(tiny):
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    other = OpenClipModel("audit-tiny-vit:random", seed=0)
    after = torch.rand(1)
    assert torch.equal(before, after), "model init must not consume the caller's RNG"
    np.testing.assert_array_equal(other.encode_texts(["x"]), tiny.encode_texts(["x"]))
    third = OpenClipModel("audit-tiny-vit:random", seed=1)
    assert not np.allclose(third.encode_texts(["x"]), tiny.encode_texts(["x"]))


def test_local_checkpoint_loads_through_arch_path(tmp_path, tiny):
    ckpt = tmp_path / "tiny.pt"
    torch.save(tiny.model.state_dict(), ckpt)
    loaded = OpenClipModel(f"audit-tiny-vit:{ckpt}")
    assert loaded.info.random_weights is False
    np.testing.assert_allclose(loaded.encode_texts(["a thief"]), tiny.encode_texts(["a thief"]), atol=1e-6)
    assert loaded.info.cache_key != tiny.info.cache_key


def test_local_dir_layout_loads(tmp_path, tiny):
    import json

    from safetensors.torch import save_file

    register_configs()
    cfg = json.loads((CONFIG_DIR / "audit-tiny-vit.json").read_text())
    (tmp_path / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": {}}))
    save_file({k: v.contiguous() for k, v in tiny.model.state_dict().items()}, tmp_path / "open_clip_model.safetensors")
    loaded = OpenClipModel(f"local-dir:{tmp_path}")
    np.testing.assert_allclose(loaded.encode_texts(["a gorilla"]), tiny.encode_texts(["a gorilla"]), atol=1e-6)


def test_missing_checkpoint_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="checkpoint file not found"):
        OpenClipModel(f"audit-tiny-vit:{tmp_path}/nope.pt")


def test_unknown_tag_did_you_mean():
    with pytest.raises(UserError, match="did you mean 'openai'"):
        OpenClipModel("ViT-B-32:opneai")


@pytest.mark.parametrize("model_id", ["ViT-B-32:openai", "RN50:openai", "hf-hub:timm/ViT-B-16-SigLIP"])
def test_weights_not_available_offline_fail_fast_with_fix(model_id):
    start = time.monotonic()
    with pytest.raises(DataError) as exc:
        OpenClipModel(model_id)
    assert time.monotonic() - start < 10
    assert exc.value.exit_code == 3
    text = exc.value.render()
    assert model_id in text and "HF_HUB_OFFLINE=1" in text and "checkpoint" in text


def test_model_info_is_kept_and_the_weights_load_on_first_use(tmp_path, tiny, monkeypatch):
    import open_clip

    first = OpenClipModel("audit-tiny-vit:random", seed=0, info_cache=tmp_path)
    assert first.loaded and len(list(tmp_path.glob("*.json"))) == 1
    loads: list[str] = []
    real = open_clip.create_model_and_transforms
    monkeypatch.setattr(open_clip, "create_model_and_transforms", lambda name, **kw: loads.append(name) or real(name, **kw))
    again = OpenClipModel("audit-tiny-vit:random", name="renamed", seed=0, info_cache=tmp_path)
    assert not again.loaded and loads == []
    assert again.info.name == "renamed" and again.info.cache_key == first.info.cache_key
    assert again.info.logit_scale == first.info.logit_scale and again.info.extra == first.info.extra
    np.testing.assert_array_equal(again.encode_texts(["a thief"]), first.encode_texts(["a thief"]))
    assert again.loaded and loads == ["audit-tiny-vit"]
    other_seed = OpenClipModel("audit-tiny-vit:random", seed=1, info_cache=tmp_path)
    assert other_seed.loaded and len(list(tmp_path.glob("*.json"))) == 2


def test_model_info_follows_the_checkpoint_content(tmp_path, tiny):
    ckpt = tmp_path / "tiny.pt"
    torch.save(tiny.model.state_dict(), ckpt)
    cards = tmp_path / "cards"
    assert OpenClipModel(f"audit-tiny-vit:{ckpt}", info_cache=cards).loaded
    assert not OpenClipModel(f"audit-tiny-vit:{ckpt}", info_cache=cards).loaded
    state = tiny.model.state_dict()
    state["logit_scale"] = state["logit_scale"] + 1.0
    torch.save(state, ckpt)  # same path, new weights: a new identity, so it loads
    changed = OpenClipModel(f"audit-tiny-vit:{ckpt}", info_cache=cards)
    assert changed.loaded and changed.info.logit_scale == pytest.approx(tiny.info.logit_scale * np.e)


def test_unreadable_model_info_is_rebuilt_and_a_stale_one_refused(tmp_path):
    import json

    OpenClipModel("audit-tiny-vit:random", info_cache=tmp_path)
    (card,) = tmp_path.glob("*.json")
    card.write_text("{not json")
    assert OpenClipModel("audit-tiny-vit:random", info_cache=tmp_path).loaded  # rebuilt ...
    assert json.loads(card.read_text())["logit_scale"] > 0  # ... and rewritten
    data = json.loads(card.read_text())
    card.write_text(json.dumps({**data, "logit_scale": data["logit_scale"] * 2}))
    stale = OpenClipModel("audit-tiny-vit:random", info_cache=tmp_path)
    with pytest.raises(DataError, match="no longer matches") as err:
        stale.encode_texts(["x"])
    assert str(card) in err.value.fix


def test_adapter_module_does_not_import_open_clip():
    import subprocess
    import sys

    code = "import sys, audit.models.openclip; print('open_clip' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_precision_choice_is_recorded_and_separates_the_cache(tiny):
    from audit.models.openclip import pick_precision

    assert pick_precision("auto", "cpu") == "fp32" and pick_precision("amp_bf16", "cpu") == "amp_bf16"
    with pytest.raises(UserError, match="not one of"):
        pick_precision("fp8", "cpu")
    bf16 = OpenClipModel("audit-tiny-vit:random", seed=0, precision="amp_bf16")
    assert tiny.info.precision == "fp32" and bf16.info.precision == "amp_bf16"
    assert bf16.info.cache_key != tiny.info.cache_key  # bf16 embeddings never mix with fp32 ones
    batch = torch.stack([tiny.preprocess(Image.new("RGB", (40, 30), c)) for c in ("red", "blue", "white")])
    a, b = tiny.encode_images(batch), bf16.encode_images(batch)
    assert b.dtype == np.float32 and not np.array_equal(a, b)  # autocast really ran in bf16 ...
    assert (a * b).sum(axis=1).min() > 0.99  # ... and stays close to fp32
    prompts = ["a photo of a thief.", "a photo of a child."]
    assert (tiny.encode_texts(prompts) * bf16.encode_texts(prompts)).sum(axis=1).min() > 0.99


@pytest.mark.parametrize("arch", ["audit-tiny-vit", "audit-tiny-coca"])
def test_checkpoint_load_skips_random_init_and_gives_the_same_model(tmp_path, arch):
    import open_clip

    register_configs()
    torch.manual_seed(3)
    ckpt = tmp_path / f"{arch}.pt"
    torch.save(open_clip.create_model(arch).state_dict(), ckpt)
    reference = open_clip.create_model(arch, pretrained=str(ckpt)).eval()  # open_clip's own path, with init
    calls: list[str] = []
    real = torch.nn.init.normal_
    torch.nn.init.normal_ = lambda t, *a, **k: calls.append("normal_") or real(t, *a, **k)
    try:
        ours = OpenClipModel(f"{arch}:{ckpt}")
    finally:
        torch.nn.init.normal_ = real
    assert calls == []  # no random fill ran while the checkpoint's model was built
    assert torch.nn.init.normal_ is real  # and torch.nn.init is restored
    for (k, a), (k2, b) in zip(reference.state_dict().items(), ours.model.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    for (k, a), (_, b) in zip(reference.named_buffers(), ours.model.named_buffers(), strict=True):
        assert torch.equal(a, b), k
    with torch.inference_mode():
        tokens = ours.tokenizer(["a photo of a dog."])
        torch.testing.assert_close(ours.model.encode_text(tokens), reference.encode_text(tokens), rtol=0, atol=0)


def test_random_weights_still_run_the_random_init():
    a = OpenClipModel("audit-tiny-vit:random", seed=0).model.state_dict()
    assert all(torch.isfinite(v).all() for v in a.values())
    assert a["text_projection"].std() > 0 and not torch.equal(a["text_projection"], torch.zeros_like(a["text_projection"]))


def test_checkpoint_digest_is_remembered_until_the_file_changes(tmp_path, tiny, monkeypatch):
    from audit.models import openclip as oc

    ckpt = tmp_path / "tiny.pt"
    torch.save(tiny.model.state_dict(), ckpt)
    hashed: list[Path] = []
    real = oc._hash_file
    monkeypatch.setattr(oc, "_hash_file", lambda p: hashed.append(p) or real(p))
    cache = tmp_path / "cache"
    first = OpenClipModel(f"audit-tiny-vit:{ckpt}", info_cache=cache)
    again = OpenClipModel(f"audit-tiny-vit:{ckpt}", info_cache=cache)
    assert hashed == [ckpt] and again.info.cache_key == first.info.cache_key
    import hashlib
    assert first.info.cache_key.startswith(f"audit-tiny-vit:{hashlib.sha256(ckpt.read_bytes()).hexdigest()[:16]}|")
    state = tiny.model.state_dict()
    state["logit_scale"] = state["logit_scale"] + 1.0
    torch.save(state, ckpt)  # same path, new content: hashed again, new identity
    changed = OpenClipModel(f"audit-tiny-vit:{ckpt}", info_cache=cache)
    assert hashed == [ckpt, ckpt] and changed.info.cache_key != first.info.cache_key
