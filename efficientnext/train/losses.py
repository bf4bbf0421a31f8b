"""Training objectives (§6.1, §3.10) and mixup.

Every loss takes logits [B, C] and *soft* targets [B, C] (rows sum to 1), so label smoothing and
mixup are applied once to the targets (`soft_targets`, `mixup`) and work with every objective.
An optional per-class `weight` [C] scales each class's term (inverse-frequency class weights).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from efficientnext.config import TrainParams


def inverse_frequency_weights(targets: np.ndarray, num_classes: int) -> torch.Tensor:
    """w_c = N / (C * n_c), so a balanced split gives all ones; an absent class gets weight 0."""
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=num_classes).astype(np.float64)
    weights = np.divide(counts.sum(), num_classes * counts, out=np.zeros_like(counts), where=counts > 0)
    return torch.tensor(weights, dtype=torch.float32)


def soft_targets(labels: torch.Tensor, num_classes: int, smoothing: float = 0.0) -> torch.Tensor:
    """One-hot rows, smoothed as (1 - ε) · onehot + ε / C."""
    onehot = F.one_hot(labels, num_classes).float()
    return onehot * (1.0 - smoothing) + smoothing / num_classes


def mixup(images: torch.Tensor, targets: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each sample with a shuffled partner: λ ~ Beta(α, α), images and soft targets alike.

    Draws from torch's global RNG, whose state the checkpoints carry, so a resumed run repeats them."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    order = torch.randperm(images.shape[0]).to(images.device)
    return lam * images + (1 - lam) * images[order], lam * targets + (1 - lam) * targets[order]


def _weighted(per_class: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    return per_class if weight is None else per_class * weight


class CrossEntropy(nn.Module):
    """-Σ_c w_c t_c log p_c, mean over the batch."""

    def __init__(self, weight: torch.Tensor | None = None):
        super().__init__()
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return -_weighted(targets * F.log_softmax(logits, dim=1), self.weight).sum(1).mean()


class FocalLoss(nn.Module):
    """Focal loss (Lin et al.): -Σ_c w_c t_c α (1 - p_c)^γ log p_c, mean over the batch."""

    def __init__(self, alpha: float, gamma: float, weight: torch.Tensor | None = None):
        super().__init__()
        self.alpha, self.gamma = alpha, gamma
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1)
        per_class = self.alpha * (1 - log_p.exp()).pow(self.gamma) * log_p
        return -_weighted(targets * per_class, self.weight).sum(1).mean()


class AsymmetricLoss(nn.Module):
    """ASL (Ridnik et al.) on softmax probabilities, each class one-vs-rest:
    positives  t_c (1 - p_c)^γ+ log p_c,
    negatives  (1 - t_c) p_m^γ- log(1 - p_m) with the shifted probability p_m = max(p_c - clip, 0);
    loss = -Σ_c w_c (positive + negative), mean over the batch."""

    def __init__(self, gamma_pos: float, gamma_neg: float, clip: float, weight: torch.Tensor | None = None):
        super().__init__()
        self.gamma_pos, self.gamma_neg, self.clip = gamma_pos, gamma_neg, clip
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        probs = F.softmax(logits.float(), dim=1)
        eps = torch.finfo(probs.dtype).eps
        shifted = (probs - self.clip).clamp(min=0)
        positive = targets * (1 - probs).pow(self.gamma_pos) * probs.clamp(min=eps).log()
        negative = (1 - targets) * shifted.pow(self.gamma_neg) * (1 - shifted).clamp(min=eps).log()
        return -_weighted(positive + negative, self.weight).sum(1).mean()


class DiceLoss(nn.Module):
    """Multi-class soft Dice over the batch: 1 - Σ_c w_c D_c / Σ_c w_c,
    D_c = (2 Σ_i p_ic t_ic + s) / (Σ_i p_ic + Σ_i t_ic + s)."""

    def __init__(self, smooth: float, weight: torch.Tensor | None = None):
        super().__init__()
        self.smooth = smooth
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        probs = F.softmax(logits.float(), dim=1)
        dice = (2 * (probs * targets).sum(0) + self.smooth) / (probs.sum(0) + targets.sum(0) + self.smooth)
        if self.weight is None:
            return 1 - dice.mean()
        return 1 - (dice * self.weight).sum() / self.weight.sum()


def build_loss(train: TrainParams, weight: torch.Tensor | None = None) -> nn.Module:
    """The objective named by train.loss; `weight` is used only when train.class_weights is set."""
    weight = weight if train.class_weights else None
    if train.loss == "ce":
        return CrossEntropy(weight)
    if train.loss == "focal":
        return FocalLoss(train.focal_alpha, train.focal_gamma, weight)
    if train.loss == "asl":
        return AsymmetricLoss(train.asl_gamma_pos, train.asl_gamma_neg, train.asl_clip, weight)
    return DiceLoss(train.dice_smooth, weight)
