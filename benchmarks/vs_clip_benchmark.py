"""A full ``audit run`` against LAION's ``clip_benchmark eval`` on the same zero-shot job.

Same open_clip architecture and weights (random-init ``--arch`` saved to a local ``.pt`` and
passed to both), same images (a generated LAION-layout webdataset dir), same class names and
templates (its ``classnames.txt`` and ``zeroshot_classification_templates.txt``), same batch size
and DataLoader workers, fp32 on the CPU for both. Figures (last line ``RESULT key=value ...``):

* ``audit_over_clip_benchmark`` (target <= 0.8): wall time of ``python -m audit run`` from a cold
  embedding cache (and a cold ``datasets`` cache), over the wall time of ``clip_benchmark eval``;
  whole processes, start-up and imports included. Runs alternate ``--repeats`` times; best of each.
  ``cpu_audit_over_clip_benchmark``: the same with CPU seconds (user + system, workers included),
  less sensitive to other processes' load on a shared machine.
* ``per_image_top1_agree`` (target 1.0): share of images whose top-1 class is the same in both
  (clip_benchmark's logits are captured per image and put back in dataset order); ``top1_equal``:
  the two top-1 accuracies are exactly equal; ``max_cos_diff``: largest difference of the top-1
  cosine similarity between the two.
* ``rerun_labels_over_cold`` and ``rerun_variant_over_cold`` (target <= 0.1): wall time of re-running
  the probe with an extra label set (new prompts to encode) or with only a new variant, the image
  embeddings coming from the cache, over the cold run (``cpu_rerun_*``: in CPU seconds). The
  script fails if a re-run wrote any image shard.

clip_benchmark is optional. Install it (pinned) in its own venv that sees the system torch::

    python -m venv --system-site-packages /tmp/cb-venv
    /tmp/cb-venv/bin/pip install clip_benchmark==1.6.2

then pass ``--cb-python /tmp/cb-venv/bin/python`` (or set ``CLIP_BENCHMARK_PYTHON``). Without it
the comparison is skipped with a message and the re-run figures are still measured.

clip_benchmark runs through a shim (this file with ``--_cb-child``) that changes nothing it
computes or times, only: (1) its ``accuracy()`` calls ``float()`` on a 1-element array, which
numpy >= 2.4 refuses (``TypeError``); the shim's copy sums with ``.item()``; (2) it captures the
logits and targets that ``run_classification`` returns, for the per-image comparison; (3) in
``--smoke`` mode it registers audit's tiny model config with open_clip. Its fp32 flag is
``--no_amp`` (its default AMP is bf16 autocast on a CPU, which changes results).

    python benchmarks/vs_clip_benchmark.py --cb-python /tmp/cb-venv/bin/python
    python benchmarks/vs_clip_benchmark.py --smoke
"""

from __future__ import annotations

import sys

# The clip_benchmark child must import nothing of ours before clip_benchmark: keep this first.
if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--_cb-child":
    def _cb_child(dump: str, configs: str, argv: list[str]) -> None:
        import numpy as np
        import open_clip
        from clip_benchmark import cli
        from clip_benchmark.metrics import zeroshot_classification as zc

        if configs:
            open_clip.add_model_config(configs)

        def accuracy(output, target, topk=(1,)):  # type: ignore[no-untyped-def]
            pred = output.topk(max(topk), 1, True, True)[1].t()
            correct = pred.eq(target.view(1, -1).expand_as(pred))
            return [correct[:k].reshape(-1).float().sum().item() / len(target) for k in topk]

        run_classification = zc.run_classification

        def capture(*args, **kwargs):  # type: ignore[no-untyped-def]
            logits, target = run_classification(*args, **kwargs)
            np.savez(dump, logits=logits.numpy(), target=target.numpy())
            return logits, target

        zc.accuracy, zc.run_classification = accuracy, capture
        sys.argv = ["clip_benchmark", *argv]
        cli.main()

    _cb_child(sys.argv[2], sys.argv[3], sys.argv[4:])
    raise SystemExit(0)

import argparse
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    REPO,
    SMOKE_ARCH,
    TEMPLATES,
    Timed,
    add_common_args,
    base_env,
    class_names,
    fail,
    load_avg,
    log,
    machine_note,
    make_wds,
    openai_imagenet_templates,
    resolve_common,
    result_line,
    run_timed,
    save_random_checkpoint,
    shard_sizes,
    write_probe,
)

N_DEFAULT, N_SMOKE = 500, 40
CB_VERSION = "1.6.2"
INSTALL = ("python -m venv --system-site-packages /tmp/cb-venv && "
           f"/tmp/cb-venv/bin/pip install clip_benchmark=={CB_VERSION}; then pass "
           "--cb-python /tmp/cb-venv/bin/python")
DISTRACTORS = """\
name: distractors
version: "1"
description: Extra labels for the re-run benchmark (a changed label set).
labels:
  - {text: "mountain bike", category: distractor}
  - {text: "lighthouse", category: distractor}
  - {text: "teapot", category: distractor}
"""


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(p, n_images=N_DEFAULT, smoke_n=N_SMOKE)
    p.add_argument("--repeats", type=int, default=2, help="alternating cold runs of each tool (best counts)")
    p.add_argument("--templates", choices=("openai", "short"), default="openai",
                   help="openai: CLIP's 80 ImageNet templates, what clip_benchmark evaluates imagenet1k "
                        "with (default); short: 3 templates (the default with --smoke)")
    p.add_argument("--cb-python", default=os.environ.get("CLIP_BENCHMARK_PYTHON", sys.executable),
                   help="interpreter with clip_benchmark installed (default $CLIP_BENCHMARK_PYTHON or this one)")
    args = p.parse_args(argv)
    resolve_common(args, n_images=N_DEFAULT, smoke_n=N_SMOKE)
    if args.smoke:
        args.repeats = 1
        args.templates = "short"
    return args


# --------------------------------------------------------------------------- clip_benchmark


def cb_version(python: str) -> str | None:
    """clip_benchmark's version in ``python``, or None if it cannot be imported there."""
    code = "import importlib.metadata as m, clip_benchmark.cli; print(m.version('clip_benchmark'))"
    try:
        proc = subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip().splitlines()[-1] if proc.returncode == 0 and proc.stdout.strip() else None


def run_clip_benchmark(args: argparse.Namespace, data: Path, ckpt: Path, workers: int, work: Path,
                       tag: str) -> tuple[Timed, Path, Path]:
    dump, out = work / f"cb-{tag}-logits.npz", work / f"cb-{tag}.json"
    configs = str(REPO / "audit" / "models" / "configs") if args.arch == SMOKE_ARCH else ""
    cmd = [args.cb_python, str(Path(__file__).resolve()), "--_cb-child", str(dump), configs,
           "eval", "--dataset", f"wds/{data.name}", "--dataset_root", str(data), "--split", "test",
           "--task", "zeroshot_classification", "--model", args.arch, "--pretrained", str(ckpt),
           "--batch_size", str(args.batch_size), "--num_workers", str(workers),
           "--output", str(out), "--quiet"] + (["--no_amp"] if args.precision == "fp32" else [])
    env = base_env(work / f"cb-{tag}-env")
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # clip_benchmark takes CUDA whenever it sees one
    timed = run_timed(cmd, env=env, cwd=work)
    if timed.returncode:
        fail("clip_benchmark eval", timed)
    return timed, dump, out


def loader_order(sizes: list[int], workers: int, batch: int) -> list[int]:
    """Dataset indices in the order clip_benchmark's DataLoader yields them: webdataset gives
    shard ``s`` to worker ``s % workers``, each worker batches its own stream, and the DataLoader
    takes one batch from each worker in turn (skipping exhausted ones)."""
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    if workers <= 1:
        return list(range(sum(sizes)))
    streams = [[i for s in range(w, len(sizes), workers) for i in range(starts[s], starts[s] + sizes[s])]
               for w in range(workers)]
    batches = [[st[i:i + batch] for i in range(0, len(st), batch)] for st in streams]
    order: list[int] = []
    for j in range(max(len(b) for b in batches)):
        for b in batches:
            if j < len(b):
                order += b[j]
    return order


# --------------------------------------------------------------------------- comparison


def compare(args: argparse.Namespace, run_dir: Path, dump: Path, cb_json: Path, workers: int) -> dict[str, Any]:
    """Per-image agreement of the two runs' top-1 and top-5, and their accuracies."""
    import numpy as np
    import pandas as pd

    names = class_names(args.classes)
    index = {n: i for i, n in enumerate(names)}
    pred = pd.read_parquet(run_dir / "predictions.parquet")
    pred = pred[pred["variant"] == "default"]
    rows = pred["image_id"].str.slice(1).astype(int).to_numpy()
    ours = np.full(args.n_images, -1)
    ours[rows] = pred["top1_label"].map(index).to_numpy()
    ours5 = np.full((args.n_images, min(5, len(names))), -1)
    ours5[rows] = np.array([[index[t] for t in r] for r in pred["top5_labels"]])
    scale = json.loads((run_dir / "manifest.json").read_text()).get("models", [{}])[0].get("logit_scale")

    with np.load(dump) as z:
        logits, target = z["logits"], z["target"]
    order = np.asarray(loader_order(shard_sizes(args.n_images, args.shards), workers, args.batch_size))
    if not (target == order % args.classes).all():
        raise SystemExit("could not put clip_benchmark's outputs back in dataset order (targets differ)")
    theirs_logits = np.empty_like(logits)
    theirs_logits[order] = logits
    theirs = theirs_logits.argmax(1)
    theirs5 = np.argsort(-theirs_logits, axis=1, kind="stable")[:, :ours5.shape[1]]
    metrics = pd.read_csv(run_dir / "metrics.csv")
    overall = metrics[(metrics["variant"] == "default") & (metrics["group_col"] == "overall")]
    ours_acc = dict(zip(overall["metric"], overall["value"]))
    cb = json.loads(cb_json.read_text())["metrics"]
    fields: dict[str, Any] = {
        "top1_audit": ours_acc.get("accuracy", float("nan")), "top1_clip_benchmark": cb["acc1"],
        "top1_equal": abs(ours_acc.get("accuracy", -1) - cb["acc1"]) < 1e-12,
        "per_image_top1_agree": float((ours == theirs).mean()),
        "top1_disagreements": int((ours != theirs).sum()),
        "per_image_top5_agree": float((ours5 == theirs5).all(axis=1).mean()),
        "distinct_top1": len(np.unique(ours)),
    }
    if isinstance(scale, (int, float)) and scale > 0:
        our_cos = np.full(args.n_images, np.nan)
        our_cos[rows] = pred["top1_score"].to_numpy() / scale
        their_cos = theirs_logits[np.arange(args.n_images), theirs] / 100.0  # clip_benchmark's fixed 100
        fields["max_cos_diff"] = float(np.nanmax(np.abs(our_cos - their_cos)))
    if "top5_accuracy" in ours_acc and not np.isnan(cb.get("acc5", float("nan"))):
        fields["top5_equal"] = abs(ours_acc["top5_accuracy"] - cb["acc5"]) < 1e-12
    if "mean_per_class_recall" in ours_acc:
        fields["mpcr_abs_diff"] = abs(ours_acc["mean_per_class_recall"] - cb["mean_per_class_recall"])
    return fields


# --------------------------------------------------------------------------- audit runs


def audit_cmd(probe: Path, out: Path, cache: Path, args: argparse.Namespace, workers: int) -> list[str]:
    return [sys.executable, "-m", "audit", "run", str(probe), "--out", str(out), "--device", args.device,
            "--precision", args.precision,
            "--batch-size", str(args.batch_size), "--num-workers", str(workers), "--cache-dir", str(cache),
            "--no-report", "--quiet"]


def run_audit(cmd: list[str], work: Path, env_tag: str) -> Timed:
    timed = run_timed(cmd, env=base_env(work / env_tag), cwd=REPO)
    if timed.returncode not in (0, 1):  # 1 = a gate failed; these probes have none
        fail("audit run", timed)
    return timed


def shard_files(cache: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mtime_ns for p in cache.glob("images/*/shard-*.npz")}


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="vs-clip-benchmark-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        return _main(args, work)
    finally:
        if args.work_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def _main(args: argparse.Namespace, work: Path) -> int:
    from audit.embed import default_workers

    log(f"machine: {machine_note()}")
    version = cb_version(args.cb_python)
    if version is None:
        log(f"clip_benchmark: not importable by {args.cb_python}; skipping the comparison. To run it: {INSTALL}")
    elif version != CB_VERSION:
        log(f"clip_benchmark: found {version}; this benchmark was written against {CB_VERSION}")
    templates = openai_imagenet_templates() if args.templates == "openai" else TEMPLATES
    data = make_wds(work / "bench", args.n_images, args.classes, image_size=args.image_size, shards=args.shards,
                    templates=templates)
    ckpt = save_random_checkpoint(args.arch, work / f"{args.arch}-random.pt")
    workers = default_workers(args.n_images) if args.workers is None else args.workers
    workers = min(workers, args.shards)  # clip_benchmark: more workers than shards crash it
    model_id = f"{args.arch}:{ckpt}"
    probe = write_probe(work / "zeroshot.yaml", data, model_id, batch_size=args.batch_size)
    log(f"{args.arch} random weights in {ckpt.name}; {args.n_images} images of {args.image_size}px, "
        f"{args.classes} classes x {len(templates)} templates = {args.classes * len(templates)} prompts, "
        f"{args.shards} shards; batch {args.batch_size}, {workers} worker(s)")

    cold: list[Timed] = []
    cbt: list[Timed] = []
    cb_files: tuple[Path, Path] | None = None
    for r in range(args.repeats):
        if version is not None:
            timed, dump, out = run_clip_benchmark(args, data, ckpt, workers, work, str(r))
            cbt.append(timed)
            cb_files = (dump, out)
            log(f"round {r + 1}: clip_benchmark eval {timed.wall_s:.1f} s, {timed.cpu_s:.1f} CPU s "
                f"(load {load_avg()})")
        cache = work / f"cache-{r}"
        timed = run_audit(audit_cmd(probe, work / f"run-{r}", cache, args, workers), work, f"audit-env-{r}")
        cold.append(timed)
        log(f"round {r + 1}: audit run (cold cache) {timed.wall_s:.1f} s, {timed.cpu_s:.1f} CPU s "
            f"(load {load_avg()})")

    # Re-runs on the last round's warm cache: an extra label set (3 labels x templates to encode),
    # then only a new variant (every prompt already cached).
    cache = work / f"cache-{args.repeats - 1}"
    before = shard_files(cache)
    labels = work / "distractors.yaml"
    labels.write_text(DISTRACTORS, encoding="utf-8")
    variants = {"default": {}, "classes_only": {"include": ["class"]}}
    changed = write_probe(work / "zeroshot_labels.yaml", data, model_id, batch_size=args.batch_size,
                          extra_label_sets=[labels], variants=variants)
    t_labels = run_audit(audit_cmd(changed, work / "rerun-labels", cache, args, workers), work, "rerun-env")
    variant_only = write_probe(work / "zeroshot_variant.yaml", data, model_id, batch_size=args.batch_size,
                               extra_label_sets=[labels],
                               variants={**variants, "distractors_only": {"include": ["distractor"]}})
    t_variant = run_audit(audit_cmd(variant_only, work / "rerun-variant", cache, args, workers), work, "rerun-env")
    if shard_files(cache) != before:
        raise SystemExit("a re-run re-encoded images: the embedding cache was not reused")
    log(f"re-run, extra label set: {t_labels.wall_s:.1f} s, {t_labels.cpu_s:.1f} CPU s; re-run, new variant "
        f"only: {t_variant.wall_s:.1f} s, {t_variant.cpu_s:.1f} CPU s (load {load_avg()})")

    best_cold = min(t.wall_s for t in cold)
    cold_cpu = min(t.cpu_s for t in cold)
    fields: dict[str, Any] = {}
    if cbt:
        fields["audit_over_clip_benchmark"] = best_cold / min(t.wall_s for t in cbt)
        fields["cpu_audit_over_clip_benchmark"] = cold_cpu / min(t.cpu_s for t in cbt)
    fields.update({"rerun_labels_over_cold": t_labels.wall_s / best_cold,
                   "rerun_variant_over_cold": t_variant.wall_s / best_cold,
                   "cpu_rerun_labels_over_cold": t_labels.cpu_s / cold_cpu,
                   "cpu_rerun_variant_over_cold": t_variant.cpu_s / cold_cpu,
                   "audit_cold_s": best_cold, "audit_cold_cpu_s": cold_cpu})
    if cbt:
        fields.update({"clip_benchmark_s": min(t.wall_s for t in cbt),
                       "clip_benchmark_cpu_s": min(t.cpu_s for t in cbt)})
    fields.update({"rerun_labels_s": t_labels.wall_s, "rerun_variant_s": t_variant.wall_s,
                   "rerun_labels_cpu_s": t_labels.cpu_s, "rerun_variant_cpu_s": t_variant.cpu_s})
    if version is not None and cb_files is not None:
        fields.update(compare(args, work / f"run-{args.repeats - 1}", *cb_files, workers))
    else:
        fields["clip_benchmark"] = "absent"
    fields.update({"arch": args.arch, "device": args.device, "precision": args.precision,
                   "n_images": args.n_images, "classes": args.classes,
                   "templates": len(templates), "batch_size": args.batch_size,
                   "workers": workers, "image_px": args.image_size, "cpus": os.cpu_count(),
                   "load_avg": load_avg()})
    print(result_line(fields), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
