"""Tiny transformers dual encoders built offline, for the ``transformers:`` adapter's tests.

* CLIP: a ``CLIPTokenizer`` from the BPE vocabulary open_clip ships (``vocab.json`` + ``merges.txt``
  derived exactly as open_clip's ``SimpleTokenizer`` builds its vocabulary).
* SigLIP: a small SentencePiece model trained here with ``sentencepiece`` (``SiglipTokenizer``).
* SigLIP 2: a small BPE vocabulary trained here with ``tokenizers``, in the Gemma-style
  ``Siglip2Tokenizer`` that ``AutoTokenizer`` picks for that model type.
* :func:`openclip_to_hf`: open_clip's CLIP state dict in transformers' ``CLIPModel`` names, with
  the key mapping of transformers' own conversion script
  (``src/transformers/models/clip/convert_clip_original_pytorch_to_hf.py``).
"""

from __future__ import annotations

import gzip
import io
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_STD = [0.26862954, 0.26130258, 0.27577711]


@lru_cache(maxsize=1)
def _clip_vocab_files() -> tuple[str, str]:
    from open_clip.tokenizer import bytes_to_unicode, default_bpe

    merges = gzip.open(default_bpe()).read().decode("utf-8").split("\n")[1:49152 - 256 - 2 + 1]
    byte_chars = list(bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    return json.dumps({tok: i for i, tok in enumerate(vocab)}), "#version: 0.2\n" + "\n".join(merges) + "\n"


def write_clip_tokenizer(root: Path) -> None:
    """``vocab.json`` + ``merges.txt`` from open_clip's shipped BPE file (49408 tokens), built the
    way open_clip's ``SimpleTokenizer`` builds its vocabulary."""
    vocab, merges = _clip_vocab_files()
    (root / "vocab.json").write_text(vocab, encoding="utf-8")
    (root / "merges.txt").write_text(merges, encoding="utf-8")


def clip_config(arch: str = "audit-tiny-vit") -> Any:
    """A ``CLIPConfig`` with the shape of open_clip's ViT config ``arch`` (the package's tiny
    2-layer one by default: width 64, 2 heads, 32 px, patch 8, 32-token context)."""
    import open_clip
    from transformers import CLIPConfig

    from audit.models.openclip import register_configs

    register_configs()
    cfg = open_clip.get_model_config(arch)
    v, t = cfg["vision_cfg"], cfg["text_cfg"]
    act = "quick_gelu" if cfg.get("quick_gelu") else "gelu"
    vision = {"hidden_size": v["width"], "intermediate_size": int(v["width"] * v.get("mlp_ratio", 4.0)),
              "num_hidden_layers": v["layers"], "num_attention_heads": v["width"] // v.get("head_width", 64),
              "image_size": v["image_size"], "patch_size": v["patch_size"], "hidden_act": act}
    text = {"hidden_size": t["width"], "intermediate_size": int(t["width"] * t.get("mlp_ratio", 4.0)),
            "num_hidden_layers": t["layers"], "num_attention_heads": t["heads"], "hidden_act": act,
            "vocab_size": t["vocab_size"], "max_position_embeddings": t["context_length"],
            "bos_token_id": 49406, "eos_token_id": 49407, "pad_token_id": 49407}
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=cfg["embed_dim"])


def save_clip(root: Path, model: Any) -> Path:
    """``model`` (a CLIPModel) with a CLIP tokenizer and a CLIP image processor at its image size."""
    from transformers import CLIPImageProcessor, CLIPTokenizer

    root.mkdir(parents=True, exist_ok=True)
    write_clip_tokenizer(root)
    tokenizer = CLIPTokenizer(str(root / "vocab.json"), str(root / "merges.txt"))
    size = model.config.vision_config.image_size
    processor = CLIPImageProcessor(size={"shortest_edge": size}, crop_size={"height": size, "width": size},
                                   image_mean=OPENAI_MEAN, image_std=OPENAI_STD)
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    processor.save_pretrained(root)
    return root


def tiny_clip(root: Path, seed: int = 0) -> Path:
    from transformers import CLIPModel

    torch.manual_seed(seed)
    return save_clip(root, CLIPModel(clip_config()).eval())


def train_sentencepiece(path: Path, corpus: list[str]) -> None:
    """A small unigram SentencePiece model with SigLIP's special pieces (pad 0, eos 1, unk 2)."""
    import sentencepiece as spm

    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=buf, vocab_size=200, model_type="unigram",
        pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>", unk_piece="<unk>",
        hard_vocab_limit=False, minloglevel=2, num_threads=1)
    path.write_bytes(buf.getvalue())


def siglip2_tokenizer(corpus: list[str]) -> Any:
    """A ``Siglip2Tokenizer`` (lower-casing BPE over ``▁``-joined words) trained on ``corpus``."""
    from tokenizers import Tokenizer, models, trainers
    from transformers import Siglip2Tokenizer

    specials = ["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"]  # Siglip2Tokenizer's default ids 0-4
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=specials, show_progress=False,
                                  initial_alphabet=list("abcdefghijklmnopqrstuvwxyz0123456789▁.,'-{}"))
    bpe.train_from_iterator(["▁" + line.lower().replace(" ", "▁") for line in corpus], trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]]
    return Siglip2Tokenizer(vocab=model["vocab"], merges=merges)


def tiny_siglip(root: Path, corpus: list[str], *, version: int = 1, seed: int = 0) -> Path:
    """A random SigLIP (``version=1``) or SigLIP 2 model with its kind of tokenizer, trained on
    ``corpus``, and nonzero logit scale and bias (transformers initialises both at 0)."""
    from transformers import (Siglip2Config, Siglip2ImageProcessor, Siglip2Model, SiglipConfig,
                              SiglipImageProcessor, SiglipModel, SiglipTokenizer)

    root.mkdir(parents=True, exist_ok=True)
    if version == 1:
        train_sentencepiece(root / "spiece.model", corpus)
        tokenizer = SiglipTokenizer(str(root / "spiece.model"))
    else:
        tokenizer = siglip2_tokenizer(corpus)
    pad = tokenizer.pad_token_id
    tiny = {"hidden_size": 64, "intermediate_size": 256, "num_hidden_layers": 2, "num_attention_heads": 2}
    text = {**tiny, "hidden_act": "gelu_pytorch_tanh", "vocab_size": len(tokenizer), "max_position_embeddings": 64,
            "pad_token_id": pad, "eos_token_id": tokenizer.eos_token_id, "bos_token_id": None}
    vision = {**tiny, "hidden_act": "gelu_pytorch_tanh", "patch_size": 8}
    torch.manual_seed(seed)
    if version == 1:
        model = SiglipModel(SiglipConfig(text_config=text, vision_config={**vision, "image_size": 32}))
        processor: Any = SiglipImageProcessor(size={"height": 32, "width": 32})
    else:
        model = Siglip2Model(Siglip2Config(text_config=text, vision_config={**vision, "num_patches": 16}))
        processor = Siglip2ImageProcessor(patch_size=8, max_num_patches=16)
    with torch.no_grad():
        model.logit_scale.fill_(2.0)
        model.logit_bias.fill_(-3.0)
    model.eval().save_pretrained(root)
    tokenizer.save_pretrained(root)
    processor.save_pretrained(root)
    return root


def _split_attention(out: dict[str, torch.Tensor], hf: str, oc: str, sd: dict[str, torch.Tensor]) -> None:
    q, k, v = sd[f"{oc}.in_proj_weight"].chunk(3, dim=0)
    qb, kb, vb = sd[f"{oc}.in_proj_bias"].chunk(3, dim=0)
    for name, w, b in (("q_proj", q, qb), ("k_proj", k, kb), ("v_proj", v, vb)):
        out[f"{hf}.{name}.weight"], out[f"{hf}.{name}.bias"] = w, b
    for suffix in ("weight", "bias"):
        out[f"{hf}.out_proj.{suffix}"] = sd[f"{oc}.out_proj.{suffix}"]


def _layers(out: dict[str, torch.Tensor], hf: str, oc: str, sd: dict[str, torch.Tensor], n: int) -> None:
    pairs = (("layer_norm1", "ln_1"), ("layer_norm2", "ln_2"), ("mlp.fc1", "mlp.c_fc"), ("mlp.fc2", "mlp.c_proj"))
    for i in range(n):
        for hf_name, oc_name in pairs:
            for suffix in ("weight", "bias"):
                out[f"{hf}.{i}.{hf_name}.{suffix}"] = sd[f"{oc}.{i}.{oc_name}.{suffix}"]
        _split_attention(out, f"{hf}.{i}.self_attn", f"{oc}.{i}.attn", sd)


def convert_openclip(oc_model: Any, arch: str) -> Any:
    """An open_clip ViT CLIP model as a transformers ``CLIPModel`` with the same weights."""
    from transformers import CLIPModel

    hf = CLIPModel(clip_config(arch))
    layers = hf.config.text_config.num_hidden_layers
    assert layers == hf.config.vision_config.num_hidden_layers, "towers of different depth: pass both"
    hf.load_state_dict(openclip_to_hf(oc_model.state_dict(), layers), strict=True)
    return hf.eval()


def openclip_to_hf(sd: dict[str, torch.Tensor], layers: int) -> dict[str, torch.Tensor]:
    """open_clip CLIP (ViT) state dict -> transformers ``CLIPModel`` state dict, following
    ``copy_text_model_and_projection`` / ``copy_vison_model_and_projection`` of transformers'
    conversion script: q/k/v split from ``in_proj``, projections transposed, ``ln_pre`` ->
    ``pre_layrnorm``, ``ln_post`` -> ``post_layernorm``, ``conv1`` -> ``patch_embedding``."""
    out = {
        "text_projection.weight": sd["text_projection"].T,
        "text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": sd["positional_embedding"],
        "text_model.final_layer_norm.weight": sd["ln_final.weight"],
        "text_model.final_layer_norm.bias": sd["ln_final.bias"],
        "visual_projection.weight": sd["visual.proj"].T,
        "vision_model.pre_layrnorm.weight": sd["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": sd["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": sd["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": sd["visual.ln_post.bias"],
        "vision_model.embeddings.patch_embedding.weight": sd["visual.conv1.weight"],
        "vision_model.embeddings.class_embedding": sd["visual.class_embedding"],
        "vision_model.embeddings.position_embedding.weight": sd["visual.positional_embedding"],
        "logit_scale": sd["logit_scale"],
    }
    _layers(out, "text_model.encoder.layers", "transformer.resblocks", sd, layers)
    _layers(out, "vision_model.encoder.layers", "visual.transformer.resblocks", sd, layers)
    return {k: v.detach().clone().contiguous() for k, v in out.items()}
