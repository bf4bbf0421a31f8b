"""The eval transform (`transforms.build_transforms(train=False)`: Resize short side, CenterCrop,
ToDtype, Normalize) in numpy, bit for bit, so `predict` feeds a model exactly what `evaluate` does without
importing torch (the ONNX path needs only onnxruntime, Pillow and numpy). tests/test_predict.py compares
the two on every shape class (down, up, one side unchanged).

The resize is torchvision's uint8 antialiased bilinear kernel on CPU (the AVX2 one, which `Resize` takes for
a uint8 image of three channels): Pillow's separable filter with int16 fixed-point weights whose precision
is chosen from the largest weight, horizontal pass first, rounded to uint8 between the passes. Pillow's own
resize uses 32-bit weights and differs by one grey level on a few per cent of the pixels.
"""

from __future__ import annotations

import numpy as np

MAX_WEIGHT_PRECISION = 22  # torch's (and Pillow-SIMD's) cap on fixed-point precision bits


def resized_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """torchvision's output size for Resize(int): the short side becomes `short_side`, the long side is
    truncated, not rounded."""
    if width <= height:
        return int(short_side * height / width), short_side
    return short_side, int(short_side * width / height)


def _axis_weights(in_size: int, out_size: int) -> tuple[np.ndarray, int]:
    """The (out_size, in_size) integer weight matrix of one antialiased bilinear pass, and its precision."""
    scale = in_size / out_size
    support = max(scale, 1.0)  # the triangle filter's radius, widened when downscaling (antialias)
    inverse = 1.0 / support
    rows = []
    for i in range(out_size):
        center = scale * (i + 0.5)
        first = max(int(center - support + 0.5), 0)
        taps = np.arange(first, min(int(center + support + 0.5), in_size))
        weights = np.maximum(0.0, 1.0 - np.abs((taps - center + 0.5) * inverse))
        total = weights.sum()
        rows.append((first, weights / total if total != 0 else weights))
    largest = max(weights.max() for _, weights in rows)
    precision = 0
    while precision < MAX_WEIGHT_PRECISION and int(0.5 + largest * (1 << (precision + 1))) < (1 << 15):
        precision += 1
    matrix = np.zeros((out_size, in_size), np.int64)
    for i, (first, weights) in enumerate(rows):
        scaled = weights * (1 << precision)
        matrix[i, first:first + len(weights)] = np.where(scaled < 0, np.trunc(scaled - 0.5), np.trunc(scaled + 0.5))
    return matrix, precision


def _resize_axis(pixels: np.ndarray, axis: int, out_size: int) -> np.ndarray:
    if pixels.shape[axis] == out_size:
        return pixels
    matrix, precision = _axis_weights(pixels.shape[axis], out_size)
    moved = np.moveaxis(pixels, axis, -1).astype(np.int64)
    summed = (moved @ matrix.T + (1 << (precision - 1))) >> precision
    return np.moveaxis(np.clip(summed, 0, 255).astype(np.uint8), -1, axis)


def resize_short_side(pixels: np.ndarray, short_side: int) -> np.ndarray:
    """HWC uint8 resized like `v2.Resize(short_side, antialias=True)` on the CHW tensor."""
    height, width = resized_size(pixels.shape[0], pixels.shape[1], short_side)
    return _resize_axis(_resize_axis(pixels, 1, width), 0, height)


def center_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    """`v2.CenterCrop(size)` of an HWC image at least `size` on both sides (offsets rounded half to even)."""
    top = int(round((pixels.shape[0] - size) / 2.0))
    left = int(round((pixels.shape[1] - size) / 2.0))
    return pixels[top:top + size, left:left + size]


def eval_input(pixels: np.ndarray, image_size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """A prepared image (HWC uint8) as the model's float32 CHW input."""
    cropped = center_crop(resize_short_side(pixels, image_size), image_size)
    scaled = cropped.astype(np.float32) * np.float32(1.0 / 255)  # ToDtype(scale=True) multiplies by 1/255
    normalised = (scaled - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(normalised.transpose(2, 0, 1))
