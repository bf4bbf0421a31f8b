"""The train stage: the chosen configuration on the train split, validated on val each epoch.

Writes models/best.pt (best validation macro-F1), models/last.pt (resumable, every epoch), the DVCLive
curves under dvclive/, and metrics/train.json. Runs unchanged under `torchrun --nproc_per_node N`;
only rank 0 writes. Re-running after an interruption resumes from models/last.pt when the
configuration and data are unchanged.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from dvclive import Live

from efficientnext import config, io
from efficientnext.cli import UserError
from efficientnext.config import Params
from efficientnext.data.cache import INDEX
from efficientnext.data.datasets import PreparedImages, read_rows
from efficientnext.data.transforms import build_transforms
from efficientnext.models import with_input_normalisation
from efficientnext.train import distributed
from efficientnext.train.engine import FitResult, fit
from efficientnext.train.phases import plan_phases

BEST_CONFIG = Path("sweep/best.yaml")
PREPARED, SPLITS = Path("data/prepared"), Path("data/splits")
MODELS, LIVE_DIR, METRICS_PATH = Path("models"), "dvclive", Path("metrics/train.json")


def chosen_params(params: Params) -> Params:
    """params.yaml, with sweep/best.yaml's searched keys applied when train.config_from is best."""
    if params.train.config_from == "params":
        return params
    if not BEST_CONFIG.is_file():
        raise UserError(f"{BEST_CONFIG} not found: run the sweep (`dvc repro select`) or set train.config_from: params")
    best = config.read_yaml(BEST_CONFIG)
    print(f"train: configuration from {BEST_CONFIG} (trial {best.get('trial')})", flush=True)
    return config.with_overrides(params, best["params"], source=str(BEST_CONFIG))


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def train_metrics(result: FitResult, params: Params) -> dict:
    """metrics/train.json: the best epoch's validation metrics, training time and throughput."""
    metrics = {"best_epoch": result.best_epoch, "epochs": len(result.history),
               "val": result.best_metrics, "train_seconds": round(result.seconds, 2),
               "img_per_s": round(result.img_per_s, 1)}
    phases = plan_phases(params.model, params.train)
    if len(phases) > 1:
        metrics["phase_starts"] = {phase.name: phase.start + 1 for phase in phases}
    return metrics


def run(params: Params) -> None:
    params = with_input_normalisation(chosen_params(params))
    classes = list(params.data.classes)
    size = params.train.image_size
    train_rows, val_rows = read_rows(SPLITS / "train.csv"), read_rows(SPLITS / "val.csv")
    train_set = PreparedImages(PREPARED, train_rows, classes, build_transforms(params.augment, size, train=True))
    val_set = PreparedImages(PREPARED, val_rows, classes, build_transforms(params.augment, size, train=False))
    # A different split or cache must never resume an old run's checkpoint.
    resume_key = {str(path): _file_digest(path) for path in (SPLITS / "train.csv", SPLITS / "val.csv",
                                                             PREPARED / INDEX)}
    is_main = int(os.environ.get("RANK", "0")) == 0
    live = Live(dir=LIVE_DIR, save_dvc_exp=False, dvcyaml=False) if is_main else None
    try:
        result = fit(params, train_set, val_set, classes, out_dir=MODELS, live=live, resume_key=resume_key)
    finally:
        if live is not None:
            live.end()
        distributed.teardown()
    if is_main:
        io.write_json(METRICS_PATH, train_metrics(result, params))
        print(f"train: best epoch {result.best_epoch}, validation macro-F1 {result.best_metrics['macro_f1']:.3f}, "
              f"{result.seconds:.0f} s, {result.img_per_s:.0f} img/s -> {MODELS / 'best.pt'}", flush=True)
