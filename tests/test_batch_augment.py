"""Batched augmentation (data/batch_augment.py): §4.1's semantics, sample by sample, against torchvision."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy.stats import ks_2samp
from torchvision.transforms import InterpolationMode, v2
from torchvision.transforms.v2 import functional as TF

from efficientnext.config import AugmentParams
from efficientnext.data.batch_augment import BatchAugment, Draw, pad_collate

CPU = torch.device("cpu")
AUGMENT = AugmentParams()


def smooth_image(height: int, width: int, phase: float) -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, height), torch.linspace(0, 1, width), indexing="ij")
    planes = torch.stack([x, y, (torch.sin(6 * x + phase) * torch.cos(4 * y) + 1) / 2])
    return (planes * 255).round().to(torch.uint8)


SIZES = [(80, 107), (80, 80), (133, 80), (70, 90)]
SAMPLES = [(smooth_image(h, w, i), i % 5) for i, (h, w) in enumerate(SIZES * 4)]


def torchvision_reference(image: torch.Tensor, draw: Draw, b: int, size: int) -> torch.Tensor:
    """The per-image path's functional ops with sample b's draw (bilinear rotation, as the batch samples)."""
    top, left, height, width = (int(v) for v in draw.crop[b])
    out = TF.resized_crop(image.float() / 255, top, left, height, width, [size, size], antialias=True)
    out = TF.rotate(out, float(draw.angle[b]), interpolation=InterpolationMode.BILINEAR)
    if draw.flip[b]:
        out = TF.horizontal_flip(out)
    factors = [(TF.adjust_contrast, float(draw.contrast[b])), (TF.adjust_brightness, float(draw.brightness[b]))]
    for adjust, factor in factors if draw.contrast_first[b] else factors[::-1]:
        out = adjust(out, factor)
    out = TF.normalize(out, list(AUGMENT.mean), list(AUGMENT.std))
    top, left, height, width = (int(v) for v in draw.erase[b])
    return TF.erase(out, top, left, height, width, torch.tensor(0.0)) if height else out


def test_each_sample_matches_torchvision_with_the_same_draw():
    augment = BatchAugment(AUGMENT, 64)
    batch, labels = pad_collate(SAMPLES)
    draw = augment.draw(batch.sizes, torch.Generator().manual_seed(3))
    out = augment(batch, torch.Generator().manual_seed(3), CPU)
    assert out.shape == (len(SAMPLES), 3, 64, 64) and out.dtype == torch.float32
    assert labels.tolist() == [label for _, label in SAMPLES]
    assert draw.flip.any() and (~draw.flip).any() and (draw.erase[:, 2] > 0).any()  # the draw exercises both
    for b, (image, _) in enumerate(SAMPLES):
        diff = (out[b] - torchvision_reference(image, draw, b, 64)).abs()
        # One 8-bit level is 0.017 after normalisation: interpolation differs only at the black fill's edge.
        assert diff.mean() < 0.01, b
        assert (diff > 0.1).float().mean() < 0.03, b  # those edge pixels: a few percent of the image


def test_draws_follow_the_section_4_1_ranges_like_torchvision():
    count = 4000
    sizes = torch.tensor([SIZES[i % len(SIZES)] for i in range(count)])
    draw = BatchAugment(AUGMENT, 64).draw(sizes, torch.Generator().manual_seed(0))
    area = (draw.crop[:, 2] * draw.crop[:, 3] / (sizes[:, 0] * sizes[:, 1])).numpy()
    aspect = (draw.crop[:, 3] / draw.crop[:, 2]).numpy()
    assert ((draw.crop[:, :2] >= 0).all() and (draw.crop[:, 0] + draw.crop[:, 2] <= sizes[:, 0]).all()
            and (draw.crop[:, 1] + draw.crop[:, 3] <= sizes[:, 1]).all())
    torch.manual_seed(0)
    reference = np.array([v2.RandomResizedCrop.get_params(torch.zeros(3, *SIZES[i % len(SIZES)]),
                                                          (AUGMENT.scale_min, 1.0), (3 / 4, 4 / 3))
                          for i in range(count)], dtype=np.float64)
    ref_sizes = np.array([SIZES[i % len(SIZES)] for i in range(count)], dtype=np.float64)
    ref_area = reference[:, 2] * reference[:, 3] / ref_sizes.prod(1)
    assert ks_2samp(area, ref_area).pvalue > 0.01
    assert ks_2samp(aspect, reference[:, 3] / reference[:, 2]).pvalue > 0.01
    assert area.min() >= AUGMENT.scale_min - 0.03 and area.max() <= 1.0
    assert aspect.min() >= 3 / 4 - 0.03 and aspect.max() <= 4 / 3 + 0.03
    angle = draw.angle.numpy()
    assert abs(angle).max() <= AUGMENT.rotation and angle.min() < -0.99 * AUGMENT.rotation < 0.99 * AUGMENT.rotation < angle.max()
    assert draw.flip.float().mean() == pytest.approx(AUGMENT.hflip, abs=0.03)
    assert ((draw.brightness >= 1 - AUGMENT.brightness) & (draw.brightness <= 1 + AUGMENT.brightness)).all()
    assert ((draw.contrast >= 1 - AUGMENT.contrast) & (draw.contrast <= 1 + AUGMENT.contrast)).all()
    assert draw.contrast_first.float().mean() == pytest.approx(0.5, abs=0.03)
    erased = draw.erase[:, 2] > 0
    assert erased.float().mean() == pytest.approx(AUGMENT.erasing, abs=0.03)
    erased_area = (draw.erase[erased, 2] * draw.erase[erased, 3] / 64**2).numpy()
    assert erased_area.min() >= 0.02 - 0.01 and erased_area.max() <= 0.33 + 0.02
    assert (draw.erase[erased, :2] + draw.erase[erased, 2:] <= 64).all()


def test_a_seed_gives_the_same_batch_and_another_seed_another():
    augment = BatchAugment(AUGMENT, 48)
    batch, _ = pad_collate(SAMPLES)
    first = augment(batch, torch.Generator().manual_seed(5), CPU)
    assert torch.equal(first, augment(batch, torch.Generator().manual_seed(5), CPU))
    assert not torch.equal(first, augment(batch, torch.Generator().manual_seed(6), CPU))


def test_no_augmentation_is_resize_crop_and_normalise():
    """With every random op off and a full-image square crop, the batch is the plain resized image."""
    params = AugmentParams(scale_min=1.0, rotation=0.0, hflip=0.0, brightness=0.0, contrast=0.0, erasing=0.0)
    image = smooth_image(80, 80, 0.0)
    out = BatchAugment(params, 40)(pad_collate([(image, 0), (smooth_image(60, 90, 1.0), 1)])[0],
                                   torch.Generator().manual_seed(0), CPU)
    expected = TF.normalize(TF.resize(image.float() / 255, [40, 40], antialias=False), list(params.mean),
                            list(params.std))
    assert torch.allclose(out[0], expected, atol=1e-4)


def test_pad_collate_rejects_images_that_were_already_transformed():
    with pytest.raises(TypeError, match="augment.backend = batched needs .* uint8"):
        pad_collate([(torch.zeros(3, 8, 8), 0)])


def test_rotation_turns_counter_clockwise_like_torchvision():
    params = AugmentParams(scale_min=1.0, rotation=0.0, hflip=0.0, brightness=0.0, contrast=0.0, erasing=0.0)
    augment = BatchAugment(params, 32)
    image = torch.zeros(3, 32, 32, dtype=torch.uint8)
    image[:, 2:6, 14:18] = 255  # a dot above the centre
    batch, _ = pad_collate([(image, 0)])
    draw = augment.draw(batch.sizes, torch.Generator().manual_seed(0))
    draw.angle[:] = 90.0
    out = augment.sampling_grid(draw, (32, 32), CPU)
    turned = torch.nn.functional.grid_sample(image[None].float(), out, align_corners=False)[0, 0]
    row, col = divmod(int(turned.argmax()), 32)
    assert 14 <= row <= 17 and col < 8  # counter-clockwise: the dot above the centre moves left
    assert math.isclose(float(turned.max()), 255.0, rel_tol=0.05)
