"""What the results report reads: one artifact per notebook parameter, with the stage that writes it.

A notebook's `parameters` cell holds exactly its report's names (render checks), so a report is a function
of these files alone; a missing one stops the report before papermill starts, with one line naming it and
the stage (or Snakemake target) that makes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from efficientnext.config import UserError
from efficientnext.paths import (BEST_YAML, SPLIT_METRICS, SUBSET_METRICS, SWEEP_DIR, VALIDATE_METRICS,
                                 RunPaths)
from efficientnext.sweep.outputs import HISTORY_CSV, IMPORTANCES_JSON, TRIALS_CSV


@dataclass(frozen=True)
class Artifact:
    path: Path
    maker: str  # how to make it, e.g. "the evaluate stage (`dvc repro evaluate`)"


def _stage(name: str) -> str:
    return f"the {name} stage (`dvc repro {name}`)"


_RUN = RunPaths()

RESULTS: dict[str, Artifact] = {
    "test_metrics": Artifact(_RUN.test_metrics, _stage("evaluate")),
    "reliability_curve": Artifact(_RUN.reliability, _stage("evaluate")),
    "roc_curves": Artifact(_RUN.roc, _stage("evaluate")),
    "train_metrics": Artifact(_RUN.train_metrics, _stage("train")),
    "live_params": Artifact(_RUN.live / "params.yaml", _stage("train")),   # DVCLive's layout
    "live_curves": Artifact(_RUN.live / "plots" / "metrics", _stage("train")),
    "checkpoint": Artifact(_RUN.best, _stage("train")),
    "best_yaml": Artifact(BEST_YAML, _stage("select")),
    "sweep_trials": Artifact(SWEEP_DIR / TRIALS_CSV, _stage("sweep")),
    "sweep_history": Artifact(SWEEP_DIR / HISTORY_CSV, _stage("sweep")),
    "sweep_importances": Artifact(SWEEP_DIR / IMPORTANCES_JSON, _stage("sweep")),
    "validate_metrics": Artifact(VALIDATE_METRICS, _stage("validate")),
    "split_metrics": Artifact(SPLIT_METRICS, _stage("split")),
    "subset_metrics": Artifact(SUBSET_METRICS, _stage("subset")),
}
SYNTHETIC_DATA = "synthetic_data"  # the generated data set's folder, None for the user's data (the banner)


def require(artifacts: dict[str, Artifact], root: Path = Path(".")) -> None:
    """Raise UserError naming the first missing artifact and what makes it."""
    for artifact in artifacts.values():
        if not (root / artifact.path).exists():
            raise UserError(f"{artifact.path} not found: it is made by {artifact.maker}")


def parameters(artifacts: dict[str, Artifact]) -> dict[str, str]:
    """A notebook's parameters: each artifact's path."""
    return {name: str(artifact.path) for name, artifact in artifacts.items()}
