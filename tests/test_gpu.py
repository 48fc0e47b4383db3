"""The CUDA path: autocast, channels-last, pinned memory, NCCL. Opt-in: ``pytest -m gpu``.

Every test here is skipped on a machine without CUDA (NCCL with two ranks needs two GPUs).
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from tests.conftest import REPO

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_cuda_adapter_uses_autocast_channels_last_and_agrees_with_cpu():
    from audit.models.openclip import OpenClipModel

    cpu = OpenClipModel("audit-tiny-vit:random", device="cpu")
    gpu = OpenClipModel("audit-tiny-vit:random", device="cuda")
    assert gpu.info.precision in ("amp_bf16", "amp_fp16") and gpu.info.cache_key != cpu.info.cache_key
    assert gpu.model.visual.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)) for _ in range(8)]
    batch = torch.stack([cpu.preprocess(im) for im in images])
    a, b = cpu.encode_images(batch), gpu.encode_images(batch)
    assert b.dtype == np.float32 and np.allclose(np.linalg.norm(b, axis=1), 1, atol=1e-4)
    assert (a * b).sum(1).min() > 0.99  # bf16/fp16 autocast: close to fp32, not equal
    prompts = ["a photo of a dog.", "a photo of a thief.", "a"]
    assert (cpu.encode_texts(prompts) * gpu.encode_texts(prompts)).sum(1).min() > 0.99


def _run(args: list[str], cache: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "AUDIT_CACHE_DIR": cache,
           **(extra_env or {})}
    return subprocess.run(args, env=env, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_demo_on_cuda_matches_cpu_top1(tmp_path):
    common = [sys.executable, "-m", "audit", "run", "probes/demo.yaml", "--no-report", "--quiet", "--limit", "400"]
    for device in ("cpu", "cuda"):
        proc = _run([*common, "--device", device, "--out", str(tmp_path / device)], str(tmp_path / f"c-{device}"))
        assert proc.returncode == 0, proc.stderr[-2000:]
    a = pd.read_parquet(tmp_path / "cpu" / "predictions.parquet")
    b = pd.read_parquet(tmp_path / "cuda" / "predictions.parquet")
    assert len(a) == len(b) > 0
    agree = (a.top1_label.to_numpy() == b.top1_label.to_numpy()).mean()
    assert agree >= 0.98, f"top-1 agreement CPU fp32 vs CUDA autocast: {agree:.3f}"


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="NCCL with two ranks needs two GPUs")
def test_torchrun_nccl_two_ranks_match_single_gpu(tmp_path):
    common = ["-m", "audit", "run", "probes/demo.yaml", "--no-report", "--quiet", "--device", "cuda",
              "--shard-rows", "64", "--limit", "256"]
    single = _run([sys.executable, *common, "--out", str(tmp_path / "single")], str(tmp_path / "c1"),
                  {"CUDA_VISIBLE_DEVICES": "0"})
    assert single.returncode == 0, single.stderr[-2000:]
    multi = _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", *common,
                  "--out", str(tmp_path / "multi")], str(tmp_path / "c2"))
    assert multi.returncode == 0, multi.stderr[-2000:]
    a = pd.read_parquet(tmp_path / "single" / "predictions.parquet")
    b = pd.read_parquet(tmp_path / "multi" / "predictions.parquet")
    # same shards, same batches; two GPUs of one kind give the same kernels
    pd.testing.assert_frame_equal(a, b)
