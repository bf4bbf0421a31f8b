"""Checkpoints that `torch.load(weights_only=True)` can read, written atomically.

A checkpoint holds only tensors and plain containers of primitives: the model's state_dict, the model
configuration (ModelParams dump), class names, normalisation, image size, the epoch, and for resuming
the optimizer/scheduler/scaler states, every RNG state (as tensors/lists) and the history so far.
`efficientnext.artifacts.atomic_path` makes a half-written file impossible to pick up: the temp file is renamed
over the old checkpoint only after torch.save and fsync completed.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from efficientnext.artifacts import atomic_path


def save(path: str | Path, payload: dict[str, Any]) -> None:
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    return torch.load(path, map_location=map_location, weights_only=True)


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
