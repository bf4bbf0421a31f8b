"""`efficientnext export`: the best checkpoint as models/model.onnx, checked against torch before it is kept.

The graph maps a float32 batch `image` (N×3×S×S, N dynamic) to `probabilities` (N×classes, softmax inside).
Its metadata is the model card (efficientnext/model_card.py): classes, input size, the two resizes, mean and
std, unsafe classes and the default threshold from metrics/test.json, so onnxruntime alone can use it.

Exporter choices at torch 2.14 (README, "Export (ONNX)"): the dynamo exporter (torch's default; the TorchScript one
is deprecated), opset 20 pinned rather than left to the exporter's default (GroupNorm becomes
InstanceNormalization + affine there; GroupNormalization-18 was wrong and only opset 21 fixed it), weights
inside the one .onnx file (external data off: the model is far below protobuf's 2 GB limit, and one file is
what a user copies), traced at batch 2 so the batch axis is not specialised to 1, then the exact graph
clean-ups of efficientnext/onnx_graph.py.

Parity: the command runs the written file in onnxruntime and the checkpoint in torch on real test images
(the prepared cache, through evaluate's transform) and refuses to keep it unless every probability agrees
within PARITY_TOLERANCE and every top class is the same.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import helper
from torch import nn

from efficientnext import artifacts
from efficientnext.config import Params, UserError
from efficientnext.data.datasets import read_rows
from efficientnext.evaluate import eval_images, load_model
from efficientnext.onnx_graph import simplify
from efficientnext.onnx_model import INPUT, OUTPUT, inference_session, probabilities
from efficientnext.paths import PREPARED_INDEX, RunPaths, split_csv
from efficientnext.stage import add_params_arguments, load_params
from efficientnext.torch_classifier import checkpoint_card, run_threshold
from efficientnext.train.checkpoint import ModelRecord
from efficientnext.train.metrics import softmax

OPSET = 20
PARITY_TOLERANCE = 1e-4  # max |p_onnx - p_torch| over every image and class
TRACE_BATCH = 2


class WithSoftmax(nn.Module):
    """The classifier with its probabilities as the graph's output."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(image), dim=1)


def export_onnx(model: nn.Module, path: Path, image_size: int, metadata: dict[str, str]) -> None:
    """Write `model` (eval mode, CPU) with `metadata` (the model card's, for the pipeline's model) to `path`
    atomically, as one file."""
    example = torch.zeros(TRACE_BATCH, 3, image_size, image_size)
    program = torch.onnx.export(WithSoftmax(model).eval(), (example,), input_names=[INPUT], output_names=[OUTPUT],
                                dynamic_shapes={"image": {0: torch.export.Dim("batch", min=1)}}, opset_version=OPSET,
                                dynamo=True, verbose=False)
    proto = program.model_proto
    simplify(proto)
    helper.set_model_props(proto, metadata)
    with artifacts.atomic_path(path) as tmp:
        onnx.save(proto, tmp)  # one file: the weights inside (far below protobuf's 2 GB)


@dataclass(frozen=True)
class Parity:
    images: int
    max_abs_diff: float  # of probabilities
    top_class_mismatches: int

    @property
    def ok(self) -> bool:
        return self.max_abs_diff <= PARITY_TOLERANCE and self.top_class_mismatches == 0

    def describe(self) -> str:
        return (f"{self.images} images: max |p_onnx - p_torch| = {self.max_abs_diff:.2e} (tolerance "
                f"{PARITY_TOLERANCE:.0e}), {self.top_class_mismatches} top-class mismatches")


def parity(model: nn.Module, onnx_path: Path, inputs: torch.Tensor) -> Parity:
    """The ONNX file in onnxruntime against `model` in torch (fp32, CPU) on `inputs`."""
    with torch.inference_mode():
        expected = softmax(model(inputs).float().numpy())
    got = probabilities(inference_session(onnx_path, device="cpu"), inputs.numpy())
    return Parity(len(inputs), float(np.abs(got - expected).max()),
                  int((got.argmax(1) != expected.argmax(1)).sum()))


def parity_inputs(params: Params, record: ModelRecord, count: int) -> torch.Tensor:
    """The first `count` test-split images as evaluate feeds them to the model."""
    images = eval_images(params, record, read_rows(split_csv("test")).head(count))
    size = record.image_size
    return torch.stack([images[i][0] for i in range(len(images))]) if len(images) else torch.zeros(0, 3, size, size)


def run(args: argparse.Namespace) -> None:
    params = load_params(args)
    model, record = load_model(args.checkpoint, torch.device("cpu"))
    threshold = run_threshold(args.checkpoint, params)
    card = checkpoint_card(record, params, threshold)
    if not split_csv("test").is_file() or not PREPARED_INDEX.is_file():
        raise UserError(f"the parity check needs the test split and the prepared cache ({split_csv('test')}, "
                        f"{PREPARED_INDEX}): run `dvc repro prepare`")
    inputs = parity_inputs(params, record, args.parity_images)
    if not len(inputs):
        raise UserError(f"{split_csv('test')} is empty: the parity check needs test images (split.test > 0)")
    candidate = args.out.with_name(f".{args.out.name}.candidate")
    try:
        export_onnx(model, candidate, card.image_size, card.metadata())
        checked = parity(model, candidate, inputs)
        if not checked.ok:
            raise UserError(f"ONNX parity failed on {checked.describe()}; {args.out} not written")
        candidate.replace(args.out)
    finally:
        candidate.unlink(missing_ok=True)
    size_mb = args.out.stat().st_size / 2**20
    threshold_text = "none (pass --threshold to predict)" if threshold is None else f"{threshold:.4f}"
    print(f"export: {args.out} ({size_mb:.1f} MiB, opset {OPSET}); parity on {checked.describe()}; "
          f"default threshold {threshold_text}")


def add_command(sub: argparse._SubParsersAction) -> None:
    run_paths = RunPaths()
    parser = sub.add_parser("export", help=f"the checkpoint as {run_paths.onnx}, parity-checked against torch")
    parser.add_argument("--checkpoint", type=Path, default=run_paths.best, help=f"default {run_paths.best}")
    parser.add_argument("--out", type=Path, default=run_paths.onnx, help=f"default {run_paths.onnx}")
    parser.add_argument("--parity-images", type=int, default=64, help="test images the parity check runs (default 64)")
    add_params_arguments(parser)
    parser.set_defaults(func=run)
