"""Optimisers (head/backbone groups, no decay on norm and bias) and the learning-rate schedules."""

from __future__ import annotations

import pytest
import torch
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
                                       ("sgd", torch.optim.SGD), ("rmsprop", torch.optim.RMSprop)])
def test_build_optimizer(name, kind):
    optimizer = build_optimizer(Net(), train_params(optimizer=name, lr_head=0.02, lr_backbone=0.01), lr_scale=0.1)
    assert isinstance(optimizer, kind)
    assert sorted({g["lr"] for g in optimizer.param_groups}) == pytest.approx([0.001, 0.002])
    if name == "sgd":
        assert all(g["nesterov"] and g["momentum"] == 0.9 for g in optimizer.param_groups)


def lr_trace(epochs: int, steps: int, val_f1: list[float] | None = None, **overrides) -> list[float]:
    """The head's learning rate before every batch of `epochs` × `steps`."""
    net = Net()
    optimizer = build_optimizer(net, train_params(optimizer="sgd", lr_head=1.0, lr_backbone=0.5, **overrides))
    schedule = LRSchedule(optimizer, train_params(**overrides), epochs, steps)
    trace = []
    for epoch in range(epochs):
        for _ in range(steps):
            trace.append(next(g["lr"] for g in optimizer.param_groups if g["name"] == "head"))
            optimizer.step()
            schedule.after_batch()
        schedule.after_epoch(val_f1[epoch] if val_f1 else 0.0)
    return trace


def test_onecycle_warms_up_then_anneals():
    trace = lr_trace(4, 5, scheduler="onecycle", warmup_epochs=1)
    # warm-up = 1 of 4 epochs: torch's OneCycleLR peaks at step pct_start · total - 1
    assert trace.index(max(trace)) == 4 and max(trace) == pytest.approx(1.0)
    assert trace[0] < 0.1 and trace[-1] < 0.01


def test_cosine_with_warmup():
    trace = lr_trace(4, 5, scheduler="cosine", warmup_epochs=1)
    assert trace[0] == pytest.approx(WARMUP_START) and trace[5] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(trace[5:], trace[6:])) and trace[-1] < 0.02


def test_cosine_restarts_every_period():
    trace = lr_trace(4, 5, scheduler="cosine_restarts", restart_period=2)
    assert trace[0] == trace[10] == pytest.approx(1.0) and trace[9] < 0.05


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
