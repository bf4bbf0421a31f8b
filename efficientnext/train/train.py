"""The train stage: the chosen configuration on the train split, validated on val each epoch.

Writes, under a run directory (`RunPaths`; the repository root for DVC, `--out results/x` elsewhere),
models/best.pt (best validation macro-F1), models/last.pt (resumable, every epoch), the DVCLive curves
and trained configuration under dvclive/, and metrics/train.json. Runs unchanged under
`torchrun --nproc_per_node N`; only rank 0 writes. Re-running after an interruption resumes from
models/last.pt when the configuration and data are unchanged.

The configuration: params.yaml's values, with every key it leaves to the sweep (`sweep`) filled from
sweep/best.yaml, or from table 8.4 with `train.choices_from: paper`. A value params.yaml (or -S) sets
always wins; the keys where it overrides the sweep's choice are named in one line.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from dvclive import Live

from efficientnext import artifacts, config, paper
from efficientnext.config import UserError
from efficientnext.config import Params
from efficientnext.data.datasets import PreparedImages, read_rows
from efficientnext.data.transforms import build_transforms
from efficientnext.models import with_input_normalisation
from efficientnext.paths import BEST_YAML, PREPARED, PREPARED_INDEX, RunPaths, split_csv
from efficientnext import search_space
from efficientnext.sweep.identity import file_digest
from efficientnext.train import distributed
from efficientnext.train.engine import FitResult, fit
from efficientnext.train.hooks import LiveHook
from efficientnext.train.phases import plan_phases


def sweep_choices(params: Params, best_yaml: Path = BEST_YAML) -> tuple[dict[str, Any], str]:
    """The values the keys left to the sweep take, and a phrase naming where they come from."""
    sweep = params.sweep
    if params.train.choices_from == "paper":
        pins = search_space.pinned(sweep.space, sweep.fixed)
        pinned_rows = ", ".join(f"{key}={value}" for key, value in pins.items() if key in params.from_sweep)
        return ({**paper.selected_configuration(), **pins},
                f"table 8.4{f' with {pinned_rows} pinned by sweep.fixed' if pinned_rows else ''}")
    if not best_yaml.is_file():
        raise UserError(f"{best_yaml} not found, and params.yaml leaves {len(params.from_sweep)} keys to the sweep: "
                        "run it (`dvc repro select`), or set train.choices_from: paper to train table 8.4")
    best = config.read_yaml(best_yaml)
    return best["params"], f"{best_yaml} (trial {best.get('trial')})"


def chosen_params(params: Params, best_yaml: Path = BEST_YAML) -> tuple[Params, dict[str, str]]:
    """The configuration to train, and per searched key where its value came from (sweep, paper or params)."""
    if not params.from_sweep:
        return params, {key: "params" for key in search_space.SEARCHED_KEYS}
    choices, origin = sweep_choices(params, best_yaml)
    chosen = config.with_choices(params, choices, source=str(best_yaml))
    filled_by = "paper" if params.train.choices_from == "paper" else "sweep"
    sources = {key: filled_by if key in params.from_sweep else "params" for key in search_space.SEARCHED_KEYS}
    overruled = [f"{key}={chosen.value(key)} (sweep: {choices[key]})" for key in search_space.SEARCHED_KEYS
                 if sources[key] == "params" and key in choices and choices[key] != chosen.value(key)]
    print(f"train: {len(params.from_sweep)} searched keys from {origin}"
          + (f"; params.yaml overrides {', '.join(overruled)}" if overruled else ""), flush=True)
    return chosen, sources


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
    train_set = PreparedImages(PREPARED, train_rows, classes, build_transforms(params.augment, size, train=True))
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
