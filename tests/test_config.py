"""params.yaml errors: each kind stops a stage before it writes anything, with one line naming the key path."""

from __future__ import annotations

import pytest
import yaml

from conftest import ROOT
from efficientnext import cli, config


@pytest.mark.parametrize(("overrides", "message"), [
    ({"data.colour": 1}, "params.yaml: unknown key data.colour"),
    ({"prepare.short_side": "big"},
     "params.yaml: prepare.short_side = 'big': Input should be a valid integer, unable to parse string as an integer"),
    ({"split.train": 1.5}, "params.yaml: split.train = 1.5 is out of range, allowed < 1.0"),
    ({"data.source": "web"}, "params.yaml: data.source = 'web' is not one of synthetic, folder"),
    ({"data.synthetic.broken_files": "maybe"},
     "params.yaml: data.synthetic.broken_files = 'maybe': Input should be a valid boolean, unable to interpret input"),
    ({"validate.workers": 0}, "params.yaml: validate.workers = 0 is out of range, allowed >= 1"),
])
def test_each_kind_of_params_error_names_its_key(overrides, message):
    with pytest.raises(config.ParamsError) as err:
        config.load(ROOT / "params.yaml", overrides)
    assert str(err.value) == message


def test_a_bad_param_stops_the_stage_before_it_writes(tmp_path, monkeypatch, capsys):
    raw = config.apply_overrides(yaml.safe_load((ROOT / "params.yaml").read_text()), {"split.seed": "x"})
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["stage", "generate"]) == 2
    assert capsys.readouterr().err == (
        "error: params.yaml: split.seed = 'x': Input should be a valid integer, unable to parse string as an integer\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
