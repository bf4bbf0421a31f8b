"""An exported classifier (models/model.onnx) in onnxruntime: probabilities for a batch, and its model card.

Torch-free: with this module `predict --backend onnx` needs only onnxruntime, Pillow and numpy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from efficientnext.config import UserError
from efficientnext.model_card import ModelCard

INPUT, OUTPUT = "image", "probabilities"  # the exported graph's input and output names
CUDA, CPU = "CUDAExecutionProvider", "CPUExecutionProvider"


def session_options(threads: int | None) -> ort.SessionOptions:
    """Full graph optimisation; `threads` intra-op threads (None: onnxruntime's default, one per core)."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


def inference_session(path: str | Path, device: str = "auto", threads: int | None = None) -> ort.InferenceSession:
    """An onnxruntime session on CUDA (auto: when this onnxruntime has it) or CPU."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found: run `efficientnext export` first")
    available = ort.get_available_providers()
    if device == "cuda" and CUDA not in available:
        raise UserError(f"--device cuda but this onnxruntime has no {CUDA} (available: {', '.join(available)})")
    providers = [CUDA, CPU] if device != "cpu" and CUDA in available else [CPU]
    return ort.InferenceSession(str(path), session_options(threads), providers=providers)


def probabilities(session: ort.InferenceSession, batch: np.ndarray) -> np.ndarray:
    return session.run([OUTPUT], {INPUT: np.ascontiguousarray(batch, dtype=np.float32)})[0]


class OnnxClassifier:
    """`classifier(batch)`: float32 NCHW inputs -> float32 class probabilities, with the file's model card."""

    def __init__(self, path: str | Path, device: str = "auto", threads: int | None = None) -> None:
        self.session = inference_session(path, device, threads)
        self.card = ModelCard.from_metadata(self.session.get_modelmeta().custom_metadata_map, str(path))
        self.device = "cuda" if self.session.get_providers()[0] == CUDA else "cpu"

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return probabilities(self.session, batch)
