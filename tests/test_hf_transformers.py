"""The ``transformers:`` adapter on tiny CLIP, SigLIP and SigLIP 2 models built and saved here.

Expected numbers come from transformers alone (its Auto classes, its zero-shot pipeline) or from
open_clip on the same weights, never from the adapter under test.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from audit.classify import class_weights, zero_shot_scores  # noqa: E402
from audit.cli import main  # noqa: E402
from audit.errors import DataError, UserError  # noqa: E402
from audit.models.hf_transformers import TransformersModel  # noqa: E402
from tests.hf_fixtures import convert_openclip, save_clip, tiny_clip, tiny_siglip  # noqa: E402

TEMPLATES = ["a photo of a {}.", "a close-up photo of the face of a {}."]
LABELS = ["cat", "dog", "person", "thief", "gorilla", "child"]
CORPUS = [t.format(lb) for t in TEMPLATES + ["This is a photo of {}.", "{}"] for lb in LABELS] * 4


class _Lazy(dict):  # type: ignore[type-arg]
    """kind -> value, built on first use (SigLIP's SentencePiece tokenizer needs protobuf)."""

    def __init__(self, build: Any) -> None:
        super().__init__()
        self.build = build

    def __missing__(self, kind: str) -> Any:
        if kind == "siglip":
            pytest.importorskip("google.protobuf", reason="SigLIP's SentencePiece tokenizer needs protobuf")
        self[kind] = value = self.build(kind)
        return value


@pytest.fixture(scope="session")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hf")
    build = {"clip": lambda: tiny_clip(root / "clip"), "siglip": lambda: tiny_siglip(root / "siglip", CORPUS),
             "siglip2": lambda: tiny_siglip(root / "siglip2", CORPUS, version=2)}
    return _Lazy(lambda kind: build[kind]())


@pytest.fixture(scope="session")
def adapters(models: dict[str, Path]) -> dict[str, TransformersModel]:
    """One loaded adapter per model, shared: loading is the slow part on 2 cores."""
    return _Lazy(lambda kind: TransformersModel(f"transformers:{models[kind]}"))


@pytest.fixture(scope="session")
def reference(models: dict[str, Path]) -> dict[str, tuple[Any, Any, Any]]:
    """Each model as transformers alone loads it, as its zero-shot pipeline does: AutoModel,
    AutoTokenizer, AutoImageProcessor."""
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    return _Lazy(lambda kind: (AutoModel.from_pretrained(models[kind]).eval(),
                               AutoTokenizer.from_pretrained(models[kind]),
                               AutoImageProcessor.from_pretrained(models[kind])))


@pytest.fixture(scope="session")
def images() -> list[Any]:
    from PIL import Image

    rng = np.random.default_rng(0)
    out = []
    for i in range(6):  # 32 px, the tiny models' size: smooth colour fields plus noise
        base = np.linspace(0, 255, 32)[None, :, None] * rng.random(3) + rng.integers(0, 80, 3)
        pix = np.clip(base + rng.normal(0, 25 + 10 * i, (32, 32, 3)), 0, 255).astype(np.uint8)
        out.append(Image.fromarray(pix))
    return out


def audit_scores(model: Any, images: list[Any], labels: list[str], templates: list[str]) -> np.ndarray:
    feats = model.encode_images(torch.stack([model.preprocess(im) for im in images]))
    prompts = model.encode_texts([t.format(lb) for lb in labels for t in templates])
    weights = class_weights(prompts.reshape(len(labels), len(templates), -1))
    return zero_shot_scores(feats, weights, model.info.logit_scale, model.info.logit_bias)


def reference_scores(parts: tuple[Any, Any, Any], images: list[Any], labels: list[str], templates: list[str],
                     padding: dict[str, Any]) -> np.ndarray:
    """Zero-shot logits written with transformers alone: features, L2 norm, template mean, renorm,
    ``exp(logit_scale) * cos + logit_bias``."""
    model, tok, proc = parts
    with torch.no_grad():
        img = model.get_image_features(**proc(images=images, return_tensors="pt")).pooler_output
        img = img / img.norm(dim=-1, keepdim=True)
        cls = []
        for lb in labels:
            t = model.get_text_features(**tok([tp.format(lb) for tp in templates], return_tensors="pt", **padding))
            t = t.pooler_output / t.pooler_output.norm(dim=-1, keepdim=True)
            mean = t.mean(dim=0)
            cls.append(mean / mean.norm())
        logits = model.logit_scale.exp() * img @ torch.stack(cls).T
        if getattr(model, "logit_bias", None) is not None:
            logits = logits + model.logit_bias
    return logits.numpy()


SIGLIP_PADDING = {"padding": "max_length", "max_length": 64, "truncation": True}
PADDING = {"clip": {"padding": True}, "siglip": SIGLIP_PADDING, "siglip2": SIGLIP_PADDING}


@pytest.mark.parametrize("kind", ["clip", "siglip", "siglip2"])
def test_scores_equal_an_independent_transformers_computation(adapters, reference, images, kind: str) -> None:
    model = adapters[kind]
    ours = audit_scores(model, images, LABELS, TEMPLATES)
    ref = reference_scores(reference[kind], images, LABELS, TEMPLATES, PADDING[kind])
    np.testing.assert_allclose(ours, ref, atol=1e-4, rtol=1e-4)
    assert (ours.argmax(1) == ref.argmax(1)).all()
    emb = model.encode_images(torch.stack([model.preprocess(im) for im in images]))
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert (model.info.logit_bias is not None) == (kind != "clip")


@pytest.mark.parametrize("kind", ["clip", "siglip", "siglip2"])
def test_top1_and_scores_equal_the_pipeline_with_one_template(adapters, reference, images, kind: str) -> None:
    from transformers import pipeline

    template = "This is a photo of {}."
    model = adapters[kind]
    ours = audit_scores(model, images, LABELS, [template])
    hf, tok, proc = reference[kind]
    clf = pipeline("zero-shot-image-classification", model=hf, tokenizer=tok, image_processor=proc, device="cpu")
    for row, image in zip(ours, images):
        out = clf(image, candidate_labels=LABELS, hypothesis_template=template)
        theirs = {d["label"]: d["score"] for d in out}
        probs = 1 / (1 + np.exp(-row)) if kind != "clip" else np.exp(row - row.max()) / np.exp(row - row.max()).sum()
        np.testing.assert_allclose(probs, [theirs[lb] for lb in LABELS], atol=1e-5)
        assert LABELS[int(row.argmax())] == out[0]["label"]
    assert model.info.extra["pipeline_scores"] == ("softmax" if kind == "clip" else "sigmoid")


def test_a_clip_prompt_longer_than_the_context_is_truncated_not_an_error(adapters, reference) -> None:
    long = "a photo of a " + " ".join(LABELS * 10)  # > 32 tokens: the tiny tower's context
    hf, tok, _ = reference["clip"]
    ids = tok([long], return_tensors="pt", padding=True, truncation=True, max_length=32)
    assert ids["input_ids"].shape[1] == 32 and ids["input_ids"][0, -1] == tok.eos_token_id
    with torch.no_grad():
        f = hf.get_text_features(**ids).pooler_output
    np.testing.assert_allclose(adapters["clip"].encode_texts([long]), (f / f.norm()).numpy(), atol=1e-5)


@pytest.mark.parametrize("kind", ["siglip", "siglip2"])
def test_siglip_text_is_padded_to_64_not_to_the_longest_prompt(adapters, reference, kind: str) -> None:
    prompts = ["a cat", "a photo of the face of a person"]
    model = adapters[kind]
    ours = model.encode_texts(prompts)
    hf, tok, _ = reference[kind]

    def encode(**padding: Any) -> np.ndarray:
        with torch.no_grad():
            f = hf.get_text_features(**tok(prompts, return_tensors="pt", **padding)).pooler_output
        return (f / f.norm(dim=-1, keepdim=True)).numpy()

    np.testing.assert_allclose(ours, encode(**SIGLIP_PADDING), atol=1e-5)
    longest = encode(padding=True)
    assert np.abs(ours - longest).max() > 1e-2  # padding to the longest prompt gives other embeddings
    extra = model.info.extra
    assert (extra["padding"], extra["max_length"], extra["truncation"]) == ("max_length", 64, True)
    assert model.info.scoring.startswith("sigmoid")


def test_same_weights_through_open_clip_and_transformers_agree(tmp_path, images) -> None:
    """audit-tiny-vit (a 2-layer ViT-B-32 shape) at random weights, once as an open_clip checkpoint
    and once converted with transformers' CLIP conversion key mapping."""
    import open_clip

    from audit.models.openclip import OpenClipModel, register_configs

    register_configs()
    torch.manual_seed(1)
    oc = open_clip.create_model("audit-tiny-vit")
    torch.save(oc.state_dict(), tmp_path / "tiny.pt")
    save_clip(tmp_path / "hf", convert_openclip(oc, "audit-tiny-vit"))
    a = OpenClipModel(f"audit-tiny-vit:{tmp_path / 'tiny.pt'}")
    b = TransformersModel(f"transformers:{tmp_path / 'hf'}")
    ia, ib = (m.encode_images(torch.stack([m.preprocess(im) for im in images])) for m in (a, b))
    np.testing.assert_allclose(ia, ib, atol=1e-4)
    prompts = [t.format(lb) for lb in LABELS for t in TEMPLATES]
    np.testing.assert_allclose(a.encode_texts(prompts), b.encode_texts(prompts), atol=1e-4)
    assert a.info.logit_scale == pytest.approx(b.info.logit_scale)
    sa, sb = (audit_scores(m, images, LABELS, TEMPLATES) for m in (a, b))
    assert (sa.argmax(1) == sb.argmax(1)).all()
    np.testing.assert_allclose(sa, sb, atol=1e-3)


def fake_hub_cache(cache: Path, repo: str, commit: str, files: Path | dict[str, str]) -> Path:
    """A Hugging Face hub cache entry as ``huggingface-cli download`` leaves it."""
    entry = cache / f"models--{repo.replace('/', '--')}"
    snap = entry / "snapshots" / commit
    snap.mkdir(parents=True)
    if isinstance(files, Path):
        for f in files.iterdir():
            shutil.copy(f, snap / f.name)
    else:
        for name, text in files.items():
            (snap / name).write_text(text)
    (entry / "refs").mkdir(exist_ok=True)
    (entry / "refs" / "main").write_text(commit)
    return snap


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    return cache


def test_cached_hub_repo_loads_offline_and_its_commit_enters_the_cache_key(models, hub_cache) -> None:
    c1, c2 = "1" * 40, "2" * 40
    fake_hub_cache(hub_cache, "org/tiny", c1, models["siglip2"])
    first = TransformersModel("transformers:org/tiny")
    assert first.info.extra["revision"] == c1 and first.info.weights == f"org/tiny@{c1}"
    fake_hub_cache(hub_cache, "org/tiny2", c2, models["siglip2"])
    second = TransformersModel("transformers:org/tiny2")
    assert first.info.cache_key != second.info.cache_key
    pinned = TransformersModel(f"transformers:org/tiny@{c1}")
    assert pinned.info.cache_key == first.info.cache_key


def test_local_dir_revision_is_the_file_digests(adapters, models, tmp_path) -> None:
    a = adapters["siglip2"]
    assert set(a.info.extra["revision"]) >= {"config.json", "model.safetensors", "tokenizer_config.json"}
    copy = tmp_path / "copy"
    shutil.copytree(models["siglip2"], copy)
    cfg = json.loads((copy / "preprocessor_config.json").read_text())
    cfg["resample"] = 2  # bilinear instead of bicubic: other embeddings, so another cache key
    (copy / "preprocessor_config.json").write_text(json.dumps(cfg))
    (copy / ".cache" / "huggingface").mkdir(parents=True)  # what `huggingface-cli download --local-dir` adds
    (copy / ".cache" / "huggingface" / "download.lock").write_text("x")
    b = TransformersModel(f"transformers:{copy}")
    assert a.info.cache_key != b.info.cache_key and set(b.info.extra["revision"]) == set(a.info.extra["revision"])


def test_precision_enters_the_cache_key_and_bf16_stays_close(adapters, models, images) -> None:
    fp32 = adapters["siglip2"]
    bf16 = TransformersModel(f"transformers:{models['siglip2']}", precision="amp_bf16")
    assert (fp32.info.precision, bf16.info.precision) == ("fp32", "amp_bf16")
    assert fp32.info.cache_key != bf16.info.cache_key
    batch = torch.stack([fp32.preprocess(im) for im in images])
    cos = (fp32.encode_images(batch) * bf16.encode_images(batch)).sum(1)
    assert cos.min() > 0.98 and bf16.encode_images(batch).dtype == np.float32


def test_info_cache_skips_loading_the_weights(models, tmp_path) -> None:
    first = TransformersModel(f"transformers:{models['siglip2']}", info_cache=tmp_path / "models")
    again = TransformersModel(f"transformers:{models['siglip2']}", info_cache=tmp_path / "models")
    assert first.loaded and not again.loaded and again.info == first.info
    np.testing.assert_allclose(again.encode_texts(["a cat"]), first.encode_texts(["a cat"]), atol=1e-6)


def test_uncached_hub_repo_fails_at_once_with_the_fix(hub_cache) -> None:
    with pytest.raises(DataError) as err:
        TransformersModel("transformers:org/not-downloaded")
    text = err.value.render()
    assert "not in the local Hugging Face cache" in text
    assert "huggingface-cli download org/not-downloaded" in text and "HF_HUB_OFFLINE=1" in text
    assert err.value.exit_code == 3


def test_open_clip_layouts_name_the_other_scheme(hub_cache, tmp_path, models) -> None:
    fake_hub_cache(hub_cache, "org/oc", "3" * 40, {"open_clip_config.json": "{}"})
    with pytest.raises(UserError, match="hf-hub:org/oc"):
        TransformersModel("transformers:org/oc")
    oc_dir = tmp_path / "ocdir"
    oc_dir.mkdir()
    (oc_dir / "open_clip_config.json").write_text("{}")
    with pytest.raises(UserError, match=f"local-dir:{oc_dir}"):
        TransformersModel(f"transformers:{oc_dir}")
    from audit.models.openclip import OpenClipModel

    fake_hub_cache(hub_cache, "org/hfclip", "4" * 40, models["clip"])
    with pytest.raises(UserError, match="transformers:org/hfclip"):
        OpenClipModel("hf-hub:org/hfclip")


def test_a_model_without_both_feature_methods_is_refused(tmp_path) -> None:
    from transformers import ViTConfig, ViTModel

    ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                       image_size=32, patch_size=8)).save_pretrained(tmp_path / "vit")
    with pytest.raises(DataError) as err:
        TransformersModel(f"transformers:{tmp_path / 'vit'}")
    assert "not a dual encoder" in err.value.message and "get_text_features" in err.value.message


PROBE = """
name: hf_e2e
dataset:
  adapter: synthetic_fairface
  options: {{n: 28, seed: 0, size: 32}}
  subgroups: [race, gender]
models:
  - {{id: "transformers:{clip}", name: tiny clip}}
  - "transformers:{siglip}"
label_sets: [{ls}/fairface_race_gender.yaml, {ls}/non_human.yaml]
templates: ["a photo of a {{}}."]
categories: [non_human]
metrics: [category_rate]
stats: {{min_n: 2, n_bootstrap: 20}}
report: {{enabled: false}}
"""


def test_probe_with_transformers_models_runs_end_to_end_offline(models, tmp_path, capsys) -> None:
    from tests.conftest import LABEL_SETS

    probe = tmp_path / "probe.yaml"
    probe.write_text(textwrap.dedent(PROBE.format(clip=models["clip"], siglip=models["siglip2"], ls=LABEL_SETS)))
    assert main(["validate", str(probe)]) == 0
    code = main(["run", str(probe), "--out", str(tmp_path / "run"), "--no-report", "--quiet"])
    assert code == 0, capsys.readouterr()
    run = tmp_path / "run"
    manifest = json.loads((run / "manifest.json").read_text())
    by_name = {m["name"]: m for m in manifest["models"]}
    clip, siglip = by_name["tiny clip"], by_name[f"transformers:{models['siglip2']}"]
    assert clip["scheme"] == siglip["scheme"] == "transformers"
    assert (clip["padding"], clip["pipeline_scores"], clip["logit_bias"]) == (True, "softmax", None)
    assert (clip["max_length"], clip["truncation"]) == (32, True)  # only prompts over the context
    assert (siglip["padding"], siglip["max_length"], siglip["pipeline_scores"]) == ("max_length", 64, "sigmoid")
    assert siglip["scoring"].startswith("sigmoid") and siglip["logit_bias"] == pytest.approx(-3.0)
    assert clip["transformers_version"] and "model.safetensors" in clip["revision"]
    import pandas as pd

    preds = pd.read_parquet(run / "predictions.parquet")
    assert set(preds["model"]) == {"tiny clip", f"transformers:{models['siglip2']}"}
    assert (run / "metrics.csv").exists()


def test_offline_run_with_an_uncached_hub_model_exits_3_without_traceback(tmp_path, hub_cache, capsys) -> None:
    from tests.conftest import LABEL_SETS

    probe = tmp_path / "probe.yaml"
    text = PROBE.format(clip="org/absent", siglip="org/absent2", ls=LABEL_SETS)
    probe.write_text(textwrap.dedent(text).replace('transformers:org/absent"', 'transformers:org/absent"'))
    code = main(["run", str(probe), "--out", str(tmp_path / "run"), "--no-report", "--quiet"])
    err = capsys.readouterr().err
    assert code == 3
    assert "huggingface-cli download org/absent" in err and "Traceback" not in err


def test_validate_checks_transformers_ids_without_importing_torch_or_transformers(tmp_path) -> None:
    import subprocess
    import sys

    from tests.conftest import LABEL_SETS, REPO

    model_dir, oc_dir = tmp_path / "tiny", tmp_path / "oc"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    oc_dir.mkdir()
    (oc_dir / "open_clip_config.json").write_text("{}")
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(textwrap.dedent(PROBE.format(clip=model_dir, siglip="org/name@v1", ls=LABEL_SETS)))
    bad.write_text(textwrap.dedent(PROBE.format(clip=oc_dir, siglip="org/na me", ls=LABEL_SETS)))
    code = ("import sys\nfrom audit.cli import main\nrc = main(['validate', sys.argv[1], sys.argv[2]])\n"
            "print('HEAVY', sorted({'torch', 'transformers'} & set(sys.modules)))\nsys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, str(good), str(bad)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, check=False)
    assert "HEAVY []" in proc.stdout, proc.stdout + proc.stderr
    assert proc.returncode == 2 and f"ok: {good}" in proc.stdout
    assert f"use local-dir:{oc_dir}" in proc.stderr and "'org/na me' is not a hub repo id" in proc.stderr


def test_audit_list_shows_the_transformers_scheme(capsys) -> None:
    assert main(["list"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("models:"))
    assert "transformers:org/name[@revision]" in line and "transformers:/path" in line


@pytest.mark.slow
def test_bench_transformers_smoke(tmp_path) -> None:
    from tests.test_benchmarks import run_smoke

    fields = run_smoke("bench_transformers.py", tmp_path=tmp_path)
    assert float(fields["max_abs_diff_same_pixels"]) < 1e-4  # the same weights, both ways
    assert float(fields["forward_transformers_over_openclip"]) > 0 and fields["arch"] == "audit-tiny-vit"
