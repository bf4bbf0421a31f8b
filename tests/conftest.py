"""Shared fixtures: a temporary git copy of this repository with the tiny profile, and DVC in it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from efficientnext import config
from efficientnext.worktree import copy_worktree, write_params  # noqa: F401  (tests import write_params from here)

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent
TINY_PROFILE = yaml.safe_load((ROOT / "tests/profiles/tiny.yaml").read_text())


def run(cmd: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    """Run a command with the venv first on PATH (dvc.yaml's `python` is the venv's)."""
    env = {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def dvc(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return run([str(VENV_BIN / "dvc"), *args], cwd=repo, check=check)


def make_repo(dest: Path, overrides: dict[str, Any] | None = None) -> Path:
    """Copy the working tree (tracked and non-ignored files) to `dest`, apply the tiny profile, git-commit it."""
    return copy_worktree(ROOT, dest, {**TINY_PROFILE, **(overrides or {})})


@pytest.fixture
def tiny_repo(tmp_path: Path) -> Path:
    """A fresh temporary git copy of the repository on the tiny profile."""
    return make_repo(tmp_path / "repo")


@pytest.fixture
def tiny_params() -> config.Params:
    """The tiny profile as validated Params (for library-level tests)."""
    return config.load(ROOT / "params.yaml", TINY_PROFILE)


def tiny_classifier(attention: str = "eca", norm: str = "batchnorm", seed: int = 0) -> tuple[Any, config.Params]:
    """A tiny EfficientNext of the tiny profile (eval mode) whose norms hold the running statistics of real
    forward passes (with the initial ones, a fresh network gives every image nearly the same probabilities);
    and the params it was built from."""
    import torch

    from efficientnext.models import create_model

    params = config.load(ROOT / "params.yaml", TINY_PROFILE)
    torch.manual_seed(seed)
    model = create_model(params.model.model_copy(update={"attention": attention, "norm": norm}),
                         len(params.data.classes))
    batch = torch.rand(16, 3, params.train.image_size, params.train.image_size) * 4 - 2
    with torch.no_grad():
        for _ in range(30):  # running statistics converge to the batch's (momentum 0.1)
            model.train()(batch)
    model.eval()
    return model, params
