"""Models: EfficientNext and its baselines, one entry point for every `model.arch`.

Importing this package registers the timm names `efficientnext` and `efficientnext_paper`.
"""

from __future__ import annotations

import timm
from torch import nn

from efficientnext import config
from efficientnext.config import ModelParams, Params
from efficientnext.models.baselines import efficientnet_b2_baseline, transfer_model
from efficientnext.models.efficientnext import PAPER_OPTIONS, EfficientNext

__all__ = ["PAPER_OPTIONS", "EfficientNext", "create_model", "with_input_normalisation"]


def create_model(model: ModelParams, num_classes: int) -> nn.Module:
    """The network `model.arch` names, untrained except the transfer backbone (which starts frozen)."""
    if model.arch == "efficientnext":
        return EfficientNext(model, num_classes=num_classes)
    if model.arch == "efficientnet_b2":
        return efficientnet_b2_baseline(model, num_classes)
    return transfer_model(model, num_classes)


def with_input_normalisation(params: Params) -> Params:
    """Params whose augment.mean/std are what the network expects: a pretrained transfer backbone's own
    statistics (Lite0: mean = std = 0.5), otherwise augment's. Transforms and checkpoints read them there."""
    if params.model.arch != "transfer":
        return params
    pretrained = timm.models.get_pretrained_cfg(params.model.transfer.backbone)
    if pretrained is None:
        return params  # a backbone timm has no defaults for: augment's statistics stand
    return config.with_overrides(params, {"augment.mean": list(pretrained.mean), "augment.std": list(pretrained.std)})
