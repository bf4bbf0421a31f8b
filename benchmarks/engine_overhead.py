"""Engine overhead: whole-epoch img/s (DataLoader, augmentation, bookkeeping, progress bar) divided by
bare train-step img/s (one batch already on the device, forward + backward + step) at the same batch size,
for both augmentation backends (per_image: torchvision in the DataLoader workers; batched: whole batches
on the training device) and worker counts 0 and train.workers.

Everything runs side by side in one process on the same model, alternating, and medians are reported.
Data: the prepared cache (data/prepared + data/splits/train.csv) when present, else random uint8 images
at the cache's short side. Usage: python benchmarks/engine_overhead.py [--images 640] [--repeats 3] [-S k=v]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset, Subset

from efficientnext import config
from efficientnext.data.batch_augment import BatchAugment, pad_collate
from efficientnext.data.datasets import PreparedImages, read_rows
from efficientnext.data.transforms import training_transform
from efficientnext.models import create_model
from efficientnext.train.engine import PhaseTools, TrainSetup, train_one_epoch
from efficientnext.train.losses import build_loss, one_hot
from efficientnext.train.optim import LRSchedule, build_optimizer
from efficientnext.train.runtime import Runtime, make_loader, seed_everything

PREPARED, TRAIN_SPLIT = Path("data/prepared"), Path("data/splits/train.csv")


class RandomImages(Dataset):
    """Random uint8 images at the cache's short side, through the real transforms (None: uint8 out)."""

    def __init__(self, size: int, side: int, num_classes: int, transform):
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (size, 3, side, side * 4 // 3), dtype=torch.uint8, generator=generator)
        self.targets = torch.arange(size) % num_classes
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int):
        image = self.images[index]
        return (self.transform(image) if self.transform else image), int(self.targets[index])


def training_images(params: config.Params, count: int) -> tuple[Dataset, str]:
    transform = training_transform(params.augment, params.train.image_size)
    if PREPARED.is_dir() and TRAIN_SPLIT.is_file():
        dataset = PreparedImages(PREPARED, read_rows(TRAIN_SPLIT), list(params.data.classes), transform)
        return Subset(dataset, range(min(count, len(dataset)))), "prepared cache"
    return RandomImages(count, params.prepare.short_side, len(params.data.classes), transform), "random images"


def bare_steps(model, images, targets, criterion, optimizer, runtime: Runtime, train, steps: int) -> float:
    """img/s of `steps` forward/backward/step passes on one resident batch."""
    model.train()
    start = time.perf_counter()
    for _ in range(steps):
        with runtime.autocast():
            logits = model(images)
        loss = criterion(logits.float(), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if train.grad_clip:
            torch.nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
        optimizer.step()
    if runtime.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * images.shape[0] / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=640, help="images per measured epoch")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    params = config.load("params.yaml", dict(config.parse_override(o) for o in args.overrides))
    train, classes = params.train, list(params.data.classes)
    runtime = Runtime.create(train)
    seed_everything(train.seed, train.deterministic, runtime.device)
    model = create_model(params.model, len(classes)).to(
        runtime.device, memory_format=torch.channels_last if train.channels_last else torch.preserve_format)
    criterion = build_loss(train).to(runtime.device)
    optimizer = build_optimizer(model, train)
    # A constant-rate schedule: the measurement must not depend on where in a schedule it runs.
    schedule = LRSchedule(optimizer, train.model_copy(update={"scheduler": "none", "warmup_epochs": 0}), 1, 1)
    scaler = torch.amp.GradScaler(runtime.device.type, enabled=train.precision == "fp16")
    tools = PhaseTools(model, optimizer, schedule, scaler)

    variants = {}  # (backend, workers) -> (loader, setup)
    for backend in ("per_image", "batched"):
        variant = params.model_copy(update={"augment": params.augment.model_copy(update={"backend": backend})})
        dataset, source = training_images(variant, args.images)
        batched = BatchAugment(variant.augment, train.image_size) if backend == "batched" else None
        for workers in sorted({0, train.workers}):
            loader = make_loader(dataset, train.batch_size, shuffle=True, workers=workers, runtime=runtime,
                                 generator=torch.Generator().manual_seed(train.seed),
                                 collate=pad_collate if batched else None)
            variants[backend, workers] = loader, TrainSetup(runtime, train, criterion, len(classes), batched)
    loader, setup = variants["per_image", 0]
    images, labels = next(iter(loader))
    images = runtime.images(images)
    targets = one_hot(labels.to(runtime.device), len(classes))

    bare_steps(model, images, targets, criterion, optimizer, runtime, train, 3)  # warm-up
    epoch_rates: dict[tuple[str, int], list[float]] = {key: [] for key in variants}
    bare_rates = []
    for _ in range(args.repeats):
        for key, (loader, setup) in variants.items():
            stats = train_one_epoch(tools, loader, setup, 1, 1)
            epoch_rates[key].append(stats["images"] / stats["seconds"])
        bare_rates.append(bare_steps(model, images, targets, criterion, optimizer, runtime, train, len(loader)))
    bare_rate = statistics.median(bare_rates)
    print(f"engine overhead ({params.model.arch}, {train.image_size} px, batch {train.batch_size}, "
          f"{train.precision}, {runtime.device}, {source}, {len(loader)} steps, "
          f"median of {args.repeats}, {torch.get_num_threads()} threads)")
    print(f"  {'bare step':<24} {bare_rate:8.1f} img/s   runs {[round(r, 1) for r in bare_rates]}")
    for (backend, workers), rates in epoch_rates.items():
        rate = statistics.median(rates)
        # Each repeat's epoch over the bare steps that followed it: drift of the machine cancels.
        paired = statistics.median(epoch / bare for epoch, bare in zip(rates, bare_rates))
        print(f"  {f'epoch, {backend}, {workers} workers':<24} {rate:8.1f} img/s   ratio {rate / bare_rate:.3f}   "
              f"paired {paired:.3f}   runs {[round(r, 1) for r in rates]}")
    print("  target: ratio >= 0.95 (ratio: of the medians; paired: median of each repeat's own ratio)")


if __name__ == "__main__":
    main()
