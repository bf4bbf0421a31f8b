"""The training engine on a tiny in-memory problem: determinism, non-finite losses, checkpoints,
resume (in-process and after a real kill -9), hooks, the transfer schedule and two-process gloo DDP.

Run as a script (`python tests/test_train_engine.py OUT_DIR EPOCHS [--slow]`, also under torchrun) it
trains the tiny problem into OUT_DIR and writes OUT_DIR/result-<rank>.json; the subprocess tests use that.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from dvclive import Live
from torch import nn
from torch.utils.data import Dataset

from efficientnext import config
from efficientnext.config import UserError
from efficientnext.data.transforms import build_transforms
from efficientnext.train import checkpoint, distributed
from efficientnext.train.checkpoint import BEST, LAST
from efficientnext.train.engine import NonFiniteLossError, fit
from efficientnext.train.hooks import CallbackHook, FitState, Hook, LiveHook
from efficientnext.train.phases import plan_phases

CLASSES = ["a", "b", "c"]
ROOT = Path(__file__).resolve().parents[1]
TIMING_KEYS = ("train/img_per_s",)


class Blobs(Dataset):
    """Class c is a noisy image of mean c; fresh noise per access (an 'augmentation' drawing on torch's RNG)."""

    def __init__(self, size: int, seed: int, delay: float = 0.0):
        generator = torch.Generator().manual_seed(seed)
        self.targets = np.arange(size) % len(CLASSES)
        self.images = 0.5 * torch.randn(size, 3, 16, 16, generator=generator) + 2.0 * torch.tensor(self.targets).float().view(-1, 1, 1, 1)
        self.delay = delay

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if self.delay:
            time.sleep(self.delay)
        return self.images[index] + 0.3 * torch.randn(3, 16, 16), int(self.targets[index])


class ByteBlobs(Dataset):
    """Blobs as uint8 images of two shapes (class c: mean 40 + 80 c), for the batched backend; `transform`:
    the validation set's per-image eval transform."""

    def __init__(self, size: int, seed: int, transform=None):
        generator = torch.Generator().manual_seed(seed)
        self.targets = np.arange(size) % len(CLASSES)
        self.images = [(40.0 + 80 * t + 20 * torch.randn(3, 20, 16 + 4 * (i % 2), generator=generator))
                       .clamp(0, 255).to(torch.uint8) for i, t in enumerate(self.targets)]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        image = self.images[index]
        return (self.transform(image) if self.transform else image), int(self.targets[index])


class TinyNet(nn.Module):
    """A few thousand parameters with BatchNorm and dropout, timm's get_classifier convention."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                                  nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2))
        self.fc = nn.Linear(8, len(CLASSES))

    def get_classifier(self) -> nn.Module:
        return self.fc

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.body(x))


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors: thread start-up costs more than it saves, and the suite runs two workers on two cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def tiny_params(**overrides) -> config.Params:
    # Blobs serve float images: the per-image path (the batched one is tested on real uint8 data elsewhere).
    base = {"augment.backend": "per_image", "train.epochs": 3, "train.batch_size": 16, "train.workers": 0, "train.mixup_alpha": 0.2,
            "train.scheduler": "cosine", "train.warmup_epochs": 1, "train.device": "cpu", "train.optimizer": "adamw",
            "train.lr_head": 3e-3, "train.lr_backbone": 1e-3}  # the tiny net learns the blobs in 3 epochs at this rate
    return config.load(ROOT / "params.yaml", {**base, **overrides})


def run_tiny(params: config.Params, out_dir: Path | None = None, delay: float = 0.0, **kwargs):
    return fit(params, Blobs(96, 0, delay), Blobs(48, 1), CLASSES, out_dir=out_dir, build_model=TinyNet, **kwargs)


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in record.items() if k not in TIMING_KEYS} for record in history]


def test_same_seed_gives_identical_metrics():
    first, second = run_tiny(tiny_params()), run_tiny(tiny_params())
    assert without_timing(first.history) == without_timing(second.history)
    assert first.best_metrics == second.best_metrics
    assert first.history[-1]["val/accuracy"] > 0.5  # it learns the blobs
    different = run_tiny(tiny_params(**{"train.seed": 7}))
    assert without_timing(different.history) != without_timing(first.history)


class ExplodesAt(TinyNet):
    """Returns inf logits on its n-th training forward pass."""

    def __init__(self, call: int):
        super().__init__()
        self.calls, self.call = 0, call

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += self.training
        out = super().forward(x)
        return out * float("inf") if self.training and self.calls == self.call else out


def test_non_finite_loss_stops_with_epoch_and_step():
    # 96 images, batch 16: 6 steps per epoch, so the 8th training step is epoch 2, step 2
    with pytest.raises(NonFiniteLossError, match=r"training loss is nan at epoch 2, step 2"):
        fit(tiny_params(), Blobs(96, 0), Blobs(48, 1), CLASSES, build_model=lambda: ExplodesAt(8))


def test_checkpoints_load_with_weights_only(tmp_path: Path):
    params = tiny_params(**{"train.epochs": 2})
    result = run_tiny(params, tmp_path)
    best, last = checkpoint.load(tmp_path / BEST), checkpoint.load(tmp_path / LAST)
    assert best["epoch"] == result.best_epoch and last["epoch"] == 2
    assert best["classes"] == CLASSES and best["image_size"] == params.train.image_size
    assert config.ModelParams(**best["model_config"]) == params.model
    assert best["normalisation"] == {"mean": list(params.augment.mean), "std": list(params.augment.std)}
    assert {"optimizer", "schedule", "scaler", "rng", "progress", "signature", "best"} <= set(last)
    assert last["best"]["epoch"] == best["epoch"]
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temp files
    record = checkpoint.load_record(tmp_path / BEST)  # the typed view evaluate reads
    assert record.to_dict().keys() == best.keys() and record.epoch == best["epoch"] and record.classes == CLASSES
    assert record.mean == tuple(params.augment.mean) and record.metrics == result.best_metrics
    assert checkpoint.ResumeState.from_dict(last).to_dict().keys() == last.keys()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only errors")
@pytest.mark.parametrize("overrides,message", [
    ({"train.precision": "fp16", "train.device": "cpu"}, "fp16 needs CUDA"),
    ({"train.device": "cuda"}, "no CUDA device is available"),
])
def test_cpu_only_errors_are_one_line(overrides, message):
    with pytest.raises(UserError, match=message):
        run_tiny(tiny_params(**overrides))


def test_bf16_autocast_on_cpu_trains():
    result = run_tiny(tiny_params(**{"train.precision": "bf16", "train.epochs": 1}))
    assert np.isfinite(result.history[0]["train/loss"])


class Interrupt(Exception):
    pass


def stop_after(epoch: int):
    def callback(done: int, _metrics: dict) -> None:
        if done == epoch:
            raise Interrupt
    return callback


def prune_at(epoch: int):
    def callback(done: int, metrics: dict) -> None:
        assert set(metrics) >= {"loss", "accuracy", "macro_f1"}  # the validation metrics, unprefixed
        if done == epoch:
            raise optuna.TrialPruned(f"pruned after epoch {done}")
    return callback


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_after_interruption_matches_uninterrupted(tmp_path: Path, monkeypatch, capsys, workers: int):
    monkeypatch.chdir(tmp_path)
    params = tiny_params(**{"train.workers": workers, "train.scheduler": "onecycle"})
    reference = run_tiny(params, tmp_path / "reference")
    with pytest.raises(Interrupt):
        run_tiny(params, tmp_path / "run", hooks=[LiveHook(Live("dvclive", save_dvc_exp=False, dvcyaml=False)),
                                                 CallbackHook(stop_after(1))])
    live = Live("dvclive", save_dvc_exp=False, dvcyaml=False)
    resumed = run_tiny(params, tmp_path / "run", hooks=[LiveHook(live)])
    live.end()
    assert "resuming after epoch 1" in capsys.readouterr().out
    assert without_timing(resumed.history) == without_timing(reference.history)
    assert resumed.best_metrics == reference.best_metrics
    curve = (tmp_path / "dvclive/plots/metrics/val/macro_f1.tsv").read_text().split()
    assert curve[0:2] == ["step", "macro_f1"] and [int(s) for s in curve[2::2]] == [1, 2, 3]  # one continuous curve


@pytest.mark.parametrize("workers", [0, 2])
def test_batched_augmentation_learns_and_resumes_exactly(tmp_path: Path, workers: int):
    params = tiny_params(**{"augment.backend": "batched", "train.image_size": 16, "train.workers": workers,
                            "train.scheduler": "onecycle", "train.epochs": 6})
    val_transform = build_transforms(params.augment, 16, train=False)

    def run(out: Path, **kwargs):
        return fit(params, ByteBlobs(96, 0), ByteBlobs(48, 1, val_transform), CLASSES, out_dir=out,
                   build_model=TinyNet, **kwargs)

    reference = run(tmp_path / "reference")
    assert reference.best_metrics["macro_f1"] > 0.9  # the blobs stay separable under §4.1's jitter
    with pytest.raises(Interrupt):
        run(tmp_path / "run", hooks=[CallbackHook(stop_after(3))])
    resumed = run(tmp_path / "run")
    assert without_timing(resumed.history) == without_timing(reference.history)


def test_changed_configuration_or_finished_run_starts_fresh(tmp_path: Path, capsys):
    params = tiny_params(**{"train.epochs": 1})
    run_tiny(params, tmp_path)
    run_tiny(params, tmp_path)
    assert f"{tmp_path / LAST}: not resuming, it is a finished run; starting fresh" in capsys.readouterr().out
    run_tiny(tiny_params(**{"train.epochs": 1, "train.lr_head": 0.01}), tmp_path)
    assert "not resuming, its configuration or data differ" in capsys.readouterr().out


class Recorder(Hook):
    """Notes the history a run starts from and every record it is handed."""

    def __init__(self):
        self.started_with: list[int] | None = None
        self.records: list[dict] = []

    def on_fit_start(self, state: FitState) -> None:
        self.started_with = [r["epoch"] for r in state.progress.history]

    def on_epoch_end(self, record: dict, state: FitState) -> None:
        assert state.progress.history[-1] is record and state.progress.epoch == record["epoch"]
        self.records.append(record)


def test_hook_sees_every_epoch_record_in_order():
    recorder = Recorder()
    result = run_tiny(tiny_params(), hooks=[recorder])
    assert recorder.started_with == [] and [r["epoch"] for r in recorder.records] == [1, 2, 3]
    assert recorder.records == result.history


def test_raising_hook_stops_fit_and_the_run_resumes_after_it(tmp_path: Path):
    params = tiny_params()
    first = Recorder()
    with pytest.raises(optuna.TrialPruned):  # what the sweep's pruning callback raises propagates
        run_tiny(params, tmp_path, hooks=[CallbackHook(prune_at(2)), first])
    assert [r["epoch"] for r in first.records] == [1]  # neither later hooks nor later epochs ran
    assert checkpoint.load(tmp_path / LAST)["epoch"] == 2  # the built-in checkpoint hook runs first
    second = Recorder()
    run_tiny(params, tmp_path, hooks=[second])
    assert second.started_with == [1, 2] and [r["epoch"] for r in second.records] == [3]


def test_transfer_schedule_switches_phase_on_one_curve(tmp_path: Path):
    params = tiny_params(**{"model.arch": "transfer", "train.transfer.feature_epochs": 1,
                            "train.transfer.finetune_epochs": 1, "train.mixup_alpha": 0.0, "train.workers": 0})
    phases = plan_phases(params.model, params.train)
    assert [(p.name, p.optimizer, p.lr_scale) for p in phases] == [("features", "adam", 1.0),
                                                                    ("finetune", "rmsprop", 0.1)]
    result = fit(params, Blobs(32, 0), Blobs(16, 1), CLASSES, out_dir=tmp_path)
    assert [r["phase"] for r in result.history] == [0.0, 1.0] and [r["epoch"] for r in result.history] == [1, 2]
    last = checkpoint.load(tmp_path / LAST)
    assert last["phase"] == "finetune" and last["optimizer"]["param_groups"][0]["lr"] <= params.train.lr_head * 0.1


def _script_result(out_dir: Path, rank: int = 0) -> dict:
    return json.loads((out_dir / f"result-{rank}.json").read_text())


@pytest.mark.slow
def test_kill_9_then_restart_equals_uninterrupted(tmp_path: Path):
    script = [sys.executable, str(Path(__file__)), "--slow"]
    subprocess.run([*script, str(tmp_path / "reference"), "4"], check=True, capture_output=True, env=subprocess_env())
    run_dir = tmp_path / "killed"
    victim = subprocess.Popen([*script, str(run_dir), "4"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              env=subprocess_env())
    deadline = time.monotonic() + 120
    while not (run_dir / LAST).exists() and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL and not (run_dir / "result-0.json").exists()
    assert checkpoint.load(run_dir / LAST)["epoch"] < 4
    (run_dir / BEST).unlink(missing_ok=True)  # as `dvc repro` does with a non-persistent output
    restarted = subprocess.run([*script, str(run_dir), "4"], check=True, capture_output=True, text=True,
                               env=subprocess_env())
    assert "resuming after epoch" in restarted.stdout
    reference, resumed = _script_result(tmp_path / "reference"), _script_result(run_dir)
    assert without_timing(resumed["history"]) == without_timing(reference["history"])
    assert resumed["best_metrics"] == reference["best_metrics"]
    best, reference_best = checkpoint.load(run_dir / BEST), checkpoint.load(tmp_path / "reference" / BEST)
    assert best["epoch"] == reference_best["epoch"]
    assert all(torch.equal(best["state_dict"][k], v) for k, v in reference_best["state_dict"].items())


@pytest.mark.slow
def test_two_process_gloo_ddp(tmp_path: Path):
    subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                    str(Path(__file__)), str(tmp_path), "2"], check=True, capture_output=True, env=subprocess_env(), timeout=300)
    rank0, rank1 = _script_result(tmp_path, 0), _script_result(tmp_path, 1)
    assert without_timing(rank0["history"]) == without_timing(rank1["history"])
    assert rank0["best_metrics"] == rank1["best_metrics"]
    assert 0.0 <= rank0["best_metrics"]["macro_f1"] <= 1.0 and np.isfinite(rank0["history"][-1]["train/loss"])
    assert len(rank0["history"]) == 2 and (tmp_path / BEST).exists()


def _main(argv: list[str]) -> None:
    slow = "--slow" in argv
    out_dir, epochs = [Path(a) for a in argv if a != "--slow"][0], int([a for a in argv if a != "--slow"][1])
    params = tiny_params(**{"train.epochs": epochs, "train.workers": 1 if slow else 0})
    result = run_tiny(params, out_dir, delay=0.004 if slow else 0.0)
    rank = int(os.environ.get("RANK", "0"))
    (out_dir / f"result-{rank}.json").write_text(json.dumps(
        {"history": result.history, "best_metrics": result.best_metrics, "best_epoch": result.best_epoch}))
    distributed.teardown()


if __name__ == "__main__":
    _main(sys.argv[1:])
