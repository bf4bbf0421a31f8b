"""§4.1's training augmentation on whole batches, on the training device (augment.backend: batched).

DataLoader workers only gather the prepared cache's uint8 bytes (`pad_collate`); `BatchAugment` then does,
per sample with its own draw, what the per-image torchvision path (transforms.build_transforms) does:
RandomResizedCrop → RandomRotation → RandomHorizontalFlip → ColorJitter(brightness, contrast) → Normalize →
RandomErasing. Crop, rotation and flip are one affine map per sample, so one `grid_sample` resamples the
whole batch (bilinear, where torchvision resizes bilinearly and rotates with nearest neighbours); the
corners that rotation uncovers are black (0 before normalisation), as torchvision fills them.

The random draws use a CPU generator (the training loader's, whose state the checkpoint carries), so a
seed gives the same batch on CPU and GPU, and a resumed epoch sees the same augmentations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F

from efficientnext.config import AugmentParams

ATTEMPTS = 10  # torchvision's tries for a crop / erasing box before its fallback
CROP_RATIO = (3 / 4, 4 / 3)  # RandomResizedCrop's default aspect-ratio range
ERASE_SCALE, ERASE_RATIO = (0.02, 0.33), (0.3, 3.3)  # RandomErasing's defaults
GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale weights (the contrast mean)


class PaddedImages(NamedTuple):
    """A batch of differently sized uint8 images: each at the top left of a zero (B, 3, H, W) tensor."""

    pixels: torch.Tensor
    sizes: torch.Tensor  # (B, 2) int64: height, width


def pad_collate(samples: list[tuple[torch.Tensor, int]]) -> tuple[PaddedImages, torch.Tensor]:
    """DataLoader collate for uint8 CHW images of any size: bytes only, no arithmetic."""
    images = [image for image, _ in samples]
    if any(image.dtype != torch.uint8 for image in images):
        raise TypeError("augment.backend = batched needs the training dataset to serve uint8 images "
                        "(build it with transforms.training_transform, which gives no per-image transform)")
    sizes = torch.tensor([image.shape[-2:] for image in images], dtype=torch.int64)
    pixels = torch.zeros((len(images), 3, *sizes.max(0).values.tolist()), dtype=torch.uint8)
    for slot, image in zip(pixels, images):
        slot[:, :image.shape[-2], :image.shape[-1]] = image
    return PaddedImages(pixels, sizes), torch.tensor([label for _, label in samples], dtype=torch.int64)


@dataclass
class Draw:
    """Every random choice for one batch, one row per sample (float64 boxes in pixels)."""

    crop: torch.Tensor      # (B, 4) top, left, height, width
    angle: torch.Tensor     # (B,) degrees, counter-clockwise
    flip: torch.Tensor      # (B,) bool
    brightness: torch.Tensor
    contrast: torch.Tensor
    contrast_first: torch.Tensor  # (B,) bool: ColorJitter applies its two factors in a random order
    erase: torch.Tensor     # (B, 4) top, left, height, width in output pixels; height 0: no erasing


def uniform(generator: torch.Generator, shape: tuple[int, ...], low, high) -> torch.Tensor:
    return low + (high - low) * torch.rand(shape, generator=generator, dtype=torch.float64)


def random_boxes(heights: torch.Tensor, widths: torch.Tensor, scale: tuple[float, float],
                 ratio: tuple[float, float], generator: torch.Generator,
                 strict: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """torchvision's box search, ATTEMPTS tries per sample at once: area fraction in `scale`, log-uniform
    aspect in `ratio`, the first try that fits (strict: smaller than the image, as RandomErasing asks);
    returns (B, 4) boxes (top, left, height, width) and whether a try fitted."""
    count = len(heights)
    heights, widths = heights.double()[:, None], widths.double()[:, None]
    area = heights * widths * uniform(generator, (count, ATTEMPTS), *scale)
    aspect = torch.exp(uniform(generator, (count, ATTEMPTS), math.log(ratio[0]), math.log(ratio[1])))
    box_w, box_h = torch.round(torch.sqrt(area * aspect)), torch.round(torch.sqrt(area / aspect))
    fits = ((box_h < heights) & (box_w < widths)) if strict else (
        (box_h > 0) & (box_w > 0) & (box_h <= heights) & (box_w <= widths))
    first = fits.double().argmax(1, keepdim=True)  # the first fitting try (0 when none fits)
    box_h, box_w = box_h.gather(1, first)[:, 0], box_w.gather(1, first)[:, 0]
    heights, widths = heights[:, 0], widths[:, 0]
    top = torch.floor(torch.rand(count, generator=generator, dtype=torch.float64) * (heights - box_h + 1))
    left = torch.floor(torch.rand(count, generator=generator, dtype=torch.float64) * (widths - box_w + 1))
    return torch.stack([top, left, box_h, box_w], 1), fits.any(1)


def center_crop_fallback(heights: torch.Tensor, widths: torch.Tensor) -> torch.Tensor:
    """RandomResizedCrop's box when no try fits: the whole image, clamped to the ratio range, centred."""
    heights, widths = heights.double(), widths.double()
    in_ratio = widths / heights
    box_w = torch.where(in_ratio > CROP_RATIO[1], torch.round(heights * CROP_RATIO[1]), widths)
    box_h = torch.where(in_ratio < CROP_RATIO[0], torch.round(widths / CROP_RATIO[0]), heights)
    return torch.stack([torch.floor((heights - box_h) / 2), torch.floor((widths - box_w) / 2), box_h, box_w], 1)


class BatchAugment:
    """`augment(batch, generator, device)` -> normalised float (B, 3, S, S) on `device`."""

    def __init__(self, augment: AugmentParams, image_size: int) -> None:
        self.params = augment
        self.size = image_size

    def draw(self, sizes: torch.Tensor, generator: torch.Generator) -> Draw:
        p, count = self.params, len(sizes)
        heights, widths = sizes[:, 0], sizes[:, 1]
        crop, found = random_boxes(heights, widths, (p.scale_min, 1.0), CROP_RATIO, generator, strict=False)
        crop = torch.where(found[:, None], crop, center_crop_fallback(heights, widths))
        angle = uniform(generator, (count,), -p.rotation, p.rotation)
        flip = torch.rand(count, generator=generator) < p.hflip
        brightness = uniform(generator, (count,), max(0.0, 1 - p.brightness), 1 + p.brightness)
        contrast = uniform(generator, (count,), max(0.0, 1 - p.contrast), 1 + p.contrast)
        contrast_first = torch.rand(count, generator=generator) < 0.5
        erasing = torch.rand(count, generator=generator) < p.erasing
        side = torch.full((count,), self.size)
        erase, fits = random_boxes(side, side, ERASE_SCALE, ERASE_RATIO, generator, strict=True)
        erase[~(erasing & fits)] = 0
        return Draw(crop, angle, flip, brightness, contrast, contrast_first, erase)

    def crops(self, batch: PaddedImages, draw: Draw, device: torch.device) -> torch.Tensor:
        """Each sample's crop box as float, at the top left of a zero (B, 3, h_max, w_max) tensor: only the
        pixels the crop can reach are converted, and the zeros around each box are the black fill."""
        boxes = draw.crop.long().tolist()
        heights, widths = draw.crop[:, 2].max(), draw.crop[:, 3].max()
        crops = torch.zeros((len(boxes), 3, int(heights), int(widths)), device=device)
        pixels = batch.pixels.to(device, non_blocking=True)
        for crop, image, (top, left, height, width) in zip(crops, pixels, boxes):
            crop[:, :height, :width] = image[:, top:top + height, left:left + width]
        return crops

    def sampling_grid(self, draw: Draw, crops_hw: tuple[int, int], device: torch.device) -> torch.Tensor:
        """Output pixel → crop coordinates (grid_sample's [-1, 1], align_corners=False): undo the flip,
        undo the rotation about the output's centre, then place the crop box in the crops tensor. Points
        the rotation moves out of the box land on zeros: torchvision's black fill."""
        radians = torch.deg2rad(draw.angle)
        cos, sin = torch.cos(radians), torch.sin(radians)
        sign = torch.where(draw.flip, -1.0, 1.0).double()
        # Crop-space point c = R @ (sign * x, y): y points down, so a counter-clockwise turn on screen.
        rotate_flip = torch.stack([torch.stack([cos * sign, -sin], 1), torch.stack([sin * sign, cos], 1)], 1)
        # Crop space [-1, 1] → box pixels ((c + 1) w / 2) → the crops tensor's [-1, 1].
        extent = draw.crop[:, [3, 2]] / torch.tensor([crops_hw[1], crops_hw[0]], dtype=torch.float64)
        theta = torch.cat([extent[:, :, None] * rotate_flip, (extent - 1)[:, :, None]], 2)
        return F.affine_grid(theta.float().to(device), [len(theta), 3, self.size, self.size], align_corners=False)

    def __call__(self, batch: PaddedImages, generator: torch.Generator, device: torch.device) -> torch.Tensor:
        draw = self.draw(batch.sizes, generator)
        crops = self.crops(batch, draw, device)
        grid = self.sampling_grid(draw, tuple(crops.shape[-2:]), device)
        images = F.grid_sample(crops, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        images = self.jitter(images.mul_(1 / 255), draw, device)
        mean = torch.tensor(self.params.mean, device=device).view(1, 3, 1, 1)
        std = torch.tensor(self.params.std, device=device).view(1, 3, 1, 1)
        return self.erased(images.sub_(mean).div_(std), draw, device)

    @staticmethod
    def jitter(images: torch.Tensor, draw: Draw, device: torch.device) -> torch.Tensor:
        """ColorJitter's brightness and contrast in each sample's order. Both are torchvision's blend,
        clamp(f x + (1 - f) target): brightness with black, contrast with the image's grey mean."""
        gray = torch.tensor(GRAY, device=device).view(1, 3, 1, 1)
        first = draw.contrast_first.to(device).view(-1, 1, 1, 1)
        for is_contrast in (first, ~first):
            factor = torch.where(is_contrast, draw.contrast.float().to(device).view(-1, 1, 1, 1),
                                 draw.brightness.float().to(device).view(-1, 1, 1, 1))
            target = (images * gray).sum(1, keepdim=True).mean((2, 3), keepdim=True) * is_contrast
            images = images.mul_(factor).add_((1 - factor) * target).clamp_(0.0, 1.0)
        return images

    def erased(self, images: torch.Tensor, draw: Draw, device: torch.device) -> torch.Tensor:
        """RandomErasing with value 0 on the normalised image (the dataset mean)."""
        top, left, height, width = (v.to(device).view(-1, 1) for v in draw.erase.unbind(1))
        index = torch.arange(self.size, device=device, dtype=torch.float64).view(1, -1)
        rows = (index >= top) & (index < top + height)
        cols = (index >= left) & (index < left + width)
        return images.mul_(~(rows[:, :, None] & cols[:, None, :])[:, None])
