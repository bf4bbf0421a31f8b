"""The paper's search space (§5.4) and its feasibility constraints (§5.2), as data.

`SPACE` is the table row by row: each row maps to one dotted params.yaml key. Conditional rows are
sampled only while their parent has one of the listed values; otherwise the trial keeps the
params.yaml value (that value is what best.yaml records for an inactive row). `CONSTRAINTS` are
checked on a trial's full record before it trains; the first one that rejects it names the reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from efficientnext import config  # config validates sweep.fixed against this module: keep imports light

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Choice:
    values: tuple[Any, ...]

    def suggest(self, trial: optuna.Trial, key: str) -> Any:
        return trial.suggest_categorical(key, self.values)

    def describe(self) -> str:
        return "{" + ", ".join(str(v).lower() for v in self.values) + "}"

    def contains(self, value: Any) -> bool:
        return value in self.values


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float
    log: bool = False

    def suggest(self, trial: optuna.Trial, key: str) -> float:
        return trial.suggest_float(key, self.low, self.high, log=self.log)

    def describe(self) -> str:
        return f"{'log-U' if self.log else 'U'}[{self.low:g}, {self.high:g}]"

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and self.low <= value <= self.high


@dataclass(frozen=True)
class Fixed:
    value: Any

    def describe(self) -> str:
        return f"{self.value} (fixed)"


@dataclass(frozen=True)
class Row:
    label: str                                   # the row of the paper's table
    key: str                                     # the params.yaml key it sets
    domain: Choice | Uniform | Fixed
    when: tuple[str, tuple[Any, ...]] | None = None   # active only while params[key] is one of these

    @property
    def name(self) -> str:
        """The short name sweep.fixed uses, e.g. 'image_size'."""
        return self.key.rsplit(".", 1)[1]

    def active(self, record: Mapping[str, Any]) -> bool:
        return self.when is None or record.get(self.when[0]) in self.when[1]


def choice(*values: Any) -> Choice:
    return Choice(values)


SPACE: tuple[Row, ...] = (
    Row("batch size", "train.batch_size", choice(32, 64, 128)),
    Row("image size", "train.image_size", choice(224, 256, 288)),
    Row("kernel", "model.kernel_size", choice(3, 5, 7)),
    Row("attention", "model.attention", choice("se", "eca", "cbam", "none")),
    Row("normalization", "model.norm", choice("batchnorm", "groupnorm", "groupnorm1", "evonorms0", "rmsnorm2d")),
    Row("activation", "model.activation", choice("gelu", "silu", "relu")),
    Row("width multiplier", "model.width", choice(0.75, 1.0, 1.25)),
    Row("expand ratio", "model.expand_ratio", choice(3, 4, 5, 6)),
    Row("final channels", "model.final_channels", choice(1024, 1280, 1536)),
    Row("conv bias", "model.conv_bias", choice(True, False)),
    Row("GN groups", "model.gn_groups", choice(8, 16), when=("model.norm", ("groupnorm",))),
    Row("drop-connect", "model.drop_connect", Uniform(0.0, 0.3)),
    Row("head hidden layers", "model.head_layers", choice(1, 2)),
    Row("hidden size 1", "model.hidden1", choice(256, 512, 1024)),
    Row("hidden size 2", "model.hidden2", choice(128, 256, 512), when=("model.head_layers", (2,))),
    Row("dropout (features)", "model.dropout_features", Uniform(0.0, 0.5)),
    Row("dropout (head 1)", "model.dropout_head1", Uniform(0.0, 0.5)),
    Row("dropout (head 2)", "model.dropout_head2", Uniform(0.0, 0.5), when=("model.head_layers", (2,))),
    Row("optimizer", "train.optimizer", choice("adamw", "adam", "sgd", "rmsprop")),
    Row("LR head", "train.lr_head", Uniform(1e-4, 1e-2, log=True)),
    Row("LR backbone", "train.lr_backbone", Uniform(1e-5, 1e-3, log=True)),
    Row("weight decay", "train.weight_decay", Uniform(1e-6, 1e-2, log=True)),
    Row("scheduler", "train.scheduler", choice("onecycle", "cosine", "cosine_restarts", "step", "plateau")),
    Row("loss", "train.loss", choice("ce", "focal", "asl", "dice")),
    Row("label smoothing", "train.label_smoothing", Uniform(0.0, 0.2)),
    Row("focal α", "train.focal_alpha", Uniform(0.25, 1.0), when=("train.loss", ("focal",))),
    Row("focal γ", "train.focal_gamma", Uniform(1.0, 3.0), when=("train.loss", ("focal",))),
    Row("mixup α", "train.mixup_alpha", Uniform(0.0, 0.4)),
    Row("seed", "train.seed", Fixed(42)),
)

ROWS_BY_NAME: dict[str, Row] = {row.name: row for row in SPACE}


def check_fixed(fixed: Mapping[str, Any]) -> None:
    """Raise ValueError (one line) unless every sweep.fixed key names a row of the space."""
    unknown = sorted(set(fixed) - set(ROWS_BY_NAME))
    if unknown:
        raise ValueError(f"{', '.join(unknown)} not a row of the search space; rows: {', '.join(ROWS_BY_NAME)}")


def pinned(fixed: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted key -> value of every row not searched: the table's fixed rows and sweep.fixed."""
    check_fixed(fixed)
    values = {row.key: row.domain.value for row in SPACE if isinstance(row.domain, Fixed)}
    values.update({ROWS_BY_NAME[name].key: value for name, value in fixed.items()})
    return values


def suggest(trial: optuna.Trial, fixed: Mapping[str, Any]) -> dict[str, Any]:
    """Sample the trial's active rows in table order; return its overrides (pinned rows included)."""
    record = pinned(fixed)
    for row in SPACE:
        if row.key not in record and row.active(record):
            record[row.key] = row.domain.suggest(trial, row.key)
    return {row.key: record[row.key] for row in SPACE if row.key in record}


def params_point(params: config.Params) -> dict[str, Any] | None:
    """params.yaml's own values of the searched rows (by default the paper's table 8.4 selection) as a
    trial to enqueue first; None when one of them lies outside its row's domain."""
    fixed = pinned(params.sweep.fixed)
    record = full_record(fixed, params)
    point = {}
    for row in SPACE:
        if row.key in fixed or not row.active(record):
            continue
        if not row.domain.contains(record[row.key]):
            return None
        point[row.key] = record[row.key]
    return point


def full_record(overrides: Mapping[str, Any], params: config.Params) -> dict[str, Any]:
    """Every row's key with its value: the override, else (an inactive conditional row) params.yaml's."""
    base = params.dump()
    record = {}
    for row in SPACE:
        group, leaf = row.key.split(".")
        record[row.key] = overrides[row.key] if row.key in overrides else base[group][leaf]
    return record


def markdown_table() -> str:
    """The space as the README's Markdown table (`python -c 'from efficientnext.sweep.space import *;
    print(markdown_table())'`)."""
    lines = ["| row | params key | values |", "|---|---|---|"]
    for row in SPACE:
        only = f", only when {row.when[0]} is {' or '.join(map(str, row.when[1]))}" if row.when else ""
        lines.append(f"| {row.label} | `{row.key}` | {row.domain.describe()}{only} |")
    return "\n".join(lines)


# --- constraints ------------------------------------------------------------------------------

Check = Callable[[Mapping[str, Any], "config.Params"], "str | None"]


@dataclass(frozen=True)
class Constraint:
    name: str
    rationale: str
    check: Check        # the full record (+ params) -> what is infeasible about it, or None

    def violation(self, record: Mapping[str, Any], params: config.Params) -> str | None:
        found = self.check(record, params)
        return None if found is None else f"{self.name}: {found} ({self.rationale})"


def forbid(combination: Mapping[str, tuple[Any, ...]]) -> Check:
    """Reject a record whose every listed key has one of the listed values (all combinations of them)."""

    def check(record: Mapping[str, Any], params: config.Params) -> str | None:
        if all(record[key] in values for key, values in combination.items()):
            return " with ".join(f"{key}={record[key]}" for key in combination)
        return None

    return check


GROUPED_NORMS = ("groupnorm", "evonorms0")  # the model splits both into model.gn_groups groups


def gn_groups_divide_channels(record: Mapping[str, Any], params: config.Params) -> str | None:
    """Build the model on the meta device (no memory, no training); its grouped norms refuse indivisible channels."""
    if record["model.norm"] not in GROUPED_NORMS:
        return None
    import torch

    from efficientnext.models import create_model

    model = config.with_overrides(params, dict(record), source="trial").model
    try:
        with torch.device("meta"):
            create_model(model, num_classes=len(params.data.classes))
    except ValueError as exc:
        return f"at model.width={record['model.width']}: {exc}"
    return None


CONSTRAINTS: tuple[Constraint, ...] = (
    Constraint("expand_ratio_3_to_5", "§5.2 bounds the expansion ratio to 3-5; 6 stays in the table, untrained",
               forbid({"model.expand_ratio": (6,)})),
    Constraint("evonorm_own_activation",
               "EvoNorm-S0 applies its own x*sigmoid(v*x) (SiLU-like) nonlinearity, so only silu is kept",
               forbid({"model.norm": ("evonorms0",), "model.activation": ("gelu", "relu")})),
    Constraint("optimizer_norm_unstable",
               "in quick checks RMSprop's first epoch blew the loss up 10-25x and only batchnorm recovered",
               forbid({"train.optimizer": ("rmsprop",),
                       "model.norm": ("groupnorm", "groupnorm1", "evonorms0", "rmsnorm2d")})),
    Constraint("gn_groups_divide_channels", "GroupNorm and EvoNorm-S0 need every layer's channels divisible by gn_groups",
               gn_groups_divide_channels),
)


def violation(record: Mapping[str, Any], params: config.Params) -> str | None:
    """The first constraint the full record breaks, as a one-line reason; None when feasible."""
    for constraint in CONSTRAINTS:
        found = constraint.violation(record, params)
        if found is not None:
            return found
    return None

