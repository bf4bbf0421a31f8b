"""Optimisers (head/backbone groups, no decay on norm and bias) and the learning-rate schedules."""

from __future__ import annotations

import math

import pytest
import torch
from timm.optim import RMSpropTF
from torch import nn

from efficientnext import config
from efficientnext.train.optim import LRSchedule, WARMUP_START, build_optimizer, param_groups


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.norm, self.fc = nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Linear(4, 2)

    def get_classifier(self) -> nn.Module:
        return self.fc


def train_params(**overrides) -> config.TrainParams:
    return config.TrainParams(**overrides)


def test_param_groups_split_head_backbone_and_decay():
    net = Net()
    groups = param_groups(net, lr_head=0.3, lr_backbone=0.1, weight_decay=0.05)
    by_param = {id(p): g for g in groups for p in g["params"]}
    assert (by_param[id(net.fc.weight)]["lr"], by_param[id(net.fc.weight)]["weight_decay"]) == (0.3, 0.05)
    assert (by_param[id(net.fc.bias)]["lr"], by_param[id(net.fc.bias)]["weight_decay"]) == (0.3, 0.0)
    assert (by_param[id(net.conv.weight)]["lr"], by_param[id(net.conv.weight)]["weight_decay"]) == (0.1, 0.05)
    for p in (net.conv.bias, net.norm.weight, net.norm.bias):
        assert (by_param[id(p)]["lr"], by_param[id(p)]["weight_decay"]) == (0.1, 0.0)
    assert len(by_param) == len(list(net.parameters()))


def test_frozen_parameters_are_left_out():
    net = Net()
    for p in net.conv.parameters():
        p.requires_grad = False
    ids = {id(p) for g in param_groups(net, 0.3, 0.1, 0.05) for p in g["params"]}
    assert id(net.conv.weight) not in ids and id(net.fc.weight) in ids


@pytest.mark.parametrize("name,kind", [("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam),
                                       ("sgd", torch.optim.SGD), ("rmsprop", RMSpropTF)])
def test_build_optimizer(name, kind):
    optimizer = build_optimizer(Net(), train_params(optimizer=name, lr_head=0.02, lr_backbone=0.01), lr_scale=0.1)
    assert isinstance(optimizer, kind)
    assert sorted({g["lr"] for g in optimizer.param_groups}) == pytest.approx([0.001, 0.002])
    if name == "sgd":
        assert all(g["nesterov"] and g["momentum"] == 0.9 for g in optimizer.param_groups)
    if name == "rmsprop":  # TF-style RMSProp as EfficientNet was trained: decay 0.9, ε 1e-3 inside the sqrt
        assert all((g["alpha"], g["eps"], g["momentum"], g["centered"], g["decoupled_decay"]) ==
                   (0.9, 1e-3, 0.9, False, False) for g in optimizer.param_groups)


def run_schedule(epochs: int, steps: int, val_f1: list[float] | None = None, optimizer: str = "sgd",
                 **overrides) -> list[dict]:
    """The head's parameter group before every batch of `epochs` × `steps` (copies)."""
    train = train_params(optimizer=optimizer, lr_head=1.0, lr_backbone=0.5, **overrides)
    optim = build_optimizer(Net(), train)
    schedule = LRSchedule(optim, train, epochs, steps)
    groups = []
    for epoch in range(epochs):
        for _ in range(steps):
            groups.append({k: v for k, v in optim.param_groups[0].items() if k != "params"})
            optim.step()
            schedule.after_batch()
        schedule.after_epoch(val_f1[epoch] if val_f1 else 0.0)
    assert all(g["name"] == "head" for g in groups)
    return groups


def lr_trace(epochs: int, steps: int, val_f1: list[float] | None = None, **overrides) -> list[float]:
    """The head's learning rate before every batch of `epochs` × `steps`."""
    return [g["lr"] for g in run_schedule(epochs, steps, val_f1, **overrides)]


def test_onecycle_warms_up_then_anneals():
    trace = lr_trace(4, 5, scheduler="onecycle", warmup_epochs=1)
    # warm-up = 1 of 4 epochs: torch's OneCycleLR peaks at step pct_start · total - 1
    assert trace.index(max(trace)) == 4 and max(trace) == pytest.approx(1.0)
    assert trace[0] < 0.1 and trace[-1] < 0.01


def test_cosine_with_warmup():
    trace = lr_trace(4, 5, scheduler="cosine", warmup_epochs=1)
    assert trace[0] == pytest.approx(WARMUP_START) and trace[5] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(trace[5:], trace[6:])) and trace[-1] < 0.02


@pytest.mark.parametrize("optimizer,key,configured", [("sgd", "momentum", 0.8), ("adam", "betas", (0.9, 0.999)),
                                                      ("adamw", "betas", (0.9, 0.999))])
def test_onecycle_keeps_the_configured_momentum(optimizer, key, configured):
    groups = run_schedule(4, 5, optimizer=optimizer, scheduler="onecycle", momentum=0.8)
    assert len({g["lr"] for g in groups}) > 10  # the learning rate does cycle
    assert all(g[key] == pytest.approx(configured) for g in groups)


@pytest.mark.parametrize("warmup", [0, 1])
def test_cosine_restarts_every_period(warmup):
    # 7 epochs of 5 steps: after the warm-up, fixed cycles of 2 epochs (10 steps), the last one cut short
    trace = lr_trace(7, 5, scheduler="cosine_restarts", restart_period=2, warmup_epochs=warmup)
    starts = range(5 * warmup, 35, 10)
    assert [trace[s] for s in starts] == pytest.approx([1.0] * len(starts))
    assert all(trace[s - 1] == pytest.approx(0.5 * (1 + math.cos(math.pi * 9 / 10))) for s in starts[1:])
    for start in starts:  # each cycle decreases from the base rate
        cycle = trace[start:start + 10]
        assert all(a > b for a, b in zip(cycle, cycle[1:]))
    if warmup:
        assert trace[0] == pytest.approx(WARMUP_START) and max(trace[:5]) < 1.0


def test_step_decays_at_epoch_boundaries():
    trace = lr_trace(4, 3, scheduler="step", step_size=2, gamma=0.1)
    assert trace == pytest.approx([1.0] * 6 + [0.1] * 6)


def test_plateau_lowers_after_patience_on_val_f1():
    # patience 1: the second epoch without improvement (epoch 4) halves the rate for epoch 5
    trace = lr_trace(5, 2, val_f1=[0.5, 0.6, 0.6, 0.6, 0.6], scheduler="plateau", plateau_patience=1, gamma=0.5)
    assert trace == pytest.approx([1.0] * 8 + [0.5] * 2)


def test_schedule_state_round_trip():
    net = Net()
    train = train_params(scheduler="cosine", warmup_epochs=1)
    first_optimizer, second_optimizer = build_optimizer(net, train), build_optimizer(net, train)
    first = LRSchedule(first_optimizer, train, 3, 4)
    for _ in range(5):
        first_optimizer.step()
        first.after_batch()
    second = LRSchedule(second_optimizer, train, 3, 4)
    second.load_state_dict(first.state_dict())
    for optimizer, schedule in ((first_optimizer, first), (second_optimizer, second)):
        optimizer.step()
        schedule.after_batch()
    assert second.per_batch.get_last_lr() == pytest.approx(first.per_batch.get_last_lr())
