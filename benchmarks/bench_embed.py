"""Image-embedding throughput and memory: ``audit.embed.embed_images`` against the bare forward pass.

Figures (the last line is ``RESULT key=value ...``):

* ``end_to_end_over_forward`` (target >= 0.85): images/s of ``embed_images`` on a generated
  LAION-layout webdataset read through the ``imagenet`` adapter (read, decode, preprocess,
  forward, write the cache, read it back), over images/s of ``model.encode_images`` alone on
  already preprocessed tensors, same model and batch size. Forward and end-to-end runs come in
  ``--repeats`` pairs, adjacent in time and in alternating order; the figure is the median of the
  pairs' ratios, so that load from other processes hits both sides alike.
  ``best_end_to_end_over_best_forward`` is the ratio of the best rounds instead.
* ``predicted_idle_ratio``: what an idle machine should show if the forward pass keeps every core
  busy and the workers' decoding and preprocessing take their CPU time from it:
  ``fwd / (fwd + decode_ms + preprocess_ms)``, with ``fwd`` = threads x ms per image of the best
  forward round and the two costs measured single-threaded (CPU time, hardly load-dependent).
  ``cpu_end_to_end_over_forward`` compares CPU seconds per image (main process plus workers).
* ``rss_growth_over_embeddings`` (memory must grow only by the embeddings): peak RSS
  (``resource.getrusage``) of a fresh process that embeds ``--mem-sizes`` images each; the growth
  between the two sizes over the growth of the embedding array itself, with ``rss_growth_mb``
  and ``embedding_growth_mb`` as absolute figures.

``--explore`` also times prototype variants of the loop in ``audit/embed.py`` (worker counts,
a niced worker, deeper prefetch, main-process preprocessing with one torch thread).

    python benchmarks/bench_embed.py                      # ViT-B-32, 320 images; minutes on 2 cores
    python benchmarks/bench_embed.py --smoke              # seconds: tiny model, tiny images
    python benchmarks/bench_embed.py --explore --skip-memory --n-images 200 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    REPO,
    add_common_args,
    base_env,
    load_avg,
    log,
    machine_note,
    make_wds,
    resolve_common,
    result_line,
)

N_DEFAULT, N_SMOKE = 320, 40


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, n_images=N_DEFAULT, smoke_n=N_SMOKE)
    p.add_argument("--repeats", type=int, default=5,
                   help="paired forward / end-to-end rounds; the median of the paired ratios counts")
    p.add_argument("--mem-sizes", default=None, help="two dataset sizes for the memory figure (default 500,2000)")
    p.add_argument("--skip-memory", action="store_true")
    p.add_argument("--only-memory", action="store_true", help="measure memory only")
    p.add_argument("--explore", action="store_true", help="also time prototype variants of the embed loop")
    p.add_argument("--_mem-child", dest="mem_child", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    resolve_common(args, n_images=N_DEFAULT, smoke_n=N_SMOKE)
    if args.mem_sizes is None:
        args.mem_sizes = "20,60" if args.smoke else "500,2000"
    if args.smoke:
        args.repeats = 1
    return args


# --------------------------------------------------------------------------- shared setup


def open_data(root: Path) -> Any:
    from audit.data import open_dataset
    from audit.spec import DatasetSpec

    spec = DatasetSpec(adapter="imagenet", source=str(root), options={"layout": "webdataset"})
    return open_dataset(spec, lambda p: Path(p).expanduser().resolve())


def load_model(args: argparse.Namespace) -> Any:
    from audit.models.openclip import OpenClipModel

    return OpenClipModel(f"{args.arch}:random", device=args.device, precision=args.precision)


def cpu_seconds() -> float:
    """CPU seconds of this process and of its reaped children (DataLoader workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


@contextmanager
def stopwatch(out: dict[str, float]) -> Iterator[None]:
    c0, t0 = cpu_seconds(), time.perf_counter()
    yield
    out["wall"], out["cpu"] = time.perf_counter() - t0, cpu_seconds() - c0


# --------------------------------------------------------------------------- the two measurements


def forward_only(model: Any, data: Any, n: int, batch: int) -> dict[str, float]:
    """``model.encode_images`` over ``n`` images in batches of ``batch``, inputs preprocessed
    beforehand (a few distinct batches, cycled: the forward pass does not care which pixels)."""
    import torch

    k = min(n, 2 * batch)
    pool = torch.stack([model.preprocess(data.load_image(i)) for i in range(k)])
    sizes = [batch] * (n // batch) + ([n % batch] if n % batch else [])
    starts = [(j * batch) % k for j in range(len(sizes))]
    batches = [pool[a:a + s] if a + s <= k else pool[:s] for a, s in zip(starts, sizes)]
    t: dict[str, float] = {}
    with stopwatch(t):
        for x in batches:
            model.encode_images(x)
    return t


def end_to_end(model: Any, data: Any, batch: int, workers: int | None, cache: Path) -> dict[str, float]:
    from audit.cache import ImageStore
    from audit.embed import embed_images

    store = ImageStore(cache, {"model": model.info.cache_key, "dataset": data.info.fingerprint})
    t: dict[str, float] = {}
    with stopwatch(t):
        out = embed_images(model, data, store, batch_size=batch, num_workers=workers, quiet=True)
    assert out.embeddings.shape[0] == len(data) and out.ok.all(), "embedding went wrong"
    return t


def per_image_costs(model: Any, data: Any, k: int) -> dict[str, float]:
    """CPU ms per image of reading+decoding and of preprocessing, one torch thread (as in a
    DataLoader worker). Single-threaded CPU time barely depends on other load."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for i in range(min(4, len(data))):  # warm-up
            model.preprocess(data.load_image(i))
        rows = [i % len(data) for i in range(k)]
        c0 = time.process_time()
        images = [data.load_image(i) for i in rows]
        c1 = time.process_time()
        for im in images:
            model.preprocess(im)
        c2 = time.process_time()
    finally:
        torch.set_num_threads(before)
    return {"decode_ms": (c1 - c0) / k * 1e3, "preprocess_ms": (c2 - c1) / k * 1e3}


# --------------------------------------------------------------------------- prototypes (--explore)


def _niced_worker(_: int) -> None:
    os.nice(10)


def proto_encode_rows(*, prefetch: int | None = None, nice: bool = False,
                      main_threads: int | None = None) -> Callable[..., Any]:
    """A drop-in for ``audit.embed._encode_rows`` with knobs, to measure candidate changes."""
    import numpy as np
    import torch
    from torch.utils.data import DataLoader

    from audit.cache import Shard
    from audit.embed import _Rows

    def encode(model: Any, data: Any, rows: range, shape: tuple[int, ...], batch_size: int,
               workers: int, bar: Any) -> Shard:
        kwargs: dict[str, Any] = {}
        if workers > 0:
            kwargs["prefetch_factor"] = prefetch or 2
            if nice:
                kwargs["worker_init_fn"] = _niced_worker
        loader = DataLoader(_Rows(data, model.preprocess, rows, shape), batch_size=batch_size,
                            num_workers=workers, **kwargs)
        embs, oks, errors = [], [], {}
        it = iter(loader)
        while True:
            if workers == 0 and main_threads is not None:
                before = torch.get_num_threads()
                torch.set_num_threads(main_threads)  # small per-image tensor ops: 1 thread is faster
                try:
                    item = next(it, None)
                finally:
                    torch.set_num_threads(before)
            else:
                item = next(it, None)
            if item is None:
                break
            row_ids, images, ok, why = item
            emb = model.encode_images(images)
            ok_np = ok.numpy().astype(bool)
            emb[~ok_np] = 0.0
            embs.append(emb)
            oks.append(ok_np)
            errors.update({int(r): str(w) for r, w, g in zip(row_ids, why, ok_np) if not g})
        return Shard(np.concatenate(embs), np.concatenate(oks), errors)

    return encode


@contextmanager
def patched_encode_rows(fn: Callable[..., Any] | None) -> Iterator[None]:
    from audit import embed

    original = embed._encode_rows
    if fn is not None:
        embed._encode_rows = fn
    try:
        yield
    finally:
        embed._encode_rows = original


def explore(model: Any, data: Any, args: argparse.Namespace, work: Path) -> dict[str, float]:
    """Time prototype variants. Each round runs the forward pass and every variant in a rotating
    order; a variant's figure is the median over rounds of (forward time / its time)."""
    n = len(data)
    variants: list[tuple[str, int, Callable[..., Any] | None]] = [
        ("workers0", 0, None),
        ("workers0_main1thread", 0, proto_encode_rows(main_threads=1)),
        ("workers1", 1, None),
        ("workers2", 2, None),
        ("workers1_nice", 1, proto_encode_rows(nice=True)),
        ("workers1_prefetch4", 1, proto_encode_rows(prefetch=4)),
    ]
    ratios: dict[str, list[float]] = {name: [] for name, _, _ in variants}
    steps = [("forward", 0, None), *variants]
    for r in range(args.repeats):
        walls: dict[str, float] = {}
        for name, workers, fn in steps[r % len(steps):] + steps[:r % len(steps)]:
            if name == "forward":
                walls[name] = forward_only(model, data, n, args.batch_size)["wall"]
                continue
            with patched_encode_rows(fn):
                walls[name] = end_to_end(model, data, args.batch_size, workers, work / f"cache-{name}-{r}")["wall"]
        for name, values in ratios.items():
            values.append(walls["forward"] / walls[name])
        log(f"  explore round {r + 1}: " + ", ".join(f"{k} {n / v:.1f}" for k, v in walls.items())
            + f" img/s (load {load_avg()})")
    return {f"explore_{k}": statistics.median(v) for k, v in ratios.items()}


# --------------------------------------------------------------------------- memory


def mem_child(root: Path, args: argparse.Namespace) -> None:
    """Run in a fresh process: embed every image of ``root`` and print peak RSS as JSON."""
    import numpy as np

    data = open_data(root)
    model = load_model(args)
    from audit.cache import ImageStore
    from audit.embed import embed_images

    after_load = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Loading the weights peaks higher than embedding does (random init + state dict side by side),
    # which would hide any growth; Linux resets the peak (VmHWM) on "5" > /proc/self/clear_refs.
    reset = _reset_peak_rss()
    with tempfile.TemporaryDirectory() as cache:
        store = ImageStore(Path(cache), {"model": model.info.cache_key, "dataset": data.info.fingerprint})
        out = embed_images(model, data, store, batch_size=args.batch_size, num_workers=args.workers, quiet=True)
    status = _proc_status()
    print(json.dumps({
        "n": len(data), "embedding_bytes": int(np.asarray(out.embeddings).nbytes),
        "maxrss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "maxrss_after_model_kb": after_load,
        "embed_peak_kb": status.get("VmHWM", -1) if reset else -1,
        "workers_maxrss_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "end_rss_anon_kb": status.get("RssAnon", -1), "end_rss_file_kb": status.get("RssFile", -1),
    }))


def _proc_status() -> dict[str, int]:
    path = Path("/proc/self/status")
    text = path.read_text() if path.exists() else ""
    return {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in text.splitlines())
            if k in ("VmHWM", "VmRSS", "RssAnon", "RssFile")}


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    status = _proc_status()
    return status.get("VmHWM", 0) <= status.get("VmRSS", 0) + 4096  # the reset took


def memory(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sizes = [int(s) for s in args.mem_sizes.split(",")]
    if len(sizes) != 2 or sizes[0] >= sizes[1]:
        raise SystemExit(f"--mem-sizes wants two increasing sizes, got {args.mem_sizes!r}")
    runs = []
    for n in sizes:
        root = make_wds(work / f"mem-{n}", n, args.classes, image_size=args.image_size, shards=args.shards)
        cmd = [sys.executable, __file__, "--_mem-child", str(root), "--arch", args.arch,
               "--batch-size", str(args.batch_size), "--n-images", str(n), "--device", args.device,
               "--precision", args.precision]
        if args.workers is not None:
            cmd += ["--workers", str(args.workers)]
        env = base_env(work / f"mem-{n}-env")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=REPO, check=False)
        if proc.returncode:
            sys.stderr.write(proc.stderr[-4000:])
            raise SystemExit(f"memory child for {n} images failed")
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        r = runs[-1]
        log(f"memory n={n}: peak RSS {r['maxrss_kb'] / 1024:.0f} MiB (of which loading the model "
            f"{r['maxrss_after_model_kb'] / 1024:.0f} MiB), peak while embedding {r['embed_peak_kb'] / 1024:.0f} MiB, "
            f"child processes' peak {r['workers_maxrss_kb'] / 1024:.0f} MiB, embeddings "
            f"{r['embedding_bytes'] / 2**20:.1f} MiB, end RssAnon {r['end_rss_anon_kb'] / 1024:.0f} MiB, "
            f"RssFile {r['end_rss_file_kb'] / 1024:.0f} MiB")
    small, large = runs
    # The peak while embedding when Linux let us reset it; else the whole process's peak.
    key = "embed_peak_kb" if small["embed_peak_kb"] > 0 and large["embed_peak_kb"] > 0 else "maxrss_kb"
    rss_growth = (large[key] - small[key]) * 1024
    emb_growth = large["embedding_bytes"] - small["embedding_bytes"]
    return {"mem_sizes": f"{sizes[0]}/{sizes[1]}", "mem_peak_measured": "embedding" if key == "embed_peak_kb" else "process",
            "peak_rss_mb_small": small[key] / 1024, "peak_rss_mb_large": large[key] / 1024,
            "process_peak_rss_mb_large": large["maxrss_kb"] / 1024,
            "rss_growth_mb": rss_growth / 2**20, "embedding_growth_mb": emb_growth / 2**20,
            "rss_growth_over_embeddings": rss_growth / emb_growth if emb_growth else float("nan"),
            "workers_peak_growth_mb": (large["workers_maxrss_kb"] - small["workers_maxrss_kb"]) / 1024}


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.mem_child is not None:
        mem_child(args.mem_child, args)
        return 0
    import torch

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench-embed-"))
    work.mkdir(parents=True, exist_ok=True)
    os.environ.update({k: v for k, v in base_env(work).items() if k.startswith(("HF_", "TQDM"))})
    try:
        log(f"machine: {machine_note()}; torch {torch.__version__}, {torch.get_num_threads()} threads")
        if args.only_memory:
            print(result_line({**memory(args, work), "arch": args.arch, "batch_size": args.batch_size,
                               "load_avg": load_avg()}), flush=True)
            return 0
        root = make_wds(work / "data", args.n_images, args.classes, image_size=args.image_size, shards=args.shards)
        data = open_data(root)
        model = load_model(args)
        from audit.embed import default_workers

        workers = default_workers(len(data)) if args.workers is None else args.workers
        log(f"{args.arch} (random weights), {len(data)} images of {args.image_size}px JPEG, batch "
            f"{args.batch_size}, {workers} DataLoader worker(s)")
        model.encode_images(torch.stack([model.preprocess(data.load_image(0))] * 2))  # warm-up
        fwd, e2e = [], []
        for r in range(args.repeats):  # paired rounds, order alternating, so drifting load cancels
            for step in ("forward", "e2e") if r % 2 == 0 else ("e2e", "forward"):
                if step == "forward":
                    fwd.append(forward_only(model, data, len(data), args.batch_size))
                else:
                    e2e.append(end_to_end(model, data, args.batch_size, workers, work / f"cache-{r}"))
            log(f"round {r + 1}: forward {len(data) / fwd[-1]['wall']:.1f} img/s, end-to-end "
                f"{len(data) / e2e[-1]['wall']:.1f} img/s, ratio {fwd[-1]['wall'] / e2e[-1]['wall']:.3f} "
                f"(load {load_avg()})")
        n = len(data)
        fwd_best, e2e_best = max(n / t["wall"] for t in fwd), max(n / t["wall"] for t in e2e)
        fwd_cpu, e2e_cpu = min(t["cpu"] for t in fwd) / n, min(t["cpu"] for t in e2e) / n
        # An idle machine's estimate: the forward keeps every core busy; decoding and preprocessing
        # (in the workers) take their CPU time from it.
        costs = per_image_costs(model, data, min(n, 128))
        fwd_core_ms = torch.get_num_threads() * 1e3 / fwd_best
        fields: dict[str, Any] = {
            "end_to_end_over_forward": statistics.median(f["wall"] / e["wall"] for f, e in zip(fwd, e2e)),
            "best_end_to_end_over_best_forward": e2e_best / fwd_best,
            "cpu_end_to_end_over_forward": fwd_cpu / e2e_cpu,
            "forward_img_s": fwd_best, "end_to_end_img_s": e2e_best,
            "predicted_idle_ratio": fwd_core_ms / (fwd_core_ms + costs["decode_ms"] + costs["preprocess_ms"]),
            **costs,
            "forward_cpu_ms_per_img": fwd_cpu * 1e3, "end_to_end_cpu_ms_per_img": e2e_cpu * 1e3,
        }
        if args.explore:
            fields.update(explore(model, data, args, work))
        del model, data
        if not args.skip_memory:
            fields.update(memory(args, work))
        fields.update({"arch": args.arch, "device": args.device, "precision": args.precision, "n_images": n, "batch_size": args.batch_size, "workers": workers,
                       "image_px": args.image_size, "threads": torch.get_num_threads(),
                       "cpus": os.cpu_count(), "load_avg": load_avg()})
        print(result_line(fields), flush=True)
        return 0
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
