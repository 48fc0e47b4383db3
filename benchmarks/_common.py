"""Helpers shared by the benchmark scripts (not part of the ``audit`` package).

Kept free of torch and open_clip at import time: ``vs_clip_benchmark.py`` re-runs itself inside
clip_benchmark's interpreter, where only the standard library is wanted before clip_benchmark.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
#: The smoke mode's model: the package's own 2-layer config (``audit/models/configs``).
SMOKE_ARCH = "audit-tiny-vit"
#: Templates written into the generated dataset (``{c}``, as in LAION's template files).
TEMPLATES = ("a photo of a {c}.", "a blurry photo of a {c}.", "a sketch of a {c}.")


def openai_imagenet_templates() -> tuple[str, ...]:
    """The 80 templates of CLIP's ImageNet evaluation, as in LAION's ``wds_imagenet1k`` template
    file and clip_benchmark's ``imagenet1k`` entry, written with ``{c}``."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES

    return tuple(t("{c}") for t in OPENAI_IMAGENET_TEMPLATES)


def add_common_args(p: argparse.ArgumentParser, *, n_images: int, smoke_n: int) -> None:
    p.add_argument("--arch", default="ViT-B-32", help="open_clip architecture (default ViT-B-32)")
    p.add_argument("--n-images", type=int, default=None,
                   help=f"images in the generated dataset (default {n_images}; {smoke_n} with --smoke)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu", help="where the models run (default cpu)")
    p.add_argument("--precision", choices=("fp32", "amp_bf16", "amp_fp16"), default="fp32",
                   help="audit's --precision (default fp32; clip_benchmark gets --no_amp for fp32)")
    p.add_argument("--workers", type=int, default=None,
                   help="DataLoader workers (default: audit.embed.default_workers for the dataset size)")
    p.add_argument("--image-size", type=int, default=320,
                   help="side of the generated JPEGs in pixels (ImageNet averages ~400x350)")
    p.add_argument("--classes", type=int, default=10, help="classes in the generated dataset")
    p.add_argument("--shards", type=int, default=2, help="tar shards in the generated dataset")
    p.add_argument("--work-dir", type=Path, default=None,
                   help="where datasets, checkpoints and caches go (default: a fresh temp dir, removed)")
    p.add_argument("--smoke", action="store_true",
                   help=f"seconds-long plumbing check: {SMOKE_ARCH}, {smoke_n} images, tiny JPEGs")


def resolve_common(args: argparse.Namespace, *, n_images: int, smoke_n: int) -> None:
    """Fill the smoke-mode and default values in place."""
    if args.smoke:
        args.arch = SMOKE_ARCH if args.arch == "ViT-B-32" else args.arch
        args.image_size = min(args.image_size, 48)
        args.batch_size = min(args.batch_size, 16)
        args.classes = min(args.classes, 5)
    if args.n_images is None:
        args.n_images = smoke_n if args.smoke else n_images


def load_avg() -> str:
    """``1m/5m/15m`` load average over the CPU count, for the record next to every figure."""
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f}/{five:.2f}/{fifteen:.2f}"


def machine_note() -> str:
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
            f"load avg {load_avg()} (1/5/15 min), python {platform.python_version()}")


def fmt(value: Any) -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return "nan" if math.isnan(value) else f"{value:.4g}"
    return str(value).replace(" ", "_")


def result_line(fields: Mapping[str, Any]) -> str:
    """The one machine-readable line a script ends with: ``RESULT key=value ...``."""
    return "RESULT " + " ".join(f"{k}={fmt(v)}" for k, v in fields.items())


def log(msg: str) -> None:
    print(msg, flush=True)


def class_names(n: int) -> list[str]:
    """The first ``n`` of OpenAI's ImageNet names (unique for n <= 100), read without torch."""
    from audit.data.imagenet import openai_classnames

    names = list(openai_classnames()[:n])
    if len(set(names)) != len(names):
        raise SystemExit(f"--classes {n}: OpenAI's first {n} ImageNet names are not unique; use <= 100")
    return names


def make_wds(root: Path, n_images: int, n_classes: int, *, image_size: int, shards: int,
             seed: int = 0, templates: tuple[str, ...] = TEMPLATES) -> Path:
    """A LAION-layout webdataset dir of ``n_images`` noisy colour swatches (label ``i % classes``)."""
    from audit.testing.fixtures import write_wds_dir

    if n_images % n_classes:
        raise SystemExit(f"--n-images {n_images} must be a multiple of --classes {n_classes}")
    return write_wds_dir(root, class_names(n_classes), n_images // n_classes, image_ext="jpg",
                         templates=templates, shards=min(shards, n_images), size=image_size, seed=seed)


def shard_sizes(n_images: int, shards: int) -> list[int]:
    """Samples per tar, as :func:`audit.testing.fixtures.write_wds_dir` splits them."""
    import numpy as np

    bounds = np.linspace(0, n_images, min(shards, n_images) + 1).astype(int)
    return [int(b - a) for a, b in itertools.pairwise(bounds)]


def save_random_checkpoint(arch: str, path: Path, seed: int = 0) -> Path:
    """Random-init weights of ``arch`` saved as a plain state dict (what ``--pretrained`` loads)."""
    import open_clip
    import torch

    from audit.models.openclip import local_seed, register_configs

    register_configs()
    with local_seed(seed):
        model = open_clip.create_model(arch, pretrained=None)
    torch.save(model.state_dict(), path)
    return path


def write_probe(path: Path, data_dir: Path, model_id: str, *, batch_size: int,
                extra_label_sets: Sequence[Path] = (), variants: Mapping[str, Any] | None = None) -> Path:
    """A zero-shot ImageNet-style probe on ``data_dir``: the dataset's class names and templates,
    top-1 / top-5 accuracy and mean per-class recall (clip_benchmark's three figures)."""
    spec: dict[str, Any] = {
        "name": path.stem,
        "dataset": {"adapter": "imagenet", "source": str(data_dir), "options": {"layout": "webdataset"}},
        "models": [model_id],
        "label_sets": ["classnames", *map(str, extra_label_sets)],
        "templates": "dataset",
        "metrics": ["accuracy", "top5_accuracy", "mean_per_class_recall"],
        "report": {"enabled": False},
        "batch_size": batch_size,
    }
    if variants:
        spec["variants"] = dict(variants)
    path.write_text(json.dumps(spec, indent=1), encoding="utf-8")  # JSON is YAML
    return path


@dataclass(frozen=True)
class Timed:
    wall_s: float
    #: user + system CPU seconds of the process and of every descendant it waited for
    #: (DataLoader workers): less sensitive than wall time to other load on a shared machine.
    cpu_s: float
    returncode: int
    output: str


def _children_cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_timed(cmd: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: Path | None = None,
              timeout: float | None = None) -> Timed:
    """Wall and CPU time of a whole subprocess (start-up and imports included); output captured."""
    c0, t0 = _children_cpu(), time.perf_counter()
    proc = subprocess.run(list(cmd), env=dict(env) if env is not None else None, cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                          check=False)
    return Timed(time.perf_counter() - t0, _children_cpu() - c0, proc.returncode, proc.stdout)


def fail(what: str, timed: Timed) -> None:
    sys.stderr.write(f"{what} failed (exit {timed.returncode}); its output ends:\n{timed.output[-4000:]}\n")
    raise SystemExit(1)


def base_env(work: Path) -> dict[str, str]:
    """Offline, and every cache (HF datasets' arrow files too) inside ``work``: cold by construction."""
    env = dict(os.environ)
    env.update({"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                "HF_DATASETS_CACHE": str(work / "hf_datasets"), "PYTHONUNBUFFERED": "1",
                "TQDM_DISABLE": "1"})
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    return env
