"""Each objective against a value computed by hand on a small tensor (probabilities chosen so the
logarithms are of 1/2 and 1/4)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from efficientnext import config
from efficientnext.train.losses import (AsymmetricLoss, CrossEntropy, DiceLoss, FocalLoss, build_loss,
                                        inverse_frequency_weights, mixup, soft_targets)

LN2, LN4 = math.log(2), math.log(4)


def logits_of(*rows: list[float]) -> torch.Tensor:
    """Logits whose softmax is exactly the given probability rows."""
    return torch.tensor(rows, dtype=torch.float64).log()


def test_cross_entropy_plain_and_smoothed():
    logits, labels = logits_of([0.5, 0.25, 0.25]), torch.tensor([0])
    assert CrossEntropy()(logits, soft_targets(labels, 3)).item() == pytest.approx(LN2)
    # ε = 0.3 over 3 classes: targets (0.8, 0.1, 0.1)
    smoothed = soft_targets(labels, 3, smoothing=0.3)
    assert smoothed[0].tolist() == pytest.approx([0.8, 0.1, 0.1])
    assert CrossEntropy()(logits, smoothed).item() == pytest.approx(0.8 * LN2 + 0.2 * LN4)


def test_cross_entropy_with_class_weights():
    logits = logits_of([0.5, 0.25, 0.25], [0.5, 0.25, 0.25])
    targets = soft_targets(torch.tensor([0, 1]), 3)
    loss = CrossEntropy(torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64))(logits, targets)
    assert loss.item() == pytest.approx((1 * LN2 + 2 * LN4) / 2)


def test_inverse_frequency_weights():
    # counts (3, 1, 2) of 6: w_c = 6 / (3 · n_c); an absent class gets 0
    assert inverse_frequency_weights(np.array([0, 0, 0, 1, 2, 2]), 3).tolist() == pytest.approx([2 / 3, 2.0, 1.0])
    assert inverse_frequency_weights(np.array([0, 1]), 3).tolist() == pytest.approx([2 / 3, 2 / 3, 0.0])


def test_focal_loss():
    logits, targets = logits_of([0.5, 0.25, 0.25]), soft_targets(torch.tensor([0]), 3)
    # -α (1 - p)^γ log p with p = 0.5, α = 0.25, γ = 2
    assert FocalLoss(alpha=0.25, gamma=2.0)(logits, targets).item() == pytest.approx(0.25 * 0.25 * LN2)
    # γ = 0, α = 1 is cross-entropy
    assert FocalLoss(alpha=1.0, gamma=0.0)(logits, targets).item() == pytest.approx(LN2)


def test_asymmetric_loss():
    logits, targets = logits_of([0.5, 0.25, 0.25]), soft_targets(torch.tensor([0]), 3)
    # positive: (1 - 0.5)^0 · log 0.5; each negative: p_m = 0.25 - 0.05 = 0.2, p_m^1 · log(1 - 0.2)
    expected = LN2 - 2 * 0.2 * math.log(0.8)
    assert AsymmetricLoss(gamma_pos=0.0, gamma_neg=1.0, clip=0.05)(logits, targets).item() == pytest.approx(expected)


def test_dice_loss():
    logits = logits_of([0.5, 0.25, 0.25], [0.25, 0.5, 0.25])
    targets = soft_targets(torch.tensor([0, 1]), 3)
    # s = 1: D0 = D1 = (2·0.5 + 1) / (0.75 + 1 + 1), D2 = (0 + 1) / (0.5 + 0 + 1)
    d01, d2 = 2 / 2.75, 1 / 1.5
    assert DiceLoss(smooth=1.0)(logits, targets).item() == pytest.approx(1 - (2 * d01 + d2) / 3)


def test_mixup_mixes_images_and_targets_alike():
    torch.manual_seed(2)  # λ ≈ 0.54 and a permutation that moves every sample
    labels = torch.tensor([0, 1, 1, 0])
    images = labels.double().view(-1, 1, 1, 1).expand(-1, 3, 2, 2).clone()  # pixel value = class index
    mixed, targets = mixup(images, soft_targets(labels, 2).double(), alpha=0.4)
    assert targets.sum(1).tolist() == pytest.approx([1.0] * 4)
    # each mixed image's pixel value equals its mixed target's weight on class 1
    assert mixed[:, 0, 0, 0].tolist() == pytest.approx(targets[:, 1].tolist())
    assert not torch.equal(mixed, images)


@pytest.mark.parametrize("name,kind", [("ce", CrossEntropy), ("focal", FocalLoss), ("asl", AsymmetricLoss),
                                       ("dice", DiceLoss)])
def test_build_loss_names(name, kind):
    train = config.TrainParams(loss=name, class_weights=True)
    loss = build_loss(train, torch.ones(3))
    assert isinstance(loss, kind) and loss.weight is not None
    assert build_loss(train.model_copy(update={"class_weights": False}), torch.ones(3)).weight is None
