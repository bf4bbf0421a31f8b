"""A checkpoint (models/best.pt) as a classifier: float32 NCHW inputs -> class probabilities, on CPU or CUDA,
computed as `evaluate` computes them (fp32 logits, then `train.metrics.softmax`); and its model card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from efficientnext.config import Params, UserError
from efficientnext.evaluate import load_model
from efficientnext.model_card import ModelCard
from efficientnext.operating_points import default_threshold
from efficientnext.paths import RunPaths
from efficientnext.train.checkpoint import ModelRecord
from efficientnext.train.metrics import softmax


def torch_device(device: str) -> torch.device:
    """auto: CUDA when present; cuda: CUDA or a UserError; cpu."""
    cuda = torch.cuda.is_available()
    if device == "cuda" and not cuda:
        raise UserError("--device cuda but no CUDA device is available; use auto or cpu")
    return torch.device("cuda" if device == "cuda" or (device == "auto" and cuda) else "cpu")


class TorchClassifier:
    def __init__(self, checkpoint: Path, device: str = "auto", channels_last: bool = True) -> None:
        self.device = torch_device(device)
        self.model, self.record = load_model(checkpoint, self.device)
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        inputs = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
        if self.device.type == "cuda":
            inputs = inputs.pin_memory()  # page-locked, so the copy below overlaps with the host
        inputs = inputs.to(self.device, non_blocking=True, memory_format=self.memory_format)
        with torch.inference_mode():
            logits = self.model(inputs)
        return softmax(logits.float().cpu().numpy())


def run_threshold(checkpoint: Path, params: Params) -> float | None:
    """The default threshold evaluate chose for the run the checkpoint belongs to (<run>/models/best.pt)."""
    return default_threshold(RunPaths(checkpoint.parent.parent).test_metrics, params.evaluate.unsafe_classes)


def checkpoint_card(record: ModelRecord, params: Params, threshold: float | None) -> ModelCard:
    """The checkpoint's classes, size and normalisation; the cache's resize and the unsafe classes of params."""
    return ModelCard(classes=list(record.classes), image_size=record.image_size, short_side=params.prepare.short_side,
                     mean=list(record.mean), std=list(record.std), unsafe_classes=list(params.evaluate.unsafe_classes),
                     threshold=threshold)
