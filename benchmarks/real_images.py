"""Real images, side by side on one split: the unchanged pipeline (`dvc repro evaluate`, sweep included) vs
a plain timm recipe (resnet18 from random init, AdamW + OneCycle, 12 epochs, 64 px, batch 32, random
resized crop + flip). Target (issue 13): the pipeline within 0.03 test macro-F1 of the plain recipe at no
more wall time.

The images are scikit-learn's `load_digits` (8x8, 16 grey levels; ships with scikit-learn, no download),
digits 0, 1, 3, 7 and 8 — two confusable pairs, 1/7 and 3/8 — upscaled bicubically to 64x64 and saved as
RGB PNGs in the `data.source: folder` layout `<root>/<class>/*.png` (896 images, 174-183 a class).

The pipeline runs in a copy of --repo's working tree (uncommitted edits included) with only the params of
`digit_params` overridden (data.source, data.root, data.classes, evaluate.unsafe_classes); its time is the whole `dvc repro evaluate` (check, validate,
split, prepare, subset, sweep, select, train, evaluate; not the report); "training s" is the train stage's
own `train_seconds` (epochs with their validation) beside the plain recipe's training loop. Times are wall seconds and CPU
seconds (this process and its children: what a busy machine disturbs least). The plain recipe reads that
copy's data/splits and prepared cache, so both train on the same images and score the same test split;
it trains on train only and looks at test once. --skip-pipeline still runs `dvc repro prepare` there.

    .venv/bin/python benchmarks/real_images.py [--repo PATH] [--keep DIR] [--skip-pipeline] [--skip-plain]
                                               [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import timm
import torch
import yaml
from PIL import Image
from sklearn.datasets import load_digits
from sklearn.metrics import f1_score
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from efficientnext import config
from efficientnext.data.datasets import PreparedImages, read_rows
from efficientnext.data.transforms import build_transforms
from efficientnext.paths import BEST_YAML, PREPARED, SPLIT_METRICS, RunPaths, split_csv
from efficientnext.worktree import copy_worktree

ROOT = Path(__file__).resolve().parents[1]
DIGITS = {"zero": 0, "one": 1, "three": 3, "seven": 7, "eight": 8}  # class folder -> digit
UNSAFE = ["seven", "eight"]  # any classes will do: evaluate's operating points need some
SIZE = 64
PLAIN_EPOCHS, PLAIN_BATCH, PLAIN_LR, PLAIN_WEIGHT_DECAY = 12, 32, 1e-3, 0.05


def write_digits(root: Path, size: int = SIZE) -> dict[str, int]:
    """`root`/<class>/<n>.png for DIGITS: every such image of load_digits, bicubic to size x size, RGB.
    Returns the images per class."""
    digits = load_digits()
    counts = {}
    for name, digit in DIGITS.items():
        (root / name).mkdir(parents=True)
        images = digits.images[digits.target == digit]
        for number, pixels in enumerate(images):
            grey = Image.fromarray(np.round(pixels * 255 / 16).astype(np.uint8))  # 0..16 -> 0..255
            grey.resize((size, size), Image.Resampling.BICUBIC).convert("RGB").save(root / name / f"{number:03d}.png")
        counts[name] = len(images)
    return counts


def digit_params(root: Path) -> dict[str, object]:
    """The only params the pipeline's copy changes: the images in `root` and their classes."""
    return {"data.source": "folder", "data.root": str(root.resolve()), "data.classes": list(DIGITS),
            "evaluate.unsafe_classes": UNSAFE}


def cpu_seconds() -> float:
    """CPU time of this process and its waited-for descendants (the stages, data-loader workers): the
    figure a busy machine disturbs least."""
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def measured(run: Callable[[], dict[str, float]]) -> dict[str, float]:
    """`run()`'s figures plus its wall and CPU seconds."""
    wall, cpu = time.perf_counter(), cpu_seconds()
    figures = run()
    return {"wall s": time.perf_counter() - wall, "cpu s": cpu_seconds() - cpu, **figures}


def dvc_repro(copy: Path, target: str, threads: int) -> None:
    """`dvc repro target` in `copy`, the venv first on PATH, torch on `threads` threads."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "DVC_NO_ANALYTICS": "1", "OMP_NUM_THREADS": str(threads)}
    subprocess.run([str(Path(sys.executable).parent / "dvc"), "repro", target], cwd=copy, env=env, check=True)


def run_pipeline(copy: Path, threads: int) -> dict[str, float]:
    """The pipeline up to its test metrics; the last epoch's train accuracy and the test macro-F1."""
    dvc_repro(copy, "evaluate", threads)
    run = RunPaths(copy)
    live = json.loads((run.live / "metrics.json").read_text())  # the last epoch's record
    return {"train s": json.loads(run.train_metrics.read_text())["train_seconds"],
            "last-epoch train acc": live["train"]["accuracy"],
            "test macro-F1": json.loads(run.test_metrics.read_text())["macro_f1"]}


def plain_recipe(copy: Path, threads: int) -> dict[str, float]:
    """resnet18 on the copy's train split, scored once on its test split."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    augment, classes = config.load(copy / "params.yaml").augment, list(DIGITS)
    train_transform = v2.Compose([v2.RandomResizedCrop(SIZE, antialias=True), v2.RandomHorizontalFlip(),
                                  v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(augment.mean), list(augment.std))])
    train_set = PreparedImages(copy / PREPARED, read_rows(copy / split_csv("train")), classes, train_transform)
    test_set = PreparedImages(copy / PREPARED, read_rows(copy / split_csv("test")), classes,
                              build_transforms(augment, SIZE, train=False))
    model = timm.create_model("resnet18", num_classes=len(classes))
    loader = DataLoader(train_set, batch_size=PLAIN_BATCH, shuffle=True, drop_last=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=PLAIN_LR, weight_decay=PLAIN_WEIGHT_DECAY)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, PLAIN_LR, total_steps=PLAIN_EPOCHS * len(loader))
    start = time.perf_counter()
    for epoch in range(PLAIN_EPOCHS):
        model.train()
        correct = seen = 0
        for images, targets in loader:
            logits = model(images)
            loss = torch.nn.functional.cross_entropy(logits, targets)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            correct += int((logits.argmax(1) == targets).sum())
            seen += len(targets)
        print(f"plain epoch {epoch + 1}/{PLAIN_EPOCHS}  train loss {loss.item():.4f} acc {correct / seen:.3f}",
              flush=True)
    train_seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(images).argmax(1) for images, _ in DataLoader(test_set, batch_size=64)])
    macro_f1 = f1_score(test_set.targets, predicted.numpy(), average="macro", labels=range(len(classes)))
    return {"train s": train_seconds, "last-epoch train acc": correct / seen, "test macro-F1": float(macro_f1)}


def print_context(copy: Path, counts: dict[str, int]) -> None:
    """What the figures rest on: the images, the pipeline's split, and what its sweep selected."""
    print(f"images per class: {counts}")
    split = copy / SPLIT_METRICS
    if split.is_file():
        print(f"pipeline split: {json.loads(split.read_text())['totals']}")
    best = copy / BEST_YAML
    if best.is_file():
        record = yaml.safe_load(best.read_text())
        print(f"sweep selected trial {record['trial']} (subset val {record['metric']} {record['value']:.3f}): "
              + ", ".join(f"{key}={value}" for key, value in record["params"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=ROOT, help="the repository whose pipeline runs (default: this one)")
    parser.add_argument("--keep", type=Path, help="build the images and the copy in this (new) folder and keep it")
    parser.add_argument("--skip-pipeline", action="store_true")
    parser.add_argument("--skip-plain", action="store_true")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads of both recipes (1 on a busy machine, where 2 OpenMP threads stall)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=not args.keep)
        data_root, copy = work / "digits", work / "repo"
        counts = write_digits(data_root)
        copy_worktree(args.repo.resolve(), copy, digit_params(data_root))
        rows = {}
        if args.skip_pipeline:
            dvc_repro(copy, "prepare", args.threads)
        else:
            rows["pipeline (dvc repro evaluate, sweep included)"] = measured(
                lambda: run_pipeline(copy, args.threads))
        if not args.skip_plain:
            rows[f"plain timm resnet18 (AdamW + OneCycle, {PLAIN_EPOCHS} epochs)"] = measured(
                lambda: plain_recipe(copy, args.threads))
        print_context(copy, counts)
    print(f"\nreal images: load_digits {', '.join(f'{n}={d}' for n, d in DIGITS.items())}, {SIZE} px, "
          f"{args.threads} threads, repo {args.repo}")
    print("| recipe | wall s | CPU s | training s | last-epoch train acc | test macro-F1 |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, row in rows.items():
        print(f"| {name} | {row['wall s']:.0f} | {row['cpu s']:.0f} | {row['train s']:.0f} "
              f"| {row['last-epoch train acc']:.3f} | {row['test macro-F1']:.3f} |")
    if len(rows) == 2:
        pipeline, plain = rows.values()
        print(f"pipeline - plain: test macro-F1 {pipeline['test macro-F1'] - plain['test macro-F1']:+.3f} "
              f"(target >= -0.03), wall time x{pipeline['wall s'] / plain['wall s']:.2f} (target <= 1), "
              f"CPU time x{pipeline['cpu s'] / plain['cpu s']:.2f}, training alone x{pipeline['train s'] / plain['train s']:.2f}")


if __name__ == "__main__":
    main()
