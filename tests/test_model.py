"""EfficientNext: the search space builds and trains, the architecture is what the paper says."""

from __future__ import annotations

import itertools

import pytest
import timm
import torch
from timm.layers import BatchNormAct2d, DropPath, EcaModule, GELU, make_divisible
from timm.models._efficientnet_blocks import InvertedResidual
from torch import nn

import efficientnext  # noqa: F401  (registers the timm names)
from efficientnext.config import ModelParams, field_choices
from efficientnext.models import create_model
from efficientnext.models.efficientnext import B2_DERIVED_STAGES, EfficientNext

# Channels that 16 groups divide at width 1.0 for every expand ratio; a residual block in every stage.
SMALL_STAGES = [(2, 16, 2, 4, 3), (1, 32, 2, 4, 3), (2, 48, 2, 4, 3), (1, 64, 2, 4, 3), (2, 64, 1, 4, 3)]
SMALL = dict(stages=SMALL_STAGES, final_channels=128, hidden1=32, hidden2=16)


def blocks_of(model: EfficientNext) -> list[InvertedResidual]:
    return [block for stage in model.blocks for block in stage]


def search_space_grid(size: int = 30) -> list[dict]:
    """A fixed covering design: every pair of norm, activation and attention values meets at least once, and
    the other rows cycle through all their values with co-prime periods."""
    norms, activations, attentions = (field_choices(ModelParams, key) for key in ("norm", "activation", "attention"))
    cycles = {
        "head_layers": [1, 2],
        "width": [0.75, 1.0, 1.25],
        "expand_ratio": [3, 4, 5, 6],
        "kernel_size": [3, 5, 7],
        "conv_bias": [False, True],
        "gn_groups": [8, 16],
    }
    grid = []
    for index in range(size):
        row, column = index % len(norms), index // len(norms)
        options = {key: values[(index * 7 + len(key)) % len(values)] for key, values in cycles.items()}
        if options["gn_groups"] == 16:
            options["width"] = 1.0  # width-scaled channels are multiples of 8 only
        grid.append(dict(norm=norms[row], activation=activations[(row + column) % len(activations)],
                         attention=attentions[column % len(attentions)], **options))
    return grid


GRID = search_space_grid()


def test_grid_covers_every_value_and_pair():
    seen = {key: {options[key] for options in GRID} for key in GRID[0]}
    for first, second in itertools.combinations(("norm", "activation", "attention"), 2):
        assert {(o[first], o[second]) for o in GRID} == set(itertools.product(
            field_choices(ModelParams, first), field_choices(ModelParams, second)))
    assert seen["head_layers"] == {1, 2}
    assert seen["width"] == {0.75, 1.0, 1.25}
    assert seen["expand_ratio"] == {3, 4, 5, 6}
    assert seen["kernel_size"] == {3, 5, 7}
    assert seen["conv_bias"] == {False, True}
    assert {(o["norm"], o["gn_groups"]) for o in GRID} >= {(norm, groups) for norm in ("groupnorm", "evonorms0")
                                                           for groups in (8, 16)}


@pytest.mark.parametrize("options", GRID, ids=lambda o: "-".join(str(v) for v in o.values()))
def test_search_space_builds_and_trains(options):
    torch.manual_seed(0)
    model = EfficientNext(ModelParams(**SMALL, drop_connect=0.2, **options), num_classes=5)
    x = torch.randn(2, 3, 64, 64)
    logits = model(x)
    assert logits.shape == (2, 5)
    logits.logsumexp(1).sum().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert model.conv_stem.kernel_size == (7, 7)
    assert all(block.conv_dw.kernel_size == (options["kernel_size"],) * 2 for block in blocks_of(model))
    assert sum(isinstance(m, nn.Linear) for m in model.get_classifier().modules()) == options["head_layers"] + 1


def test_width_scales_stem_and_stages_but_not_final_channels():
    model = EfficientNext(ModelParams(**SMALL, width=1.25), num_classes=5)
    assert model.conv_stem.out_channels == make_divisible(32 * 1.25, 8)
    assert [stage[-1].conv_pwl.out_channels for stage in model.blocks] == [
        make_divisible(c * 1.25, 8, round_limit=0.9) for _, c, _, _, _ in SMALL_STAGES]
    assert model.conv_head.out_channels == 128


def test_table_kernel_and_expansion_apply_when_not_overridden():
    stages = [(1, 16, 2, 3, 3), (1, 24, 2, 6, 5), (1, 32, 2, 4, 7), (1, 40, 2, 6, 3), (1, 48, 1, 6, 5)]
    model = EfficientNext(ModelParams(stages=stages, kernel_size=None, expand_ratio=None), num_classes=5)
    in_channels = [32, 16, 24, 32, 40]
    for block, (_, _, _, e, k), c_in in zip(blocks_of(model), stages, in_channels):
        assert block.conv_dw.kernel_size == (k, k)
        assert block.conv_pw.out_channels == make_divisible(c_in * e)


def test_residual_exactly_where_stride_one_and_same_channels():
    # A stride-1 stage that widens (no skip on its first block) as well as the usual cases.
    stages = [(2, 16, 2, 4, 3), (2, 24, 2, 4, 3), (2, 32, 1, 4, 3), (1, 40, 2, 4, 3), (2, 48, 1, 4, 3)]
    model = EfficientNext(ModelParams(stages=stages, **{k: v for k, v in SMALL.items() if k != "stages"}),
                          num_classes=5).eval()
    expected_skips = [False, True, False, True, False, True, False, False, True]
    blocks = blocks_of(model)
    assert len(blocks) == len(expected_skips)
    for block, skip in zip(blocks, expected_skips):
        # Silence the branch: the block then returns its input exactly if it has a residual, else zeros.
        nn.init.zeros_(block.bn3.weight)
        nn.init.zeros_(block.bn3.bias)
        x = torch.randn(2, block.conv_pw.in_channels, 8, 8)
        with torch.no_grad():
            out = block(x)
        if skip:
            assert torch.equal(out, x)
        else:
            assert torch.count_nonzero(out) == 0
        rule = block.conv_dw.stride == (1, 1) and block.conv_pw.in_channels == block.conv_pwl.out_channels
        assert block.has_skip is skip is rule


@pytest.mark.parametrize("drop_max", [0.1376, 0.3])
def test_drop_connect_schedule(drop_max):
    model = EfficientNext(ModelParams(**SMALL, drop_connect=drop_max), num_classes=5)
    blocks = blocks_of(model)
    count = len(blocks)
    rates = [block.drop_path.drop_prob if isinstance(block.drop_path, DropPath) else 0.0 for block in blocks]
    assert rates == [drop_max * (index / (count - 1)) for index in range(count)]
    assert isinstance(blocks[0].drop_path, nn.Identity)
    assert rates[-1] == drop_max


def test_drop_connect_is_per_sample_in_training_and_identity_at_eval():
    torch.manual_seed(0)
    model = EfficientNext(ModelParams(**SMALL, drop_connect=0.5, zero_init_last=False), num_classes=5).eval()
    block = blocks_of(model)[-1]
    assert block.has_skip and block.drop_path.drop_prob == 0.5
    x = torch.randn(1, block.conv_pw.in_channels, 4, 4).expand(64, -1, -1, -1)
    with torch.no_grad():
        branch = block(x[:1]) - x[:1]  # eval: the full branch, never dropped
        block.drop_path.train()
        out = block(x)
    kept = torch.isclose(out, x + branch / 0.5, atol=1e-5).flatten(1).all(1)
    dropped = (out == x).flatten(1).all(1)
    assert torch.all(kept ^ dropped)  # each sample: its whole branch kept (rescaled) or dropped
    assert 10 < int(dropped.sum()) < 54


@pytest.mark.parametrize("norm", field_choices(ModelParams, "norm"))
def test_zero_init_last_starts_every_residual_block_as_the_identity(norm):
    options = dict(SMALL, norm=norm, gn_groups=8, activation="silu")
    torch.manual_seed(0)
    zeroed = blocks_of(EfficientNext(ModelParams(**options), num_classes=5).eval())
    timm_init = blocks_of(EfficientNext(ModelParams(**options, zero_init_last=False), num_classes=5).eval())
    assert sum(block.has_skip for block in zeroed) == 4
    with torch.no_grad():
        for block, reference in zip(zeroed, timm_init):
            x = torch.randn(2, block.conv_pw.in_channels, 8, 8)
            if block.has_skip:
                assert torch.equal(block(x), x)
                assert not torch.allclose(reference(x), x, atol=1e-3)
            else:  # a block without a shortcut keeps its initialised output norm
                assert torch.equal(block.bn3.weight, reference.bn3.weight)


def test_eval_is_deterministic_and_ignores_dropout():
    torch.manual_seed(0)
    noisy = EfficientNext(ModelParams(**SMALL, drop_connect=0.5, dropout_features=0.5, dropout_head1=0.5,
                                      dropout_head2=0.5), num_classes=5).eval()
    quiet = EfficientNext(ModelParams(**SMALL, drop_connect=0.0, dropout_features=0.0, dropout_head1=0.0,
                                      dropout_head2=0.0), num_classes=5).eval()
    quiet.load_state_dict(noisy.state_dict())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        first, second, reference = noisy(x), noisy(x), quiet(x)
    assert torch.equal(first, second)
    assert torch.equal(first, reference)


def test_grouped_norms_round_stage_channels_to_their_group_count():
    stages = [(1, 16, 2, 4, 3), (1, 24, 2, 4, 3), (1, 32, 2, 4, 3), (1, 48, 2, 4, 3), (1, 64, 1, 4, 3)]
    grouped = EfficientNext(ModelParams(stages=stages, norm="groupnorm", gn_groups=16), num_classes=5)
    assert [stage[-1].conv_pwl.out_channels for stage in grouped.blocks] == [16, 32, 32, 48, 64]  # 24 -> 32
    plain = EfficientNext(ModelParams(stages=stages, norm="batchnorm"), num_classes=5)
    assert [stage[-1].conv_pwl.out_channels for stage in plain.blocks] == [16, 24, 32, 48, 64]


def test_a_final_width_the_groups_do_not_divide_is_one_clear_error():
    with pytest.raises(ValueError, match=r"^model.gn_groups = 16 does not divide the 1000 channels of a evonorms0"):
        EfficientNext(ModelParams(**{**SMALL, "final_channels": 1000}, norm="evonorms0", gn_groups=16), num_classes=5)


def test_paper_model_matches_table_8_4():
    model = timm.create_model("efficientnext_paper", num_classes=5)
    blocks = blocks_of(model)
    # Stage table (B2-derived), width 1.0: depths and channels as listed; expansion 5 everywhere.
    assert [len(stage) for stage in model.blocks] == [n for n, _, _, _, _ in B2_DERIVED_STAGES]
    assert [stage[-1].conv_pwl.out_channels for stage in model.blocks] == [c for _, c, _, _, _ in B2_DERIVED_STAGES]
    assert [stage[0].conv_dw.stride[0] for stage in model.blocks] == [s for _, _, s, _, _ in B2_DERIVED_STAGES]
    assert model.conv_stem.out_channels == 32
    assert all(b.conv_pw.out_channels == make_divisible(b.conv_pw.in_channels * 5) for b in blocks)
    # Kernel 7: stem and every depthwise conv.
    assert model.conv_stem.kernel_size == (7, 7) and model.conv_stem.stride == (2, 2)
    assert all(b.conv_dw.kernel_size == (7, 7) for b in blocks)
    # ECA in every block.
    assert all(isinstance(b.se, EcaModule) for b in blocks)
    # BatchNorm everywhere a norm is, GELU everywhere a block/stem/projection activation is.
    norms = [m for m in model.modules() if isinstance(m, (nn.modules.batchnorm._NormBase, nn.GroupNorm))]
    assert norms and all(type(m) is BatchNormAct2d for m in norms)
    assert {type(m.act) for m in norms} == {GELU, nn.Identity}
    assert not any(isinstance(m, (nn.SiLU, nn.ReLU)) for m in model.modules())
    # No conv bias in the stem, blocks or projection.
    assert all(c.bias is None for c in [model.conv_stem, model.conv_head]
               + [conv for b in blocks for conv in (b.conv_pw, b.conv_dw, b.conv_pwl)])
    # Final projection to 1536.
    assert model.conv_head.out_channels == 1536 and model.num_features == 1536
    # Drop-connect 0.1376 at the last block.
    assert blocks[-1].drop_path.drop_prob == 0.1376
    # Head 2 × 512 with dropout 0.1 on features, 0.5 / 0.5 inside.
    head = model.get_classifier()
    linears = [(m.in_features, m.out_features) for m in head if isinstance(m, nn.Linear)]
    assert linears == [(1536, 512), (512, 512), (512, 5)]
    assert [m.p for m in head if isinstance(m, nn.Dropout)] == [0.1, 0.5, 0.5]
    assert [type(m) for m in head] == [nn.Dropout, nn.Linear, nn.GELU, nn.Dropout, nn.Linear, nn.GELU,
                                       nn.Dropout, nn.Linear]


def test_conv_bias_switch_reaches_every_conv():
    model = EfficientNext(ModelParams(**SMALL, conv_bias=True), num_classes=5)
    convs = [model.conv_stem, model.conv_head] + [c for b in blocks_of(model) for c in (b.conv_pw, b.conv_dw,
                                                                                        b.conv_pwl)]
    assert all(c.bias is not None for c in convs)


def test_timm_registry_builds_any_configuration():
    model = timm.create_model("efficientnext", num_classes=3, attention="se", norm="groupnorm1", **SMALL)
    assert isinstance(model, EfficientNext) and model.get_classifier()[-1].out_features == 3
    assert all(type(b.se).__name__ == "SEModule" for b in blocks_of(model))
    with pytest.raises(ValueError, match="attention"):
        timm.create_model("efficientnext", num_classes=5, attention="foo")
    with pytest.raises(ValueError, match="no pretrained weights"):
        timm.create_model("efficientnext_paper", pretrained=True)


def test_create_model_dispatches_efficientnext():
    model = create_model(ModelParams(**SMALL), num_classes=5)
    assert isinstance(model, EfficientNext)


def test_stage_rows_are_validated_in_one_line():
    with pytest.raises(ValueError, match=r"row 1 = \[1, 24, 3, 4, 3\] must be \[n >= 1, C >= 1, s in 1\|2"):
        ModelParams(stages=[(1, 16, 2, 4, 3), (1, 24, 3, 4, 3)])
