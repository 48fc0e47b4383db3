"""Train the demo world's tiny open_clip model: CPU, fixed seed, a few minutes.

The model is a small ViT / text transformer (:data:`CONFIG_PATH`, about 1.8 M parameters, 48 px
images) trained from scratch with open_clip's own contrastive loss (``ClipLoss``) on a stream of
fresh samples from :mod:`audit.demo.world` (split ``train``; the audit uses split ``test``). It
is saved in open_clip's ``local-dir:`` layout, so the demo probe loads it the way a user loads
their own model::

    model/open_clip_config.json        {"model_cfg": ..., "preprocess_cfg": ...}
    model/open_clip_model.safetensors  float16 weights
    model/training.json                what was trained, how, and what it scored

Time: 600 steps of 256 samples take about 2.5 CPU-minutes on one thread: 2.5 to 4 minutes
wall clock on two idle cores, up to about 8 when other jobs load them heavily.

Reproducibility: the seed fixes the initial weights and the sample stream;
``torch.use_deterministic_algorithms`` is on and the thread count is fixed (default 1, since
CPU kernels may sum in a different order with another thread count). A rerun on the same
machine, torch build and thread count gives byte-identical weights. Another machine or torch
build rounds differently, and over 600 steps that acts like another seed, so expect the
findings, not the digits; :data:`TOLERANCE` bounds the spread seen across training seeds
0, 1 and 2 (600 held-out images of seed 0): object accuracy 83.3 / 85.0 / 85.7%; "an animal"
for quellan 26.0 / 24.0 / 23.0% and 0% for the other kins; sprouts' rate lowered by adding
"a sprout" from 11.5 / 13.0 / 10.0% to 1.5 / 3.5 / 0.5%. (Training longer makes the objects
easier and the association rarer at top-1: 1,000 steps gave 91.5% and 14.0% for quellan.)
"""

from __future__ import annotations

import json
import math
import platform
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audit.classify import class_weights, top_k, zero_shot_scores
from audit.demo import MODEL_DIR, world
from audit.labels import fill

CONFIG_NAME = "audit-demo-world"
CONFIG_PATH = Path(__file__).with_name(f"{CONFIG_NAME}.json")
CONFIG_FILE = "open_clip_config.json"
WEIGHTS_FILE = "open_clip_model.safetensors"
RECORD_FILE = "training.json"
#: open_clip's defaults (OpenAI CLIP's statistics); at 48 px in, resize and crop do nothing.
MEAN = (0.48145466, 0.4578275, 0.40821073)
STD = (0.26862954, 0.26130258, 0.27577711)
PREPROCESS_CFG = {"size": world.IMAGE_SIZE, "mode": "RGB", "mean": list(MEAN), "std": list(STD),
                  "interpolation": "bicubic", "resize_mode": "shortest"}
#: How far a model retrained on another machine or torch build (or with another seed) may land
#: from the committed model's summary numbers (absolute, rate units); the findings themselves
#: (planted kin's interval above the others', the counter-label lowering sprouts' rate) hold.
#: On the same machine, torch build and thread count a rerun reproduces the weights exactly.
TOLERANCE = {"accuracy": 0.06, "flagged_rate": 0.10}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines the trained weights (recorded in ``training.json``)."""

    seed: int = 0
    steps: int = 600
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 0.1
    warmup: int = 50
    threads: int = 1
    #: Wall-clock cap; a run that hits it stops early and will not match the committed model.
    minutes: float | None = None


def model_config() -> dict[str, Any]:
    return json.loads(CONFIG_PATH.read_text(encoding="utf-8"))


def to_tensor(images: np.ndarray) -> torch.Tensor:
    """``uint8 [B, H, W, 3]`` -> normalized ``float [B, 3, H, W]``, as open_clip's preprocess does."""
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


class _Tokens:
    """open_clip's tokenizer with a memo: the world has a few hundred distinct captions."""

    def __init__(self, tokenizer: Callable[[list[str]], torch.Tensor]) -> None:
        self.tokenizer = tokenizer
        self.memo: dict[str, torch.Tensor] = {}

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        new = sorted({t for t in texts if t not in self.memo})
        if new:
            self.memo.update(zip(new, self.tokenizer(new)))
        return torch.stack([self.memo[t] for t in texts])


def _lr_at(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return 0.5 * cfg.lr * (1 + math.cos(math.pi * progress))


def _optimizers(model: torch.nn.Module, cfg: TrainConfig) -> list[torch.optim.Optimizer]:
    """AdamW as open_clip trains (no decay on gains, biases, logit_scale); the 49408-row token
    table gets sparse gradients and SparseAdam, so only the few rows the captions use move."""
    model.token_embedding.sparse = True  # type: ignore[union-attr]
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if name == "token_embedding.weight":
            continue
        (no_decay if p.ndim < 2 or "ln" in name or "bias" in name or "logit_scale" in name else decay).append(p)
    adamw = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                               {"params": no_decay, "weight_decay": 0.0}],
                              lr=cfg.lr, betas=(0.9, 0.98), eps=1e-6)
    sparse = torch.optim.SparseAdam([model.token_embedding.weight], lr=cfg.lr,  # type: ignore[union-attr]
                                    betas=(0.9, 0.98), eps=1e-6)
    return [adamw, sparse]


def train(cfg: TrainConfig, out: Path = MODEL_DIR, log: Callable[[str], None] = print,
          evaluate_n: int = 600) -> dict[str, Any]:
    """Train, save to ``out`` in the ``local-dir:`` layout, evaluate the saved weights.

    Seeds torch and fixes its thread count and deterministic mode for the run (a script entry
    point, not library code), and puts all three back afterwards.
    """
    threads, deterministic = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    try:
        with torch.random.fork_rng(devices=[]):
            torch.set_num_threads(cfg.threads)
            torch.use_deterministic_algorithms(True)
            torch.manual_seed(cfg.seed)
            return _train(cfg, out, log, evaluate_n)
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


def _train(cfg: TrainConfig, out: Path, log: Callable[[str], None], evaluate_n: int) -> dict[str, Any]:
    import open_clip
    from open_clip.loss import ClipLoss

    mcfg = model_config()
    model = open_clip.model.CLIP(**mcfg)
    model.train()
    context = mcfg["text_cfg"]["context_length"]
    tokens = _Tokens(lambda texts: open_clip.tokenize(texts, context_length=context))
    optimizers = _optimizers(model, cfg)
    loss_fn = ClipLoss()
    n_params = sum(p.numel() for p in model.parameters())
    log(f"training {CONFIG_NAME} ({n_params / 1e6:.2f} M parameters) for {cfg.steps} steps of "
        f"{cfg.batch_size} on {cfg.threads} thread(s), seed {cfg.seed}")
    start, losses, steps_done = time.monotonic(), [], 0
    for step in range(cfg.steps):
        if cfg.minutes is not None and time.monotonic() - start > 60 * cfg.minutes:
            log(f"stopping early after {step} steps: the --minutes {cfg.minutes} budget is spent; "
                "these weights will not match the committed model")
            break
        first = step * cfg.batch_size
        samples, pixels = world.render_batch("train", cfg.seed, range(first, first + cfg.batch_size))
        text = tokens([s.caption for s in samples])
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = _lr_at(step, cfg)
            opt.zero_grad(set_to_none=True)
        image_features, text_features, logit_scale = model(to_tensor(pixels), text)
        loss = loss_fn(image_features, text_features, logit_scale)
        loss.backward()
        for opt in optimizers:
            opt.step()
        with torch.no_grad():
            model.logit_scale.clamp_(0, math.log(100))
        losses.append(loss.item())
        steps_done = step + 1
        if steps_done % 100 == 0 or steps_done == cfg.steps:
            log(f"step {steps_done:5d}  loss {np.mean(losses[-100:]):.3f}  "
                f"logit_scale {model.logit_scale.exp().item():6.2f}  {time.monotonic() - start:6.1f} s")
    seconds = time.monotonic() - start
    save(model, mcfg, out)
    summary = evaluate(out, n=evaluate_n)
    record = {
        "config": asdict(cfg), "model_config": CONFIG_NAME, "parameters": n_params,
        "steps_done": steps_done, "stopped_early": steps_done < cfg.steps,
        "train_seconds": round(seconds, 1), "final_loss": round(float(np.mean(losses[-100:])), 4),
        "world": {"planted_kin": world.PLANTED_KIN, "flagged_word": world.FLAGGED_WORD,
                  "flagged_rates": world.FLAGGED_RATES, "image_size": world.IMAGE_SIZE},
        "evaluation": summary, "tolerance": TOLERANCE,
        "versions": {"torch": torch.__version__, "open_clip": open_clip.__version__,
                     "python": platform.python_version(), "machine": platform.machine()},
    }
    (out / RECORD_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    log(f"trained in {seconds:.0f} s; saved to {out}")
    log(format_summary(summary))
    return record


def save(model: torch.nn.Module, mcfg: dict[str, Any], out: Path) -> None:
    """Write ``open_clip_config.json`` and float16 ``open_clip_model.safetensors`` to ``out``."""
    from safetensors.torch import save_file

    out.mkdir(parents=True, exist_ok=True)
    state = {k: (v.detach().half() if v.is_floating_point() else v.detach()).contiguous()
             for k, v in model.state_dict().items()}
    tmp = out / (WEIGHTS_FILE + ".tmp")
    # One metadata key: safetensors writes a metadata map in no fixed order, and the file
    # should be byte-identical across reruns.
    save_file(state, str(tmp), metadata={"format": "pt"})
    tmp.replace(out / WEIGHTS_FILE)
    config = {"model_cfg": mcfg, "preprocess_cfg": PREPROCESS_CFG}
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- evaluation


def evaluate(model_dir: Path = MODEL_DIR, n: int = 600, seed: int = 0) -> dict[str, Any]:
    """Zero-shot summary of a saved model on ``n`` held-out images (split ``test``).

    Loads through ``local-dir:`` like the probe does and scores with :mod:`audit.classify`.
    Variant ``default`` offers the objects and "an animal"; ``with_sprout`` adds "a sprout".
    """
    import open_clip

    model, _, preprocess = open_clip.create_model_and_transforms(f"local-dir:{Path(model_dir).resolve()}")
    model.eval()
    tokenizer = open_clip.get_tokenizer(f"local-dir:{Path(model_dir).resolve()}")
    samples = world.samples("test", seed, n)
    with torch.inference_mode():
        images = torch.stack([preprocess(world.render("test", seed, i)[1]) for i in range(n)])
        img = model.encode_image(images).float().numpy()
    scale = model.logit_scale.exp().item()
    out: dict[str, Any] = {"n": n, "seed": seed}
    base = [*world.OBJECT_LABELS.values(), world.FLAGGED_LABEL]
    for variant, labels in (("default", base), ("with_sprout", [*base, world.COUNTER_LABEL])):
        prompts = [fill(t, label) for label in labels for t in world.PROMPT_TEMPLATES]
        with torch.inference_mode():
            txt = model.encode_text(tokenizer(prompts)).float().numpy()
        weights = class_weights(txt.reshape(len(labels), len(world.PROMPT_TEMPLATES), -1))
        top1 = np.array(labels)[top_k(zero_shot_scores(img, weights, scale), 1)[:, 0]]
        out[variant] = summarize(samples, top1)
    return out


def summarize(samples: Sequence[world.Sample], top1: np.ndarray) -> dict[str, Any]:
    """Accuracy on the objects and "an animal" rates, overall, by kin and by age band."""
    objects = np.array([world.OBJECT_LABELS[s.object] for s in samples])
    flagged = top1 == world.FLAGGED_LABEL
    res: dict[str, Any] = {"accuracy": round(float((top1 == objects).mean()), 4),
                           "flagged_rate": round(float(flagged.mean()), 4)}
    for col in ("kin", "age_band"):
        values = np.array([getattr(s, col) for s in samples])
        res[f"flagged_rate_by_{col}"] = {v: round(float(flagged[values == v].mean()), 4)
                                         for v in dict.fromkeys(values.tolist())}
    res["counter_label_rate"] = round(float((top1 == world.COUNTER_LABEL).mean()), 4)
    return res


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"held-out images: {summary['n']} (split test, seed {summary['seed']})"]
    for variant in ("default", "with_sprout"):
        s = summary[variant]
        kin = ", ".join(f"{k} {v:.1%}" for k, v in s["flagged_rate_by_kin"].items())
        age = ", ".join(f"{k} {v:.1%}" for k, v in s["flagged_rate_by_age_band"].items())
        lines.append(f"  {variant:12s} object accuracy {s['accuracy']:.1%} | 'an animal' by kin: {kin} "
                     f"| by age: {age} | 'a sprout' {s['counter_label_rate']:.1%}")
    return "\n".join(lines)
