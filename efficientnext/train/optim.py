"""Optimisers with head/backbone parameter groups, and the learning-rate schedules of §6.

Parameter groups: the head is `model.get_classifier()` (timm's convention) at lr_head, the backbone is
every other trainable parameter at lr_backbone; inside each, norm and bias parameters (1-D) get no
weight decay (timm's `param_groups_weight_decay`).

Optimisers: adamw, adam, sgd (train.momentum, Nesterov when train.nesterov) from torch; rmsprop is
timm's `RMSpropTF`, the TensorFlow RMSProp EfficientNet was trained with: ε inside the square root,
decay α = 0.9, ε = 1e-3 and momentum train.momentum, as in timm's EfficientNet recipes (`--opt rmsproptf
--opt-eps .001`). Its mean square starts at ones, not zero: the first steps are about lr · g (PyTorch's
RMSprop makes them ~10x lr) until the mean square has decayed toward g², tens to hundreds of steps.

Schedules step per batch (`LRSchedule.after_batch`) except `plateau`, which steps once per epoch on
the validation macro-F1 (`LRSchedule.after_epoch`); `step` is written per batch but changes only at
epoch boundaries. An optional linear warm-up (warmup_epochs) precedes every schedule but onecycle,
whose own warm-up phase it sets instead.

- onecycle: torch's OneCycleLR (cosine from lr/25 up to each group's lr over the warm-up, 30% of the run
  without one, then down to lr/25e4) with cycle_momentum=False: the configured momentum (SGD's momentum,
  Adam's β1) stays as set instead of being cycled between 0.85 and 0.95.
- cosine: one cosine from the base lr to 0 over the epochs after the warm-up.
- cosine_restarts: fixed cycles of train.restart_period epochs, counted from the end of the warm-up;
  each cycle starts at the base lr and follows a half cosine toward 0 (its last batch is at
  0.5 (1 + cos(π (P - 1) / P)) of the base lr, P batches in a cycle), then the next restarts at the base
  lr. Cycles do not lengthen (no SGDR T_mult); the last one is cut short when the epochs run out.
- step: times train.gamma every train.step_size epochs after the warm-up.
- plateau: times train.gamma when the validation macro-F1 has not improved for train.plateau_patience
  epochs (after the warm-up); none: constant.
"""

from __future__ import annotations

import math

import torch
from timm.optim import create_optimizer_v2, param_groups_weight_decay
from torch import nn

from efficientnext.config import TrainParams

WARMUP_START = 0.01  # warm-up starts at 1% of the target learning rate
ONECYCLE_DEFAULT_WARMUP = 0.3  # torch's OneCycleLR pct_start when no warm-up is set
RMSPROP_TF_EPS = 1e-3  # EfficientNet's TF RMSProp epsilon; RMSpropTF's own default is 1e-10


def param_groups(model: nn.Module, lr_head: float, lr_backbone: float, weight_decay: float) -> list[dict]:
    """Head and backbone groups, each split into decay / no-decay; frozen parameters are left out."""
    head_ids = {id(p) for p in model.get_classifier().parameters()}
    groups = []
    for group in param_groups_weight_decay(model, weight_decay):
        head = [p for p in group["params"] if id(p) in head_ids]
        backbone = [p for p in group["params"] if id(p) not in head_ids]
        for name, members, lr in (("head", head, lr_head), ("backbone", backbone, lr_backbone)):
            if members:
                groups.append({"params": members, "weight_decay": group["weight_decay"], "lr": lr, "name": name})
    if not groups:
        raise ValueError("the model has no trainable parameters")
    return groups


def build_optimizer(model: nn.Module, train: TrainParams, name: str | None = None,
                    lr_scale: float = 1.0) -> torch.optim.Optimizer:
    """train.optimizer (or `name`) over the head/backbone groups, learning rates times lr_scale."""
    groups = param_groups(model, train.lr_head * lr_scale, train.lr_backbone * lr_scale, train.weight_decay)
    name = name or train.optimizer
    if name == "adamw":
        return torch.optim.AdamW(groups)
    if name == "adam":
        # Adam's weight_decay is L2 in the gradient; the per-group values above apply.
        return torch.optim.Adam(groups)
    if name == "sgd":
        return torch.optim.SGD(groups, momentum=train.momentum, nesterov=train.nesterov and train.momentum > 0)
    if name == "rmsprop":
        # timm's registry supplies RMSpropTF's decay α = 0.9; the groups pass through with their lr and decay.
        return create_optimizer_v2(groups, "rmsproptf", momentum=train.momentum, eps=RMSPROP_TF_EPS)
    raise ValueError(f"unknown optimizer {name!r}")


def _lr_factor(train: TrainParams, epochs: int, steps_per_epoch: int):
    """Multiplier of the base learning rate after `step` batches (LambdaLR schedules)."""
    warmup = min(train.warmup_epochs, epochs) * steps_per_epoch
    total = epochs * steps_per_epoch

    def factor(step: int) -> float:
        if step < warmup:
            return WARMUP_START + (1 - WARMUP_START) * step / warmup
        after = step - warmup
        if train.scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * min(after / max(total - warmup, 1), 1.0)))
        if train.scheduler == "cosine_restarts":
            period = train.restart_period * steps_per_epoch
            return 0.5 * (1 + math.cos(math.pi * (after % period) / period))
        if train.scheduler == "step":
            return train.gamma ** ((after // steps_per_epoch) // train.step_size)
        return 1.0  # none, and plateau (which lowers the rate itself after the warm-up)

    return factor


class LRSchedule:
    """One object the engine steps after each batch and after each validation."""

    def __init__(self, optimizer: torch.optim.Optimizer, train: TrainParams, epochs: int, steps_per_epoch: int):
        self.kind = train.scheduler
        self.warmup_steps = min(train.warmup_epochs, epochs) * steps_per_epoch
        self.steps = 0
        if self.kind == "onecycle":
            pct = train.warmup_epochs / epochs if train.warmup_epochs else ONECYCLE_DEFAULT_WARMUP
            self.per_batch = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=[g["lr"] for g in optimizer.param_groups],
                total_steps=max(epochs * steps_per_epoch, 2), pct_start=min(pct, 0.99), cycle_momentum=False)
        else:
            self.per_batch = torch.optim.lr_scheduler.LambdaLR(optimizer, _lr_factor(train, epochs, steps_per_epoch))
        self.plateau = (torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max", factor=train.gamma, patience=train.plateau_patience)
            if self.kind == "plateau" else None)

    def after_batch(self) -> None:
        self.steps += 1
        # OneCycleLR raises if stepped past total_steps; plateau's LambdaLR only carries the warm-up.
        if self.kind == "onecycle" and self.steps >= self.per_batch.total_steps:
            return
        if self.kind == "plateau" and self.steps > self.warmup_steps:
            return
        self.per_batch.step()

    def after_epoch(self, val_macro_f1: float) -> None:
        if self.plateau is not None and self.steps >= self.warmup_steps:
            self.plateau.step(val_macro_f1)

    def state_dict(self) -> dict:
        state = {"steps": self.steps, "per_batch": self.per_batch.state_dict()}
        if self.plateau is not None:
            state["plateau"] = self.plateau.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.steps = state["steps"]
        self.per_batch.load_state_dict(state["per_batch"])
        if self.plateau is not None:
            self.plateau.load_state_dict(state["plateau"])
