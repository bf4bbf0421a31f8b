"""The paper's search space (§5.4), row for row and value for value, as data; plus labelled extensions.

A leaf module (no project imports): params validation reads which keys are searched, the sweep samples
the rows, the report prints them. Each `Row` maps one params.yaml key to its domain. Conditional rows
are sampled only while their parent has one of the listed values. The paper's "Dropout (head 1/2)" row
is two keys (`dropout_head1`, and `dropout_head2` only with two hidden layers), both from {0.3, 0.5}.

`sweep.space` picks the space: `paper` is §5.4 exactly; `extended` adds the values in `EXTENSIONS`,
each with the reason. `efficientnext sweep space` prints the active one (the README's table is its output).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Literal, get_args

if TYPE_CHECKING:
    import optuna

SpaceName = Literal["paper", "extended"]
SPACE_NAMES: tuple[str, ...] = get_args(SpaceName)


@dataclass(frozen=True)
class Choice:
    values: tuple[Any, ...]

    def suggest(self, trial: optuna.Trial, key: str) -> Any:
        return trial.suggest_categorical(key, self.values)

    def describe(self) -> str:
        return "{" + ", ".join(str(v).lower() for v in self.values) + "}"

    def contains(self, value: Any) -> bool:
        return value in self.values and all(type(value) is type(v) for v in self.values if v == value)


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
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high


@dataclass(frozen=True)
class Fixed:
    value: Any

    def describe(self) -> str:
        return f"{{{self.value}}} (fixed)"

    def contains(self, value: Any) -> bool:
        return value == self.value


@dataclass(frozen=True)
class Row:
    label: str                                   # the row of the paper's table
    key: str                                     # the params.yaml key it sets
    domain: Choice | Uniform | Fixed
    rationale: str                               # the paper's rationale column
    when: tuple[str, tuple[Any, ...]] | None = None   # active only while record[key] is one of these
    origin: str = "paper"                        # paper, or "extension: <why>"

    @property
    def name(self) -> str:
        """The short name sweep.fixed uses, e.g. 'image_size'."""
        return self.key.rsplit(".", 1)[1]

    def active(self, record: Mapping[str, Any]) -> bool:
        return self.when is None or record.get(self.when[0]) in self.when[1]


def choice(*values: Any) -> Choice:
    return Choice(values)


GROUPED_NORMS = ("groupnorm",)  # the norm whose group count the GN-groups row sets
TWO_LAYER_HEAD = ("model.head_layers", (2,))
FOCAL = ("train.loss", ("focal",))

PAPER_SPACE: tuple[Row, ...] = (
    Row("batch size", "train.batch_size", choice(16, 32, 48), "throughput vs. stability trade-off"),
    Row("image size", "train.image_size", choice(224, 260), "accuracy vs. compute; maintains efficiency"),
    Row("kernel size (depthwise)", "model.kernel_size", choice(3, 5, 7),
        "receptive field; larger kernels inspired by ConvNeXt"),
    Row("attention type", "model.attention", choice("eca", "se", "cbam", "none"),
        "channel/spatial emphasis vs. overhead"),
    Row("normalization", "model.norm", choice("batchnorm", "groupnorm1", "groupnorm", "evonorms0", "rmsnorm2d"),
        "stability across depths and batch regimes"),
    Row("activation", "model.activation", choice("silu", "gelu", "relu"), "smoothness and optimization behavior"),
    Row("width multiplier", "model.width", choice(0.75, 1.0, 1.25), "capacity scaling without redesign"),
    Row("expand ratio", "model.expand_ratio", choice(3, 4, 5), "inverted bottleneck capacity"),
    Row("final channels", "model.final_channels", choice(1024, 1280, 1536), "head representation richness"),
    Row("conv bias usage", "model.conv_bias", choice(False, True), "ablation of bias in conv layers"),
    Row("GN groups (LN-like)", "model.gn_groups", choice(1, 8, 16),
        "LayerNorm-like via GroupNorm; stability under small batches", when=("model.norm", GROUPED_NORMS)),
    Row("drop-connect rate", "model.drop_connect", Uniform(0.0, 0.3), "stochastic depth regularization"),
    Row("hidden layers (head)", "model.head_layers", choice(1, 2), "separable vs. compact MLP head"),
    Row("hidden size 1", "model.hidden1", choice(512, 1024), "head capacity"),
    Row("hidden size 2", "model.hidden2", choice(256, 512), "secondary head capacity", when=TWO_LAYER_HEAD),
    Row("dropout (features)", "model.dropout_features", choice(0.1, 0.2), "regularize pooled features"),
    Row("dropout (head 1/2)", "model.dropout_head1", choice(0.3, 0.5), "regularize MLP head"),
    Row("dropout (head 1/2)", "model.dropout_head2", choice(0.3, 0.5), "regularize MLP head", when=TWO_LAYER_HEAD),
    Row("optimizer", "train.optimizer", choice("adamw", "adam", "sgd", "rmsprop"),
        "convergence vs. generalization"),
    Row("LR (head)", "train.lr_head", Uniform(1e-4, 1e-3, log=True), "faster adaptation of new head"),
    Row("LR (backbone)", "train.lr_backbone", Uniform(1e-5, 5e-4, log=True), "conservative backbone updates"),
    Row("weight decay", "train.weight_decay", Uniform(1e-6, 5e-3, log=True), "regularization strength"),
    Row("scheduler", "train.scheduler", choice("onecycle", "cosine", "step", "plateau"), "learning rate dynamics"),
    Row("loss function", "train.loss", choice("ce", "focal", "asl", "dice"), "robustness to imbalance"),
    Row("label smoothing", "train.label_smoothing", choice(0.0, 0.05), "calibration"),
    Row("focal α", "train.focal_alpha", choice(0.25, 0.5), "class weighting in focal loss", when=FOCAL),
    Row("focal γ", "train.focal_gamma", choice(1.0, 2.0, 3.0), "hard example focusing", when=FOCAL),
    Row("mixup α", "train.mixup_alpha", choice(0.0, 0.2), "manifold mixup regularization"),
    Row("seed", "train.seed", Fixed(42), "determinism where feasible"),
)

# key -> (values added, why): what `sweep.space: extended` adds to the paper's rows.
EXTENSIONS: dict[str, tuple[tuple[Any, ...], str]] = {
    "train.scheduler": (("cosine_restarts",),
                        "table 8.4 selects cosine with restarts (and §6 names it), but §5.4 does not list it"),
}

SEARCHED_KEYS: tuple[str, ...] = tuple(row.key for row in PAPER_SPACE if not isinstance(row.domain, Fixed))


def rows(space: SpaceName) -> tuple[Row, ...]:
    """The rows of the named space, in the paper's order."""
    if space == "paper":
        return PAPER_SPACE
    extended = []
    for row in PAPER_SPACE:
        if row.key in EXTENSIONS:
            added, why = EXTENSIONS[row.key]
            row = replace(row, domain=Choice(row.domain.values + added), origin=f"extension: {why}")
        extended.append(row)
    return tuple(extended)


def rows_by_name(space: SpaceName) -> dict[str, Row]:
    return {row.name: row for row in rows(space)}


def check_fixed(fixed: Mapping[str, Any]) -> None:
    """Raise ValueError (one line) unless every sweep.fixed key names a row of the space."""
    names = [row.name for row in PAPER_SPACE]
    unknown = sorted(set(fixed) - set(names))
    if unknown:
        raise ValueError(f"{', '.join(unknown)} not a row of the search space; rows: {', '.join(names)}")


def pinned(space: SpaceName, fixed: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted key -> value of every row not searched: the table's fixed rows and sweep.fixed."""
    check_fixed(fixed)
    by_name = rows_by_name(space)
    values = {row.key: row.domain.value for row in rows(space) if isinstance(row.domain, Fixed)}
    values.update({by_name[name].key: value for name, value in fixed.items()})
    return values


def suggest(trial: optuna.Trial, space: SpaceName, fixed: Mapping[str, Any]) -> dict[str, Any]:
    """Sample the trial's active rows in table order; return its overrides (pinned rows included)."""
    record = pinned(space, fixed)
    for row in rows(space):
        if row.key not in record and row.active(record):
            record[row.key] = row.domain.suggest(trial, row.key)
    return {row.key: record[row.key] for row in rows(space) if row.key in record}


def full_record(overrides: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Every row's key with its value: the override, else (an inactive conditional row) `defaults`'."""
    return {row.key: overrides[row.key] if row.key in overrides else defaults[row.key] for row in PAPER_SPACE}


def enqueue_point(record: Mapping[str, Any], space: SpaceName,
                  fixed: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A full configuration (e.g. table 8.4) as a trial to enqueue: the values of its active, unpinned rows,
    and, per row left out, why (pinned by sweep.fixed, or outside the active space: the sampler draws it)."""
    pins = pinned(space, fixed)
    point, left_out = {}, {}
    merged = {**record, **pins}
    for row in rows(space):
        if not row.active(merged) or isinstance(row.domain, Fixed):
            continue
        if row.key in pins:
            if pins[row.key] != record[row.key]:
                left_out[row.key] = f"{record[row.key]} pinned to {pins[row.key]} by sweep.fixed"
        elif row.domain.contains(record[row.key]):
            point[row.key] = record[row.key]
        else:
            left_out[row.key] = f"{record[row.key]} is outside the {space} space's {row.domain.describe()}: sampled"
    return point, left_out


def table(space: SpaceName) -> list[dict[str, str]]:
    """The active space as rows for printing: row, params key, values, condition, origin, rationale."""
    return [{"row": row.label, "params key": row.key,
             "values": row.domain.describe(),
             "when": f"{row.when[0]} is {' or '.join(map(str, row.when[1]))}" if row.when else "",
             "origin": row.origin, "rationale": row.rationale} for row in rows(space)]


def markdown_table(space: SpaceName) -> str:
    """The active space as the README's Markdown table (`efficientnext sweep space --markdown`)."""
    records = table(space)
    header = list(records[0])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for record in records:
        cells = [f"`{value}`" if column == "params key" else value for column, value in record.items()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
