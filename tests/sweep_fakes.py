"""A cheap, deterministic stand-in for the training engine, for the sweep's logic tests.

`FakeTrainer` is a spy: every call appends the trained configuration to <root>/calls.jsonl (shared by
worker processes). Its macro-F1 rises with the epoch and with log(train.lr_head) across the paper's
lr_head range [1e-4, 1e-3]; `nan_optimizer` makes the loss of that optimizer "turn NaN". Run as a
script it is one sweep worker on a named study (the kill -9 test).
"""

from __future__ import annotations

import functools
import json
import math
import sys
import time
from pathlib import Path

import yaml

from efficientnext import config
from efficientnext.train.engine import NonFiniteLossError

CALLS = "calls.jsonl"
LR_LOW, LR_HIGH = 1e-4, 1e-3  # §5.4's LR (head) range


def f1_for(lr_head: float, epoch: int, epochs: int) -> float:
    """The fake's validation macro-F1 after `epoch` of `epochs`: 0.2 up to 0.8 at the top of the lr range."""
    skill = math.log10(lr_head / LR_LOW) / math.log10(LR_HIGH / LR_LOW)  # 0..1 across the lr_head range
    return 0.2 + 0.6 * skill * epoch / epochs


class FakeTrainer:
    def __init__(self, root: Path, seconds_per_epoch: float = 0.0, nan_optimizer: str | None = None) -> None:
        self.root = Path(root)
        self.seconds_per_epoch = seconds_per_epoch
        self.nan_optimizer = nan_optimizer

    def __call__(self, params: config.Params, epochs: int, epoch_callback) -> dict[str, float]:
        with open(self.root / CALLS, "a") as log:
            log.write(json.dumps({"model": params.model.model_dump(mode="json"),
                                  "train": params.train.model_dump(mode="json"), "epochs": epochs,
                                  "from_sweep": sorted(params.from_sweep)}) + "\n")
        if params.train.optimizer == self.nan_optimizer:
            raise NonFiniteLossError("training loss is nan at epoch 1, step 3")
        best = {}
        for epoch in range(1, epochs + 1):
            time.sleep(self.seconds_per_epoch)
            f1 = f1_for(params.train.lr_head, epoch, epochs)
            best = {"macro_f1": f1, "accuracy": f1 + 0.1, "roc_auc_ovr": 0.5 + f1 / 2, "loss": 1.0 - f1}
            epoch_callback(epoch, best)
        return best


def calls(root: Path) -> list[dict]:
    path = Path(root) / CALLS
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def trained_value(call: dict, key: str):
    """The value of dotted `key` ('model.norm') one recorded call trained with."""
    group, leaf = key.split(".")
    return call[group][leaf]


def fake_factory(seconds_per_epoch: float = 0.0, nan_optimizer: str | None = None):
    """A picklable TrainerFactory (spawned workers rebuild it)."""
    return functools.partial(FakeTrainer, seconds_per_epoch=seconds_per_epoch, nan_optimizer=nan_optimizer)


if __name__ == "__main__":  # python sweep_fakes.py ROOT PARAMS_YAML SECONDS_PER_EPOCH STUDY_NAME
    from efficientnext.sweep import sweep as sweep_stage

    root, params_file, seconds, name = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    params = config.validate(yaml.safe_load(params_file.read_text()))
    sweep_stage.work(params, root, FakeTrainer(root, seconds), name)
