"""The training engine: `fit` runs train-then-validate epochs and runs unchanged under torchrun (DDP).
Everything around the epochs is a hook (efficientnext.train.hooks): with `out_dir`, best.pt by validation
macro-F1 and a resumable last.pt; the per-epoch console line; and the caller's (DVCLive, the sweep's pruning).

Resuming: with `out_dir`, every epoch ends by writing `last.pt` (model, optimizer, schedule, scaler,
every RNG state, history). A new `fit` with the same configuration continues after the last complete
epoch and, on CPU, finishes with exactly the metrics of an uninterrupted run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from tqdm import tqdm

from efficientnext.config import Params, TrainParams
from efficientnext.data.batch_augment import BatchAugment, pad_collate
from efficientnext.models import create_model
from efficientnext.train import checkpoint, distributed
from efficientnext.train.checkpoint import LAST, ResumeState
from efficientnext.train.hooks import CheckpointHook, ConsoleHook, FitState, Hook
from efficientnext.train.losses import build_loss, inverse_frequency_weights, mixup, one_hot
from efficientnext.train.metrics import roc_auc_ovr, softmax, summary_scores
from efficientnext.train.optim import LRSchedule, build_optimizer
from efficientnext.train.phases import Phase, enter_phase, plan_phases
from efficientnext.train.runtime import Runtime, make_loader, seed_everything


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf; the message names the epoch and step."""


@dataclass
class EpochState:
    """The progress of a run; `last.pt` carries it between sessions besides the model, optimizer and RNG."""

    epoch: int = 0
    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_metrics: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    train_seconds: float = 0.0
    train_images: int = 0

    def add(self, record: dict[str, float], stats: dict[str, float], val: dict[str, float], seconds: float) -> None:
        """Count a finished epoch; it is the new best when its validation macro-F1 improved."""
        self.epoch = int(record["epoch"])
        if not self.best_metrics or val["macro_f1"] > self.best_metrics["macro_f1"]:
            self.best_epoch, self.best_metrics = self.epoch, val
        self.history.append(record)
        self.train_seconds += stats["seconds"]
        self.train_images += stats["images"]
        self.seconds += seconds


@dataclass
class FitResult:
    best_epoch: int
    best_metrics: dict[str, float]
    history: list[dict[str, float]]
    seconds: float
    img_per_s: float

    @classmethod
    def of(cls, progress: EpochState) -> FitResult:
        return cls(progress.best_epoch, progress.best_metrics, progress.history, progress.seconds,
                   progress.train_images / max(progress.train_seconds, 1e-9))


@dataclass
class PhaseTools:
    """What one training phase steps: the (wrapped) model, optimizer, schedule and loss scaler."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    scaler: torch.amp.GradScaler


@dataclass(frozen=True)
class TrainSetup:
    """What every epoch of a run shares: where it computes, the train params, the loss, the class count and
    the batch augmentation (None: the dataset's per-image transforms already augmented)."""

    runtime: Runtime
    train: TrainParams
    criterion: nn.Module
    num_classes: int
    augment: BatchAugment | None = None


# Host syncs: the non-finite check and the progress bar's loss read the device every CHECK_EVERY steps, not
# every step, so a GPU queues steps ahead; a diverged run still stops within CHECK_EVERY steps.
CHECK_EVERY = 16


def train_one_epoch(tools: PhaseTools, loader: DataLoader, setup: TrainSetup, epoch: int,
                    total_epochs: int) -> dict[str, float]:
    """One pass over the training loader; returns mean loss, accuracy, images and seconds (all ranks).
    `epoch` of `total_epochs` labels the progress bar and a non-finite loss."""
    model, optimizer, scaler = tools.model, tools.optimizer, tools.scaler
    runtime, train, device = setup.runtime, setup.train, setup.runtime.device
    model.train()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    loss_sum = torch.zeros((), dtype=torch.float64, device=device)
    correct = torch.zeros((), dtype=torch.int64, device=device)
    first_bad = torch.zeros(2, dtype=torch.float64, device=device)  # step, loss of the first non-finite loss
    seen = 0
    start = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch}/{total_epochs}", leave=False, dynamic_ncols=True,
               disable=None if runtime.ctx.is_main else True)
    for step, (images, labels) in enumerate(bar, start=1):
        if setup.augment is not None:
            images = setup.augment(images, loader.generator, device)
        images, labels = runtime.images(images), labels.to(device, non_blocking=True)
        targets = one_hot(labels, setup.num_classes)  # unsmoothed: the loss smooths and weights by class itself
        if train.mixup_alpha > 0:
            images, targets = mixup(images, targets, train.mixup_alpha)
        with runtime.autocast():
            logits = model(images)
        loss = setup.criterion(logits.float(), targets)
        detached = loss.detach().double()
        first_bad = torch.where((first_bad[0] == 0) & ~torch.isfinite(detached),
                                torch.stack([detached.new_tensor(step), detached]), first_bad)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if train.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(params, train.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        tools.schedule.after_batch()
        loss_sum += detached * labels.shape[0]
        correct += (logits.argmax(1) == labels).sum()
        seen += labels.shape[0]
        if step % CHECK_EVERY == 0:
            check_finite(first_bad, runtime, epoch)
            bar.set_postfix(loss=f"{float(loss_sum) / seen:.4f}", refresh=False)
    check_finite(first_bad, runtime, epoch)
    seconds = time.perf_counter() - start
    loss_total, correct_total, seen = distributed.sum_across(runtime.ctx, [float(loss_sum), int(correct), seen],
                                                             device)
    return {"loss": loss_total / max(seen, 1), "accuracy": correct_total / max(seen, 1), "images": int(seen),
            "seconds": seconds}


def check_finite(first_bad: torch.Tensor, runtime: Runtime, epoch: int) -> None:
    """Raise NonFiniteLossError on every rank when any rank saw a non-finite loss (so none hangs)."""
    step, loss = first_bad.tolist()
    if distributed.sum_across(runtime.ctx, [float(step > 0)], runtime.device)[0]:
        where = f"step {int(step)}" if step > 0 else "another rank"
        raise NonFiniteLossError(f"training loss is {loss if step > 0 else 'not finite'} at epoch {epoch}, "
                                 f"{where}; lower the learning rate or set train.grad_clip")


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


def evaluate_epoch(model: nn.Module, loader: DataLoader, setup: TrainSetup) -> dict[str, float]:
    """Loss (the training objective, no mixup) and summary scores over the whole validation set."""
    runtime, num_classes = setup.runtime, setup.num_classes
    logits, labels = predict(model, loader, runtime, num_classes)
    labels_t = torch.from_numpy(labels).to(runtime.device)
    loss = float(setup.criterion(torch.from_numpy(logits).to(runtime.device), one_hot(labels_t, num_classes)))
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


def start_phase(raw_model: nn.Module, phase: Phase, params: Params, runtime: Runtime,
                steps_per_epoch: int) -> PhaseTools:
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


def restore(tools: PhaseTools, resumed: ResumeState, phase: Phase, progress: EpochState,
            generator: torch.Generator, ctx: distributed.Context) -> None:
    """Continue a checkpoint: optimizer state only within its phase; RNG states always (per rank when saved)."""
    if resumed.phase == phase.name and progress.epoch > phase.start:
        tools.optimizer.load_state_dict(resumed.optimizer)
        tools.schedule.load_state_dict(resumed.schedule)
        tools.scaler.load_state_dict(resumed.scaler)
    rng = resumed.rng
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


def run_epoch(state: FitState, setup: TrainSetup, train_loader: DataLoader, val_loader: DataLoader,
              epoch: int) -> dict[str, float]:
    """Train and validate one epoch of `state.phase`, step the epoch schedule, count it in `state.progress`;
    returns its record."""
    tools = state.tools
    if isinstance(train_loader.sampler, DistributedSampler):
        train_loader.sampler.set_epoch(epoch)
    start = time.perf_counter()
    stats = train_one_epoch(tools, train_loader, setup, epoch, state.total_epochs)
    val = evaluate_epoch(tools.model, val_loader, setup)
    tools.schedule.after_epoch(val["macro_f1"])
    record = epoch_record(epoch, stats, val, tools.optimizer, state.phase if len(state.phases) > 1 else None)
    state.progress.add(record, stats, val, time.perf_counter() - start)
    return record


def fit(params: Params, train_set: Dataset, val_set: Dataset, classes: list[str], *,
        out_dir: str | Path | None = None, hooks: Sequence[Hook] = (), epochs: int | None = None,
        build_model: Callable[[], nn.Module] | None = None, resume_key: dict[str, Any] | None = None) -> FitResult:
    """Train on `train_set`, validate on `val_set` each epoch; see the module docstring.

    `out_dir` holds best.pt and last.pt and is where a run resumes from (None: no checkpoints). `hooks`
    run after the built-in CheckpointHook (with out_dir) and ConsoleHook, e.g. LiveHook(live) or the
    sweep's CallbackHook(report). `epochs` overrides train.epochs (the sweep's short trials); `build_model`
    replaces `create_model(params.model, len(classes))` (tests); `resume_key` joins what must match to
    resume (e.g. split-file hashes).
    """
    train = params.train
    runtime = Runtime.create(train)
    ctx = runtime.ctx
    # A seed per rank: each draws its own dropout, drop-path and mixup (DDP's wrap broadcasts rank 0's weights).
    seed_everything(train.seed + ctx.rank, train.deterministic, runtime.device)
    model = build_model() if build_model else create_model(params.model, len(classes))
    model.to(runtime.device, memory_format=torch.channels_last if train.channels_last else torch.preserve_format)
    phases = plan_phases(params.model, train, epochs)
    weight = inverse_frequency_weights(train_set.targets, len(classes))  # build_loss decides whether it applies
    batched = params.augment.backend == "batched"
    setup = TrainSetup(runtime, train, build_loss(train, weight).to(runtime.device), len(classes),
                       BatchAugment(params.augment, train.image_size) if batched else None)
    # Seeds the shuffling, the workers and the batch augmentation; its state is in last.pt.
    generator = torch.Generator().manual_seed(train.seed + ctx.rank)
    train_loader = make_loader(train_set, train.batch_size, shuffle=True, workers=train.workers,
                               runtime=runtime, generator=generator, seed=train.seed,
                               collate=pad_collate if batched else None)
    val_loader = make_loader(val_set, train.batch_size, shuffle=False, workers=train.workers, runtime=runtime)

    out = Path(out_dir) if out_dir is not None else None
    # Only a run with checkpoints resumes, so only it needs the signature.
    signature = run_signature(params, classes, phases[-1].end, train_set, val_set, resume_key) if out else None
    resumed = checkpoint.resumable(out / LAST, signature, phases[-1].end, announce=ctx.is_main) if out else None
    state = FitState(params, list(classes), ctx, phases, model,
                     EpochState(**resumed.progress) if resumed else EpochState(), resumed)
    if resumed:
        model.load_state_dict(resumed.model.state_dict)
    hooks = [hook for hook in [*([CheckpointHook(out, signature)] if out else []), ConsoleHook(), *hooks]
             if ctx.is_main or not hook.rank_zero_only]
    for hook in hooks:
        hook.on_fit_start(state)

    for phase in phases:
        if phase.end <= state.progress.epoch:
            continue
        state.phase, state.tools = phase, start_phase(model, phase, params, runtime, len(train_loader))
        if resumed:
            restore(state.tools, resumed, phase, state.progress, generator, ctx)
            resumed = None
        for epoch in range(max(phase.start, state.progress.epoch) + 1, phase.end + 1):
            record = run_epoch(state, setup, train_loader, val_loader, epoch)
            # Every rank's RNG states, for last.pt: a collective, so gathered here on all ranks, not in a hook.
            state.rng_states = distributed.gather_objects(ctx, checkpoint.rng_state(generator))
            for hook in hooks:
                hook.on_epoch_end(record, state)
    distributed.barrier(ctx)
    return FitResult.of(state.progress)
