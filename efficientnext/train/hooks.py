"""What `fit` does around its epochs besides training: each concern is a `Hook`, called at fit start
(after a resume is restored) and after every epoch, in list order.

    CheckpointHook  best.pt (when validation macro-F1 improved), then last.pt; rewrites best.pt on resume
    LiveHook        DVCLive curves: replays the history on resume (one continuous curve), logs each epoch
    ConsoleHook     the per-epoch line
    CallbackHook    `callback(epoch, val_metrics)`, e.g. the sweep's pruning; what it raises stops fit

A hook with `rank_zero_only` runs on rank 0 only (the hooks that write files or log); the others run on
every rank. Hooks hold no collectives: `fit` gathers what needs every rank (the RNG states) itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from efficientnext.config import Params
from efficientnext.train import checkpoint, distributed
from efficientnext.train.checkpoint import BEST, LAST, ModelRecord, ResumeState
from efficientnext.train.phases import Phase

if TYPE_CHECKING:
    from efficientnext.train.engine import EpochState, PhaseTools


@dataclass
class FitState:
    """What hooks see: the run, and its progress (updated before each `on_epoch_end`)."""

    params: Params
    classes: list[str]
    ctx: distributed.Context
    phases: list[Phase]
    model: nn.Module  # the raw model, not the DDP / torch.compile wrapper
    progress: EpochState  # epochs done, history, best epoch and metrics, timings
    resumed: ResumeState | None = None  # the last.pt this run continues
    phase: Phase | None = None  # the phase being trained
    tools: PhaseTools | None = None  # its optimizer, schedule and scaler
    rng_states: list[dict[str, Any]] | None = None  # every rank's RNG states after the epoch

    @property
    def total_epochs(self) -> int:
        return self.phases[-1].end


class Hook:
    """Base class: override what you need. A raised exception stops `fit` and propagates."""

    rank_zero_only = False

    def on_fit_start(self, state: FitState) -> None:
        """Before the first epoch this run trains; `state.progress` already holds a resumed run's history."""

    def on_epoch_end(self, record: dict[str, float], state: FitState) -> None:
        """After each epoch's validation; `record` is the history entry just appended."""


def val_metrics(record: dict[str, float]) -> dict[str, float]:
    """The validation metrics of an epoch record, without their `val/` prefix."""
    return {name.removeprefix("val/"): value for name, value in record.items() if name.startswith("val/")}


def is_best(record: dict[str, float], state: FitState) -> bool:
    return state.progress.best_epoch == record["epoch"]


class CheckpointHook(Hook):
    """best.pt when the epoch improved on validation macro-F1, then last.pt (resumable) every epoch."""

    rank_zero_only = True

    def __init__(self, out_dir: str | Path, signature: str):
        self.out, self.signature = Path(out_dir), signature
        self.best: ModelRecord | None = None

    def on_fit_start(self, state: FitState) -> None:
        if state.resumed is not None:
            self.best = state.resumed.best
            checkpoint.save(self.out / BEST, self.best.to_dict())  # DVC may have deleted it

    def on_epoch_end(self, record: dict[str, float], state: FitState) -> None:
        latest = ModelRecord.capture(state.model, state.params, state.classes, int(record["epoch"]),
                                     val_metrics(record))
        if is_best(record, state):  # best before last: a crash between the two re-runs this epoch, never loses a best
            self.best = latest
            checkpoint.save(self.out / BEST, latest.to_dict())
        tools = state.tools
        checkpoint.save(self.out / LAST, ResumeState(
            model=latest, best=self.best, signature=self.signature, phase=state.phase.name,
            optimizer=tools.optimizer.state_dict(), schedule=tools.schedule.state_dict(),
            scaler=tools.scaler.state_dict(), rng=state.rng_states, progress=asdict(state.progress)).to_dict())


class LiveHook(Hook):
    """Every record to a dvclive.Live, at step = epoch; the caller owns the Live (and ends it)."""

    rank_zero_only = True

    def __init__(self, live: Any):
        self.live = live

    def on_fit_start(self, state: FitState) -> None:
        for record in state.progress.history:  # one continuous curve across interruptions
            self.on_epoch_end(record, state)

    def on_epoch_end(self, record: dict[str, float], state: FitState) -> None:
        self.live.step = int(record["epoch"])
        for name, value in record.items():
            if name != "epoch" and value is not None:  # ROC-AUC is undefined when a class is absent
                self.live.log_metric(name, value)
        self.live.next_step()


class ConsoleHook(Hook):
    """One line per epoch: losses, accuracies, macro-F1, throughput, the phase and whether it is the best."""

    rank_zero_only = True

    def on_epoch_end(self, record: dict[str, float], state: FitState) -> None:
        tag = f" [{state.phase.name}]" if len(state.phases) > 1 else ""
        print(f"epoch {int(record['epoch'])}/{state.total_epochs}{tag}  train loss {record['train/loss']:.4f} "
              f"acc {record['train/accuracy']:.3f}  val loss {record['val/loss']:.4f} acc {record['val/accuracy']:.3f} "
              f"macro-F1 {record['val/macro_f1']:.3f}  {record['train/img_per_s']:.0f} img/s"
              f"{'  *best' if is_best(record, state) else ''}", flush=True)


class CallbackHook(Hook):
    """`callback(epoch, val_metrics)` after each epoch, on every rank (the sweep reports to optuna and
    may raise optuna.TrialPruned, which stops fit)."""

    def __init__(self, callback: Callable[[int, dict[str, float]], None]):
        self.callback = callback

    def on_epoch_end(self, record: dict[str, float], state: FitState) -> None:
        self.callback(int(record["epoch"]), val_metrics(record))
