"""What a training step costs on this CPU, by model: table 8.4's EfficientNext, the same with one row of
the search space changed, the cheapest in-space configuration, and the plain recipe's resnet18 (the
comparison of benchmarks/real_images.py). Training steps (forward, cross-entropy, backward, SGD step) in
img/s at the default's 64 px and batch 32, channels_last, eager, the median of --repeats, the models taking
turns; the ratio is to table 8.4's.

    .venv/bin/python benchmarks/step_cost_by_row.py [--size 64] [--batch 32] [--repeats 3] [--threads 2]
"""

from __future__ import annotations

import argparse

import timm
import torch

import efficientnext  # noqa: F401  (registers efficientnext_paper)
from efficientnext.models.speed import images_per_second

# name -> (timm model, options): table 8.4 is k7, ECA, BatchNorm, GELU, width 1.0, expand 5, 1536 channels.
MODELS: dict[str, tuple[str, dict]] = {
    "table 8.4": ("efficientnext_paper", {}),
    "table 8.4, kernel 3": ("efficientnext_paper", {"kernel_size": 3}),
    "table 8.4, expand 3": ("efficientnext_paper", {"expand_ratio": 3}),
    "table 8.4, width 0.75": ("efficientnext_paper", {"width": 0.75}),
    "table 8.4, ReLU": ("efficientnext_paper", {"activation": "relu"}),
    "table 8.4, no attention": ("efficientnext_paper", {"attention": "none"}),
    "cheapest in space (k3, e3, w0.75, 1024, none, ReLU)": (
        "efficientnext_paper", {"kernel_size": 3, "expand_ratio": 3, "width": 0.75, "final_channels": 1024,
                                "attention": "none", "activation": "relu"}),
    "resnet18 (the plain recipe)": ("resnet18", {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    models = {name: timm.create_model(arch, num_classes=5, **options).to(memory_format=torch.channels_last)
              for name, (arch, options) in MODELS.items()}
    rates = images_per_second(models, args.size, True, args.repeats, args.steps, args.batch, 5)
    reference = rates["table 8.4"]
    print(f"training steps, {args.size} px, batch {args.batch}, {args.threads} threads, median of {args.repeats}")
    for name, rate in rates.items():
        print(f"  {name:<54} {rate:7.1f} img/s   {rate / reference:5.2f}x")


if __name__ == "__main__":
    main()
