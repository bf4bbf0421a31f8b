"""Checkpoints that `torch.load(weights_only=True)` can read, written atomically.

A checkpoint holds only tensors and plain containers of primitives. Its two shapes are typed here, so the
writer (the engine's `CheckpointHook`) and the readers (resume, `evaluate.load_model`) share one layout:

* `ModelRecord` (best.pt): the model's state_dict, the model and train configuration (params dumps), class
  names, image size, normalisation, the epoch and its validation metrics: what evaluation and inference need.
* `ResumeState` (last.pt): a `ModelRecord` plus the optimizer/schedule/scaler states, every rank's RNG
  states (as tensors/lists), the progress so far and the best epoch's `ModelRecord` (a resumed run
  rewrites best.pt from it: DVC deletes non-persistent outputs before re-running a stage).

`efficientnext.artifacts.atomic_path` makes a half-written file impossible to pick up: the temp file is renamed
over the old checkpoint only after torch.save and fsync completed.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from efficientnext.artifacts import atomic_path
from efficientnext.config import Params

LAST, BEST = "last.pt", "best.pt"
FORMAT = 1


class FormatError(ValueError):
    """The file is not a checkpoint of this FORMAT."""


def save(path: str | Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=map_location, weights_only=True)


def _check_format(payload: dict[str, Any]) -> None:
    if payload.get("format") != FORMAT:
        raise FormatError(f"checkpoint format {payload.get('format')!r}, expected {FORMAT}")


@dataclass(frozen=True)
class ModelRecord:
    """A trained model and what evaluation and inference need to use it (the whole of best.pt)."""

    state_dict: dict[str, torch.Tensor]
    model_config: dict[str, Any]  # ModelParams dump
    train_config: dict[str, Any]  # TrainParams dump
    classes: list[str]
    image_size: int
    mean: tuple[float, ...]  # the input normalisation
    std: tuple[float, ...]
    epoch: int
    metrics: dict[str, float]  # that epoch's validation metrics

    @classmethod
    def capture(cls, model: nn.Module, params: Params, classes: list[str], epoch: int,
                metrics: dict[str, float]) -> ModelRecord:
        """The model as it is now (weights copied: training goes on)."""
        return cls(state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
                   model_config=params.model.model_dump(mode="json"), train_config=params.train.model_dump(mode="json"),
                   classes=list(classes), image_size=params.train.image_size,
                   mean=tuple(params.augment.mean), std=tuple(params.augment.std), epoch=epoch, metrics=dict(metrics))

    def to_dict(self) -> dict[str, Any]:
        return {"format": FORMAT, "state_dict": self.state_dict, "model_config": self.model_config,
                "train_config": self.train_config, "classes": list(self.classes), "image_size": self.image_size,
                "normalisation": {"mean": list(self.mean), "std": list(self.std)},
                "epoch": self.epoch, "metrics": self.metrics}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> ModelRecord:
        _check_format(payload)
        return cls(state_dict=payload["state_dict"], model_config=payload["model_config"],
                   train_config=payload["train_config"], classes=list(payload["classes"]),
                   image_size=payload["image_size"], mean=tuple(payload["normalisation"]["mean"]),
                   std=tuple(payload["normalisation"]["std"]), epoch=payload["epoch"], metrics=payload["metrics"])


def load_record(path: str | Path, map_location: str | torch.device = "cpu") -> ModelRecord:
    """The ModelRecord of best.pt (or of last.pt: its latest epoch)."""
    return ModelRecord.from_dict(load(path, map_location))


@dataclass(frozen=True)
class ResumeState:
    """last.pt: the latest epoch's model and everything needed to continue after it."""

    model: ModelRecord
    best: ModelRecord
    signature: str  # `signature` of what must match to resume
    phase: str  # the training phase of that epoch
    optimizer: dict[str, Any]
    schedule: dict[str, Any]
    scaler: dict[str, Any]
    rng: list[dict[str, Any]]  # `rng_state` of every rank, in rank order
    progress: dict[str, Any]  # the engine's EpochState, as a dict

    def to_dict(self) -> dict[str, Any]:
        return {**self.model.to_dict(), "signature": self.signature, "phase": self.phase,
                "optimizer": self.optimizer, "schedule": self.schedule, "scaler": self.scaler,
                "rng": self.rng, "progress": self.progress, "best": self.best.to_dict()}

    @classmethod
    def from_dict(cls, payload: dict[str, Any]) -> ResumeState:
        return cls(model=ModelRecord.from_dict(payload), best=ModelRecord.from_dict(payload["best"]),
                   signature=payload["signature"], phase=payload["phase"], optimizer=payload["optimizer"],
                   schedule=payload["schedule"], scaler=payload["scaler"], rng=payload["rng"],
                   progress=payload["progress"])


def resumable(path: Path, signature: str, total_epochs: int, announce: bool) -> ResumeState | None:
    """last.pt at `path` when this run can continue it, else None; with `announce`, prints which and why."""
    if not path.is_file():
        return None
    try:
        state = ResumeState.from_dict(load(path))
    except FormatError:
        state = None
    reason = None
    if state is None or state.signature != signature:
        reason = "its configuration or data differ from this run's"
    elif state.model.epoch >= total_epochs:
        reason = "it is a finished run"
    if announce:
        outcome = f"not resuming, {reason}; starting fresh" if reason else f"resuming after epoch {state.model.epoch}"
        print(f"{path}: {outcome}", flush=True)
    return None if reason else state


def signature(config: dict[str, Any]) -> str:
    """A stable hash of everything that must match for a checkpoint to be resumed."""
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


def rng_state(loader_generator: torch.Generator) -> dict[str, Any]:
    """torch (CPU and CUDA), numpy, python and DataLoader-generator states as tensors and lists."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss_next": gauss_next},
        "loader": loader_generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any], loader_generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    numpy = state["numpy"]
    np.random.set_state((numpy["kind"], numpy["keys"].numpy().astype(np.uint32), numpy["pos"],
                         numpy["has_gauss"], numpy["cached_gaussian"]))
    python = state["python"]
    random.setstate((python["version"], tuple(python["state"].tolist()), python["gauss_next"]))
    loader_generator.set_state(state["loader"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
