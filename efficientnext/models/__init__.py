"""Models: EfficientNext and its baselines, one entry point for every `model.arch`.

Importing this package registers the timm names `efficientnext` and `efficientnext_paper`.
"""

from __future__ import annotations

from torch import nn

from efficientnext.config import ModelParams
from efficientnext.models.baselines import efficientnet_b2_baseline, transfer_model
from efficientnext.models.efficientnext import PAPER_OPTIONS, EfficientNext

__all__ = ["PAPER_OPTIONS", "EfficientNext", "create_model"]


def create_model(model: ModelParams, num_classes: int) -> nn.Module:
    """The network `model.arch` names, untrained except the transfer backbone (which starts frozen)."""
    if model.arch == "efficientnext":
        return EfficientNext(model, num_classes=num_classes)
    if model.arch == "efficientnet_b2":
        return efficientnet_b2_baseline(model, num_classes)
    return transfer_model(model, num_classes)
