"""The train stage's configuration choice: sweep/best.yaml over params.yaml when train.config_from is best."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from efficientnext import config
from efficientnext.cli import UserError
from efficientnext.train.run import chosen_params

ROOT = Path(__file__).resolve().parents[1]


def test_best_yaml_overrides_the_searched_keys(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sweep").mkdir()
    best = {"trial": 3, "metric": "macro_f1", "value": 0.9,
            "params": {"train.lr_head": 0.01, "model.attention": "se", "train.loss": "focal"}}
    (tmp_path / "sweep/best.yaml").write_text(yaml.safe_dump(best))
    params = config.load(ROOT / "params.yaml", {"train.config_from": "best"})
    chosen = chosen_params(params)
    assert (chosen.train.lr_head, chosen.model.attention, chosen.train.loss) == (0.01, "se", "focal")
    assert chosen.train.epochs == params.train.epochs  # keys best.yaml does not name stay as in params.yaml


def test_missing_best_yaml_is_a_one_line_error(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="sweep/best.yaml not found"):
        chosen_params(config.load(ROOT / "params.yaml", {"train.config_from": "best"}))


def test_config_from_params_ignores_the_sweep(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = config.load(ROOT / "params.yaml", {"train.config_from": "params"})
    assert chosen_params(params) is params
