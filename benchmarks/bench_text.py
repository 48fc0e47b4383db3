"""Prompt-encoding throughput: the padding-trimmed text tower against open_clip's ``encode_text``.

A zero-shot ImageNet head is 1000 classes x 80 templates = 80,000 prompts, each run by open_clip
at the full 77-token context although CLIP's prompts are 7-20 tokens long. ``audit`` encodes a
causal tower's prompts only up to the last pooled token of each batch, with the prompts sorted by
length (``audit/models/text_trim.py``, ``audit.embed.embed_texts``). Figures (last line
``RESULT key=value ...``):

* ``trimmed_over_full``: prompts/s of ``audit.embed.embed_texts`` through the adapter (sorted,
  trimmed) over prompts/s of open_clip's ``encode_text`` on the same prompts in the same batch
  size, in ``--repeats`` pairs alternating in order; the median of the pairs' ratios.
* ``max_abs_diff``: the largest difference between the two sets of L2-normalized embeddings.
* ``mean_tokens`` / ``context``: the prompts' mean length in tokens and the tower's context.

    python benchmarks/bench_text.py                     # ViT-B-32, 10 classes x 80 templates
    python benchmarks/bench_text.py --smoke             # seconds: tiny model
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import SMOKE_ARCH, class_names, load_avg, log, machine_note, openai_imagenet_templates, result_line


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="ViT-B-32", help="open_clip architecture (random weights)")
    p.add_argument("--classes", type=int, default=10, help="ImageNet classes (x 80 templates)")
    p.add_argument("--batch-size", type=int, default=256, help="prompts per forward (audit's default)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="where each round's cold prompt cache goes (default: temp dirs, removed)")
    p.add_argument("--smoke", action="store_true", help=f"seconds-long plumbing check with {SMOKE_ARCH}")
    args = p.parse_args(argv)
    if args.smoke:
        args.arch, args.classes, args.repeats = SMOKE_ARCH, 2, 1
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import numpy as np
    import torch

    from audit.cache import TextStore
    from audit.embed import embed_texts
    from audit.models.openclip import OpenClipModel

    log(f"machine: {machine_note()}")
    model = OpenClipModel(f"{args.arch}:random", device=args.device)
    prompts = [t.format(c=c) for c in class_names(args.classes) for t in openai_imagenet_templates()]
    tokens = model.tokenizer(prompts)
    lengths = (tokens != 0).sum(dim=1).float()  # open_clip's tokenizer pads with 0
    tokens = tokens.to(args.device)
    log(f"{args.arch}: {len(prompts)} prompts, mean {float(lengths.mean()):.1f} tokens of {tokens.shape[1]}; "
        f"text encoder: {model.info.extra['text_context']}")

    def full() -> np.ndarray:
        with torch.inference_mode():
            parts = [model.model.encode_text(tokens[i:i + args.batch_size]) for i in range(0, len(prompts), args.batch_size)]
        emb = torch.cat(parts).float().cpu().numpy()
        return emb / np.linalg.norm(emb, axis=1, keepdims=True)

    def ours(round_: int) -> np.ndarray:
        with tempfile.TemporaryDirectory() as tmp:  # a cold prompt cache every round
            root = args.work_dir / f"prompts-{round_}" if args.work_dir else Path(tmp)
            return embed_texts(model, prompts, TextStore(root, model.info.cache_key), batch_size=args.batch_size,
                               quiet=True)[0]

    ratios: list[float] = []
    best = {"full": float("inf"), "trimmed": float("inf")}
    out: dict[str, Any] = {}
    for r in range(args.repeats):
        times = {}
        for name in (("full", "trimmed") if r % 2 == 0 else ("trimmed", "full")):
            start = time.perf_counter()
            out[name] = full() if name == "full" else ours(r)
            times[name] = time.perf_counter() - start
            best[name] = min(best[name], times[name])
        ratios.append(times["full"] / times["trimmed"])
        log(f"round {r + 1}: full {len(prompts) / times['full']:.1f} prompts/s, trimmed "
            f"{len(prompts) / times['trimmed']:.1f} prompts/s, x{ratios[-1]:.2f} (load {load_avg()})")
    print(result_line({
        "trimmed_over_full": statistics.median(ratios),
        "full_prompts_s": len(prompts) / best["full"], "trimmed_prompts_s": len(prompts) / best["trimmed"],
        "max_abs_diff": float(np.abs(out["full"] - out["trimmed"]).max()),
        "mean_tokens": float(lengths.mean()), "context": int(tokens.shape[1]), "prompts": len(prompts),
        "arch": args.arch, "device": args.device, "batch_size": args.batch_size, "threads": torch.get_num_threads(), "load_avg": load_avg(),
    }), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
