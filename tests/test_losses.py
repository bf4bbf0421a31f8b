"""Each objective against a value computed by hand on a small batch (probabilities chosen so the
logarithms are of 1/2 and 1/4): §6.1's formulas per sample, label smoothing applied by the loss, class
weights weighting each sample (Σ_i w_i ℓ_i / Σ_i w_i)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from efficientnext import config
from efficientnext.train.losses import (AsymmetricLoss, CrossEntropy, DiceLoss, FocalLoss, build_loss,
                                        focal_alpha_weights, inverse_frequency_weights, mixup, one_hot)

LN2, LN4 = math.log(2), math.log(4)


def logits_of(*rows: list[float]) -> torch.Tensor:
    """Logits whose softmax is exactly the given probability rows."""
    return torch.tensor(rows, dtype=torch.float64).log()


def test_cross_entropy_plain_and_smoothed():
    logits, targets = logits_of([0.5, 0.25, 0.25]), one_hot(torch.tensor([0]), 3)
    assert targets.tolist() == [[1.0, 0.0, 0.0]]
    assert CrossEntropy()(logits, targets).item() == pytest.approx(LN2)
    # ε = 0.3 over 3 classes: ỹ = (0.7 + 0.1, 0.1, 0.1)
    assert CrossEntropy(smoothing=0.3)(logits, targets).item() == pytest.approx(0.8 * LN2 + 0.2 * LN4)


def test_class_weights_weight_each_sample():
    logits = logits_of([0.5, 0.25, 0.25], [0.5, 0.25, 0.25])
    weight = torch.tensor([1.0, 2.0, 1.0], dtype=torch.float64)
    # labels 0 and 1: ℓ = (ln 2, ln 4), w_i = (1, 2)
    loss = CrossEntropy(weight)(logits, one_hot(torch.tensor([0, 1]), 3))
    assert loss.item() == pytest.approx((1 * LN2 + 2 * LN4) / (1 + 2))


def test_mixed_targets_are_weighted_unsmoothed_and_smoothed_in_the_loss():
    logits = logits_of([0.5, 0.25, 0.25], [0.25, 0.5, 0.25])
    targets = torch.tensor([[0.7, 0.3, 0.0], [0.0, 0.0, 1.0]], dtype=torch.float64)  # a mixup pair, a plain one
    weight = torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64)
    # ε = 0.3: ỹ = 0.7 y + 0.1 → (0.59, 0.31, 0.1) and (0.1, 0.1, 0.8)
    loss_0 = 0.59 * LN2 + 0.31 * LN4 + 0.1 * LN4
    loss_1 = 0.1 * LN4 + 0.1 * LN2 + 0.8 * LN4
    w_0, w_1 = 0.7 * 1 + 0.3 * 2, 4.0  # from the unsmoothed rows
    expected = (w_0 * loss_0 + w_1 * loss_1) / (w_0 + w_1)
    assert CrossEntropy(weight, smoothing=0.3)(logits, targets).item() == pytest.approx(expected)


def test_weighted_smoothed_cross_entropy_is_minimised_by_the_smoothed_target():
    # Five classes, the sample's class (3, "porn") common, class 1 ("hentai") rare: heavy class weights.
    # The optimum over one sample's logits must be its smoothed target, ε/C on every other class;
    # per-class weighting of the smoothed target would put ~0.11 on class 1.
    eps, classes = 0.05, 5
    weight = torch.tensor([0.5, 5.0, 1.0, 0.4, 1.0], dtype=torch.float64)
    criterion = CrossEntropy(weight, smoothing=eps)
    targets = one_hot(torch.tensor([3]), classes).double()
    logits = torch.zeros(1, classes, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([logits], max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-15,
                                  line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = criterion(logits, targets)
        loss.backward()
        return loss

    optimizer.step(closure)
    other = eps / classes
    assert torch.softmax(logits, 1)[0].tolist() == pytest.approx([other, other, other, 1 - eps + other, other],
                                                                 abs=1e-7)


def test_inverse_frequency_weights():
    # counts (3, 1, 2) of 6: w_c = 6 / (3 · n_c); an absent class gets 0
    assert inverse_frequency_weights(np.array([0, 0, 0, 1, 2, 2]), 3).tolist() == pytest.approx([2 / 3, 2.0, 1.0])
    assert inverse_frequency_weights(np.array([0, 1]), 3).tolist() == pytest.approx([2 / 3, 2 / 3, 0.0])


def test_focal_alpha_weights_temper_inverse_frequency_to_mean_one():
    inverse = torch.tensor([2 / 3, 2.0, 1.0])  # counts (3, 1, 2) of 6
    raw = [math.sqrt(2 / 3), math.sqrt(2.0), 1.0]  # α = 0.5
    assert focal_alpha_weights(inverse, 0.5).tolist() == pytest.approx([r / (sum(raw) / 3) for r in raw])
    assert focal_alpha_weights(inverse, 1.0).tolist() == pytest.approx([6 / 11, 18 / 11, 9 / 11])  # / (11 / 9)
    assert focal_alpha_weights(inverse, 0.0).tolist() == pytest.approx([1.0, 1.0, 1.0])
    # an absent class keeps 0 and is left out of the mean
    assert focal_alpha_weights(torch.tensor([0.5, 2.0, 0.0]), 1.0).tolist() == pytest.approx([0.4, 1.6, 0.0])


def test_focal_loss():
    logits = logits_of([0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.5, 0.25, 0.25])
    targets = one_hot(torch.tensor([0]), 3)
    # one sample: (1 - p)^γ (-log p) with p = 0.5, γ = 2; its α cancels in the weighted mean
    assert FocalLoss(gamma=2.0)(logits[:1], targets).item() == pytest.approx(0.25 * LN2)
    assert FocalLoss(gamma=2.0, weight=torch.tensor([3.0, 1.0, 1.0]))(logits[:1], targets).item() == pytest.approx(
        0.25 * LN2)
    # γ = 0 is cross-entropy
    assert FocalLoss(gamma=0.0)(logits[:1], targets).item() == pytest.approx(LN2)
    # α_c weight the samples: labels (0, 1, 1) with p_y = (0.5, 0.5, 0.25), α = (0.5, 1.5, 1)
    alpha = torch.tensor([0.5, 1.5, 1.0], dtype=torch.float64)
    losses = [0.5 ** 2 * LN2, 0.5 ** 2 * LN2, 0.75 ** 2 * LN4]
    expected = (0.5 * losses[0] + 1.5 * losses[1] + 1.5 * losses[2]) / (0.5 + 1.5 + 1.5)
    assert FocalLoss(gamma=2.0, weight=alpha)(logits, one_hot(torch.tensor([0, 1, 1]), 3)).item() == pytest.approx(
        expected)
    # ε = 0.3: ỹ = (0.8, 0.1, 0.1); γ = 1: -(0.8 · 0.5 · ln 0.5 + 2 · 0.1 · 0.75 · ln 0.25)
    assert FocalLoss(gamma=1.0, smoothing=0.3)(logits[:1], targets).item() == pytest.approx(0.4 * LN2 + 0.15 * LN4)


def test_focal_alpha_changes_the_direction_of_the_gradient():
    # A single α for every class would only scale the gradient; α_c from class frequencies turns it.
    class_frequencies = inverse_frequency_weights(np.array([0] * 8 + [1] * 2 + [2] * 2), 3)
    logits = torch.tensor([[0.3, -0.2, 0.1], [0.0, 0.4, -0.3], [0.2, 0.1, 0.5]], requires_grad=True)
    targets = one_hot(torch.tensor([0, 1, 2]), 3)
    gradients = []
    for alpha in (0.25, 0.5):
        loss = build_loss(config.TrainParams(loss="focal", focal_alpha=alpha), class_frequencies)
        gradients.append(torch.autograd.grad(loss(logits, targets), logits)[0].flatten())
    cosine = torch.nn.functional.cosine_similarity(*gradients, dim=0)
    assert cosine < 1 - 1e-4


def test_asymmetric_loss():
    logits, targets = logits_of([0.5, 0.25, 0.25]), one_hot(torch.tensor([0]), 3)
    # positive: (1 - 0.5)^0 · log 0.5; each negative: p_m = 0.25 - 0.05 = 0.2, p_m^1 · log(1 - 0.2)
    expected = LN2 - 2 * 0.2 * math.log(0.8)
    assert AsymmetricLoss(gamma_pos=0.0, gamma_neg=1.0, clip=0.05)(logits, targets).item() == pytest.approx(expected)


def test_asymmetric_loss_weights_each_sample():
    logits = logits_of([0.5, 0.25, 0.25], [0.5, 0.25, 0.25])
    targets = one_hot(torch.tensor([0, 1]), 3)
    # γ+ = γ- = 0, no clip: ℓ = -log p_y - Σ_{c≠y} log(1 - p_c)
    loss_0 = LN2 - 2 * math.log(0.75)
    loss_1 = LN4 - math.log(0.5) - math.log(0.75)
    weight = torch.tensor([1.0, 3.0, 1.0])
    assert AsymmetricLoss(0.0, 0.0, 0.0, weight)(logits, targets).item() == pytest.approx(
        (loss_0 + 3 * loss_1) / 4, rel=1e-6)


def test_dice_loss_per_sample():
    logits = logits_of([0.5, 0.25, 0.25], [0.5, 0.25, 0.25])
    targets = one_hot(torch.tensor([0, 1]), 3)
    # s = 1: Dice_i = 1 - (2 Σ_c p_c y_c + 1) / (Σ_c p_c + Σ_c y_c + 1) = 1 - (2 p_y + 1) / 3
    dice_0, dice_1 = 1 - (2 * 0.5 + 1) / 3, 1 - (2 * 0.25 + 1) / 3
    assert DiceLoss(smooth=1.0)(logits, targets).item() == pytest.approx((dice_0 + dice_1) / 2)
    weight = torch.tensor([1.0, 3.0, 1.0])
    assert DiceLoss(smooth=1.0, weight=weight)(logits, targets).item() == pytest.approx((dice_0 + 3 * dice_1) / 4)
    # ε = 0.3: ỹ_0 = (0.8, 0.1, 0.1), Σ_c p_c ỹ_c = 0.4 + 0.025 + 0.025
    smoothed = 1 - (2 * 0.45 + 1) / 3
    assert DiceLoss(smooth=1.0, smoothing=0.3)(logits[:1], targets[:1]).item() == pytest.approx(smoothed)


def test_mixup_mixes_images_and_targets_alike():
    torch.manual_seed(2)  # λ ≈ 0.54 and a permutation that moves every sample
    labels = torch.tensor([0, 1, 1, 0])
    images = labels.double().view(-1, 1, 1, 1).expand(-1, 3, 2, 2).clone()  # pixel value = class index
    mixed, targets = mixup(images, one_hot(labels, 2).double(), alpha=0.4)
    assert targets.sum(1).tolist() == pytest.approx([1.0] * 4)
    # each mixed image's pixel value equals its mixed target's weight on class 1
    assert mixed[:, 0, 0, 0].tolist() == pytest.approx(targets[:, 1].tolist())
    assert not torch.equal(mixed, images)


@pytest.mark.parametrize("name,kind", [("ce", CrossEntropy), ("asl", AsymmetricLoss), ("dice", DiceLoss)])
def test_build_loss_names(name, kind):
    train = config.TrainParams(loss=name, class_weights=True, label_smoothing=0.05)
    loss = build_loss(train, torch.tensor([0.5, 2.0, 1.0]))
    assert isinstance(loss, kind) and loss.weight.tolist() == [0.5, 2.0, 1.0] and loss.smoothing == 0.05
    assert build_loss(train.model_copy(update={"class_weights": False}), torch.ones(3)).weight is None


@pytest.mark.parametrize("class_weights", [True, False])
def test_build_focal_loss_weights_by_its_alpha_only(class_weights):
    train = config.TrainParams(loss="focal", focal_alpha=1.0, class_weights=class_weights)
    loss = build_loss(train, torch.tensor([0.5, 2.0, 1.0]))
    # α = 1: the inverse frequencies over their mean 7/6
    assert isinstance(loss, FocalLoss) and loss.weight.tolist() == pytest.approx([3 / 7, 12 / 7, 6 / 7])
    assert build_loss(train, None).weight is None  # no class frequencies: uniform α
