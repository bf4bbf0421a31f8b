"""The training engine: `fit` runs train-then-validate epochs, keeps the best checkpoint by validation
macro-F1 and a resumable last checkpoint, logs DVCLive curves, and runs unchanged under torchrun (DDP).

Resuming: with `out_dir`, every epoch ends by writing `last.pt` (model, optimizer, schedule, scaler,
every RNG state, history). A new `fit` with the same configuration continues after the last complete
epoch and, on CPU, finishes with exactly the metrics of an uninterrupted run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from efficientnext.config import Params, TrainParams
from efficientnext.models import create_model
from efficientnext.train import checkpoint, distributed
from efficientnext.train.losses import build_loss, inverse_frequency_weights, mixup, one_hot
from efficientnext.train.metrics import roc_auc_ovr, softmax, summary_scores
from efficientnext.train.optim import LRSchedule, build_optimizer
from efficientnext.train.phases import Phase, enter_phase, plan_phases
from efficientnext.train.runtime import Runtime, make_loader, seed_everything

LAST, BEST = "last.pt", "best.pt"
CHECKPOINT_FORMAT = 1


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf; the message names the epoch and step."""


@dataclass
class FitResult:
    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, float]]
    seconds: float
    img_per_s: float


@dataclass
class EpochState:
    """What `last.pt` carries between sessions besides the model, optimizer and RNG."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    train_seconds: float = 0.0
    train_images: int = 0


def train_one_epoch(model: nn.Module, loader: DataLoader, criterion: nn.Module, optimizer: torch.optim.Optimizer,
                    schedule: LRSchedule, scaler: torch.amp.GradScaler, runtime: Runtime, train: TrainParams,
                    num_classes: int, epoch: int, total_epochs: int) -> dict[str, float]:
    """One pass over the training loader; returns mean loss, accuracy, images and seconds (all ranks)."""
    model.train()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    loss_sum, correct, seen = 0.0, 0, 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch}/{total_epochs}", leave=False, dynamic_ncols=True,
               disable=None if runtime.ctx.is_main else True)
    for step, (images, labels) in enumerate(bar, start=1):
        images, labels = runtime.images(images), labels.to(runtime.device, non_blocking=True)
        targets = one_hot(labels, num_classes)  # unsmoothed: the loss smooths and weights by class itself
        if train.mixup_alpha > 0:
            images, targets = mixup(images, targets, train.mixup_alpha)
        with runtime.autocast():
            logits = model(images)
        loss = criterion(logits.float(), targets)
        local_loss = loss.item()
        # Under DDP every rank checks the summed loss, so all stop together instead of hanging.
        checked = distributed.sum_across(runtime.ctx, [local_loss], runtime.device)[0]
        if not np.isfinite(checked):
            raise NonFiniteLossError(f"training loss is {checked} at epoch {epoch}, step {step}; "
                                     "lower the learning rate or set train.grad_clip")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if train.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(params, train.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        schedule.after_batch()
        loss_sum += local_loss * labels.shape[0]
        correct += int((logits.argmax(1) == labels).sum())
        seen += labels.shape[0]
        bar.set_postfix(loss=f"{loss_sum / seen:.4f}", refresh=False)
    seconds = time.perf_counter() - start
    loss_sum, correct, seen = distributed.sum_across(runtime.ctx, [loss_sum, correct, seen], runtime.device)
    return {"loss": loss_sum / max(seen, 1), "accuracy": correct / max(seen, 1), "images": int(seen),
            "seconds": seconds}


@torch.no_grad()
def predict(model: nn.Module, loader: DataLoader, runtime: Runtime,
            num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Logits and labels of every sample, in dataset order, on every rank."""
    model.eval()
    logits, labels = [], []
    for images, batch_labels in loader:
        with runtime.autocast():
            out = model(runtime.images(images))
        logits.append(out.float().cpu().numpy())
        labels.append(batch_labels.numpy())
    logits_np = np.concatenate(logits) if logits else np.zeros((0, num_classes), np.float32)
    labels_np = np.concatenate(labels) if labels else np.zeros(0, np.int64)
    order = np.asarray(loader.sampler.indices, dtype=np.int64)
    logits_np, labels_np, order = distributed.gather_arrays(runtime.ctx, logits_np, labels_np, order)
    ranked = np.argsort(order, kind="stable")
    return logits_np[ranked], labels_np[ranked]


def validate(model: nn.Module, loader: DataLoader, criterion: nn.Module, runtime: Runtime,
             train: TrainParams, num_classes: int) -> dict[str, float]:
    """Loss (the training objective, no mixup) and summary scores over the whole validation set."""
    logits, labels = predict(model, loader, runtime, num_classes)
    labels_t = torch.from_numpy(labels).to(runtime.device)
    loss = float(criterion(torch.from_numpy(logits).to(runtime.device), one_hot(labels_t, num_classes)))
    probs = softmax(logits)
    return {"loss": loss, **summary_scores(labels, probs.argmax(1), num_classes),
            "roc_auc_ovr": roc_auc_ovr(labels, probs, num_classes)}


def run_signature(params: Params, classes: list[str], total_epochs: int, train_set: Dataset, val_set: Dataset,
                  resume_key: dict[str, Any] | None) -> str:
    """What must match for `last.pt` to be resumed: the training, model and augmentation params,
    classes, epochs, the data (targets, plus the caller's resume_key, e.g. split-file hashes)."""
    return checkpoint.signature({
        "train": params.train.model_dump(mode="json"), "model": params.model.model_dump(mode="json"),
        "augment": params.augment.model_dump(mode="json"), "classes": classes, "epochs": total_epochs,
        "train_targets": np.asarray(train_set.targets).tolist(), "val_targets": np.asarray(val_set.targets).tolist(),
        "resume_key": resume_key or {},
    })


def _resumable(path: Path | None, signature: str, total_epochs: int, ctx: distributed.Context) -> dict | None:
    """The checkpoint to resume, or None (with the reason printed) to start fresh."""
    if path is None or not path.is_file():
        return None
    state = checkpoint.load(path)
    reason = None
    if state.get("format") != CHECKPOINT_FORMAT or state.get("signature") != signature:
        reason = "its configuration or data differ from this run's"
    elif state["epoch"] >= total_epochs:
        reason = "it is a finished run"
    if ctx.is_main:
        outcome = f"not resuming, {reason}; starting fresh" if reason else f"resuming after epoch {state['epoch']}"
        print(f"{path}: {outcome}", flush=True)
    return None if reason else state


def _model_record(params: Params, classes: list[str], model: nn.Module, epoch: int,
                  metrics: dict[str, float]) -> dict[str, Any]:
    """The part of a checkpoint that evaluation and inference need (weights copied: training goes on)."""
    return {
        "format": CHECKPOINT_FORMAT, "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
        "model_config": params.model.model_dump(mode="json"), "train_config": params.train.model_dump(mode="json"),
        "classes": list(classes), "image_size": params.train.image_size,
        "normalisation": {"mean": list(params.augment.mean), "std": list(params.augment.std)},
        "epoch": epoch, "metrics": metrics,
    }


def _log_epoch(live: Any, record: dict[str, float]) -> None:
    live.step = int(record["epoch"])
    for name, value in record.items():
        if name != "epoch" and value is not None:  # ROC-AUC is undefined when a class is absent
            live.log_metric(name, value)
    live.next_step()


def _epoch_line(record: dict[str, float], total: int, phase: Phase, multi_phase: bool, best: bool) -> str:
    tag = f" [{phase.name}]" if multi_phase else ""
    return (f"epoch {int(record['epoch'])}/{total}{tag}  train loss {record['train/loss']:.4f} "
            f"acc {record['train/accuracy']:.3f}  val loss {record['val/loss']:.4f} acc {record['val/accuracy']:.3f} "
            f"macro-F1 {record['val/macro_f1']:.3f}  {record['train/img_per_s']:.0f} img/s{'  *best' if best else ''}")


@dataclass
class PhaseTools:
    """What one training phase steps: the (wrapped) model, optimizer, schedule and loss scaler."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: torch.amp.GradScaler


def start_phase(raw_model: nn.Module, phase: Phase, params: Params, runtime: Runtime, steps_per_epoch: int) -> PhaseTools:
    """Freeze/unfreeze for the phase, wrap for DDP and torch.compile, and build a fresh optimizer and schedule."""
    train = params.train
    enter_phase(raw_model, phase, params.model)
    model = raw_model
    if runtime.ctx.enabled:  # re-wrapped per phase: DDP fixes the trainable parameters when it wraps
        device_ids = [runtime.device.index] if runtime.device.type == "cuda" else None
        model = DistributedDataParallel(raw_model, device_ids=device_ids)
    if train.compile:
        model = torch.compile(model)
    optimizer = build_optimizer(raw_model, train, phase.optimizer, phase.lr_scale)
    return PhaseTools(model, optimizer, LRSchedule(optimizer, train, phase.epochs, steps_per_epoch),
                      torch.amp.GradScaler(runtime.device.type, enabled=train.precision == "fp16"))


def restore(tools: PhaseTools, resumed: dict[str, Any], phase: Phase, state: EpochState,
            generator: torch.Generator, ctx: distributed.Context) -> None:
    """Continue a checkpoint: optimizer state only within its phase; RNG states always (per rank when saved)."""
    if resumed["phase"] == phase.name and state.epoch > phase.start:
        tools.optimizer.load_state_dict(resumed["optimizer"])
        tools.schedule.load_state_dict(resumed["schedule"])
        tools.scaler.load_state_dict(resumed["scaler"])
    rng = resumed["rng"]
    checkpoint.restore_rng_state(rng[ctx.rank] if ctx.rank < len(rng) else rng[0], generator)


def epoch_record(epoch: int, stats: dict[str, float], val: dict[str, float], optimizer: torch.optim.Optimizer,
                 phase: Phase | None) -> dict[str, float]:
    """One point of every curve; `phase` only for multi-phase runs (it marks the transfer switch)."""
    record = {"epoch": epoch, "train/loss": stats["loss"], "train/accuracy": stats["accuracy"],
              **{f"val/{k}": v for k, v in val.items()},
              "train/img_per_s": stats["images"] / max(stats["seconds"], 1e-9),
              **{f"lr/{g['name']}": g["lr"] for g in reversed(optimizer.param_groups)}}
    if phase is not None:
        record["phase"] = float(phase.index)
    return record


def save_checkpoints(out: Path, model_record: dict[str, Any], best_record: dict[str, Any], improved: bool,
                     resume_state: dict[str, Any]) -> None:
    """best.pt when it improved, then last.pt, which also carries the best record: a resumed run rewrites
    best.pt from it (DVC deletes non-persistent outputs before re-running a stage)."""
    if improved:  # best before last: a crash between the two re-runs this epoch and never loses a best
        checkpoint.save(out / BEST, best_record)
    checkpoint.save(out / LAST, {**model_record, **resume_state, "best": best_record})


def fit(params: Params, train_set: Dataset, val_set: Dataset, classes: list[str], *,
        out_dir: str | Path | None = None, epochs: int | None = None,
        epoch_callback: Callable[[int, dict[str, float]], None] | None = None, live: Any = None,
        build_model: Callable[[], nn.Module] | None = None, resume_key: dict[str, Any] | None = None) -> FitResult:
    """Train on `train_set`, validate on `val_set` each epoch; see the module docstring.

    `epochs` overrides train.epochs (the sweep's short trials); `build_model` replaces
    `create_model(params.model, len(classes))` (tests); `live` is a dvclive.Live (rank 0 only).
    """
    train, num_classes = params.train, len(classes)
    runtime = Runtime.create(train)
    ctx = runtime.ctx
    # A seed per rank: each draws its own dropout, drop-path and mixup (DDP's wrap broadcasts rank 0's weights).
    seed_everything(train.seed + ctx.rank, train.deterministic, runtime.device)
    raw_model = build_model() if build_model else create_model(params.model, num_classes)
    raw_model.to(runtime.device, memory_format=torch.channels_last if train.channels_last else torch.preserve_format)
    phases = plan_phases(params.model, train, epochs)
    total = phases[-1].end

    weight = inverse_frequency_weights(train_set.targets, num_classes)  # build_loss decides whether it applies
    criterion = build_loss(train, weight).to(runtime.device)
    generator = torch.Generator().manual_seed(train.seed + ctx.rank)
    train_loader = make_loader(train_set, train.batch_size, shuffle=True, workers=train.workers,
                               runtime=runtime, generator=generator, seed=train.seed)
    val_loader = make_loader(val_set, train.batch_size, shuffle=False, workers=train.workers, runtime=runtime)

    out = Path(out_dir) if out_dir is not None else None
    signature = run_signature(params, classes, total, train_set, val_set, resume_key)
    resumed = _resumable(out / LAST if out else None, signature, total, ctx)
    state, best_record = EpochState(), None
    if resumed:
        raw_model.load_state_dict(resumed["state_dict"])
        state, best_record = EpochState(**resumed["progress"]), resumed["best"]
        if ctx.is_main:
            checkpoint.save(out / BEST, best_record)
    if live is not None:
        for record in state.history:  # one continuous curve across interruptions
            _log_epoch(live, record)

    for phase in phases:
        if phase.end <= state.epoch:
            continue
        tools = start_phase(raw_model, phase, params, runtime, len(train_loader))
        if resumed:
            restore(tools, resumed, phase, state, generator, ctx)
            resumed = None
        for epoch in range(max(phase.start, state.epoch) + 1, phase.end + 1):
            if isinstance(train_loader.sampler, DistributedSampler):
                train_loader.sampler.set_epoch(epoch)
            epoch_start = time.perf_counter()
            stats = train_one_epoch(tools.model, train_loader, criterion, tools.optimizer, tools.schedule,
                                    tools.scaler, runtime, train, num_classes, epoch, total)
            val = validate(tools.model, val_loader, criterion, runtime, train, num_classes)
            tools.schedule.after_epoch(val["macro_f1"])
            record = epoch_record(epoch, stats, val, tools.optimizer, phase if len(phases) > 1 else None)
            improved = not state.best_metrics or val["macro_f1"] > state.best_metrics["macro_f1"]
            if improved:
                state.best_epoch, state.best_metrics = epoch, val
            state.epoch = epoch
            state.history.append(record)
            state.train_seconds += stats["seconds"]
            state.train_images += stats["images"]
            state.seconds += time.perf_counter() - epoch_start
            rng_states = distributed.gather_objects(ctx, checkpoint.rng_state(generator))
            if out is not None and ctx.is_main:
                model_record = _model_record(params, classes, raw_model, epoch, val)
                best_record = model_record if improved else best_record
                save_checkpoints(out, model_record, best_record, improved, {
                    "signature": signature, "phase": phase.name, "optimizer": tools.optimizer.state_dict(),
                    "schedule": tools.schedule.state_dict(), "scaler": tools.scaler.state_dict(),
                    "rng": rng_states, "progress": asdict(state)})
            if live is not None:
                _log_epoch(live, record)
            if ctx.is_main:
                print(_epoch_line(record, total, phase, len(phases) > 1, improved), flush=True)
            if epoch_callback is not None:
                epoch_callback(epoch, val)
    distributed.barrier(ctx)
    return FitResult(state.best_epoch, state.best_metrics, state.history, state.seconds,
                     state.train_images / max(state.train_seconds, 1e-9))
