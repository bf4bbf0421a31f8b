"""Does pruning pay? The sweep of params.yaml run twice from fresh studies with the same sampler seed: with
sweep.pruner (median unless set otherwise) and with none. Prints mean time per trained trial and the best
macro-F1 side by side (target: at most half the time, best macro-F1 within 0.01).

Needs data/prepared and data/subset.csv (`dvc repro subset`); writes nothing into sweep/.
Usage: python benchmarks/sweep_pruning.py [-S KEY=VALUE ...]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna
from optuna.trial import TrialState

from efficientnext import config
from efficientnext.paths import PREPARED, SUBSET_CSV
from efficientnext.sweep import identity, storage, sweep as sweep_stage
from efficientnext.sweep.objective import SubsetTrainer
from efficientnext.sweep.records import REJECTED_ATTR


def cpu_seconds() -> float:
    """CPU time of this process and its reaped children (data-loader workers): robust to a shared machine."""
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))


def one_sweep(params: config.Params, pruner: str, root: Path) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as tmp:
        run = config.with_overrides(params, {"sweep.pruner": pruner, "sweep.storage": f"sqlite:///{tmp}/study.db"})
        name = identity.study_name(run, identity.identity(run, root))
        started, cpu_started = time.perf_counter(), cpu_seconds()
        sweep_stage.work(run, root, SubsetTrainer(root), name)
        wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
        trials = optuna.load_study(study_name=name, storage=storage.open_storage(run.sweep, root)).get_trials()
    trained = [t for t in trials if t.intermediate_values]  # reported at least one epoch
    complete = [t.value for t in trials if t.state == TrialState.COMPLETE]
    return {
        "pruner": pruner, "trials": len(trials), "trained": len(trained),
        "stopped early": sum(t.state == TrialState.PRUNED for t in trained),
        "rejected": sum(REJECTED_ATTR in t.user_attrs for t in trials),
        "mean s / trained trial": statistics.mean(t.duration.total_seconds() for t in trained) if trained else 0.0,
        "epochs run": sum(len(t.intermediate_values) for t in trained),
        "wall s": wall, "cpu s": cpu, "best macro-F1": max(complete) if complete else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    root = Path.cwd()
    if not (root / SUBSET_CSV).is_file() or not (root / PREPARED).is_dir():
        print(f"error: {SUBSET_CSV} or {PREPARED} missing; run `dvc repro subset` first", file=sys.stderr)
        return 2
    params = config.load("params.yaml", dict(config.parse_override(item) for item in args.overrides))
    if params.sweep.pruner == "none":
        params = config.with_overrides(params, {"sweep.pruner": "median"})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    rows = [one_sweep(params, pruner, root) for pruner in (params.sweep.pruner, "none")]
    sweep = params.sweep
    print(f"sweep: {sweep.n_trials} trials x {sweep.epochs} epochs, seed {sweep.sampler_seed}, fixed {sweep.fixed}")
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(f"{v:.3f}" if isinstance(v, float) else str(v) for v in row.values()) + " |")
    with_pruner, without = rows
    ratio = with_pruner["mean s / trained trial"] / max(without["mean s / trained trial"], 1e-9)
    gap = without["best macro-F1"] - with_pruner["best macro-F1"]
    print(f"mean trained-trial time ratio {ratio:.2f} (target <= 0.5), "
          f"CPU ratio {with_pruner['cpu s'] / max(without['cpu s'], 1e-9):.2f}, "
          f"best macro-F1 gap {gap:+.3f} (target <= 0.01)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
