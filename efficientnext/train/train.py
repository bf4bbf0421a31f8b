"""The train stage: the chosen configuration on the train split, validated on val each epoch.

Writes, under a run directory (`RunPaths`; the repository root for DVC, `--out results/x` elsewhere),
models/best.pt (best validation macro-F1), models/last.pt (resumable, every epoch), the DVCLive curves
and trained configuration under dvclive/, and metrics/train.json. Runs unchanged under
`torchrun --nproc_per_node N`; only rank 0 writes. Re-running after an interruption resumes from
models/last.pt when the configuration and data are unchanged.

The configuration is `efficientnext.choices.chosen_params`: params.yaml's values, with every key it leaves
to the sweep filled from sweep/best.yaml (or table 8.4); a value params.yaml (or -S) sets always wins.
"""

from __future__ import annotations

import os
from typing import Any

from dvclive import Live

from efficientnext import artifacts
from efficientnext.choices import chosen_params
from efficientnext.config import Params
from efficientnext.data.datasets import PreparedImages, read_rows
from efficientnext.data.transforms import build_transforms, training_transform
from efficientnext.models import with_input_normalisation
from efficientnext.paths import PREPARED, PREPARED_INDEX, RunPaths, split_csv
from efficientnext import search_space
from efficientnext.sweep.identity import file_digest
from efficientnext.train import distributed
from efficientnext.train.engine import FitResult, fit
from efficientnext.train.hooks import LiveHook
from efficientnext.train.phases import plan_phases


def trained_configuration(params: Params, sources: dict[str, str]) -> dict[str, Any]:
    """What DVCLive logs as params (and `dvc exp show` lists): each searched key's trained value and source."""
    return {"arch": params.model.arch,
            **{key: params.value(key) for key in search_space.SEARCHED_KEYS},
            "source": {key: sources[key] for key in search_space.SEARCHED_KEYS}}


def train_metrics(result: FitResult, params: Params) -> dict:
    """metrics/train.json: the best epoch's validation metrics, training time and throughput."""
    metrics = {"best_epoch": result.best_epoch, "epochs": len(result.history),
               "val": result.best_metrics, "train_seconds": round(result.seconds, 2),
               "img_per_s": round(result.img_per_s, 1)}
    phases = plan_phases(params.model, params.train)
    if len(phases) > 1:
        metrics["phase_starts"] = {phase.name: phase.start + 1 for phase in phases}
    return metrics


def run(params: Params, out: RunPaths = RunPaths()) -> None:
    chosen, sources = chosen_params(params)
    params = with_input_normalisation(chosen)
    classes = list(params.data.classes)
    size = params.train.image_size
    train_rows, val_rows = read_rows(split_csv("train")), read_rows(split_csv("val"))
    train_set = PreparedImages(PREPARED, train_rows, classes, training_transform(params.augment, size))
    val_set = PreparedImages(PREPARED, val_rows, classes, build_transforms(params.augment, size, train=False))
    # A different split or cache must never resume an old run's checkpoint.
    resume_key = {str(path): file_digest(path) for path in (split_csv("train"), split_csv("val"), PREPARED_INDEX)}
    is_main = int(os.environ.get("RANK", "0")) == 0
    live = Live(dir=str(out.live), save_dvc_exp=False, dvcyaml=False) if is_main else None
    if live is not None:
        live.log_params(trained_configuration(params, sources))
    try:
        result = fit(params, train_set, val_set, classes, out_dir=out.checkpoints,
                     hooks=[LiveHook(live)] if live is not None else [], resume_key=resume_key)
    finally:
        if live is not None:
            live.end()
        distributed.teardown()
    if is_main:
        artifacts.write_json(out.train_metrics, train_metrics(result, params))
        print(f"train: best epoch {result.best_epoch}, validation macro-F1 {result.best_metrics['macro_f1']:.3f}, "
              f"{result.seconds:.0f} s, {result.img_per_s:.0f} img/s -> {out.best}", flush=True)
