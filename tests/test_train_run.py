"""The train stage: which configuration it trains (precedence), and a run directory it writes only into."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, dvc, run
from efficientnext import config, paper
from efficientnext.config import UserError
from efficientnext import search_space
from efficientnext.choices import chosen_params


def write_best(tmp_path: Path, **choices) -> Path:
    path = tmp_path / "best.yaml"
    record = {**paper.selected_configuration(), "train.image_size": 64, "train.batch_size": 32, **choices}
    path.write_text(yaml.safe_dump({"trial": 3, "metric": "macro_f1", "value": 0.9, "params": record}))
    return path


def test_best_yaml_fills_the_keys_left_to_the_sweep(tmp_path: Path):
    params = config.load(ROOT / "params.yaml")
    chosen, sources = chosen_params(params, write_best(tmp_path, **{"model.attention": "cbam", "train.lr_head": 2e-4}))
    assert (chosen.model.attention, chosen.train.lr_head, chosen.train.image_size) == ("cbam", 2e-4, 64)
    assert chosen.train.epochs == params.train.epochs  # keys outside the space stay params.yaml's
    assert set(sources.values()) == {"sweep"} and list(sources) == list(search_space.SEARCHED_KEYS)


def test_a_key_the_user_sets_wins_and_is_named(tmp_path: Path, capsys):
    params = config.load(ROOT / "params.yaml", {"model.attention": "se"})
    chosen, sources = chosen_params(params, write_best(tmp_path, **{"model.attention": "cbam"}))
    assert chosen.model.attention == "se" and sources["model.attention"] == "params"
    out = capsys.readouterr().out.splitlines()
    assert out == [f"train: 27 searched keys from {tmp_path / 'best.yaml'} (trial 3); "
                   "params.yaml overrides model.attention=se (sweep: cbam)"]


def test_choices_from_paper_trains_table_8_4_with_pinned_rows(capsys):
    params = config.load(ROOT / "params.yaml", {"train.choices_from": "paper"})
    chosen, sources = chosen_params(params, Path("/nowhere/best.yaml"))
    pins = {"train.image_size": 64, "train.batch_size": 32, "train.optimizer": "adamw", "train.scheduler": "onecycle",
            "train.lr_head": 3e-3, "train.lr_backbone": 3e-3}  # the CPU default's sweep.fixed
    expected = {**paper.selected_configuration(), **pins}
    assert {key: chosen.value(key) for key in search_space.SEARCHED_KEYS} == {key: expected[key] for key in search_space.SEARCHED_KEYS}
    assert set(sources.values()) == {"paper"}
    assert capsys.readouterr().out == (
        "train: 28 searched keys from table 8.4 with train.batch_size=32, train.image_size=64, train.lr_backbone=0.003, "
        "train.lr_head=0.003, train.optimizer=adamw, train.scheduler=onecycle pinned by sweep.fixed\n")


def test_missing_best_yaml_is_a_one_line_error(tmp_path: Path):
    with pytest.raises(UserError, match=r"best.yaml not found, and params.yaml leaves 28 keys to the sweep: run it "):
        chosen_params(config.load(ROOT / "params.yaml"), tmp_path / "best.yaml")


@pytest.mark.slow
def test_a_run_directory_holds_everything_the_run_writes(tiny_repo: Path):
    dvc(tiny_repo, "repro", "prepare", "subset")
    before = {p for p in tiny_repo.rglob("*") if ".git" not in p.parts and ".dvc" not in p.parts}
    python = str(Path(run(["which", "python"], tiny_repo).stdout.strip()))
    for stage in ("train", "evaluate"):
        run([python, "-m", f"stages.{stage}", "--out", "results/demo", "-S", "train.epochs=1",
             "-S", "train.choices_from=paper"], tiny_repo)
    written = {p for p in tiny_repo.rglob("*") if ".git" not in p.parts and ".dvc" not in p.parts} - before
    assert written and all(p.relative_to(tiny_repo).parts[:2] == ("results", "demo") or p == tiny_repo / "results"
                           for p in written)
    demo = tiny_repo / "results/demo"
    assert {"models/best.pt", "models/last.pt", "metrics/train.json", "metrics/test.json", "dvclive/params.yaml",
            "predictions/test.csv"} <= {p.relative_to(demo).as_posix() for p in demo.rglob("*") if p.is_file()}
    assert json.loads((demo / "metrics/train.json").read_text())["epochs"] == 1
    # resume works the same inside the run directory: a rerun finds the finished run and keeps its result
    again = run([python, "-m", "stages.train", "--out", "results/demo", "-S", "train.epochs=1",
                 "-S", "train.choices_from=paper"], tiny_repo)
    assert "results/demo/models/last.pt: not resuming, it is a finished run" in again.stdout
    shutil.rmtree(demo)
