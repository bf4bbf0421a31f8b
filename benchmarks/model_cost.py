"""Cost of efficientnext_paper vs its ancestor efficientnet_b2, side by side (the figures quoted in README).

Params and MACs (torch.utils.flop_counter, one image) at 224 and 260 px; CPU throughput (2 threads),
batch 16, channels_last: training (forward + cross-entropy + backward + SGD step) and inference
(no_grad, eval) images per second at 96 and 224 px, the median of several timed repeats after warm-up,
the two models taking turns. Throughput depends on what else the machine runs; re-run on a quiet one
before quoting it.

    .venv/bin/python benchmarks/model_cost.py [--repeats 5] [--steps 3] [--threads 2]
"""

from __future__ import annotations

import argparse

import timm
import torch

import efficientnext  # noqa: F401  (registers efficientnext_paper)
from efficientnext.models.speed import images_per_second
from efficientnext.models.summary import summarize

MODELS = ("efficientnext_paper", "efficientnet_b2")
COST_SIZES = (224, 260)
SPEED_SIZES = (96, 224)
BATCH, CLASSES = 16, 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats; the median is reported")
    parser.add_argument("--steps", type=int, default=3, help="batches per timed repeat")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch CPU threads (default 2; 1 on a busy machine, where 2 OpenMP threads stall)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    models = {name: timm.create_model(name, num_classes=CLASSES).to(memory_format=torch.channels_last)
              for name in MODELS}
    columns = ["params (M)"] + [f"GMACs @{s}" for s in COST_SIZES]
    rows = {name: [sum(p.numel() for p in model.parameters()) / 1e6]
            + [summarize(model, size).macs / 1e9 for size in COST_SIZES] for name, model in models.items()}
    for size in SPEED_SIZES:
        for train in (True, False):
            columns.append(f"{'train' if train else 'infer'} img/s @{size}")
            for name, rate in images_per_second(models, size, train, args.repeats, args.steps, BATCH, CLASSES).items():
                rows[name].append(rate)
    rows["ratio (EfficientNext / B2)"] = [a / b for a, b in zip(*rows.values())]

    print(f"torch {torch.__version__}, timm {timm.__version__}, {args.threads} threads, batch {BATCH}, channels_last, "
          f"median of {args.repeats} × {args.steps} batches")
    print("| model | " + " | ".join(columns) + " |")
    print("|---|" + "---:|" * len(columns))
    for name, figures in rows.items():
        cells = [f"{v:.2f}" if i < 1 + len(COST_SIZES) or name.startswith("ratio") else f"{v:.1f}"
                 for i, v in enumerate(figures)]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
