"""Where and how the engine computes: device, precision, memory format, process group, seeding and
the DataLoaders (seeded, sharded under DDP)."""

from __future__ import annotations

import os
import random
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler, RandomSampler

from efficientnext.config import UserError
from efficientnext.config import TrainParams
from efficientnext.train import distributed


@dataclass
class Runtime:
    """Where and how tensors are computed: device, precision, memory format, process group."""

    device: torch.device
    precision: str
    channels_last: bool
    ctx: distributed.Context

    @classmethod
    def create(cls, train: TrainParams) -> "Runtime":
        cuda = torch.cuda.is_available()
        if train.device == "cuda" and not cuda:
            raise UserError("train.device = cuda but no CUDA device is available; use auto or cpu")
        device_type = "cuda" if train.device == "cuda" or (train.device == "auto" and cuda) else "cpu"
        if train.precision == "fp16" and device_type != "cuda":
            raise UserError("train.precision = fp16 needs CUDA (GradScaler); use bf16 or fp32 on CPU")
        ctx = distributed.setup(device_type)
        device = torch.device(device_type, ctx.local_rank) if device_type == "cuda" else torch.device("cpu")
        return cls(device, train.precision, train.channels_last, ctx)

    def autocast(self) -> AbstractContextManager:
        dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.precision)
        return torch.autocast(self.device.type, dtype=dtype, enabled=dtype is not None)

    def images(self, batch: torch.Tensor) -> torch.Tensor:
        memory = torch.channels_last if self.channels_last else torch.preserve_format
        return batch.to(self.device, non_blocking=True, memory_format=memory)


def seed_everything(seed: int, deterministic: bool, device: torch.device) -> None:
    """Seed Python, numpy and torch (every device) and set deterministic kernels or not.

    Under DDP `fit` passes train.seed + rank, so each rank draws its own dropout, drop-path and mixup;
    the initial weights still agree because DistributedDataParallel broadcasts rank 0's parameters and
    buffers when it wraps the model (init_sync, on by default)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic and device.type == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # cuBLAS determinism
    # Set either way: one process may run many fits (a sweep). warn_only: a few CUDA kernels (e.g. some
    # pooling backwards) have no deterministic version and would otherwise stop the run.
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.benchmark = not deterministic


def _seed_worker(worker_id: int) -> None:
    # torch seeds each worker from the loader's generator; derive numpy/random from it too.
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    random.seed(seed)


def make_loader(dataset: Dataset, batch_size: int, *, shuffle: bool, workers: int, runtime: Runtime,
                generator: torch.Generator | None = None, seed: int = 0,
                collate: Callable | None = None) -> DataLoader:
    """Training loaders shuffle (DistributedSampler under DDP); evaluation loaders shard without padding.
    `collate`: e.g. batch_augment.pad_collate for differently sized uint8 images (default: stack)."""
    ctx = runtime.ctx
    if shuffle:
        sampler = (DistributedSampler(dataset, ctx.world_size, ctx.rank, shuffle=True, seed=seed)
                   if ctx.enabled else RandomSampler(dataset, generator=generator))
    else:
        sampler = distributed.ShardSampler(len(dataset), ctx)
    # Workers are not persistent: each epoch's workers are seeded from `generator`, whose state the
    # checkpoint carries, so a resumed epoch sees the same augmentations.
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                      collate_fn=collate, generator=generator, worker_init_fn=_seed_worker,
                      pin_memory=runtime.device.type == "cuda",
                      # drop a short last batch in training: BatchNorm cannot train on one sample.
                      drop_last=shuffle and len(sampler) > batch_size)
