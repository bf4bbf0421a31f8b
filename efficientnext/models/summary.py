"""`efficientnext summary`: parameters, MACs and the per-stage layout of a configured model.

    efficientnext summary                                   # params.yaml's model group
    efficientnext summary --model efficientnext_paper       # the paper's §8.4 configuration
    efficientnext summary --model efficientnet_b2 --image-size 260
    efficientnext summary model.attention=se model.width=0.75

MACs are counted by torch.utils.flop_counter (convolutions and matrix products; FLOPs / 2) for one image.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from efficientnext import config
from efficientnext.models import create_model
from efficientnext.models.efficientnext import PAPER_OPTIONS

# --model presets, as params overrides applied before the command line's own.
PRESETS: dict[str, dict[str, object]] = {
    "efficientnext": {"model.arch": "efficientnext"},
    "efficientnext_paper": {"model.arch": "efficientnext",
                            **{f"model.{key}": value for key, value in PAPER_OPTIONS.items()}},
    "efficientnet_b2": {"model.arch": "efficientnet_b2"},
    "transfer": {"model.arch": "transfer"},
}


@dataclass
class StageRow:
    name: str
    blocks: int
    channels: int
    stride: int
    kernel: int
    resolution: tuple[int, int]
    params: int
    macs: int


@dataclass
class ModelSummary:
    image_size: int
    params: int
    trainable: int
    macs: int
    rows: list[StageRow]


def summarize(model: nn.Module, image_size: int) -> ModelSummary:
    """Count one forward pass of a timm EfficientNet-family model (EfficientNext, B2, a transfer backbone)."""
    net = getattr(model, "backbone", model)  # TransferModel wraps its timm backbone
    # (row name, blocks, modules of the row, the conv whose stride and kernel the row reports)
    parts = [("stem", 1, [net.conv_stem, net.bn1], net.conv_stem)]
    parts += [(str(index + 1), len(stage), [stage], stage[0].conv_dw) for index, stage in enumerate(net.blocks)]
    names = {module: name for name, module in model.named_modules()}
    resolutions: dict[nn.Module, tuple[int, int]] = {}
    hooks = [modules[-1].register_forward_hook(lambda m, _, out: resolutions.__setitem__(m, tuple(out.shape[-2:])))
             for _, _, modules, _ in parts]
    was_training = model.training
    model.eval()
    try:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model(torch.zeros(1, 3, image_size, image_size))
    finally:
        for hook in hooks:
            hook.remove()
        model.train(was_training)
    flops = {name: sum(counts.values()) for name, counts in counter.get_flop_counts().items()}
    root = type(model).__name__
    rows = [
        StageRow(name=name, blocks=blocks, channels=_out_channels(modules[0]), stride=conv.stride[0],
                 kernel=conv.kernel_size[0], resolution=resolutions[modules[-1]],
                 params=sum(p.numel() for m in modules for p in m.parameters()),
                 macs=sum(flops.get(f"{root}.{names[m]}", 0) for m in modules) // 2)
        for name, blocks, modules, conv in parts
    ]
    return ModelSummary(
        image_size=image_size,
        params=sum(p.numel() for p in model.parameters()),
        trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
        macs=flops["Global"] // 2,
        rows=rows,
    )


def _out_channels(module: nn.Module) -> int:
    """Output width of a stem conv or a stage (its last block's last 2-d conv: the projection)."""
    convs = [m for m in module.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def format_summary(title: str, summary: ModelSummary) -> str:
    lines = [
        f"{title} at {summary.image_size} px",
        f"params: {summary.params:,} total, {summary.trainable:,} trainable",
        f"MACs:   {summary.macs / 1e9:.3f} G",
        "",
        f"{'stage':>5} {'blocks':>6} {'channels':>8} {'stride':>6} {'kernel':>6} {'output':>9} {'params':>11} "
        f"{'MMACs':>8}",
    ]
    for row in summary.rows:
        resolution = f"{row.resolution[0]}×{row.resolution[1]}"
        lines.append(f"{row.name:>5} {row.blocks:>6} {row.channels:>8} {row.stride:>6} {row.kernel:>6} "
                     f"{resolution:>9} {row.params:>11,} {row.macs / 1e6:>8.1f}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> None:
    overrides = dict(PRESETS.get(args.model, {}))
    overrides.update(config.parse_override(item) for item in args.overrides)
    params = config.load(args.params, overrides)
    try:
        model = create_model(params.model, num_classes=len(params.data.classes))
    except ValueError as exc:
        raise config.UserError(str(exc)) from None
    title = f"{args.model or params.model.arch} ({len(params.data.classes)} classes)"
    print(format_summary(title, summarize(model, args.image_size)))


def add_command(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("summary", help="params, MACs and per-stage layout of a model",
                                   description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=sorted(PRESETS),
                        help="a preset applied before the overrides (default: params.yaml's model.arch)")
    parser.add_argument("--image-size", type=int, default=224, help="input side in pixels (default: 224)")
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="param overrides, e.g. model.attention=se")
    parser.set_defaults(func=_run)
