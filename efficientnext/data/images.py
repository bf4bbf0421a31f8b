"""Opening image files: the strict decode `validate` judges files by (also `predict`'s, on files no stage
has seen), and `load_rgb`, the one RGB conversion every later reader (prepare, benchmarks) uses, so a
file looks the same wherever it is read.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

EXIF_ORIENTATION = 0x0112
WHITE = (255, 255, 255, 255)
# Why a file is unusable, in the order the strict decode finds out.
UNUSABLE_REASONS = ("empty", "not_an_image", "undecodable", "truncated", "too_many_pixels")


class TooManyPixels(Exception):
    """The header declares more pixels than validate.max_pixels (a decompression bomb)."""

    def __init__(self, header: Image.Image) -> None:
        super().__init__(f"{header.width}x{header.height} pixels")
        self.header = header  # opened, never decoded


@contextlib.contextmanager
def truncated_loading(enabled: bool) -> Iterator[None]:
    """Set PIL's tolerance of truncated files for a block (it is a process-wide flag)."""
    before = ImageFile.LOAD_TRUNCATED_IMAGES
    ImageFile.LOAD_TRUNCATED_IMAGES = enabled
    try:
        yield
    finally:
        ImageFile.LOAD_TRUNCATED_IMAGES = before


def open_image(fp: str | Path | io.BytesIO, max_pixels: int) -> Image.Image:
    """Read the header only; refuse an image over `max_pixels` before anything is decoded.

    PIL's own guard (a fixed limit, checked in Image.open) is replaced by this check against the
    params' limit, which keeps the header's facts at hand for the manifest.
    """
    before = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
        im = Image.open(fp)
    finally:
        Image.MAX_IMAGE_PIXELS = before
    if im.width * im.height > max_pixels:
        raise TooManyPixels(im)
    return im


class Unusable(Exception):
    """A file no stage can use; `reason` is one of UNUSABLE_REASONS, `header` the opened header if any."""

    def __init__(self, reason: str, detail: str = "", header: Image.Image | None = None) -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.header = header


def open_strict(data: bytes, max_pixels: int) -> Image.Image:
    """The header of a file's bytes, or `Unusable` (empty, not_an_image, too_many_pixels, undecodable)."""
    if not data:
        raise Unusable("empty")
    try:
        return open_image(io.BytesIO(data), max_pixels)
    except UnidentifiedImageError:
        raise Unusable("not_an_image") from None
    except TooManyPixels as exc:
        raise Unusable("too_many_pixels", f"{exc} > {max_pixels}", header=exc.header) from None
    except Exception as exc:  # noqa: BLE001  decoders of untrusted bytes raise many types; any of them means unusable
        raise Unusable("undecodable", str(exc)) from None


def load_strict(im: Image.Image) -> tuple[Image.Image, list[str]]:
    """Decode an opened header with truncated files refused, then `to_rgb`; `Unusable` (truncated,
    undecodable) when that fails."""
    try:
        with truncated_loading(False):
            im.load()
        return to_rgb(im)
    except Exception as exc:  # noqa: BLE001  see open_strict
        raise Unusable("truncated" if "truncated" in str(exc) else "undecodable", str(exc)) from None


def to_rgb(im: Image.Image) -> tuple[Image.Image, list[str]]:
    """Apply EXIF orientation and convert to RGB; also return what had to be fixed (empty: nothing)."""
    fixes = []
    orientation = im.getexif().get(EXIF_ORIENTATION, 1)
    if orientation in range(2, 9):
        im = ImageOps.exif_transpose(im)
        fixes.append(f"exif orientation {orientation}")
    if im.mode == "RGB":
        return im, fixes
    transparent = im.mode in ("RGBA", "LA", "PA") or "transparency" in im.info
    fixes.append(f"mode {im.mode}{' with transparency' if transparent else ''}")
    if im.mode.startswith("I"):  # 16/32-bit grey: PIL's convert would clip at 255 instead of scaling
        grey = np.clip(np.asarray(im, dtype=np.int64), 0, 65535) >> 8
        im = Image.fromarray(grey.astype(np.uint8))
    elif transparent:  # composite onto white: hidden pixels under alpha 0 are often garbage
        im = Image.alpha_composite(Image.new("RGBA", im.size, WHITE), im.convert("RGBA"))
    return im.convert("RGB"), fixes


def load_rgb(path: str | Path, max_pixels: int) -> Image.Image:
    """Open, decode, apply EXIF orientation, convert to RGB.

    Truncated-image loading is enabled here, as in the paper (§4): a file that passed `validate`
    (which decodes strictly and quarantines truncated files) decodes identically either way, and a
    file damaged later still loads instead of stopping a long run.
    """
    with truncated_loading(True):
        im = open_image(path, max_pixels)
        im.load()
    return to_rgb(im)[0]
