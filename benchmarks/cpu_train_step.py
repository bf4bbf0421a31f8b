"""Which CPU execution trains table 8.4's model fastest at the default's 64 px, batch 32, side by side:
eager with channels_last (the default) or contiguous (NCHW) tensors, and torch.compile (inductor) of each.
Training steps (forward, cross-entropy, backward, SGD step) in img/s, the median of --repeats, variants
taking turns; compile time is reported apart (it is paid once per process: every sweep trial and the train
stage would pay it).

    .venv/bin/python benchmarks/cpu_train_step.py [--size 64] [--batch 32] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import timm
import torch

import efficientnext  # noqa: F401  (registers efficientnext_paper)
from efficientnext.models.speed import batch_step, images_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    formats = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}
    models, memory_formats, compile_seconds = {}, {}, {}
    for layout, memory_format in formats.items():
        torch.manual_seed(0)
        model = timm.create_model("efficientnext_paper", num_classes=5).to(memory_format=memory_format)
        models[f"eager, {layout}"] = model
        compiled = torch.compile(timm.create_model("efficientnext_paper", num_classes=5).to(
            memory_format=memory_format))
        start = time.perf_counter()
        batch_step(compiled, args.size, args.batch, 5, True, memory_format)()  # compiles forward and backward
        compile_seconds[f"compiled, {layout}"] = time.perf_counter() - start
        models[f"compiled, {layout}"] = compiled
        memory_formats.update({f"eager, {layout}": memory_format, f"compiled, {layout}": memory_format})
    rates = images_per_second(models, args.size, True, args.repeats, args.steps, args.batch, 5, memory_formats)
    baseline = rates["eager, channels_last"]
    print(f"efficientnext_paper training steps, {args.size} px, batch {args.batch}, {args.threads} threads, "
          f"median of {args.repeats}")
    for name, rate in rates.items():
        extra = f"   compile {compile_seconds[name]:.0f} s" if name in compile_seconds else ""
        print(f"  {name:<26} {rate:7.1f} img/s   {rate / baseline:5.2f}x{extra}")


if __name__ == "__main__":
    main()
