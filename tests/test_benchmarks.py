"""The benchmark scripts keep working: each runs in its ``--smoke`` mode and ends with a RESULT line.

No speed is asserted here (figures depend on the machine and its load); see benchmarks/README.md.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

BENCH = REPO / "benchmarks"


def run_smoke(script: str, *extra: str, tmp_path: Path) -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    env.pop("CLIP_BENCHMARK_PYTHON", None)
    proc = subprocess.run([sys.executable, str(BENCH / script), "--smoke", "--work-dir", str(tmp_path), *extra],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1200, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    assert last.startswith("RESULT "), last
    return dict(item.split("=", 1) for item in last.removeprefix("RESULT ").split())


@pytest.mark.slow
def test_bench_embed_smoke(tmp_path: Path) -> None:
    fields = run_smoke("bench_embed.py", tmp_path=tmp_path)
    for key in ("end_to_end_over_forward", "forward_img_s", "end_to_end_img_s", "rss_growth_over_embeddings"):
        assert float(fields[key]) == float(fields[key]), key  # a number, not nan
    assert fields["arch"] == "audit-tiny-vit"


def test_bench_text_smoke(tmp_path: Path) -> None:
    fields = run_smoke("bench_text.py", tmp_path=tmp_path)
    assert float(fields["trimmed_over_full"]) > 0
    assert float(fields["max_abs_diff"]) < 1e-5  # the trimmed tower gives open_clip's embeddings
    assert float(fields["mean_tokens"]) < int(fields["context"])


@pytest.mark.slow
def test_vs_clip_benchmark_smoke_without_clip_benchmark(tmp_path: Path) -> None:
    fields = run_smoke("vs_clip_benchmark.py", "--cb-python", sys.executable + "-missing", tmp_path=tmp_path)
    assert fields["clip_benchmark"] == "absent"
    assert float(fields["rerun_labels_over_cold"]) > 0
    assert float(fields["rerun_variant_over_cold"]) > 0


def test_loader_order_matches_a_real_dataloader_over_worker_split_shards() -> None:
    """clip_benchmark's outputs are put back in dataset order by ``loader_order``: check it against
    torch's DataLoader round-robin over webdataset-style per-worker shard streams."""
    import torch
    from torch.utils.data import DataLoader, IterableDataset, get_worker_info

    sys.path.insert(0, str(BENCH))
    from vs_clip_benchmark import loader_order

    sizes, batch, workers = [7, 3, 5], 2, 2
    starts = [sum(sizes[:i]) for i in range(len(sizes))]

    class Shards(IterableDataset):  # type: ignore[type-arg]
        def __iter__(self):  # type: ignore[no-untyped-def]
            info = get_worker_info()
            w, n = (info.id, info.num_workers) if info else (0, 1)
            stream = [i for s in range(w, len(sizes), n) for i in range(starts[s], starts[s] + sizes[s])]
            for i in range(0, len(stream), batch):
                yield torch.tensor(stream[i:i + batch])

    seen = torch.cat(list(DataLoader(Shards(), batch_size=None, num_workers=workers))).tolist()
    assert seen == loader_order(sizes, workers, batch)
    assert loader_order(sizes, 1, batch) == list(range(sum(sizes)))
