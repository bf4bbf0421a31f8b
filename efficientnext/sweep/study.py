"""The `sweep` stage and `efficientnext sweep --workers N`: workers on one Optuna study until its budget is spent.

Budget: a worker starts a trial only while fewer than `sweep.n_trials` trials have started (complete,
pruned, failed or running: a resumed study continues where it stopped; trials enqueued with
`study.enqueue_trial` run first and count once started) and `sweep.timeout` seconds have not passed
since the worker started. The check and the trial's creation happen under one lock (see storage.py), so
local workers and workers on a shared filesystem end with exactly n_trials trials.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import optuna
import torch
from optuna.trial import TrialState

from efficientnext import config
from efficientnext.cli import UserError, load_params
from efficientnext.sweep import outputs, space, storage
from efficientnext.sweep.objective import TRIAL_FAILURES, Objective, SubsetTrainer, Trainer

OUT_DIR = Path("sweep")
TrainerFactory = Callable[[Path], Trainer]


class TrialSeededTPE(optuna.samplers.TPESampler):
    """TPE whose random state is re-seeded from (seed, trial number) before each trial.

    The sweep is reproducible from sampler_seed, and workers on other processes or machines, which
    share that seed, still draw different trials.
    """

    def __init__(self, seed: int, **kwargs: object) -> None:
        super().__init__(seed=seed, **kwargs)
        self._base_seed = seed

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        seed = self._base_seed + trial.number
        self._rng.rng.seed(seed)
        self._random_sampler._rng.rng.seed(seed)
        super().before_trial(study, trial)


PRUNERS: dict[str, Callable[[config.SweepParams], optuna.pruners.BasePruner]] = {
    "median": lambda sweep: optuna.pruners.MedianPruner(n_startup_trials=sweep.pruner_startup, n_warmup_steps=0),
    # Halving promotes the best third of each rung; it has no warm-up (bootstrap_count > 0 would prune
    # every trial until that many reached a rung, the first ones included).
    "halving": lambda sweep: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3),
    "none": lambda sweep: optuna.pruners.NopPruner(),
}


def load_study(sweep: config.SweepParams, backend: optuna.storages.BaseStorage) -> optuna.Study:
    """Create the study, or load it when it exists (a rerun resumes it)."""
    with warnings.catch_warnings():  # group=True is "experimental" in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = TrialSeededTPE(sweep.sampler_seed, n_startup_trials=sweep.startup_trials, multivariate=True,
                                 group=True)
    return optuna.create_study(storage=backend, study_name=sweep.study_name, direction="maximize",
                               sampler=sampler, pruner=PRUNERS[sweep.pruner](sweep), load_if_exists=True)


def budget_spent(study: optuna.Study, n_trials: int | None) -> bool:
    """n_trials trials have started (finished, running or failed); enqueued WAITING ones are still to run."""
    if n_trials is None:
        return False
    return sum(trial.state != TrialState.WAITING for trial in study.get_trials(deepcopy=False)) >= n_trials


def work(params: config.Params, root: Path, trainer: Trainer) -> None:
    """One worker: run trials until the study's budget is spent."""
    sweep = params.sweep
    backend = storage.open_storage(sweep, root)
    study = load_study(sweep, backend)
    objective = Objective(params, trainer)
    lock = storage.BudgetLock(sweep.storage, root)

    def run_trial(trial: optuna.Trial) -> float:
        lock.release()  # the trial exists now: other workers may check the budget
        return objective(trial)

    started = time.monotonic()
    while sweep.timeout is None or time.monotonic() - started < sweep.timeout:
        lock.acquire()
        try:
            storage.fail_dead_trials(study, backend)
            if budget_spent(study, sweep.n_trials):
                return
            study.optimize(run_trial, n_trials=1, catch=TRIAL_FAILURES)
        finally:
            lock.release()


def _worker_process(params: config.Params, root: Path, make_trainer: TrainerFactory, threads: int) -> None:
    torch.set_num_threads(threads)
    work(params, root, make_trainer(root))


def run_sweep(params: config.Params, workers: int, root: Path | None = None,
              make_trainer: TrainerFactory = SubsetTrainer) -> optuna.Study:
    """Run `workers` local worker processes (or this process alone for 1) on the study, then write outputs."""
    root = Path.cwd() if root is None else root
    backend = storage.open_storage(params.sweep, root)
    study = load_study(params.sweep, backend)  # created once here, so workers only ever load it
    if params.sweep.start_from_params and not study.get_trials(deepcopy=False):
        start = space.params_point(params)
        if start is None:
            print("sweep: params.yaml's configuration lies outside the space; not enqueued", flush=True)
        else:
            study.enqueue_trial(start)  # trial 0: the search starts from the known configuration
    if workers == 1:
        work(params, root, make_trainer(root))
    else:
        threads = max(1, (os.cpu_count() or 1) // workers)
        context = multiprocessing.get_context("spawn")
        processes = [context.Process(target=_worker_process, args=(params, root, make_trainer, threads))
                     for _ in range(workers)]
        for process in processes:
            process.start()
        for process in processes:
            process.join()
        codes = [process.exitcode for process in processes if process.exitcode != 0]
        if codes:
            raise RuntimeError(f"{len(codes)} of {workers} sweep workers failed (exit codes {codes})")
    outputs.write(study, root / OUT_DIR, params.sweep.sampler_seed)
    return study


def run(params: config.Params) -> None:
    """DVC stage `sweep`."""
    run_sweep(params, params.sweep.workers)


def add_command(subparsers: argparse._SubParsersAction) -> None:
    command = subparsers.add_parser(
        "sweep", help="work the study in sweep.storage with N local processes (or start it on N machines)")
    command.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    command.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="override a param, e.g. -S sweep.n_trials=50 (repeatable)")
    command.add_argument("--workers", type=int, default=None, metavar="N",
                         help="local worker processes (default: sweep.workers)")
    command.set_defaults(func=_command)


def _command(args: argparse.Namespace) -> None:
    params = load_params(args)
    workers = params.sweep.workers if args.workers is None else args.workers
    if workers < 1:
        raise UserError(f"--workers = {workers}: give 1 or more worker processes")
    run_sweep(params, workers)
