"""DistributedDataParallel plumbing for `torchrun --nproc_per_node N`: nccl on GPU, gloo on CPU.

Without torchrun's environment (WORLD_SIZE unset) everything here is a no-op and the engine runs as a
single process. Only rank 0 writes files; evaluation shards are gathered so metrics are exact.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import Sampler


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_type: str) -> Context:
    """Join the process group torchrun describes (once per process); a plain run gets Context()."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size == 1:
        return Context()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if not dist.is_initialized():
        if device_type == "cuda":
            torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl" if device_type == "cuda" else "gloo")
    return Context(dist.get_rank(), dist.get_world_size(), local_rank)


def teardown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def sum_across(ctx: Context, values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of a few numbers over all ranks."""
    if not ctx.enabled:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def gather_arrays(ctx: Context, *arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Concatenate each array over ranks, in rank order (every rank gets the whole)."""
    if not ctx.enabled:
        return arrays
    gathered: list[tuple[np.ndarray, ...] | None] = [None] * ctx.world_size
    dist.all_gather_object(gathered, arrays)
    return tuple(np.concatenate([part[i] for part in gathered]) for i in range(len(arrays)))


def barrier(ctx: Context) -> None:
    if ctx.enabled:
        dist.barrier()


class ShardSampler(Sampler[int]):
    """Rank r reads indices r, r + N, r + 2N, … with no padding, so gathered predictions cover each
    sample exactly once (DistributedSampler pads with repeats, which would bias exact metrics)."""

    def __init__(self, length: int, ctx: Context):
        self.indices = list(range(ctx.rank, length, ctx.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def gather_objects(ctx: Context, obj: Any) -> list[Any]:
    """Every rank's `obj`, in rank order (a one-element list without a process group)."""
    if not ctx.enabled:
        return [obj]
    gathered: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered
