"""CPU/GPU throughput of a model: images per second for training steps or inference, timed in turns.

Shared by the benchmarks that time models (model_cost, cpu_train_step, step_cost_by_row) and the results
report's cost table.
Throughput depends on what else the machine runs: compare models only within one call.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch
from torch import nn


def batch_step(model: nn.Module, size: int, batch: int, classes: int, train: bool,
               memory_format: torch.memory_format = torch.channels_last) -> Callable[[], None]:
    """One batch of `batch` random images: training (forward, cross-entropy, backward, SGD step) or inference."""
    device = next(model.parameters()).device
    images = torch.randn(batch, 3, size, size, device=device).contiguous(memory_format=memory_format)
    labels = torch.randint(0, classes, (batch,), device=device)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)

    def step() -> None:
        model.train(train)
        if train:
            optimizer.zero_grad(set_to_none=True)
            nn.functional.cross_entropy(model(images), labels).backward()
            optimizer.step()
        else:
            with torch.no_grad():
                model(images)

    return step


def images_per_second(models: dict[str, nn.Module], size: int, train: bool, repeats: int, steps: int,
                      batch: int = 16, classes: int = 5,
                      memory_formats: dict[str, torch.memory_format] | None = None) -> dict[str, float]:
    """Median img/s of each model (inputs channels_last unless `memory_formats` says otherwise); the models
    take turns within every repeat, so a busy spell on a shared machine slows them alike."""
    formats = memory_formats or {}
    batch_steps = {name: batch_step(model, size, batch, classes, train, formats.get(name, torch.channels_last))
                   for name, model in models.items()}
    for step in batch_steps.values():
        for _ in range(2):  # warm-up: allocator, oneDNN primitives
            step()
    rates: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(repeats):
        for name, step in batch_steps.items():
            start = time.perf_counter()
            for _ in range(steps):
                step()
            rates[name].append(batch * steps / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}
