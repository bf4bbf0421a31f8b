"""Training augmentation img/s on one core, side by side: torchvision per image (augment.backend: per_image,
what DataLoader workers do) vs. whole batches (augment.backend: batched, data/batch_augment.py), at 64 and
224 px. Both start from the prepared cache's uint8 images (synthetic renders resized like `prepare`, short
side 1.25 x the training size) and end with a normalised float batch; the batched figure includes its
collate (padding). Median of --repeats passes.

    .venv/bin/python benchmarks/augment_throughput.py [--images 256] [--repeats 5] [--grid docs/augment-grid.png]

--grid also saves 4 rows of 8 batched-augmented samples at 224 px (row 1: the unaugmented centre crop).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from input_pipeline import images_per_second  # benchmarks/ is the script's directory
from torchvision.utils import save_image

from efficientnext import config
from efficientnext.data import generate, prepare
from efficientnext.data.batch_augment import BatchAugment, pad_collate
from efficientnext.data.transforms import build_transforms

SIZES = (64, 224)
BATCH = 32


def cached_images(count: int, short_side: int) -> list[torch.Tensor]:
    """Synthetic renders as `prepare` caches them: uint8 CHW, short side `short_side`, aspect kept."""
    params = config.load("params.yaml")
    jobs = generate.plan_images(params)[:: max(1, len(generate.plan_images(params)) // count)][:count]
    return [torch.from_numpy(np.array(prepare.resize_short_side(generate.render(job), short_side))).permute(2, 0, 1)
            for job in jobs]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--grid", help="save a grid of batched-augmented samples here (PNG)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    augment = config.load("params.yaml").augment
    generator, cpu = torch.Generator().manual_seed(0), torch.device("cpu")
    print(f"augmentation img/s, 1 thread, {args.images} images, batch {BATCH}, median of {args.repeats}")
    print(f"  {'size':>5}  {'per image':>10}  {'batched':>10}  {'ratio':>6}")
    for size in SIZES:
        images = cached_images(args.images, round(size * 1.25))
        per_image = build_transforms(augment, size, train=True)
        batched = BatchAugment(augment, size)
        batches = [[(image, 0) for image in images[i:i + BATCH]] for i in range(0, len(images), BATCH)]

        def run_per_image(batches=batches, per_image=per_image) -> None:
            for batch in batches:
                torch.stack([per_image(image) for image, _ in batch])

        def run_batched(batches=batches, batched=batched) -> None:
            for batch in batches:
                batched(pad_collate(batch)[0], generator, cpu)

        run_per_image(), run_batched()  # warm-up
        old, new = images_per_second(run_per_image, len(images), args.repeats), images_per_second(run_batched, len(images),
                                                                                     args.repeats)
        print(f"  {size:>4}px  {old:>10.0f}  {new:>10.0f}  {new / old:>5.1f}x")
        if args.grid and size == SIZES[-1]:
            spread = [(image, 0) for image in images[:: len(images) // 8][:8]]  # across the classes
            save_grid(args.grid, augment, spread, size)


def save_grid(path: str, augment: config.AugmentParams, samples: list[tuple[torch.Tensor, int]], size: int) -> None:
    mean, std = torch.tensor(augment.mean).view(1, 3, 1, 1), torch.tensor(augment.std).view(1, 3, 1, 1)
    plain = torch.stack([build_transforms(augment, size, train=False)(image) for image, _ in samples])
    batched, generator = BatchAugment(augment, size), torch.Generator().manual_seed(1)
    rows = [plain, *(batched(pad_collate(samples)[0], generator, torch.device("cpu")) for _ in range(3))]
    save_image(torch.cat(rows) * std + mean, path, nrow=len(samples), padding=2)
    print(f"grid of augmented samples -> {path}")


if __name__ == "__main__":
    main()
