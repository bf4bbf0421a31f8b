"""Does RMSprop still blow up with every norm but BatchNorm? (the sweep's `optimizer_norm_unstable`)

That constraint was measured with PyTorch's RMSprop (mean square started at zero, ε outside the square
root: the first steps are ~10x the learning rate). `train.optimizer = rmsprop` is now timm's RMSpropTF
(mean square started at ones, ε = 1e-3 inside the root, as EfficientNet was trained). This trains the
tiny EfficientNext (the tests' tiny profile: 5 one-block stages, 128 final channels) on 32 px synthetic
images that are learnable (a fixed random template per class under noise) with each norm, for each
optimizer and two learning-rate pairs: table 8.4's (6.62e-4 head / 1.03e-4 backbone) and the top of the
earlier, wider search space's range (1e-2 / 1e-3, ten times the paper's top). Constant learning rate, cross-entropy (ε = 0.05), gradient clipping at
train.grad_clip, fp32, CPU.

Per run it prints the first batch's loss, the peak batch loss, the mean loss of the last 10 batches, the
accuracy on held-out images of the same classes, and `diverged` when the loss turned non-finite or its
peak exceeded 3x the first loss.

    .venv/bin/python benchmarks/rmsprop_norms.py [--epochs 2] [--threads 2] [--optimizers rmsprop ...]
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import nn

from efficientnext import config
from efficientnext.models import create_model
from efficientnext.train.losses import build_loss, one_hot
from efficientnext.train.optim import build_optimizer, param_groups

CLASSES, SIZE, BATCH, TRAIN_IMAGES, HELD_OUT = 5, 32, 16, 480, 160
NORMS = (("batchnorm", "gelu"), ("groupnorm", "gelu"), ("groupnorm1", "gelu"), ("evonorms0", "silu"),
         ("rmsnorm2d", "gelu"))  # table 8.4's GELU; EvoNorm-S0 carries its own SiLU-like non-linearity
GN_GROUPS = 8
LEARNING_RATES = {"table 8.4": (6.62e-4, 1.03e-4), "sweep top": (1e-2, 1e-3)}
# the new rmsprop (RMSpropTF), the one the constraint was measured on, and a reference
OPTIMIZERS = ("rmsprop", "torch-rmsprop", "adamw")
TINY_STAGES = [(1, 16, 2, 4, 3), (1, 24, 2, 4, 3), (1, 32, 2, 4, 3), (1, 48, 2, 4, 3), (1, 64, 1, 4, 3)]


def synthetic(count: int, generator: torch.Generator, templates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images of a class's template plus as much noise (learnable, not trivially)."""
    labels = torch.randint(0, CLASSES, (count,), generator=generator)
    return templates[labels] + torch.randn(count, 3, SIZE, SIZE, generator=generator), labels


def optimizer_for(name: str, model: nn.Module, train: config.TrainParams) -> torch.optim.Optimizer:
    if name == "torch-rmsprop":  # what train.optimizer = rmsprop built before RMSpropTF
        groups = param_groups(model, train.lr_head, train.lr_backbone, train.weight_decay)
        return torch.optim.RMSprop(groups, momentum=train.momentum)
    return build_optimizer(model, train.model_copy(update={"optimizer": name}))


def run(norm: str, activation: str, optimizer_name: str, lrs: tuple[float, float], epochs: int) -> dict[str, float]:
    data = torch.Generator().manual_seed(0)
    templates = torch.randn(CLASSES, 3, SIZE, SIZE, generator=data)
    images, labels = synthetic(TRAIN_IMAGES, data, templates)
    held_images, held_labels = synthetic(HELD_OUT, data, templates)
    train = config.TrainParams(lr_head=lrs[0], lr_backbone=lrs[1], weight_decay=5.04e-6, label_smoothing=0.05,
                               class_weights=False)
    torch.manual_seed(0)  # the same initial weights for every optimizer
    model = create_model(config.ModelParams(stages=TINY_STAGES, final_channels=128, hidden1=32, hidden2=32,
                                            norm=norm, gn_groups=GN_GROUPS, activation=activation), CLASSES)
    optimizer = optimizer_for(optimizer_name, model, train)
    criterion = build_loss(train)
    losses = []
    order = torch.Generator().manual_seed(1)
    for _ in range(epochs):
        model.train()
        for batch in torch.randperm(TRAIN_IMAGES, generator=order).split(BATCH):
            loss = criterion(model(images[batch]), one_hot(labels[batch], CLASSES))
            losses.append(loss.item())
            if not math.isfinite(losses[-1]):
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
            optimizer.step()
    model.eval()
    with torch.no_grad():
        accuracy = (model(held_images).argmax(1) == held_labels).float().mean().item()
    finite = all(math.isfinite(x) for x in losses)
    peak = max(losses) if finite else math.inf
    return {"first": losses[0], "peak": peak, "last": sum(losses[-10:]) / len(losses[-10:]), "accuracy": accuracy,
            "diverged": not finite or peak > 3 * losses[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2, help=f"epochs of {TRAIN_IMAGES // BATCH} batches")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--optimizers", nargs="+", choices=OPTIMIZERS, default=list(OPTIMIZERS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"tiny EfficientNext, {SIZE} px, {CLASSES} classes, batch {BATCH}, {args.epochs} epochs x "
          f"{TRAIN_IMAGES // BATCH} steps, constant lr; chance accuracy {1 / CLASSES:.2f}")
    print(f"{'optimizer':<14} {'lr (head/backbone)':<28} {'norm':<11} {'first':>6} {'peak':>7} {'last':>6} "
          f"{'held-out acc':>12}  verdict")
    for optimizer_name in args.optimizers:
        for lr_name, lrs in LEARNING_RATES.items():
            for norm, activation in NORMS:
                r = run(norm, activation, optimizer_name, lrs, args.epochs)
                print(f"{optimizer_name:<14} {f'{lr_name} {lrs[0]:.3g}/{lrs[1]:.3g}':<28} {norm:<11} "
                      f"{r['first']:6.3f} {r['peak']:7.3f} {r['last']:6.3f} {r['accuracy']:12.2f}  "
                      f"{'diverged' if r['diverged'] else 'stable'}", flush=True)


if __name__ == "__main__":
    main()
