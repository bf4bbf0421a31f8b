"""EfficientNext: a 7×7 stem, five MBConv stages from a B2-derived table, a 1×1 projection and an MLP head.

Built on timm: the stages are timm's `EfficientNetBuilder` + `InvertedResidual` (MBConv) decoded from
timm arch strings; attention, normalisation, activation, DropPath and channel rounding are timm layers.
What this file adds is what timm lacks: the stage table as data, the 7×7 stem, the MLP head, the paper's
drop-connect schedule (§3.9), the conv-bias switch and the `efficientnext` / `efficientnext_paper`
entries in timm's registry.

Stage table, descended from EfficientNet-B2
-------------------------------------------
timm's EfficientNet-B2 (width ×1.1, depth ×1.2 already applied) after its 3×3 stride-2 stem, by the
resolution each stage works at (stride relative to the input):

    B2 stage                      n   C    s  e  k   works at
    1  ds  (depthwise-separable)  2   16   1  1  3   /2
    2  ir                         3   24   2  6  3   /4
    3  ir                         3   48   2  6  5   /8
    4  ir                         4   88   2  6  3   /16
    5  ir                         4   120  1  6  5   /16
    6  ir                         5   208  2  6  5   /32
    7  ir                         2   352  1  6  3   /32
    head 1×1 conv to 1408

Its three stride-1 stages (1, 5, 7) only change width. EfficientNext keeps five stages and total stride
32 (stem /2, then four stride-2 stages) by merging two of them into a stride-2 neighbour: a merged stage
has the summed depth, the stride-2 stage's stride, and the channels, expansion and kernel of the stage it
ends on (so it hands the next stage the same width B2 does):

    * B2 1 (ds ×2, 16 ch, stride 1) merges into B2 2: the 7×7 stride-2 stem takes over the DS stage's job
      of mixing space at the stem's resolution, so its two blocks join the first stride-2 stage;
    * B2 5 (×4, 120 ch, stride 1) merges into B2 4: both run at /16;
    * B2 7 (×2, 352 ch, stride 1) is kept as the last stage: it widens 208 → 352 at /32 before the
      projection to `final_channels`, as in B2.

    EfficientNext stage   n   C    s  e  k   from B2 stages   works at
    1                     5   24   2  6  3   1 + 2            /4
    2                     3   48   2  6  5   3                /8
    3                     8   120  2  6  5   4 + 5            /16
    4                     5   208  2  6  5   6                /32
    5                     2   352  1  6  3   7                /32

All 23 of B2's blocks survive. The table is data, `B2_DERIVED_STAGES` below (params.yaml `model.stages`
null), and params.yaml may give another; `kernel_size` and `expand_ratio`, when set, replace every
row's k and e (the paper searches them globally); `width` scales the stem (32) and every stage's C with
timm's `round_channels` (make_divisible by 8, or by lcm(8, gn_groups) with a grouped norm, so 16 groups
fit: stage 1's 24 channels become 32 there). `final_channels` is the literal width of the 1×1
projection and is *not* width-scaled: it is a searched parameter of its own (1536 in §8.4).

Everything else
---------------
* Stem: 7×7 conv, stride 2, → norm + activation (named conv_stem / bn1 like timm's EfficientNet).
* Blocks: MBConv (1×1 expand → k×k depthwise → attention → 1×1 project) with a residual connection
  exactly where stride is 1 and C_in == C_out (timm's rule). Attention (se / eca / cbam, timm's
  `get_attn`) sits in the block's `se_layer` slot; the builder binds timm's EfficientNet reduction
  (SE / CBAM hidden width = block input / 4) and the block passes its activation (ECA has none to use).
* Norm: batchnorm, groupnorm (`gn_groups` groups), groupnorm1 (one group, LayerNorm-like), evonorms0
  (`gn_groups` groups; it carries its own S0 non-linearity, so `activation` then only reaches the
  attention module), rmsnorm2d; every norm is timm's norm+act layer from `get_norm_act_layer`.
* Conv bias on every stem / block / projection conv when `conv_bias` is true.
* Stochastic depth (§3.9): block l of all L blocks drops its residual branch with probability
  drop_max · l / (L − 1) (per sample, timm's DropPath, identity at eval), so the last block drops at
  exactly drop_max. timm's builder schedule stops at drop_max · (L − 1) / L, so the rates are set after
  building. The branch of a block without a residual connection is never dropped (timm applies DropPath
  only on the skip path).
* Initialisation: timm's EfficientNet (TensorFlow) init, and with `zero_init_last` (the default) the
  last norm of every residual block starts at scale 0 (Goyal et al. 2017; timm's ResNet `zero_init_last`):
  the untrained network is its shortcut path and each block starts as the identity. From scratch on a
  short budget this is what lets the deep MBConv stack learn (README, Performance: on digits, the
  configuration the sweep selects, 8 epochs, test macro-F1 0.837 without, 0.977 with).
* Head (§3.3, §3.10): global average pool → dropout(features) → Linear(final, h1) → GELU → dropout →
  [Linear(h1, h2) → GELU → dropout] → Linear(num_classes). The whole MLP is the classifier
  (`get_classifier()`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import torch
from timm.layers import DropPath, EvoNorm2dS0, GroupNormAct, SelectAdaptivePool2d, create_conv2d, get_act_layer
from timm.layers import get_norm_act_layer
from timm.models import register_model
from timm.models._efficientnet_builder import (
    EfficientNetBuilder,
    decode_arch_def,
    efficientnet_init_weights,
    round_channels,
)
from torch import nn

from efficientnext import paper
from efficientnext.config import ModelParams, StageRow

STEM_CHANNELS = 32  # B2's stem width (32 × 1.1 rounds back to 32)

# (n, C, s, e, k) per stage: EfficientNet-B2's table with stride-1 stages merged (the derivation above).
B2_DERIVED_STAGES: list[StageRow] = [(5, 24, 2, 6, 3), (3, 48, 2, 6, 5), (8, 120, 2, 6, 5), (5, 208, 2, 6, 5),
                                     (2, 352, 1, 6, 3)]

# The configuration selected by the paper's sweep (table 8.4), as `model` options.
PAPER_OPTIONS: dict[str, Any] = {"stages": None, **{
    key.removeprefix("model."): value for key, value in paper.selected_configuration().items()
    if key.startswith("model.")}}


def channel_divisor(cfg: ModelParams) -> int:
    """Channels round to multiples of 8 (timm's `make_divisible`), and of the group count with a grouped
    norm, so every GN / EvoNorm group count of the search space fits every layer (24 -> 32 at 16 groups)."""
    return math.lcm(8, cfg.gn_groups) if cfg.norm in ("groupnorm", "evonorms0") else 8


def stage_arch_def(cfg: ModelParams) -> list[list[str]]:
    """The stage table as timm arch strings, one stage per list, e.g. ``ir_r5_k7_s2_e5_c24_se0.25``.

    The se0.25 ratio only takes effect when an attention layer is configured.
    """
    return [
        [f"ir_r{n}_k{cfg.kernel_size or k}_s{s}_e{cfg.expand_ratio or e}_c{channels}_se0.25"]
        for n, channels, s, e, k in cfg.stages or B2_DERIVED_STAGES
    ]


def drop_connect_rates(drop_max: float, num_blocks: int) -> list[float]:
    """§3.9: rate of block l = drop_max · l / (L − 1); the last block gets exactly drop_max."""
    if num_blocks == 1:
        return [drop_max]
    return [drop_max * (index / (num_blocks - 1)) for index in range(num_blocks)]


def norm_act_layer(norm: str, gn_groups: int, act_layer: type[nn.Module]) -> Callable[..., nn.Module]:
    """timm norm+act layer for `norm`; grouped norms refuse channel counts that gn_groups does not divide."""
    if norm == "groupnorm":
        grouped = partial(GroupNormAct, num_groups=gn_groups)
    elif norm == "evonorms0":
        grouped = partial(EvoNorm2dS0, groups=gn_groups)
    else:
        return get_norm_act_layer(norm, act_layer)
    layer = get_norm_act_layer(grouped, act_layer)

    # A function (not a class) so timm's blocks use it as-is; it checks every layer it creates, which
    # covers the stem, each block's expanded and output channels, and the projection.
    def grouped_norm_act(num_channels: int, **kwargs: Any) -> nn.Module:
        if num_channels % gn_groups:
            raise ValueError(
                f"model.gn_groups = {gn_groups} does not divide the {num_channels} channels of a {norm} layer; "
                f"every channel count (stem, stages at this width, their expansion, final_channels) must be a "
                f"multiple of gn_groups"
            )
        return layer(num_channels, **kwargs)

    return grouped_norm_act


def mlp_head(cfg: ModelParams, num_classes: int) -> nn.Sequential:
    """§3.3 / §3.10: dropout → one or two (Linear → GELU → dropout) → Linear to the classes."""
    layers: list[nn.Module] = [nn.Dropout(cfg.dropout_features), nn.Linear(cfg.final_channels, cfg.hidden1),
                               nn.GELU(), nn.Dropout(cfg.dropout_head1)]
    hidden = cfg.hidden1
    if cfg.head_layers == 2:
        layers += [nn.Linear(cfg.hidden1, cfg.hidden2), nn.GELU(), nn.Dropout(cfg.dropout_head2)]
        hidden = cfg.hidden2
    layers.append(nn.Linear(hidden, num_classes))
    return nn.Sequential(*layers)


class EfficientNext(nn.Module):
    """EfficientNext for `num_classes` classes, configured by the `model` group of params.yaml."""

    def __init__(self, cfg: ModelParams, num_classes: int = 5, in_chans: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.num_features = cfg.final_channels
        act_layer = get_act_layer(cfg.activation)
        norm_layer = norm_act_layer(cfg.norm, cfg.gn_groups, act_layer)
        divisor = channel_divisor(cfg)
        stem_channels = round_channels(STEM_CHANNELS, cfg.width, divisor=divisor)

        self.conv_stem = create_conv2d(in_chans, stem_channels, 7, stride=2, bias=cfg.conv_bias)
        self.bn1 = norm_layer(stem_channels, inplace=True)

        block_args = decode_arch_def(stage_arch_def(cfg))
        for stage in block_args:
            for args in stage:
                args["conv_kwargs"] = {"bias": cfg.conv_bias}  # the builder has no bias switch of its own
        builder = EfficientNetBuilder(
            round_chs_fn=partial(round_channels, multiplier=cfg.width, divisor=divisor),
            act_layer=act_layer,
            norm_layer=norm_layer,
            se_layer=None if cfg.attention == "none" else cfg.attention,
        )
        self.blocks = nn.Sequential(*builder(stem_channels, block_args))

        self.conv_head = create_conv2d(builder.in_chs, cfg.final_channels, 1, bias=cfg.conv_bias)
        self.bn2 = norm_layer(cfg.final_channels, inplace=True)
        self.global_pool = SelectAdaptivePool2d(pool_type="avg", flatten=True)
        self.head = mlp_head(cfg, num_classes)

        efficientnet_init_weights(self)
        blocks = [block for stage in self.blocks for block in stage]
        if cfg.zero_init_last:
            for block in blocks:
                if block.has_skip:
                    nn.init.zeros_(block.bn3.weight)
        # §3.9 schedule over all blocks, replacing the builder's, which stops short of drop_max.
        for block, rate in zip(blocks, drop_connect_rates(cfg.drop_connect, len(blocks))):
            block.drop_path = DropPath(rate) if rate > 0 else nn.Identity()

    def get_classifier(self) -> nn.Module:
        return self.head

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn1(self.conv_stem(x))
        x = self.blocks(x)
        return self.bn2(self.conv_head(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.global_pool(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


def _create(options: dict[str, Any], pretrained: bool) -> EfficientNext:
    if pretrained:
        raise ValueError("EfficientNext has no pretrained weights; create it with pretrained=False")
    num_classes = options.pop("num_classes", 5)
    in_chans = options.pop("in_chans", 3)
    for timm_bookkeeping in ("pretrained_cfg", "pretrained_cfg_overlay", "cache_dir"):
        options.pop(timm_bookkeeping, None)
    return EfficientNext(ModelParams(**options), num_classes=num_classes, in_chans=in_chans)


@register_model
def efficientnext(pretrained: bool = False, **kwargs: Any) -> EfficientNext:
    """Any configuration: keyword options are the fields of the `model` group (ModelParams), validated.

    timm.create_model drops keywords whose value is None, so kernel_size=None / expand_ratio=None (use the
    table's k / e) must go through `efficientnext.models.create_model` or `EfficientNext` directly.
    """
    return _create(kwargs, pretrained)


@register_model
def efficientnext_paper(pretrained: bool = False, **kwargs: Any) -> EfficientNext:
    """The paper's selected configuration (§8.4); keyword options override single rows."""
    return _create({**PAPER_OPTIONS, **kwargs}, pretrained)
