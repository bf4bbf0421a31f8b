"""Training objectives (§6.1, §3.10) and mixup.

Every loss is called as `loss(logits [B, C], targets [B, C])` with *unsmoothed* target rows: one-hot
(`one_hot`), or two one-hot rows mixed by `mixup`. Each loss applies label smoothing ε itself,

    ỹ = (1 - ε) y + ε / C,

computes a per-sample loss ℓ_i from ỹ, and weights each *sample*, not each class term:

    w_i = Σ_c w_c y_ic          (unsmoothed y: a mixed sample is weighted λ w_a + (1 - λ) w_b)
    loss = Σ_i w_i ℓ_i / Σ_i w_i (the plain batch mean without class weights)

Why per sample: with per-class terms, -Σ_c w_c ỹ_c log p_c, one sample's optimum is p_c ∝ w_c ỹ_c, so
label smoothing's ε/C would be inflated on rare classes (a confident porn image would keep ~0.11 on the
rare hentai class). Weighting the sample keeps every sample's optimum at its own ỹ. For a one-hot target
and ε = 0, w_i ℓ_i is exactly §6.1's per-sample formula, e.g. -Σ_c w_c y_c log p_c.
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


def focal_alpha_weights(inverse_frequency: torch.Tensor, alpha: float) -> torch.Tensor:
    """Focal loss's α_c: tempered inverse frequency, α_c ∝ (N / (C n_c))^α, mean 1 over the classes present.

    `inverse_frequency` is `inverse_frequency_weights`; α = 0 gives uniform weights, α = 1 full inverse
    frequency. An absent class keeps weight 0. A single α for every class would only rescale the loss
    (which Adam ignores); the exponent makes train.focal_alpha change the balance between classes."""
    present = inverse_frequency > 0
    tempered = torch.where(present, inverse_frequency.pow(alpha), 0.0)
    return tempered / tempered[present].mean()


def one_hot(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Unsmoothed float one-hot rows, the targets every loss takes."""
    return F.one_hot(labels, num_classes).float()


def mixup(images: torch.Tensor, targets: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each sample with a shuffled partner: λ ~ Beta(α, α), images and (unsmoothed) targets alike.

    Draws from torch's global RNG, whose state the checkpoints carry, so a resumed run repeats them."""
    lam = float(torch.distributions.Beta(alpha, alpha).sample())
    order = torch.randperm(images.shape[0]).to(images.device)
    return lam * images + (1 - lam) * images[order], lam * targets + (1 - lam) * targets[order]


class SampleWeightedLoss(nn.Module):
    """Label smoothing and the sample-weighted batch mean shared by every loss (module docstring);
    a subclass defines `per_sample(logits, smoothed) -> ℓ [B]`."""

    def __init__(self, weight: torch.Tensor | None = None, smoothing: float = 0.0):
        super().__init__()
        self.smoothing = smoothing
        self.register_buffer("weight", weight)

    def per_sample(self, logits: torch.Tensor, smoothed: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        smoothed = (1 - self.smoothing) * targets + self.smoothing / targets.shape[1]
        losses = self.per_sample(logits, smoothed)
        if self.weight is None:
            return losses.mean()
        sample_weight = (targets * self.weight).sum(1)
        return (sample_weight * losses).sum() / sample_weight.sum()


class CrossEntropy(SampleWeightedLoss):
    """ℓ_i = -Σ_c ỹ_ic log p_ic; class weights w_c weight the sample."""

    def per_sample(self, logits: torch.Tensor, smoothed: torch.Tensor) -> torch.Tensor:
        return -(smoothed * F.log_softmax(logits, dim=1)).sum(1)


class FocalLoss(SampleWeightedLoss):
    """Focal loss (Lin et al.): ℓ_i = -Σ_c (1 - p_ic)^γ ỹ_ic log p_ic, each sample weighted by
    α_i = Σ_c α_c y_ic.

    `weight` holds the α_c (`focal_alpha_weights`): they are the focal loss's class weights, so
    train.class_weights adds no second weighting. For a one-hot target and ε = 0, α_i ℓ_i is §6.1's
    FL = -Σ_c α_c (1 - p_c)^γ y_c log p_c; with smoothing α weights the sample, as every weight here does."""

    def __init__(self, gamma: float, weight: torch.Tensor | None = None, smoothing: float = 0.0):
        super().__init__(weight, smoothing)
        self.gamma = gamma

    def per_sample(self, logits: torch.Tensor, smoothed: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits, dim=1)
        return -(smoothed * (1 - log_p.exp()).pow(self.gamma) * log_p).sum(1)


class AsymmetricLoss(SampleWeightedLoss):
    """ASL (Ridnik et al.) on softmax probabilities, each class one-vs-rest:
    positives  ỹ_c (1 - p_c)^γ+ log p_c,
    negatives  (1 - ỹ_c) p_m^γ- log(1 - p_m) with the shifted probability p_m = max(p_c - clip, 0);
    ℓ_i = -Σ_c (positive + negative); class weights weight the sample."""

    def __init__(self, gamma_pos: float, gamma_neg: float, clip: float, weight: torch.Tensor | None = None,
                 smoothing: float = 0.0):
        super().__init__(weight, smoothing)
        self.gamma_pos, self.gamma_neg, self.clip = gamma_pos, gamma_neg, clip

    def per_sample(self, logits: torch.Tensor, smoothed: torch.Tensor) -> torch.Tensor:
        probs = F.softmax(logits.float(), dim=1)
        eps = torch.finfo(probs.dtype).eps
        shifted = (probs - self.clip).clamp(min=0)
        positive = smoothed * (1 - probs).pow(self.gamma_pos) * probs.clamp(min=eps).log()
        negative = (1 - smoothed) * shifted.pow(self.gamma_neg) * (1 - shifted).clamp(min=eps).log()
        return -(positive + negative).sum(1)


class DiceLoss(SampleWeightedLoss):
    """Soft Dice per sample over its classes, as §6.1 writes it:
    ℓ_i = 1 - (2 Σ_c p_ic ỹ_ic + s) / (Σ_c p_ic + Σ_c ỹ_ic + s); class weights weight the sample.
    Both sums in the denominator are 1 (a softmax row, a target row), so ℓ_i = 1 - (2 p_i·ỹ_i + s) / (2 + s)."""

    def __init__(self, smooth: float, weight: torch.Tensor | None = None, smoothing: float = 0.0):
        super().__init__(weight, smoothing)
        self.smooth = smooth

    def per_sample(self, logits: torch.Tensor, smoothed: torch.Tensor) -> torch.Tensor:
        probs = F.softmax(logits.float(), dim=1)
        overlap = 2 * (probs * smoothed).sum(1) + self.smooth
        return 1 - overlap / (probs.sum(1) + smoothed.sum(1) + self.smooth)


def build_loss(train: TrainParams, weight: torch.Tensor | None = None) -> SampleWeightedLoss:
    """The objective named by train.loss, with label smoothing train.label_smoothing.

    `weight` is the training split's `inverse_frequency_weights`. Focal always turns them into its α_c
    (`focal_alpha_weights` with train.focal_alpha; uniform when `weight` is None) and ignores
    train.class_weights; the other losses use them as class weights only when train.class_weights is set."""
    smoothing = train.label_smoothing
    if train.loss == "focal":
        alpha = None if weight is None else focal_alpha_weights(weight, train.focal_alpha)
        return FocalLoss(train.focal_gamma, alpha, smoothing)
    weight = weight if train.class_weights else None
    if train.loss == "ce":
        return CrossEntropy(weight, smoothing)
    if train.loss == "asl":
        return AsymmetricLoss(train.asl_gamma_pos, train.asl_gamma_neg, train.asl_clip, weight, smoothing)
    return DiceLoss(train.dice_smooth, weight, smoothing)
