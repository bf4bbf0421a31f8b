"""The `sweep` stage and `efficientnext sweep --workers N`: workers on one Optuna study until its budget is spent.

The study is `<sweep.study_name>-<digest>` of its data and search (identity.py): new data, space or budget
start a new study; the same inputs resume it. Trial 0 is table 8.4 (`sweep.start_from_paper`).

Budget: a worker starts a trial only while fewer than `sweep.n_trials` trials have trained or are training
(complete, pruned by the pruner, failed or running; rejected ones, which never train, do not count) and
`sweep.timeout` seconds have not passed since the worker started. The check and the trial's creation
happen under one lock (see storage.py), so local workers and workers on a shared filesystem end with
exactly n_trials trained trials. A space whose every draw is rejected stops after MAX_REJECTED_PER_TRIAL
times n_trials rejections with a one-line error.
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

from efficientnext import artifacts, config, paper
from efficientnext.stage import load_params
from efficientnext.config import UserError
from efficientnext.paths import STUDY_JSON, SWEEP_DIR
from efficientnext import search_space
from efficientnext.sweep import identity, outputs, storage
from efficientnext.sweep.objective import TRIAL_FAILURES, Objective, SubsetTrainer, Trainer
from efficientnext.sweep.records import REJECTED_ATTR

MAX_REJECTED_PER_TRIAL = 20
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


def load_study(sweep: config.SweepParams, backend: optuna.storages.BaseStorage, name: str) -> optuna.Study:
    """Create the study, or load it when it exists (a rerun resumes it)."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one short line per trial comes from `log_trial`
    with warnings.catch_warnings():  # group=True is "experimental" in Optuna 5
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = TrialSeededTPE(sweep.sampler_seed, n_startup_trials=sweep.startup_trials, multivariate=True,
                                 group=True)
    return optuna.create_study(storage=backend, study_name=name, direction="maximize",
                               sampler=sampler, pruner=PRUNERS[sweep.pruner](sweep), load_if_exists=True)


def rejected(trial: optuna.trial.FrozenTrial) -> bool:
    return REJECTED_ATTR in trial.user_attrs


def budget_spent(study: optuna.Study, sweep: config.SweepParams) -> bool:
    """n_trials trials have trained or are training; raises UserError when rejections never end."""
    trials = study.get_trials(deepcopy=False)
    if sweep.n_trials is None:
        return False
    refused = sum(rejected(trial) for trial in trials)
    if refused >= MAX_REJECTED_PER_TRIAL * sweep.n_trials:
        raise UserError(f"sweep: {refused} trials rejected by the constraints (see sweep/trials.csv); "
                        "widen the space or loosen sweep.fixed")
    started = sum(trial.state != TrialState.WAITING and not rejected(trial) for trial in trials)
    return started >= sweep.n_trials


def log_trial(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """One short line per finished trial (Optuna's own lines print every parameter)."""
    if rejected(trial):
        outcome = f"rejected, {trial.user_attrs[REJECTED_ATTR].split(' (')[0]}"
    elif trial.state == TrialState.COMPLETE:
        outcome = f"macro-F1 {trial.value:.4f}"
    else:
        outcome = trial.state.name.lower()
    seconds = f" in {trial.duration.total_seconds():.0f} s" if trial.duration else ""
    print(f"sweep: trial {trial.number} {outcome}{seconds}", flush=True)


def work(params: config.Params, root: Path, trainer: Trainer, name: str) -> None:
    """One worker: run trials until the study's budget is spent."""
    sweep = params.sweep
    backend = storage.open_storage(sweep, root)
    study = load_study(sweep, backend, name)
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
            if budget_spent(study, sweep):
                return
            study.optimize(run_trial, n_trials=1, catch=TRIAL_FAILURES, callbacks=[log_trial])
        finally:
            lock.release()


def _worker_process(params: config.Params, root: Path, make_trainer: TrainerFactory, threads: int,
                    name: str) -> None:
    torch.set_num_threads(threads)
    work(params, root, make_trainer(root), name)


def enqueue_paper(study: optuna.Study, sweep: config.SweepParams) -> None:
    """Trial 0: table 8.4, its pinned rows at their pinned values; says which rows it could not take as-is."""
    point, left_out = search_space.enqueue_point(paper.selected_configuration(), sweep.space, sweep.fixed)
    study.enqueue_trial(point)
    changes = "; ".join(f"{key} {why}" for key, why in left_out.items())
    print(f"sweep: trial 0 is table 8.4{f' ({changes})' if changes else ''}", flush=True)


def run_sweep(params: config.Params, workers: int, root: Path | None = None,
              make_trainer: TrainerFactory = SubsetTrainer) -> optuna.Study:
    """Run `workers` local worker processes (or this process alone for 1) on the study, then write outputs."""
    root = Path.cwd() if root is None else root
    record = identity.identity(params, root)
    name = identity.study_name(params, record)
    backend = storage.open_storage(params.sweep, root)
    study = load_study(params.sweep, backend, name)  # created once here, so workers only ever load it
    if params.sweep.start_from_paper and not study.get_trials(deepcopy=False):
        enqueue_paper(study, params.sweep)
    try:  # the outputs record what happened even when the sweep stops with an error
        if budget_spent(study, params.sweep):
            print(f"sweep: study {name} already has its {params.sweep.n_trials} trained trials; nothing to run "
                  "(raise sweep.n_trials for more: that starts a new study)", flush=True)
        elif workers == 1:
            work(params, root, make_trainer(root), name)
        else:
            failed = run_workers(params, root, make_trainer, workers, name)
            budget_spent(study, params.sweep)  # a worker stopped by endless rejections: the same one line here
            if failed:
                raise RuntimeError(f"{len(failed)} of {workers} sweep workers failed (exit codes {failed})")
    finally:
        outputs.write(study, root / SWEEP_DIR, params.sweep.sampler_seed)
        artifacts.write_json(root / STUDY_JSON, {"study_name": name, "identity": record})
    return study


def run_workers(params: config.Params, root: Path, make_trainer: TrainerFactory, workers: int,
                name: str) -> list[int]:
    """`workers` spawned processes on the study, the cores split between them; the failed ones' exit codes."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_worker_process, args=(params, root, make_trainer, threads, name))
                 for _ in range(workers)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    return [process.exitcode for process in processes if process.exitcode != 0]


def run(params: config.Params) -> None:
    """DVC stage `sweep`."""
    run_sweep(params, params.sweep.workers)


def add_command(subparsers: argparse._SubParsersAction) -> None:
    command = subparsers.add_parser(
        "sweep", help="work the study in sweep.storage with N local processes (or start it on N machines); "
                      "`sweep space` prints the active search space")
    command.add_argument("action", nargs="?", choices=("run", "space"), default="run",
                         help="run (default): work the study; space: print the active search space")
    command.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    command.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                         help="override a param, e.g. -S sweep.n_trials=50 (repeatable)")
    command.add_argument("--workers", type=int, default=None, metavar="N",
                         help="local worker processes (default: sweep.workers)")
    command.add_argument("--markdown", action="store_true", help="space: print the README's Markdown table")
    command.set_defaults(func=_command)


def print_space(name: search_space.SpaceName, markdown: bool) -> None:
    if markdown:
        print(search_space.markdown_table(name))
        return
    records = [{column: value for column, value in record.items() if column != "rationale"}
               for record in search_space.table(name)]
    widths = {column: max(len(column), *(len(r[column]) for r in records)) for column in records[0]}
    print(f"sweep.space = {name}")
    for record in [{column: column for column in widths}, *records]:
        print("  ".join(str(record[column]).ljust(width) for column, width in widths.items()).rstrip())


def _command(args: argparse.Namespace) -> None:
    params = load_params(args)
    if args.action == "space":
        print_space(params.sweep.space, args.markdown)
        return
    workers = params.sweep.workers if args.workers is None else args.workers
    if workers < 1:
        raise UserError(f"--workers = {workers}: give 1 or more worker processes")
    run_sweep(params, workers)
