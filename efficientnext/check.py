"""The `check` stage, first in the DAG: the whole of params.yaml is valid and its inputs exist.

DVC empties a stage's outputs just before it runs the stage, so a bad value found by, say, the train
stage would already have cost models/ and dvclive/. `check` depends on every key of params.yaml and
every other stage depends on it, so `dvc repro` stops here first; its output, PARAMS_OK, never changes,
so a passing check re-runs nothing downstream by itself. `make repro` runs the same check before DVC.
"""

from __future__ import annotations

from pathlib import Path

from efficientnext import artifacts, config
from efficientnext.config import UserError
from efficientnext.paths import PARAMS_OK


def check_inputs(params: config.Params) -> None:
    """Raise UserError (one line) for an input params.yaml names that is not there."""
    root = Path(params.data.root)
    if params.data.source == "folder" and not root.is_dir():
        raise UserError(f"data.root = {params.data.root!r} is not a folder; point it at your images "
                        "(<root>/<class>/*.jpg, or <root>/train/<class>/ and <root>/test/<class>/)")


def run(params: config.Params) -> None:
    """The check stage (params.yaml is already validated by the time this runs)."""
    check_inputs(params)
    artifacts.write_text(PARAMS_OK, "params.yaml: ok\n")
