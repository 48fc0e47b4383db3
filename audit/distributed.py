"""torchrun support: every rank embeds its share of cache shards; rank 0 does the rest.

Under ``torchrun --nproc_per_node N -m audit run PROBE`` each rank encodes the shards ``i`` with
``i % world_size == rank`` into the shared embedding cache, all ranks meet at a barrier, and
rank 0 reads every shard back and computes predictions, metrics, gates and the report. Shards are
deterministic (fixed rows, fixed batches), so results are identical to a single-process run.
Multi-node runs need ``AUDIT_CACHE_DIR`` on a filesystem all nodes share.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Dist:
    rank: int = 0
    world_size: int = 1

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def close(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            if dist.is_initialized():
                dist.destroy_process_group()


def init_from_env(device: str) -> Dist:
    """Join the process group torchrun describes in the environment (no-op without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch
    import torch.distributed as dist

    rank = int(os.environ["RANK"])
    if not dist.is_initialized():
        use_nccl = device != "cpu" and torch.cuda.is_available()
        if use_nccl:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend="nccl" if use_nccl else "gloo")
    return Dist(rank, world)
