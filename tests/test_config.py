"""params.yaml errors: each kind stops a stage before it writes anything, with one line naming the key path;
and the precedence of the searched keys (`sweep` marker vs. a value the user sets)."""

from __future__ import annotations

import pytest
import yaml

from conftest import ROOT
from efficientnext import config, paper
from efficientnext.stage import stage_main
from efficientnext import search_space


@pytest.mark.parametrize(("overrides", "message"), [
    ({"data.colour": 1}, "-S unknown key data.colour"),
    ({"model.atention": "se"}, "-S unknown key model.atention (did you mean model.attention?)"),
    ({"prepare.short_side": "big"},
     "-S prepare.short_side = 'big': Input should be a valid integer, unable to parse string as an integer"),
    ({"split.train": 1.5}, "-S split.train = 1.5 is out of range, allowed < 1.0"),
    ({"data.source": "web"}, "-S data.source = 'web' is not one of synthetic, folder"),
    ({"data.synthetic.broken_files": "maybe"},
     "-S data.synthetic.broken_files = 'maybe': Input should be a valid boolean, unable to interpret input"),
    ({"validate.workers": 0}, "-S validate.workers = 0 is out of range, allowed >= 1"),
    ({"model.attention": "foo"}, "-S model.attention = 'foo' is not one of se, eca, cbam, none"),
])
def test_each_kind_of_override_error_names_the_s_option_and_its_key(overrides, message):
    with pytest.raises(config.ParamsError) as err:
        config.load(ROOT / "params.yaml", overrides)
    assert str(err.value) == message


def write_params(tmp_path, text: str):
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def test_a_bad_value_in_the_file_names_the_file(tmp_path):
    raw = config.apply_overrides(yaml.safe_load((ROOT / "params.yaml").read_text()), {"split.seed": "x"})
    path = write_params(tmp_path, yaml.safe_dump(raw))
    with pytest.raises(config.ParamsError, match=r"^params.yaml: split.seed = 'x': Input should be a valid integer"):
        config.load(path)


def test_yaml_syntax_errors_carry_the_line(tmp_path):
    path = write_params(tmp_path, "data:\n  source: synthetic\n  classes: [a, b\nsplit:\n  seed: 1\n")
    with pytest.raises(config.ParamsError) as err:
        config.load(path)
    assert str(err.value) == f"{path}: line 4, column 6: not valid YAML (expected ',' or ']', but got ':')"
    assert "\n" not in str(err.value)


def test_sweep_marker_only_on_searched_keys():
    with pytest.raises(config.ParamsError) as err:
        config.load(ROOT / "params.yaml", {"train.epochs": "sweep"})
    assert str(err.value).startswith("-S train.epochs = 'sweep' but only searched keys take the sweep's choice (")


def test_params_yaml_leaves_every_searched_key_to_the_sweep():
    params = config.load(ROOT / "params.yaml")
    assert params.from_sweep == frozenset(search_space.SEARCHED_KEYS)
    assert params.dump()["model"]["attention"] == "sweep"  # round-trips through dump
    assert params.model.attention == paper.TABLE_8_4["model.attention"]  # a valid placeholder until filled


def test_a_value_the_user_sets_wins_over_the_sweeps_choice():
    params = config.with_overrides(config.load(ROOT / "params.yaml"), {"model.attention": "se"})
    assert "model.attention" not in params.from_sweep
    best = {**paper.selected_configuration(), "model.attention": "cbam", "model.kernel_size": 3}
    chosen = config.with_choices(params, best, source="best.yaml")
    assert (chosen.model.attention, chosen.model.kernel_size) == ("se", 3)
    assert chosen.from_sweep == frozenset()


def test_with_choices_names_keys_it_cannot_fill():
    params = config.load(ROOT / "params.yaml")
    with pytest.raises(config.ParamsError, match=r"^best.yaml: no value for model.activation, "):
        config.with_choices(params, {"model.attention": "se"}, source="best.yaml")


def test_a_bad_param_stops_the_stage_before_it_writes(tmp_path, monkeypatch, capsys):
    raw = config.apply_overrides(yaml.safe_load((ROOT / "params.yaml").read_text()), {"split.seed": "x"})
    write_params(tmp_path, yaml.safe_dump(raw))
    monkeypatch.chdir(tmp_path)
    from efficientnext.data.generate import run as generate

    with pytest.raises(SystemExit) as code:
        stage_main(generate, [])
    assert code.value.code == 2
    assert capsys.readouterr().err == (
        "error: params.yaml: split.seed = 'x': Input should be a valid integer, unable to parse string as an integer\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_check_names_a_missing_folder_source(tmp_path, monkeypatch, capsys):
    from efficientnext.check import run as check

    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, (ROOT / "params.yaml").read_text())
    with pytest.raises(SystemExit) as code:
        stage_main(check, ["-S", "data.source=folder", "-S", "data.root=/nowhere"])
    assert code.value.code == 2
    assert capsys.readouterr().err.startswith("error: data.root = '/nowhere' is not a folder; point it at your images")
    assert not (tmp_path / "data").exists()


def test_params_yaml_and_the_schema_cannot_drift():
    """Every key of params.yaml equals the schema's default, except the searched keys: `sweep` in the file, and
    table 8.4's value (efficientnext/paper.py, the one record of it) as the schema's placeholder."""
    in_file = yaml.safe_load((ROOT / "params.yaml").read_text())
    defaults = config.Params().dump()
    for key in search_space.SEARCHED_KEYS:
        group, leaf = key.split(".")
        assert in_file[group].pop(leaf) == "sweep", key
        assert defaults[group].pop(leaf) == paper.selected_configuration()[key], key
    assert in_file == yaml.safe_load(yaml.safe_dump(defaults))
