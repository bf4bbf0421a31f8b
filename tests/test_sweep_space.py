"""The search space is the paper's table (§5.4) row by row; each constraint rejects exactly its combinations."""

from __future__ import annotations

import itertools
from pathlib import Path

import optuna
import pytest

from efficientnext import config
from efficientnext.sweep import space
from efficientnext.sweep.space import Choice, Fixed, Uniform

ROOT_PARAMS = config.load(Path(__file__).resolve().parents[1] / "params.yaml")

# The paper's table, written out independently of efficientnext/sweep/space.py.
PAPER_TABLE = [
    ("batch size", "train.batch_size", Choice((32, 64, 128)), None),
    ("image size", "train.image_size", Choice((224, 256, 288)), None),
    ("kernel", "model.kernel_size", Choice((3, 5, 7)), None),
    ("attention", "model.attention", Choice(("se", "eca", "cbam", "none")), None),
    ("normalization", "model.norm", Choice(("batchnorm", "groupnorm", "groupnorm1", "evonorms0", "rmsnorm2d")), None),
    ("activation", "model.activation", Choice(("gelu", "silu", "relu")), None),
    ("width multiplier", "model.width", Choice((0.75, 1.0, 1.25)), None),
    ("expand ratio", "model.expand_ratio", Choice((3, 4, 5, 6)), None),
    ("final channels", "model.final_channels", Choice((1024, 1280, 1536)), None),
    ("conv bias", "model.conv_bias", Choice((True, False)), None),
    ("GN groups", "model.gn_groups", Choice((8, 16)), ("model.norm", ("groupnorm",))),
    ("drop-connect", "model.drop_connect", Uniform(0.0, 0.3), None),
    ("head hidden layers", "model.head_layers", Choice((1, 2)), None),
    ("hidden size 1", "model.hidden1", Choice((256, 512, 1024)), None),
    ("hidden size 2", "model.hidden2", Choice((128, 256, 512)), ("model.head_layers", (2,))),
    ("dropout (features)", "model.dropout_features", Uniform(0.0, 0.5), None),
    ("dropout (head 1)", "model.dropout_head1", Uniform(0.0, 0.5), None),
    ("dropout (head 2)", "model.dropout_head2", Uniform(0.0, 0.5), ("model.head_layers", (2,))),
    ("optimizer", "train.optimizer", Choice(("adamw", "adam", "sgd", "rmsprop")), None),
    ("LR head", "train.lr_head", Uniform(1e-4, 1e-2, log=True), None),
    ("LR backbone", "train.lr_backbone", Uniform(1e-5, 1e-3, log=True), None),
    ("weight decay", "train.weight_decay", Uniform(1e-6, 1e-2, log=True), None),
    ("scheduler", "train.scheduler", Choice(("onecycle", "cosine", "cosine_restarts", "step", "plateau")), None),
    ("loss", "train.loss", Choice(("ce", "focal", "asl", "dice")), None),
    ("label smoothing", "train.label_smoothing", Uniform(0.0, 0.2), None),
    ("focal α", "train.focal_alpha", Uniform(0.25, 1.0), ("train.loss", ("focal",))),
    ("focal γ", "train.focal_gamma", Uniform(1.0, 3.0), ("train.loss", ("focal",))),
    ("mixup α", "train.mixup_alpha", Uniform(0.0, 0.4), None),
    ("seed", "train.seed", Fixed(42), None),
]


def test_space_is_the_papers_table_row_by_row():
    assert [(r.label, r.key, r.domain, r.when) for r in space.SPACE] == PAPER_TABLE
    for row in space.SPACE:
        if isinstance(row.domain, Choice):  # the same Python types as the params keys (True is not 1)
            assert [type(v) for v in row.domain.values] == [type(v) for v in PAPER_TABLE[space.SPACE.index(row)][2].values]


def test_every_row_is_a_params_key_and_every_value_is_valid():
    for row in space.SPACE:
        values = row.domain.values if isinstance(row.domain, Choice) else (
            (row.domain.low, row.domain.high) if isinstance(row.domain, Uniform) else (row.domain.value,))
        for value in values:
            assert config.with_overrides(ROOT_PARAMS, {row.key: value}).dump()[row.key.split(".")[0]][row.name] == value


def _sampled(fixed: dict, n: int = 60) -> list[dict]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    return [space.suggest(study.ask(), fixed) for _ in range(n)]


def test_conditional_rows_are_sampled_only_when_active():
    for overrides in _sampled({}):
        assert ("model.gn_groups" in overrides) == (overrides["model.norm"] == "groupnorm")
        assert ("model.hidden2" in overrides) == (overrides["model.head_layers"] == 2)
        assert ("model.dropout_head2" in overrides) == (overrides["model.head_layers"] == 2)
        assert ("train.focal_alpha" in overrides) == (overrides["train.loss"] == "focal")
        assert ("train.focal_gamma" in overrides) == (overrides["train.loss"] == "focal")
        assert overrides["train.seed"] == 42


def test_fixed_rows_are_pinned_and_not_sampled():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    overrides = space.suggest(trial, {"image_size": 64, "batch_size": 32})
    assert overrides["train.image_size"] == 64 and overrides["train.batch_size"] == 32
    assert "train.image_size" not in trial.params and "train.seed" not in trial.params
    assert space.pinned({"image_size": 64}) == {"train.seed": 42, "train.image_size": 64}


def test_fixed_keys_must_be_rows_of_the_space():
    with pytest.raises(config.ParamsError) as err:
        config.with_overrides(ROOT_PARAMS, {"sweep.fixed": {"image_size": 64, "epochs": 3}})
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("override: sweep.fixed: epochs not a row of the search space; rows: batch_size, ")


def test_full_record_takes_params_values_for_inactive_rows():
    record = space.full_record({"model.head_layers": 1, "model.norm": "batchnorm"}, ROOT_PARAMS)
    assert list(record) == [row.key for row in space.SPACE]
    assert record["model.head_layers"] == 1
    assert record["model.hidden2"] == ROOT_PARAMS.model.hidden2
    assert record["model.gn_groups"] == ROOT_PARAMS.model.gn_groups
    assert record["train.focal_gamma"] == ROOT_PARAMS.train.focal_gamma


# --- constraints: over the full product of the keys each one reads, it rejects exactly its combinations ---

def _rejected(constraint_name: str, grid: dict[str, tuple], params: config.Params = ROOT_PARAMS) -> set[tuple]:
    constraint = next(c for c in space.CONSTRAINTS if c.name == constraint_name)
    base = space.full_record({}, params)
    rejected = set()
    for combo in itertools.product(*grid.values()):
        record = {**base, **dict(zip(grid, combo))}
        found = constraint.violation(record, params)
        if found is not None:
            assert found.startswith(f"{constraint_name}: ") and "\n" not in found
            rejected.add(combo)
    return rejected


def _choices(key: str) -> tuple:
    return next(r for r in space.SPACE if r.key == key).domain.values


def test_expand_ratio_constraint_rejects_exactly_6():
    assert _rejected("expand_ratio_3_to_5", {"model.expand_ratio": _choices("model.expand_ratio")}) == {(6,)}


def test_evonorm_constraint_rejects_exactly_its_non_silu_activations():
    grid = {"model.norm": _choices("model.norm"), "model.activation": _choices("model.activation")}
    assert _rejected("evonorm_own_activation", grid) == {("evonorms0", "gelu"), ("evonorms0", "relu")}


def test_optimizer_norm_constraint_rejects_exactly_the_unstable_pairs():
    grid = {"train.optimizer": _choices("train.optimizer"), "model.norm": _choices("model.norm")}
    assert _rejected("optimizer_norm_unstable", grid) == {
        ("rmsprop", "groupnorm"), ("rmsprop", "groupnorm1"), ("rmsprop", "evonorms0"), ("rmsprop", "rmsnorm2d")}


def test_gn_groups_constraint_rejects_exactly_indivisible_channels():
    grid = {"model.norm": _choices("model.norm"), "model.gn_groups": _choices("model.gn_groups"),
            "model.width": _choices("model.width")}
    # With the default stage table every width has a layer 16 does not divide (24 channels at 0.75 and 1.0, 40 at 1.25).
    assert _rejected("gn_groups_divide_channels", grid) == {
        (norm, 16, width) for norm in ("groupnorm", "evonorms0") for width in (0.75, 1.0, 1.25)}
    multiples_of_16 = config.with_overrides(ROOT_PARAMS, {
        "model.stages": [[1, 32, 2, 4, 3], [1, 48, 2, 4, 3], [1, 64, 2, 4, 3], [1, 96, 2, 4, 3], [1, 128, 1, 4, 3]]})
    assert _rejected("gn_groups_divide_channels", {**grid, "model.width": (1.0,)}, multiples_of_16) == set()


def test_violation_names_the_first_broken_constraint():
    record = space.full_record({"model.expand_ratio": 6, "model.norm": "evonorms0", "model.activation": "relu"},
                               ROOT_PARAMS)
    assert space.violation(record, ROOT_PARAMS).startswith("expand_ratio_3_to_5: model.expand_ratio=6 (")
    assert space.violation(space.full_record({"model.expand_ratio": 4}, ROOT_PARAMS), ROOT_PARAMS) is None


def test_markdown_table_lists_every_row():
    lines = space.markdown_table().splitlines()
    assert lines[:2] == ["| row | params key | values |", "|---|---|---|"]
    assert lines[2:] == [f"| {r.label} | `{r.key}` | {r.domain.describe()}"
                         + (f", only when {r.when[0]} is {r.when[1][0]}" if r.when else "") + " |" for r in space.SPACE]
    assert lines[12] == "| GN groups | `model.gn_groups` | {8, 16}, only when model.norm is groupnorm |"
    assert lines[21] == "| LR head | `train.lr_head` | log-U[0.0001, 0.01] |"
