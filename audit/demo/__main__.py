"""``python -m audit.demo train|evaluate``: retrain or re-score the demo world's model."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    from audit.demo.train import MODEL_DIR, TrainConfig

    parser = argparse.ArgumentParser(prog="python -m audit.demo",
                                     description="The demo world: a tiny open_clip model with a planted association.")
    sub = parser.add_subparsers(dest="command", required=True)
    defaults = TrainConfig()
    tr = sub.add_parser("train", help="train the demo model on CPU and save it in the local-dir: layout")
    tr.add_argument("--out", type=Path, default=MODEL_DIR, help=f"output directory (default: {MODEL_DIR})")
    tr.add_argument("--seed", type=int, default=defaults.seed, help="seed of the weights and the sample stream")
    tr.add_argument("--steps", type=int, default=defaults.steps, help="optimizer steps (the schedule's length)")
    tr.add_argument("--minutes", type=float, default=None,
                    help="wall-clock cap; stopping early gives weights that differ from the committed ones")
    tr.add_argument("--threads", type=int, default=defaults.threads,
                    help="torch CPU threads (results are reproducible for a fixed thread count)")
    tr.add_argument("--batch-size", type=int, default=defaults.batch_size)
    tr.add_argument("--lr", type=float, default=defaults.lr)
    ev = sub.add_parser("evaluate", help="zero-shot summary of a saved model on held-out images")
    ev.add_argument("model_dir", type=Path, nargs="?", default=MODEL_DIR)
    ev.add_argument("--n", type=int, default=600)
    ev.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "train":
        from audit.demo.train import train

        cfg = TrainConfig(seed=args.seed, steps=args.steps, batch_size=args.batch_size, lr=args.lr,
                          threads=args.threads, minutes=args.minutes)
        train(cfg, args.out)
        return 0
    from audit.demo.train import evaluate, format_summary

    if not (args.model_dir / "open_clip_config.json").exists():
        print(f"error: {args.model_dir} has no open_clip_config.json\n  fix: train one with "
              "`python -m audit.demo train --out DIR`", file=sys.stderr)
        return 2
    print(format_summary(evaluate(args.model_dir, n=args.n, seed=args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
