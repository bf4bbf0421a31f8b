"""Exact rewrites of an exported graph for onnxruntime's CPU kernels, which it does not do itself
(about 5 % of EfficientNext's batch-1 CPU time on one thread: 27.0 against 28.5 ms). Each computes the
same function; only the operators differ.

* An `Expand` that only feeds `Mul`s whose other operand already has the expanded shape is dropped: `Mul`
  broadcasts, so the full-size copy is wasted work (timm's ECA multiplies by `y.expand_as(x)`).
* `ReduceMean` over the spatial axes (2, 3) of a 4-d tensor becomes `GlobalAveragePool`, which onnxruntime runs
  in its blocked NCHWc layout instead of converting the whole feature map back to NCHW (the pooling of SE, ECA
  and CBAM). Without keepdims, only when every consumer is a `Reshape` (the same elements in the same order).
* Node metadata (the exporter's stack traces, with local file paths) is removed.

Shapes come from the exporter's value_info; a rewrite is skipped where they are unknown. `efficientnext
export` checks the result against torch (parity) before keeping it.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import onnx
from onnx import helper, numpy_helper

Shape = tuple[int | str, ...]


def _shapes(graph: onnx.GraphProto) -> dict[str, Shape]:
    values = [*graph.value_info, *graph.input, *graph.output]
    return {v.name: tuple(d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim) for v in values
            if v.type.tensor_type.HasField("shape")}


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    found = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            found[name].append(node)
    return found


def _constant(graph: onnx.GraphProto, name: str) -> np.ndarray | None:
    for tensor in graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    for node in graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t)
    return None


def drop_broadcast_expands(graph: onnx.GraphProto) -> int:
    shapes, consumers = _shapes(graph), _consumers(graph)
    dropped = 0
    for node in list(graph.node):
        if node.op_type != "Expand":
            continue
        expanded, users = node.output[0], consumers[node.output[0]]
        if not users or expanded not in shapes or any(
                user.op_type != "Mul" or shapes.get(next(i for i in user.input if i != expanded)) != shapes[expanded]
                for user in users):
            continue
        for user in users:
            user.input[:] = [node.input[0] if name == expanded else name for name in user.input]
        graph.node.remove(node)
        dropped += 1
    return dropped


def spatial_means_to_pooling(graph: onnx.GraphProto) -> int:
    shapes, consumers = _shapes(graph), _consumers(graph)
    replaced = 0
    for node in graph.node:
        if node.op_type != "ReduceMean" or len(node.input) < 2 or len(shapes.get(node.input[0], ())) != 4:
            continue
        axes = _constant(graph, node.input[1])
        keepdims = next((a.i for a in node.attribute if a.name == "keepdims"), 1)
        if axes is None or sorted(int(a) % 4 for a in np.atleast_1d(axes)) != [2, 3]:
            continue
        if not keepdims and any(user.op_type != "Reshape" for user in consumers[node.output[0]]):
            continue
        node.CopyFrom(helper.make_node("GlobalAveragePool", [node.input[0]], list(node.output), name=node.name))
        stale = [v for v in graph.value_info if v.name == node.output[0]]  # its rank changed without keepdims
        for value in stale:
            graph.value_info.remove(value)
        replaced += 1
    return replaced


def drop_unused_initializers(graph: onnx.GraphProto) -> None:
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    for tensor in [t for t in graph.initializer if t.name not in used]:
        graph.initializer.remove(tensor)


def simplify(model: onnx.ModelProto) -> dict[str, int]:
    """Apply the rewrites of the module docstring in place; how many of each."""
    graph = model.graph
    counts = {"expand": drop_broadcast_expands(graph), "pooling": spatial_means_to_pooling(graph)}
    drop_unused_initializers(graph)
    for node in graph.node:
        del node.metadata_props[:]
    onnx.checker.check_model(model)
    return counts
