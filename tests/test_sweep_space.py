"""The search space is the paper's table (§5.4) row by row, the extended space adds exactly its labelled
values, the constraints reject exactly their combinations, and every value of the space is structurally
feasible (no trial can be rejected for a value that never builds)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import optuna
import pytest
import torch

from efficientnext import cli, config, models, paper
from efficientnext import search_space
from efficientnext.sweep import constraints
from efficientnext.search_space import Choice, Fixed, Uniform

ROOT = Path(__file__).resolve().parents[1]
ROOT_PARAMS = config.load(ROOT / "params.yaml")
TWO_LAYERS = ("model.head_layers", (2,))
FOCAL = ("train.loss", ("focal",))

# §5.4 of the paper, written out independently of efficientnext/sweep/search_space.py: the paper's label, the
# params key, the values, the condition under which the row is sampled, and the paper's rationale.
PAPER_TABLE = [
    ("Batch size", "train.batch_size", Choice((16, 32, 48)), None, "Throughput vs. stability trade-off"),
    ("Image size", "train.image_size", Choice((224, 260)), None, "Accuracy vs. compute; maintains efficiency"),
    ("Kernel size (depthwise)", "model.kernel_size", Choice((3, 5, 7)), None,
     "Receptive field; larger kernels inspired by ConvNeXt"),
    ("Attention type", "model.attention", Choice(("eca", "se", "cbam", "none")), None,
     "Channel/spatial emphasis vs. overhead"),
    # {BN, LN-like via GN(1), GN, EvoNorm, RMSNorm}
    ("Normalization", "model.norm", Choice(("batchnorm", "groupnorm1", "groupnorm", "evonorms0", "rmsnorm2d")), None,
     "Stability across depths and batch regimes"),
    ("Activation", "model.activation", Choice(("silu", "gelu", "relu")), None, "Smoothness and optimization behavior"),
    ("Width multiplier", "model.width", Choice((0.75, 1.0, 1.25)), None, "Capacity scaling without redesign"),
    ("Expand ratio", "model.expand_ratio", Choice((3, 4, 5)), None, "Inverted bottleneck capacity"),
    ("Final channels", "model.final_channels", Choice((1024, 1280, 1536)), None, "Head representation richness"),
    ("Conv bias usage", "model.conv_bias", Choice((False, True)), None, "Ablation of bias in conv layers"),
    ("GN groups (LN-like)", "model.gn_groups", Choice((1, 8, 16)), ("model.norm", ("groupnorm",)),
     "LayerNorm-like via GroupNorm; stability under small batches"),
    ("Drop-connect rate", "model.drop_connect", Uniform(0.0, 0.3), None, "Stochastic depth regularization"),
    ("Hidden layers (head)", "model.head_layers", Choice((1, 2)), None, "Separable vs. compact MLP head"),
    ("Hidden size 1", "model.hidden1", Choice((512, 1024)), None, "Head capacity"),
    ("Hidden size 2", "model.hidden2", Choice((256, 512)), TWO_LAYERS, "Secondary head capacity"),
    ("Dropout (features)", "model.dropout_features", Choice((0.1, 0.2)), None, "Regularize pooled features"),
    ("Dropout (head 1/2)", "model.dropout_head1", Choice((0.3, 0.5)), None, "Regularize MLP head"),
    ("Dropout (head 1/2)", "model.dropout_head2", Choice((0.3, 0.5)), TWO_LAYERS, "Regularize MLP head"),
    ("Optimizer", "train.optimizer", Choice(("adamw", "adam", "sgd", "rmsprop")), None,
     "Convergence vs. generalization"),
    ("LR (head)", "train.lr_head", Uniform(1e-4, 1e-3, log=True), None, "Faster adaptation of new head"),
    ("LR (backbone)", "train.lr_backbone", Uniform(1e-5, 5e-4, log=True), None, "Conservative backbone updates"),
    ("Weight decay", "train.weight_decay", Uniform(1e-6, 5e-3, log=True), None, "Regularization strength"),
    ("Scheduler", "train.scheduler", Choice(("onecycle", "cosine", "step", "plateau")), None,
     "Learning rate dynamics"),
    ("Loss function", "train.loss", Choice(("ce", "focal", "asl", "dice")), None, "Robustness to imbalance"),
    ("Label smoothing", "train.label_smoothing", Choice((0.0, 0.05)), None, "Calibration"),
    ("Focal α", "train.focal_alpha", Choice((0.25, 0.5)), FOCAL, "Class weighting in Focal loss"),
    ("Focal γ", "train.focal_gamma", Choice((1.0, 2.0, 3.0)), FOCAL, "Hard example focusing"),
    ("Mixup α", "train.mixup_alpha", Choice((0.0, 0.2)), None, "Manifold mixup regularization"),
    ("Seed", "train.seed", Fixed(42), None, "Determinism where feasible"),
]
ALL_KEYS = [key for _, key, *_ in PAPER_TABLE]

# The configuration every param takes in the tests below: params.yaml with table 8.4 for the keys it leaves
# to the sweep.
BASE = config.with_choices(ROOT_PARAMS, paper.selected_configuration(), source="table 8.4")


def _values(domain) -> tuple:
    """The values a domain can take that a test can enumerate (a Uniform's bounds)."""
    if isinstance(domain, Choice):
        return domain.values
    if isinstance(domain, Uniform):
        return (domain.low, domain.high)
    return (domain.value,)


def _domain(space_name: str, key: str):
    return next(row.domain for row in search_space.rows(space_name) if row.key == key)


# --- the table ---

def test_paper_space_is_the_papers_table_row_by_row():
    assert [(r.label.casefold(), r.key, r.domain, r.when, r.rationale.casefold()) for r in search_space.PAPER_SPACE] == [
        (label.casefold(), key, domain, when, why.casefold()) for label, key, domain, when, why in PAPER_TABLE]
    for row, (_, _, domain, _, _) in zip(search_space.PAPER_SPACE, PAPER_TABLE):
        # the same Python types as the paper's values and the params keys (True is not 1, 1.0 is not 1)
        assert [type(v) for v in _values(row.domain)] == [type(v) for v in _values(domain)], row.key
        assert type(row.domain) is type(domain)
        assert row.origin == "paper"
    assert search_space.rows("paper") == search_space.PAPER_SPACE


def test_extended_space_adds_exactly_cosine_restarts_to_the_scheduler_row():
    extended = search_space.rows("extended")
    assert [row.key for row in extended] == ALL_KEYS
    changed = [(old, new) for old, new in zip(search_space.PAPER_SPACE, extended) if old != new]
    assert len(changed) == 1
    [(old, new)] = changed
    assert new.key == "train.scheduler" and new.label == old.label and new.when is None
    assert new.domain == Choice(("onecycle", "cosine", "step", "plateau", "cosine_restarts"))
    assert new.origin.startswith("extension: ") and "8.4" in new.origin
    assert search_space.SPACE_NAMES == ("paper", "extended")
    assert config.SweepParams().space == "extended"  # the default


def test_searched_keys_are_every_row_but_the_fixed_seed():
    assert search_space.SEARCHED_KEYS == tuple(key for key in ALL_KEYS if key != "train.seed")
    # params.yaml leaves every searched key to the sweep, and only those
    assert ROOT_PARAMS.from_sweep == frozenset(search_space.SEARCHED_KEYS)
    assert config.field_choices(config.ModelParams, "gn_groups") == (1, 8, 16)


@pytest.mark.parametrize("space_name", search_space.SPACE_NAMES)
def test_every_value_of_the_space_is_a_valid_params_value(space_name):
    for row in search_space.rows(space_name):
        for value in _values(row.domain):
            trained = config.with_overrides(BASE, {row.key: value})
            assert trained.value(row.key) == value and type(trained.value(row.key)) is type(value), (row.key, value)


def test_table_8_4_and_the_unstated_rows_give_every_row_a_value_inside_the_extended_space():
    assert set(paper.TABLE_8_4).isdisjoint(paper.UNSTATED)
    record = paper.selected_configuration()
    assert sorted(record) == sorted(ALL_KEYS)
    for row in search_space.rows("extended"):
        assert row.domain.contains(record[row.key]), row.key
    outside_paper = [row.key for row in search_space.PAPER_SPACE if not row.domain.contains(record[row.key])]
    assert outside_paper == ["train.scheduler"]  # cosine_restarts: why the extended space exists
    assert constraints.violation(record) is None  # the paper's own choice is feasible


# --- sampling ---

def _sampled(space_name: str, fixed: dict, n: int) -> list[tuple[optuna.Trial, dict]]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    drawn = []
    for _ in range(n):
        trial = study.ask()
        drawn.append((trial, search_space.suggest(trial, space_name, fixed)))
    return drawn


@pytest.mark.parametrize("space_name", search_space.SPACE_NAMES)
def test_conditional_rows_are_sampled_only_when_active_and_values_stay_in_the_space(space_name):
    drawn = _sampled(space_name, {}, 120)
    rows = search_space.rows_by_name(space_name)
    for trial, overrides in drawn:
        assert list(overrides) == [key for key in ALL_KEYS if key in overrides]  # table order
        assert ("model.gn_groups" in overrides) == (overrides["model.norm"] == "groupnorm")
        assert ("model.hidden2" in overrides) == (overrides["model.head_layers"] == 2)
        assert ("model.dropout_head2" in overrides) == (overrides["model.head_layers"] == 2)
        assert ("train.focal_alpha" in overrides) == (overrides["train.loss"] == "focal")
        assert ("train.focal_gamma" in overrides) == (overrides["train.loss"] == "focal")
        assert overrides["train.seed"] == 42 and "train.seed" not in trial.params
        assert trial.params == {key: value for key, value in overrides.items() if key != "train.seed"}
        for key, value in overrides.items():
            assert rows[key.split(".")[1]].domain.contains(value), (key, value)
    schedulers = {overrides["train.scheduler"] for _, overrides in drawn}
    expected = {"onecycle", "cosine", "step", "plateau"} | ({"cosine_restarts"} if space_name == "extended" else set())
    assert schedulers == expected
    assert {overrides["model.norm"] for _, overrides in drawn} == set(_domain(space_name, "model.norm").values)


def test_fixed_rows_are_pinned_and_not_sampled():
    [(trial, overrides)] = _sampled("extended", {"image_size": 64, "batch_size": 32}, 1)
    assert overrides["train.image_size"] == 64 and overrides["train.batch_size"] == 32
    assert not {"train.image_size", "train.batch_size", "train.seed"} & set(trial.params)
    assert search_space.pinned("extended", {"image_size": 64}) == {"train.seed": 42, "train.image_size": 64}
    assert search_space.pinned("paper", {}) == {"train.seed": 42}


def test_pinning_a_parent_decides_its_conditional_rows():
    for _, overrides in _sampled("extended", {"head_layers": 1, "loss": "focal"}, 20):
        assert overrides["model.head_layers"] == 1 and overrides["train.loss"] == "focal"
        assert "model.hidden2" not in overrides and "model.dropout_head2" not in overrides
        assert {"train.focal_alpha", "train.focal_gamma"} <= set(overrides)


def test_fixed_keys_must_be_rows_of_the_space():
    with pytest.raises(ValueError) as err:
        search_space.pinned("extended", {"image_size": 64, "epochs": 3, "lr": 1})
    assert str(err.value) == f"epochs, lr not a row of the search space; rows: {', '.join(k.split('.')[1] for k in ALL_KEYS)}"
    with pytest.raises(config.ParamsError) as err:
        config.with_overrides(ROOT_PARAMS, {"sweep.fixed": {"image_size": 64, "epochs": 3}})
    message = str(err.value)
    assert "\n" not in message
    assert message == ("override: sweep.fixed: epochs not a row of the search space; rows: "
                       + ", ".join(key.split(".")[1] for key in ALL_KEYS))


def test_full_record_takes_the_defaults_for_rows_the_overrides_leave_out():
    defaults = paper.selected_configuration()
    record = search_space.full_record({"model.head_layers": 1, "model.norm": "groupnorm1", "train.lr_head": 2e-4}, defaults)
    assert list(record) == ALL_KEYS
    assert (record["model.head_layers"], record["model.norm"], record["train.lr_head"]) == (1, "groupnorm1", 2e-4)
    assert (record["model.hidden2"], record["model.gn_groups"], record["train.focal_gamma"]) == (512, 8, 2.0)
    assert record == {**defaults, "model.head_layers": 1, "model.norm": "groupnorm1", "train.lr_head": 2e-4}
    with pytest.raises(KeyError):
        search_space.full_record({}, {key: 0 for key in ALL_KEYS if key != "model.width"})


# --- a full configuration as a trial to enqueue (table 8.4 as trial 0) ---

EXPECTED_8_4_POINT = {**paper.TABLE_8_4, "model.conv_bias": False, "train.mixup_alpha": 0.0}  # active unstated rows


def test_table_8_4_enqueues_as_is_in_the_extended_space():
    point, left_out = search_space.enqueue_point(paper.selected_configuration(), "extended", {})
    assert point == EXPECTED_8_4_POINT and left_out == {}
    assert list(point) == [key for key in ALL_KEYS if key in point]


def test_pinned_rows_replace_table_8_4s_and_say_so():
    point, left_out = search_space.enqueue_point(paper.selected_configuration(), "extended", {"image_size": 64, "batch_size": 32})
    assert point == {k: v for k, v in EXPECTED_8_4_POINT.items() if k not in ("train.image_size", "train.batch_size")}
    assert left_out == {"train.batch_size": "48 pinned to 32 by sweep.fixed",
                        "train.image_size": "224 pinned to 64 by sweep.fixed"}
    # a pin equal to 8.4's value is not a change
    assert search_space.enqueue_point(paper.selected_configuration(), "extended", {"image_size": 224})[1] == {}


def test_the_paper_space_leaves_cosine_restarts_to_the_sampler():
    point, left_out = search_space.enqueue_point(paper.selected_configuration(), "paper", {})
    assert point == {k: v for k, v in EXPECTED_8_4_POINT.items() if k != "train.scheduler"}
    assert left_out == {"train.scheduler": "cosine_restarts is outside the paper space's "
                                           "{onecycle, cosine, step, plateau}: sampled"}


def test_a_pinned_parent_drops_the_rows_it_deactivates():
    record = {**paper.selected_configuration(), "train.loss": "focal"}
    point, left_out = search_space.enqueue_point(record, "extended", {"head_layers": 1})
    assert "model.hidden2" not in point and "model.dropout_head2" not in point and "model.head_layers" not in point
    assert (point["train.focal_alpha"], point["train.focal_gamma"]) == (0.25, 2.0)  # active with focal
    assert left_out == {"model.head_layers": "2 pinned to 1 by sweep.fixed"}


def test_a_value_of_the_wrong_type_is_outside_the_space():
    record = {**paper.selected_configuration(), "model.width": 1, "model.conv_bias": 0}
    point, left_out = search_space.enqueue_point(record, "extended", {})
    assert "model.width" not in point and "model.conv_bias" not in point
    assert left_out == {"model.width": "1 is outside the extended space's {0.75, 1.0, 1.25}: sampled",
                        "model.conv_bias": "0 is outside the extended space's {false, true}: sampled"}


# --- printing: the README table and `efficientnext sweep space` ---

def test_table_describes_every_row():
    records = search_space.table("extended")
    assert [r["params key"] for r in records] == ALL_KEYS
    assert list(records[0]) == ["row", "params key", "values", "when", "origin", "rationale"]
    by_key = {r["params key"]: r for r in records}
    assert by_key["model.gn_groups"] == {
        "row": "GN groups (LN-like)", "params key": "model.gn_groups", "values": "{1, 8, 16}",
        "when": "model.norm is groupnorm", "origin": "paper",
        "rationale": "LayerNorm-like via GroupNorm; stability under small batches"}
    assert by_key["model.conv_bias"]["values"] == "{false, true}"
    assert by_key["model.drop_connect"]["values"] == "U[0, 0.3]"
    assert by_key["train.lr_head"]["values"] == "log-U[0.0001, 0.001]"
    assert by_key["train.lr_backbone"]["values"] == "log-U[1e-05, 0.0005]"
    assert by_key["train.seed"]["values"] == "{42} (fixed)"
    assert by_key["train.focal_gamma"]["when"] == "train.loss is focal"
    assert by_key["model.dropout_head2"]["when"] == "model.head_layers is 2"
    assert by_key["train.scheduler"]["values"] == "{onecycle, cosine, step, plateau, cosine_restarts}"
    assert by_key["train.scheduler"]["origin"].startswith("extension: ")
    assert {r["params key"]: r["values"] for r in search_space.table("paper")}["train.scheduler"] == \
        "{onecycle, cosine, step, plateau}"
    assert [r["origin"] for r in search_space.table("paper")] == ["paper"] * len(ALL_KEYS)


@pytest.mark.parametrize("space_name", search_space.SPACE_NAMES)
def test_markdown_table_lists_every_row(space_name):
    lines = search_space.markdown_table(space_name).splitlines()
    assert lines[:2] == ["| row | params key | values | when | origin | rationale |", "|---|---|---|---|---|---|"]
    assert lines[2:] == [f"| {r['row']} | `{r['params key']}` | {r['values']} | {r['when']} | {r['origin']} | "
                         f"{r['rationale']} |" for r in search_space.table(space_name)]
    assert lines[2 + ALL_KEYS.index("model.gn_groups")] == (
        "| GN groups (LN-like) | `model.gn_groups` | {1, 8, 16} | model.norm is groupnorm | paper | "
        "LayerNorm-like via GroupNorm; stability under small batches |")


def test_cli_prints_the_active_space(capsys):
    params = str(ROOT / "params.yaml")
    assert cli.main(["sweep", "space", "--params", params]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "sweep.space = extended"
    assert lines[1].split() == ["row", "params", "key", "values", "when", "origin"]
    assert len(lines) == 2 + len(ALL_KEYS)
    assert lines[2].split() == ["batch", "size", "train.batch_size", "{16,", "32,", "48}", "paper"]
    scheduler = lines[2 + ALL_KEYS.index("train.scheduler")]
    assert "{onecycle, cosine, step, plateau, cosine_restarts}" in scheduler and "extension: " in scheduler
    assert "model.norm is groupnorm" in lines[2 + ALL_KEYS.index("model.gn_groups")]

    assert cli.main(["sweep", "space", "--params", params, "-S", "sweep.space=paper", "--markdown"]) == 0
    assert capsys.readouterr().out == search_space.markdown_table("paper") + "\n"
    assert cli.main(["sweep", "space", "--params", params, "-S", "sweep.space=paper"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == "sweep.space = paper" and "cosine_restarts" not in out


# --- constraints: over the full product of the keys they read, each rejects exactly its combinations ---

NORMS = ("batchnorm", "groupnorm1", "groupnorm", "evonorms0", "rmsnorm2d")


# The constraints, written out independently of constraints.py, in the order they are checked: name ->
# the records it rejects. §5.2's optimizer-normalization filter (rmsprop with any norm but batchnorm) is
# gone: with timm's RMSpropTF no norm diverges (benchmarks/rmsprop_norms.py).
EXPECTED_CONSTRAINTS = {
    "evonorm_own_activation": lambda r: r["model.norm"] == "evonorms0" and r["model.activation"] in ("gelu", "relu"),
}


def _expected_violation(record: dict) -> str | None:
    return next((name for name, rejects in EXPECTED_CONSTRAINTS.items() if rejects(record)), None)


def test_exactly_the_expected_constraints():
    assert [c.name for c in constraints.CONSTRAINTS] == list(EXPECTED_CONSTRAINTS)
    assert all(c.rationale.startswith("§5.2 ") and "\n" not in c.rationale for c in constraints.CONSTRAINTS)


def test_each_constraint_rejects_exactly_its_combinations():
    grid = {"model.norm": NORMS, "model.activation": ("silu", "gelu", "relu"),
            "train.optimizer": ("adamw", "adam", "sgd", "rmsprop")}
    rejected = {}
    for combo in itertools.product(*grid.values()):
        record = {**paper.selected_configuration(), **dict(zip(grid, combo))}
        found = constraints.violation(record)
        assert (found.split(":")[0] if found else None) == _expected_violation(record), combo
        if found is not None:
            assert "\n" not in found
            rejected[combo] = found
    # EvoNorm-S0 with its non-SiLU activations, whatever the optimizer; rmsprop trains with every norm
    assert set(rejected) == {("evonorms0", act, opt) for act in ("gelu", "relu") for opt in grid["train.optimizer"]}
    rationale = {c.name: c.rationale for c in constraints.CONSTRAINTS}
    assert rejected[("evonorms0", "relu", "adamw")] == (
        f"evonorm_own_activation: model.norm=evonorms0 with model.activation=relu "
        f"({rationale['evonorm_own_activation']})")
    assert constraints.violation({**paper.selected_configuration(), "model.norm": "rmsnorm2d"}) is None


def test_violation_names_the_first_constraint_broken(monkeypatch):
    no_sgd = constraints.Constraint("no_sgd", "a test", constraints.forbid({"train.optimizer": ("sgd",)}))
    both = {**paper.selected_configuration(), "model.norm": "evonorms0", "model.activation": "relu",
            "train.optimizer": "sgd"}
    monkeypatch.setattr(constraints, "CONSTRAINTS", (no_sgd, *constraints.CONSTRAINTS))
    assert constraints.violation(both) == "no_sgd: train.optimizer=sgd (a test)"
    monkeypatch.setattr(constraints, "CONSTRAINTS", (*constraints.CONSTRAINTS[1:], no_sgd))
    assert constraints.violation(both).startswith("evonorm_own_activation: model.norm=evonorms0 with ")
    assert constraints.violation({**both, "model.activation": "silu"}) == "no_sgd: train.optimizer=sgd (a test)"


def test_every_single_value_of_the_space_is_feasible_somewhere():
    """No row value is rejected in every configuration: e.g. gelu and relu train without EvoNorm."""
    feasible_base = {**paper.selected_configuration(), "train.optimizer": "adamw", "model.activation": "silu"}
    for row in search_space.rows("extended"):
        for value in _values(row.domain):
            assert constraints.violation({**feasible_base, row.key: value}) is None, (row.key, value)


def test_random_draws_are_rejected_only_by_the_named_constraints():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    reasons = []
    for _ in range(200):
        record = search_space.full_record(search_space.suggest(study.ask(), "extended", {}), paper.selected_configuration())
        found = constraints.violation(record)
        assert (found.split(":")[0] if found else None) == _expected_violation(record)
        if found is None:  # every feasible draw is a valid configuration
            config.with_overrides(BASE, record)
        reasons.append(found.split(":")[0] if found else None)
    assert set(reasons) == {None, *EXPECTED_CONSTRAINTS}
    assert reasons.count(None) > 100


# --- structure: every combination of the keys that shape the network builds ---

@pytest.mark.parametrize("norm", NORMS)
def test_every_structural_combination_builds(norm, monkeypatch):
    """norm x gn_groups x width x expand_ratio x final_channels of the paper space, on the default stage
    table, builds (grouped norms round channels to lcm(8, gn_groups)). Built on the meta device; timm's
    weight init, which only fills values, is skipped to keep the 405 builds fast."""
    from efficientnext.models import efficientnext as net

    monkeypatch.setattr(net, "efficientnet_init_weights", lambda module: None)
    grid = {key: _domain("paper", key).values
            for key in ("model.gn_groups", "model.width", "model.expand_ratio", "model.final_channels")}
    built = 0
    for combo in itertools.product(*grid.values()):
        values = {"model.norm": norm, **dict(zip(grid, combo))}
        model_params = config.with_overrides(BASE, values).model
        with torch.device("meta"):
            network = models.create_model(model_params, 5)
        if combo[1:] == (0.75, 3, 1024):  # one forward per norm and group count: the layers fit together
            with torch.device("meta"):
                assert network(torch.empty(2, 3, 64, 64)).shape == (2, 5)
        if norm in ("groupnorm", "evonorms0"):
            groups = values["model.gn_groups"]
            widths = {m.weight.shape[0] for m in network.modules()
                      if type(m).__name__ in ("GroupNormAct", "EvoNorm2dS0")}
            assert widths and all(c % math.lcm(8, groups) == 0 for c in widths), (values, sorted(widths))
        built += 1
    assert built == 3 * 3 * 3 * 3
