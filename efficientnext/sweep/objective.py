"""One trial: sample the space, refuse infeasible configurations untrained, train, report per epoch.

The objective is the validation macro-F1 of the best epoch on the subset's val part; every validation
metric fit returns for that epoch (accuracy, ROC-AUC OvR when the engine reports it, ...) becomes a
trial user attribute. An infeasible trial is PRUNED untrained with user attribute `rejected` (the
constraint's reason; it does not count toward sweep.n_trials); a trial the pruner stops is PRUNED with
`prune_reason`; a trial whose loss turns NaN (or that runs out of GPU memory) is FAILED with `fail_reason`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import optuna
import torch

from efficientnext import config, paper
from efficientnext.data.datasets import PreparedImages, read_rows
from efficientnext.data.transforms import build_transforms, training_transform
from efficientnext.models import with_input_normalisation
from efficientnext.paths import PREPARED, SUBSET_CSV
from efficientnext import search_space
from efficientnext.sweep import constraints, storage
from efficientnext.sweep.records import (FAIL_REASON_ATTR, OBJECTIVE, PINNED_ATTR, PRUNE_REASON_ATTR,
                                         REJECTED_ATTR, WORKER_ATTR)
from efficientnext.train.engine import NonFiniteLossError, fit
from efficientnext.train.hooks import CallbackHook


# Errors that fail one trial and let the sweep go on: a diverged loss, a configuration too big for the GPU.
TRIAL_FAILURES = (NonFiniteLossError, torch.OutOfMemoryError)

EpochCallback = Callable[[int, dict[str, float]], None]


class Trainer(Protocol):
    def __call__(self, params: config.Params, epochs: int, epoch_callback: EpochCallback) -> dict[str, float]:
        """Train with `params` for `epochs`; return the best epoch's validation metrics."""


class SubsetTrainer:
    """The real engine on the balanced subset: trains on part == train, validates on part == val."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.rows = read_rows(root / SUBSET_CSV)

    def __call__(self, params: config.Params, epochs: int, epoch_callback: EpochCallback) -> dict[str, float]:
        params = with_input_normalisation(params)
        classes = params.data.classes
        size = params.train.image_size
        train_set, val_set = (
            PreparedImages(self.root / PREPARED, self.rows[self.rows["part"] == part].reset_index(drop=True),
                           classes, transform)
            for part, transform in (("train", training_transform(params.augment, size)),
                                    ("val", build_transforms(params.augment, size, train=False))))
        return fit(params, train_set, val_set, classes, epochs=epochs,
                   hooks=[CallbackHook(epoch_callback)]).best_metrics


class Objective:
    def __init__(self, params: config.Params, trainer: Trainer) -> None:
        self.params = params
        self.trainer = trainer

    def __call__(self, trial: optuna.Trial) -> float:
        trial.set_user_attr(WORKER_ATTR, storage.worker_id())
        sweep = self.params.sweep
        overrides = search_space.suggest(trial, sweep.space, sweep.fixed)
        trial.set_user_attr(PINNED_ATTR, search_space.pinned(sweep.space, sweep.fixed))
        record = search_space.full_record(overrides, paper.selected_configuration())
        reason = constraints.violation(record)
        if reason is not None:
            trial.set_user_attr(REJECTED_ATTR, reason)
            raise optuna.TrialPruned(reason)
        trial_params = config.with_overrides(self.params, {**record, "train.precision": sweep.precision},
                                             source=f"trial {trial.number}")
        try:
            best = self.trainer(trial_params, sweep.epochs, self._epoch_callback(trial))
        except TRIAL_FAILURES as exc:
            trial.set_user_attr(FAIL_REASON_ATTR, str(exc))
            raise
        for metric, value in best.items():  # macro_f1, accuracy, roc_auc_ovr, ... of the best epoch
            trial.set_user_attr(metric, value)
        return best[OBJECTIVE]

    def _epoch_callback(self, trial: optuna.Trial) -> EpochCallback:
        def report(epoch: int, val_metrics: dict[str, float]) -> None:
            trial.report(val_metrics[OBJECTIVE], epoch)
            if trial.should_prune():
                reason = f"{self.params.sweep.pruner} pruner after epoch {epoch}: {OBJECTIVE} {val_metrics[OBJECTIVE]:.4f}"
                trial.set_user_attr(PRUNE_REASON_ATTR, reason)
                raise optuna.TrialPruned(reason)

        return report
