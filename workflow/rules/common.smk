# Shared by the rules: the validated params file and the plan (efficientnext/ablations.py).
import os
import sys
from pathlib import Path

from snakemake.utils import validate

from efficientnext import ablations, config as params_schema


envvars:
    "PATH",


validate(config, "../schemas/config.schema.yaml")
PARAMS_FILE = config["params"]

# The rules and dvc.yaml's commands run `python`: the interpreter running Snakemake (the project's venv).
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

try:
    PARAMS = params_schema.load(PARAMS_FILE)
except params_schema.ParamsError as error:  # a bad value stops here with one line, before anything runs
    print(f"error: {error}", file=sys.stderr)
    sys.exit(2)

RUN = "results/{kind}/{variant}/seed{seed}"


wildcard_constraints:
    kind="ablations|baselines",
    variant="[A-Za-z0-9_.-]+",
    seed="[0-9]+",


_plan = {}


def prepared_plan():
    """The plan; on first use also writes the runs' specs and the plan.json files (each only when its
    content changed) and reports the skipped levels."""
    if "plan" not in _plan:
        try:
            _plan["plan"] = ablations.prepare(PARAMS_FILE)
        except (params_schema.ParamsError, params_schema.UserError) as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(2)
    return _plan["plan"]


def plan():
    """The plan, for input functions: only once the DVC prefix exists (the checkpoint)."""
    checkpoints.dvc_prefix.get()
    return prepared_plan()


def run_plan():
    """The plan inside a run's job (no checkpoint, no writes: the specs exist)."""
    if "runs" not in _plan:
        _plan["runs"] = ablations.make_plan(PARAMS)
    return _plan["runs"]


def run_variant(wildcards):
    return run_plan().variant(wildcards.kind, wildcards.variant)


def summary_inputs(kind):
    """A summary's inputs: its plan.json and every run it reads (known once the DVC prefix exists)."""

    def inputs(wildcards):
        return [f"results/{kind}/{ablations.PLAN}", *ablations.run_files(plan(), kind)]

    return inputs
