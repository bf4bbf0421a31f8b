"""Input pipeline img/s at 96 px, side by side: the prepared cache vs decoding the original files.

Builds its own data in a temp folder (synthetic originals, 96-320 px JPEG/PNG, validated, cached at
--short-side), then measures, each as the median of --repeats passes over all images:
  1. originals: load_rgb (decode, EXIF, RGB) + the train transforms, one process;
  2. prepared cache + the same train transforms, one process;
  3. prepared cache through a 2-worker DataLoader (batch 32), what training actually uses.
One process means one torch thread (as in a DataLoader worker), so the figures are per core.
A 96 px efficientnet_b2 training step consumes about 100-116 img/s on a 2-core machine.

    .venv/bin/python benchmarks/input_pipeline.py [--images 400] [--repeats 3]
    .venv/bin/python benchmarks/input_pipeline.py --images 200 --min-side 480 --max-side 1024  # photo-sized
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision import tv_tensors

from efficientnext import config
from efficientnext.data import datasets, generate, layout, prepare, transforms, validate
from efficientnext.data.images import load_rgb

TRAIN_STEP_IMG_S = (100, 116)  # 96 px efficientnet_b2 training on these machines (shared/design.md)


class OriginalImages(Dataset):
    """What training would do without the cache: decode every original file each time."""

    def __init__(self, root: Path, rows, max_pixels: int, transform) -> None:
        self.paths = [root / p for p in rows["path"]]
        self.max_pixels = max_pixels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        hwc = np.array(load_rgb(self.paths[i], self.max_pixels))
        return self.transform(tv_tensors.Image(torch.from_numpy(hwc).permute(2, 0, 1))), 0


def images_per_second(run_once, count: int, repeats: int) -> float:
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        run_once()
        rates.append(count / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=400, help="synthetic originals to generate")
    parser.add_argument("--min-side", type=int, default=96, help="originals' smallest side (default: the embedded data)")
    parser.add_argument("--max-side", type=int, default=320, help="originals' largest side (scraped photos: ~500-1000)")
    parser.add_argument("--size", type=int, default=96, help="training image size")
    parser.add_argument("--short-side", type=int, default=110, help="cache short side (room for the random crop)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    params = config.load("params.yaml", {"data.synthetic.total": args.images, "data.synthetic.broken_files": False,
                                         "data.synthetic.min_side": args.min_side,
                                         "data.synthetic.max_side": args.max_side, "prepare.short_side": args.short_side})
    train_transform = transforms.build_transforms(params.augment, args.size, train=True)
    with tempfile.TemporaryDirectory() as tmp:
        root, prepared = Path(tmp) / "raw", Path(tmp) / "prepared"
        generate.generate(params, root)
        rows = validate.build_manifest(layout.discover(root, params.data.classes), root, params.validate_)
        prepare.build_cache(rows, root, prepared, params.prepare, params.validate_.max_pixels)
        cached = datasets.PreparedImages(prepared, rows, params.data.classes, train_transform)
        originals = OriginalImages(root, rows, params.validate_.max_pixels, train_transform)
        n = len(rows)

        torch.set_num_threads(1)
        original_rate = images_per_second(lambda: [originals[i] for i in range(n)], n, args.repeats)
        cached_rate = images_per_second(lambda: [cached[i] for i in range(n)], n, args.repeats)
        loader = DataLoader(cached, batch_size=32, shuffle=True, num_workers=2, persistent_workers=True)
        list(loader)  # start the workers and map the cache once, outside the timing
        loader_rate = images_per_second(lambda: list(loader), n, args.repeats)

    print(f"\ninput pipeline at {args.size} px: {n} synthetic originals ({params.data.synthetic.min_side}-"
          f"{params.data.synthetic.max_side} px JPEG/PNG), cache short side {args.short_side}, "
          f"median of {args.repeats}")
    print(f"  {'originals: decode + train transforms, 1 process':<52}{original_rate:8.0f} img/s")
    print(f"  {'prepared cache + train transforms, 1 process':<52}{cached_rate:8.0f} img/s"
          f"   x{cached_rate / original_rate:.1f} vs originals")
    print(f"  {'prepared cache, DataLoader, 2 workers, batch 32':<52}{loader_rate:8.0f} img/s"
          f"   x{loader_rate / TRAIN_STEP_IMG_S[1]:.1f} of a {args.size} px training step "
          f"({TRAIN_STEP_IMG_S[0]}-{TRAIN_STEP_IMG_S[1]} img/s)")


if __name__ == "__main__":
    main()
