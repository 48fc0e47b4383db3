"""Images/s of the same weights through open_clip and through transformers.

One random-init open_clip ViT (``--arch``, default ViT-B-32) is saved as a checkpoint and converted
to a transformers ``CLIPModel`` with the key mapping of transformers' own CLIP conversion script
(``tests/hf_fixtures.py``). audit then loads it twice, as ``ARCH:/path.pt`` (open_clip) and as
``transformers:/path`` (transformers), and times each adapter on the same generated images.
Figures (the last line is ``RESULT key=value ...``):

* ``forward_transformers_over_openclip``: images/s of ``encode_images`` (already preprocessed
  batches) through transformers over images/s through open_clip, median of ``--repeats`` pairs run
  adjacent in time in alternating order; ``forward_openclip_img_s`` and
  ``forward_transformers_img_s`` are the best rounds.
* ``preprocess_transformers_over_openclip``: images/s of each adapter's ``preprocess`` (PIL image
  -> tensor, one image at a time as in a DataLoader worker), same pairing.
* ``max_abs_diff_same_pixels``: the largest difference between the two models' L2-normalized
  image embeddings on the same pixel tensors (open_clip's preprocessing): the weights agree.

    python benchmarks/bench_transformers.py             # ViT-B-32, 128 images; about a minute on 2 cores
    python benchmarks/bench_transformers.py --smoke     # seconds: the tiny 2-layer config
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
from _common import REPO, SMOKE_ARCH, load_avg, log, machine_note, result_line, save_random_checkpoint

sys.path.insert(0, str(REPO))


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--arch", default="ViT-B-32", help="open_clip ViT architecture (random weights)")
    p.add_argument("--n-images", type=int, default=None, help="images per round (default 128; 16 with --smoke)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--image-size", type=int, default=320, help="side of the generated images in pixels")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--work-dir", type=Path, default=None, help="where the two copies of the weights go")
    p.add_argument("--smoke", action="store_true", help=f"seconds-long plumbing check with {SMOKE_ARCH}")
    args = p.parse_args(argv)
    if args.smoke:
        args.arch = SMOKE_ARCH if args.arch == "ViT-B-32" else args.arch
        args.image_size, args.repeats = min(args.image_size, 48), min(args.repeats, 2)
    args.n_images = args.n_images or (16 if args.smoke else 128)
    return args


def make_images(n: int, size: int) -> list[Any]:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def timed(fn: Any) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def rounds(models: dict[str, Any], images: list[Any], batches: dict[str, list[Any]], repeats: int) -> dict[str, Any]:
    """Paired timings: per round, each adapter's preprocessing and forward pass, order alternating."""
    fwd: dict[str, list[float]] = {k: [] for k in models}
    pre: dict[str, list[float]] = {k: [] for k in models}
    n = len(images)
    for r in range(repeats):
        for name in (list(models) if r % 2 == 0 else list(reversed(models))):
            m = models[name]
            pre[name].append(n / timed(lambda m=m: [m.preprocess(im) for im in images]))
            fwd[name].append(n / timed(lambda m=m, name=name: [m.encode_images(b) for b in batches[name]]))
        log(f"round {r + 1}: forward open_clip {fwd['open_clip'][-1]:.1f} img/s, transformers "
            f"{fwd['transformers'][-1]:.1f} img/s; preprocess {pre['open_clip'][-1]:.0f} vs "
            f"{pre['transformers'][-1]:.0f} img/s; load {load_avg()}")
    ratio = lambda d: statistics.median(t / o for t, o in zip(d["transformers"], d["open_clip"]))  # noqa: E731
    return {"forward_transformers_over_openclip": ratio(fwd), "preprocess_transformers_over_openclip": ratio(pre),
            "forward_openclip_img_s": max(fwd["open_clip"]), "forward_transformers_img_s": max(fwd["transformers"]),
            "preprocess_openclip_img_s": max(pre["open_clip"]),
            "preprocess_transformers_img_s": max(pre["transformers"])}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    import open_clip
    import torch

    from audit.models.hf_transformers import TransformersModel
    from audit.models.openclip import OpenClipModel
    from tests.hf_fixtures import convert_openclip, save_clip

    log(f"machine: {machine_note()}; torch threads {torch.get_num_threads()}")
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        ckpt = save_random_checkpoint(args.arch, work / f"{args.arch}.pt")
        oc = open_clip.create_model(args.arch, pretrained=str(ckpt))
        save_clip(work / "hf", convert_openclip(oc, args.arch))
        del oc
        models = {"open_clip": OpenClipModel(f"{args.arch}:{ckpt}", device=args.device, precision="fp32"),
                  "transformers": TransformersModel(f"transformers:{work / 'hf'}", device=args.device,
                                                    precision="fp32")}
        images = make_images(args.n_images, args.image_size)
        batches = {k: [torch.stack([m.preprocess(im) for im in images[i:i + args.batch_size]])
                       for i in range(0, len(images), args.batch_size)] for k, m in models.items()}
        same = batches["open_clip"][0]
        diff = float(abs(models["open_clip"].encode_images(same) - models["transformers"].encode_images(same)).max())
        log(f"{args.arch}: same pixels, max |open_clip - transformers| image embedding difference {diff:.2g}")
        figures = rounds(models, images, batches, args.repeats)
    print(result_line({"arch": args.arch, "n_images": args.n_images, "batch_size": args.batch_size,
                       "device": args.device, **figures, "max_abs_diff_same_pixels": diff,
                       "load_avg": load_avg()}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
