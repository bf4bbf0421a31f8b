"""The trained model as the report shows it: Figure 1's boxes from the checkpoint's own configuration
(stem, stages, 1×1 projection, pooling, head: read off the built network, so the picture cannot drift),
and its cost next to EfficientNet-B2's."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import timm
import torch
from torch import nn

from efficientnext.config import ModelParams
from efficientnext.models import create_model
from efficientnext.models.speed import images_per_second
from efficientnext.models.summary import summarize
from efficientnext.train.checkpoint import ModelRecord, load_record

B2 = "efficientnet_b2"
B2_IMAGE_SIZE = 260  # B2's own resolution


@dataclass(frozen=True)
class Box:
    """One box of Figure 1: a title and the lines under it, and the feature map it outputs."""

    title: str
    lines: tuple[str, ...]
    output: str


@dataclass(frozen=True)
class TrainedModel:
    record: ModelRecord
    network: nn.Module

    @property
    def title(self) -> str:
        return f"{self.record.model_config['arch']} ({len(self.record.classes)} classes)"


def load_model(checkpoint: str | Path) -> TrainedModel:
    record = load_record(Path(checkpoint))
    network = create_model(ModelParams(**record.model_config), len(record.classes))
    network.load_state_dict(record.state_dict)
    return TrainedModel(record, network.eval())


def figure_1_boxes(model: TrainedModel) -> list[Box]:
    """Input, stem, each stage, the 1×1 projection, global average pooling and the classifier head."""
    size = model.record.image_size
    summary = summarize(model.network, size)
    body = getattr(model.network, "backbone", model.network)  # the transfer model wraps a timm backbone
    boxes = [Box("input", ("RGB image",), f"3×{size}×{size}")]
    for row in summary.rows:
        height, width = row.resolution
        if row.name == "stem":
            lines = (f"conv {row.kernel}×{row.kernel}, stride {row.stride}", "norm + activation")
            boxes.append(Box("stem", lines, f"{row.channels}×{height}×{width}"))
        else:
            blocks = "block" if row.blocks == 1 else "blocks"
            lines = (f"{row.blocks} MBConv {blocks}", f"depthwise {row.kernel}×{row.kernel}", f"stride {row.stride}")
            boxes.append(Box(f"stage {row.name}", lines, f"{row.channels}×{height}×{width}"))
    height, width = summary.rows[-1].resolution
    projection = body.conv_head.out_channels
    boxes.append(Box("projection", ("conv 1×1", "norm + activation"), f"{projection}×{height}×{width}"))
    boxes.append(Box("pooling", ("global average",), f"{projection}"))
    head = [module for module in model.network.get_classifier().modules()
            if isinstance(module, (nn.Linear, nn.Dropout)) and not (isinstance(module, nn.Dropout) and module.p == 0)]
    lines = tuple(f"linear {m.in_features}→{m.out_features}" if isinstance(m, nn.Linear) else f"dropout {m.p:g}"
                  for m in head)
    boxes.append(Box("head", lines, f"{len(model.record.classes)} classes"))
    return boxes


def cost_table(model: TrainedModel, train_img_per_s: float, repeats: int = 3, steps: int = 2) -> pd.DataFrame:
    """Parameters, MACs (one image, at the trained size and at B2's 260 px), the training throughput the
    train stage measured, and inference img/s of both models timed here in turns (batch 16)."""
    size = model.record.image_size
    classes = len(model.record.classes)
    b2 = timm.create_model(B2, num_classes=classes).eval()
    networks = {model.title: model.network, f"{B2} (timm)": b2}
    speed = images_per_second({name: net.to(memory_format=torch.channels_last) for name, net in networks.items()},
                              size, train=False, repeats=repeats, steps=steps, classes=classes)
    rows = []
    for name, net in networks.items():
        rows.append({"Model": name, "Params (M)": f"{sum(p.numel() for p in net.parameters()) / 1e6:.2f}",
                     f"GMACs @{size} px": f"{summarize(net, size).macs / 1e9:.3f}",
                     f"GMACs @{B2_IMAGE_SIZE} px": f"{summarize(net, B2_IMAGE_SIZE).macs / 1e9:.3f}",
                     f"Inference img/s @{size} px": f"{speed[name]:.0f}",
                     "Train img/s (train stage)": f"{train_img_per_s:.0f}" if net is model.network else "—"})
    return pd.DataFrame(rows)
