"""Training phases: one for the paper's models; two for the transfer-learning baseline.

Transfer (model.arch == transfer): `feature` epochs with the backbone frozen and Adam, then `finetune`
epochs with the backbone unfrozen from model.transfer.unfreeze_from and RMSprop (`build_optimizer`'s
rmsprop) at a tenth of the learning rate. In both phases every backbone BatchNorm stays in inference
mode (running statistics used and never updated), as the tutorial's `base_model(x, training=False)`;
`TransferModel.train` sees to it. Each phase gets a fresh optimizer and schedule; the epochs count on
across phases, so the DVCLive curve is continuous and its `phase` metric marks the switch.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from efficientnext.config import ModelParams, TrainParams
from efficientnext.models import baselines

FINETUNE_LR_SCALE = 0.1


@dataclass(frozen=True)
class Phase:
    name: str  # train | features | finetune
    index: int  # 0, 1, … (the `phase` metric)
    start: int  # epochs completed before the phase
    epochs: int
    optimizer: str
    lr_scale: float

    @property
    def end(self) -> int:
        return self.start + self.epochs


def plan_phases(model: ModelParams, train: TrainParams, epochs: int | None = None) -> list[Phase]:
    """The phases of a run; `epochs` caps a transfer run's total (feature epochs first)."""
    if model.arch != "transfer":
        return [Phase("train", 0, 0, epochs or train.epochs, train.optimizer, 1.0)]
    features = train.transfer.feature_epochs
    finetune = train.transfer.finetune_epochs
    if epochs is not None:
        features = min(features, epochs)
        finetune = epochs - features
    phases = [Phase("features", 0, 0, features, "adam", 1.0),
              Phase("finetune", 1, features, finetune, "rmsprop", FINETUNE_LR_SCALE)]
    return [p for p in phases if p.epochs > 0]  # the schema guarantees at least one epoch in all


def enter_phase(model: nn.Module, phase: Phase, model_params: ModelParams) -> None:
    """Freeze or unfreeze the backbone as the phase requires (no-op for the paper's models)."""
    if phase.name == "train":
        return
    baselines.freeze_backbone(model)
    if phase.name == "finetune":
        baselines.unfreeze_from(model, model_params.transfer.unfreeze_from)
