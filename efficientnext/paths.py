"""The pipeline's paths, named once: the data stages' fixed locations and a training run's layout.

dvc.yaml spells the same paths (tests/test_dvc_deps.py checks they agree). A run directory holds what
one training and its evaluation write; `RunPaths()` is the DVC pipeline's own (the repository root), and
`RunPaths(Path("results/x"))` keeps a second workflow's run (an ablation) entirely under results/x/.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PARAMS_OK = Path("data/params.ok")
RAW = Path("data/raw")
MANIFEST = Path("data/manifest.csv")
SPLITS = Path("data/splits")
PREPARED = Path("data/prepared")
PREPARED_INDEX = PREPARED / "index.csv"
PREPARED_PIXELS = PREPARED / "pixels.u8"
SUBSET_CSV = Path("data/subset.csv")
VALIDATE_METRICS = Path("metrics/validate.json")
SPLIT_METRICS = Path("metrics/split.json")
SUBSET_METRICS = Path("metrics/subset.json")
SWEEP_DIR = Path("sweep")
BEST_YAML = SWEEP_DIR / "best.yaml"
STUDY_JSON = SWEEP_DIR / "study.json"


SPLIT_NAMES = ("train", "val", "test")


def split_csv(split: str) -> Path:
    return SPLITS / f"{split}.csv"


@dataclass(frozen=True)
class RunPaths:
    """Where one training run and its evaluation write, relative to `root`."""

    root: Path = Path(".")

    @property
    def checkpoints(self) -> Path:
        return self.root / "models"

    @property
    def best(self) -> Path:
        return self.checkpoints / "best.pt"

    @property
    def onnx(self) -> Path:
        return self.checkpoints / "model.onnx"

    @property
    def live(self) -> Path:
        return self.root / "dvclive"

    @property
    def train_metrics(self) -> Path:
        return self.root / "metrics/train.json"

    @property
    def test_metrics(self) -> Path:
        return self.root / "metrics/test.json"

    @property
    def predictions(self) -> Path:
        return self.root / "predictions/test.csv"

    @property
    def plots(self) -> Path:
        return self.root / "plots"

    @property
    def reliability(self) -> Path:
        return self.plots / "reliability.csv"

    @property
    def roc(self) -> Path:
        return self.plots / "roc"
