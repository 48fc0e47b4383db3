"""torchrun with 2 CPU processes (gloo) gives byte-identical predictions to a single process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from tests.conftest import REPO


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_torchrun_two_cpu_ranks_match_single_process(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    common = ["-m", "audit", "run", "probes/demo.yaml", "--no-report", "--quiet", "--shard-rows", "64",
              "--limit", "200"]
    single = subprocess.run([sys.executable, *common, "--out", str(tmp_path / "single")],
                            env={**env, "AUDIT_CACHE_DIR": str(tmp_path / "c1")}, cwd=REPO,
                            capture_output=True, text=True, timeout=300)
    assert single.returncode == 0, single.stderr[-2000:]
    multi = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
         *common, "--out", str(tmp_path / "multi")],
        env={**env, "AUDIT_CACHE_DIR": str(tmp_path / "c2")}, cwd=REPO, capture_output=True, text=True, timeout=300,
    )
    assert multi.returncode == 0, multi.stderr[-2000:]
    shards = sorted((tmp_path / "c2").glob("images/*/shard-*.json"))
    assert len(shards) == 4  # 200 images / 64 per shard, encoded by two ranks
    a = (tmp_path / "single" / "predictions.parquet").read_bytes()
    b = (tmp_path / "multi" / "predictions.parquet").read_bytes()
    assert a == b
    assert (tmp_path / "single" / "metrics.csv").read_text() == (tmp_path / "multi" / "metrics.csv").read_text()
