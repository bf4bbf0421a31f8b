"""`efficientnext export`: the ONNX graph matches torch for every attention and normalisation option, runs in
onnxruntime alone with a dynamic batch and carries its model card; a wrong graph fails the parity check."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
import torch

from conftest import tiny_classifier
from efficientnext.config import ModelParams, field_choices
from efficientnext.export import PARITY_TOLERANCE, export_onnx, parity
from efficientnext.model_card import ModelCard

# Every attention and every norm at least once, in five exports instead of twenty.
PAIRS = [("se", "batchnorm"), ("eca", "groupnorm1"), ("cbam", "groupnorm"), ("none", "evonorms0"), ("se", "rmsnorm2d")]


def card_of(params) -> ModelCard:
    return ModelCard(classes=list(params.data.classes), image_size=params.train.image_size,
                     short_side=params.prepare.short_side, mean=list(params.augment.mean),
                     std=list(params.augment.std), unsafe_classes=list(params.evaluate.unsafe_classes), threshold=0.42)


def test_the_pairs_cover_every_option():
    assert {a for a, _ in PAIRS} == set(field_choices(ModelParams, "attention"))
    assert {n for _, n in PAIRS} == set(field_choices(ModelParams, "norm"))


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> tuple[torch.nn.Module, ModelCard, Path]:
    """A tiny model exported once: the model, its card and the file."""
    model, params = tiny_classifier(*PAIRS[0])
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    export_onnx(model, path, params.train.image_size, card_of(params).metadata())
    return model, card_of(params), path


@pytest.mark.parametrize(("attention", "norm"), PAIRS)
def test_onnx_matches_torch(tmp_path: Path, attention: str, norm: str):
    model, params = tiny_classifier(attention, norm)
    path = tmp_path / "model.onnx"
    export_onnx(model, path, params.train.image_size, card_of(params).metadata())
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]  # one file: no external-data sidecar
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    # efficientnext/onnx_graph.py's rewrites were applied (evonorms0 keeps an Expand of its own)
    assert attention != "eca" or "Expand" not in ops
    assert attention == "none" or "GlobalAveragePool" in ops  # the attention's spatial mean
    size = params.train.image_size
    for batch in (1, 5):  # traced at 2: the batch axis is dynamic
        checked = parity(model, path, torch.rand(batch, 3, size, size) * 4 - 2)
        assert checked.ok and checked.images == batch and checked.max_abs_diff <= PARITY_TOLERANCE


def test_a_graph_that_is_not_the_model_fails_parity(exported):
    _, card, path = exported
    other, _ = tiny_classifier(*PAIRS[0], seed=1)
    checked = parity(other, path, torch.rand(8, 3, card.image_size, card.image_size) * 4 - 2)
    assert not checked.ok and checked.max_abs_diff > PARITY_TOLERANCE


ORT_ONLY = """
import json, sys
import numpy as np
import onnxruntime as ort
session = ort.InferenceSession(sys.argv[1], providers=["CPUExecutionProvider"])
meta = {k: json.loads(v) for k, v in session.get_modelmeta().custom_metadata_map.items()}
size = meta["efficientnext.image_size"]
(probs,) = session.run(None, {session.get_inputs()[0].name: np.zeros((3, 3, size, size), np.float32)})
print(json.dumps({"meta": meta, "shape": list(probs.shape), "sums": probs.sum(1).tolist(),
                  "inputs": [i.name for i in session.get_inputs()], "outputs": [o.name for o in session.get_outputs()],
                  "loaded": sorted({m.split(".")[0] for m in sys.modules} & {"torch", "efficientnext", "PIL"})}))
"""


def test_the_exported_model_runs_in_onnxruntime_alone_and_reports_its_metadata(exported, tmp_path: Path):
    _, card, path = exported
    out = subprocess.run([sys.executable, "-c", ORT_ONLY, str(path)], cwd=tmp_path, capture_output=True, text=True,
                         check=True).stdout
    report = json.loads(out)
    assert report["loaded"] == []
    assert report["inputs"] == ["image"] and report["outputs"] == ["probabilities"]
    assert report["shape"] == [3, len(card.classes)] and report["sums"] == pytest.approx([1.0] * 3, abs=1e-6)
    meta = report["meta"]
    assert meta["efficientnext.classes"] == ["drawings", "hentai", "neutral", "porn", "sexy"]
    assert (meta["efficientnext.image_size"], meta["efficientnext.short_side"]) == (32, 40)
    assert meta["efficientnext.mean"] == [0.485, 0.456, 0.406] and meta["efficientnext.std"] == [0.229, 0.224, 0.225]
    assert meta["efficientnext.unsafe_classes"] == ["porn", "hentai", "sexy"]
    assert meta["efficientnext.threshold"] == 0.42
    recipe = meta["efficientnext.preprocessing"]
    assert recipe.startswith("decode to RGB") and "short side to 40" in recipe and "short side to 32" in recipe
    assert ModelCard.from_metadata({k: json.dumps(v) for k, v in meta.items()}, "model.onnx") == card

