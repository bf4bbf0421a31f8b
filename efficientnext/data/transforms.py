"""Train and eval transforms (paper §4.1), torchvision transforms v2 on uint8 CHW images.

train: RandomResizedCrop, mild rotation, horizontal flip, brightness/contrast jitter, normalisation,
RandomErasing (on the normalised tensor, so erased pixels are zero = the dataset mean).
eval: Resize (short side) + CenterCrop to image_size, normalisation.
Under augment.backend = batched the training dataset has no per-image transform (`training_transform`
gives None): the engine augments whole batches with data/batch_augment.py instead.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torchvision.transforms import v2

from efficientnext.config import AugmentParams


def build_transforms(augment: AugmentParams, image_size: int, train: bool) -> v2.Compose:
    normalise = [v2.ToDtype(torch.float32, scale=True), v2.Normalize(list(augment.mean), list(augment.std))]
    if not train:
        return v2.Compose([v2.Resize(image_size, antialias=True), v2.CenterCrop(image_size), *normalise])
    return v2.Compose([
        v2.RandomResizedCrop(image_size, scale=(augment.scale_min, 1.0), antialias=True),
        v2.RandomRotation(augment.rotation),
        v2.RandomHorizontalFlip(augment.hflip),
        v2.ColorJitter(brightness=augment.brightness, contrast=augment.contrast),
        *normalise,
        v2.RandomErasing(augment.erasing),
    ])


def training_transform(augment: AugmentParams, image_size: int) -> Callable | None:
    """The training dataset's per-image transform: None under the batched backend (the engine augments)."""
    return build_transforms(augment, image_size, train=True) if augment.backend == "per_image" else None
