"""`efficientnext summary`: counts and the per-stage table."""

from __future__ import annotations

from pathlib import Path

import timm
import torch
from torch.utils.flop_counter import FlopCounterMode

import efficientnext  # noqa: F401  (registers the timm names)
from efficientnext import cli
from efficientnext.models.summary import summarize

PARAMS = str(Path(__file__).resolve().parents[1] / "params.yaml")


def test_summary_of_the_paper_model():
    model = timm.create_model("efficientnext_paper", num_classes=5)
    summary = summarize(model, 64)
    assert model.training  # summarize counts in eval mode and restores the mode it found
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, 64, 64))
    assert summary.macs == counter.get_total_flops() // 2
    assert summary.params == summary.trainable == sum(p.numel() for p in model.parameters())
    rows = [(r.name, r.blocks, r.channels, r.stride, r.kernel, r.resolution) for r in summary.rows]
    assert rows == [("stem", 1, 32, 2, 7, (32, 32)), ("1", 5, 24, 2, 7, (16, 16)), ("2", 3, 48, 2, 7, (8, 8)),
                    ("3", 8, 120, 2, 7, (4, 4)), ("4", 5, 208, 2, 7, (2, 2)), ("5", 2, 352, 1, 7, (2, 2))]
    after_stages = [model.conv_head, model.bn2, model.head]
    assert sum(r.params for r in summary.rows) + sum(p.numel() for m in after_stages for p in m.parameters()) \
        == summary.params


def test_summary_command_presets_and_overrides(capsys):
    assert cli.main(["summary", "--params", PARAMS, "--model", "efficientnet_b2", "--image-size", "64"]) == 0
    assert "params: 7,708,039 total, 7,708,039 trainable" in capsys.readouterr().out
    assert cli.main(["summary", "--params", PARAMS, "--model", "transfer", "--image-size", "64"]) == 0
    assert "params: 3,377,413 total, 6,405 trainable" in capsys.readouterr().out
    assert cli.main(["summary", "--params", PARAMS, "--model", "efficientnext_paper", "--image-size", "64",
                     "model.kernel_size=3", "model.final_channels=1024"]) == 0
    out = capsys.readouterr().out
    assert "efficientnext_paper" in out and "    1      5       24      2      3     16×16" in out


def test_summary_command_reports_a_misfit_in_one_line(capsys):
    code = cli.main(["summary", "--params", PARAMS, "model.norm=groupnorm", "model.gn_groups=16",
                     "model.final_channels=1000"])
    assert code == 2
    assert capsys.readouterr().err == ("error: model.gn_groups = 16 does not divide the 1000 channels of a groupnorm "
                                       "layer; every channel count (stem, stages at this width, their expansion, "
                                       "final_channels) must be a multiple of gn_groups\n")
