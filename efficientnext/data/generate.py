"""Stage `generate`: the embedded stand-in dataset, written as data/raw/<class>/<file>.

No NSFW data may be downloaded or committed, so the pipeline renders images from two latent factors:

- style: "drawn" (flat colours, ink outlines, hard edges) or "photo" (smooth colour fields, lighting
  gradient, blur, sensor noise);
- skin coverage: the fraction of the image covered by skin-toned regions, drawn per image from a
  class-conditional range.

drawings = drawn + little skin, hentai = drawn + dominant skin, neutral = photo + none,
sexy = photo + partial, porn = photo + dominant. The coverage ranges overlap, so drawings/hentai and
sexy/porn are the hard pairs, as in real data. Both factors survive downscaling to 64 px.

Every image is a pure function of (data.seed, class name, index): its own numpy RNG, fixed PIL save
options and no timestamps, so the same params give the same bytes whatever the number of workers.
With data.source folder the stage only writes data/raw/SOURCE.txt (its DVC output) naming data.root.
"""

from __future__ import annotations

import colorsys
import dataclasses
import io
import math
import multiprocessing
import shutil
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from efficientnext import config
from efficientnext.paths import RAW

# Image counts of the public nsfw_data_scraper URL lists; the generated classes keep these proportions.
SCRAPER_COUNTS = {"neutral": 36_800, "porn": 57_300, "drawings": 15_600, "sexy": 16_000, "hentai": 4_600}
# Every class gets at least this many images, so the smallest still lands in train, val and test.
MIN_PER_CLASS = 5


@dataclasses.dataclass(frozen=True)
class Recipe:
    style: str  # "drawn" | "photo"
    coverage: tuple[float, float]  # uniform range of the skin-covered fraction of the image


RECIPES = {
    "drawings": Recipe("drawn", (0.0, 0.30)),
    "hentai": Recipe("drawn", (0.24, 0.80)),
    "neutral": Recipe("photo", (0.0, 0.04)),
    "sexy": Recipe("photo", (0.10, 0.42)),
    "porn": Recipe("photo", (0.36, 0.85)),
}

# The failure cases of scraped data that `validate` must catch; one file of each kind.
BROKEN_KINDS = {
    "zero_byte": "jpg",
    "truncated_jpeg": "jpg",
    "html_as_jpg": "jpg",
    "corrupt_png_data": "png",
    "cmyk_jpeg": "jpg",
    "palette_png_transparency": "png",
    "gray16_png": "png",
    "too_many_pixels": "png",
    "exif_rotated_jpeg": "jpg",
}

PNG_COMPRESS_LEVEL = 3
EXTENSIONS = {"JPEG": "jpg", "PNG": "png"}
SOURCE_NOTE = "SOURCE.txt"


@dataclasses.dataclass(frozen=True)
class Job:
    """Everything needed to render one file; the file is a pure function of it."""

    relpath: str
    style: str
    coverage: float
    content_seed: int
    noise_seed: int
    width: int  # the scene's size
    height: int
    fmt: str  # "JPEG" | "PNG"
    quality: int
    resize_to: tuple[int, int] | None = None  # near duplicates: the scene resized to this before saving


def class_counts(classes: list[str], total: int) -> dict[str, int]:
    """Scraper-list proportions scaled to `total` (largest remainder), at least MIN_PER_CLASS each."""
    weights = np.array([SCRAPER_COUNTS[c.lower()] for c in classes], dtype=float)
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[i] += 1
    return {c: max(int(n), MIN_PER_CLASS) for c, n in zip(classes, counts)}


def _class_rng(seed: int, name: str, stream: int) -> np.random.Generator:
    # Keyed by class name, not position, so adding or reordering classes leaves the others unchanged.
    return np.random.default_rng([seed, zlib.crc32(name.lower().encode()), stream])


def plan_images(params: config.Params) -> list[Job]:
    """The rendering jobs of all regular images (duplicates included), in file-name order per class."""
    syn = params.data.synthetic
    jobs: list[Job] = []
    for name, count in class_counts(params.data.classes, syn.total).items():
        recipe = RECIPES[name.lower()]
        rng = _class_rng(params.data.seed, name, 0)
        n_dup = round(count * syn.duplicate_fraction)
        originals: list[Job] = []
        for i in range(count):
            stem = f"{name}/{name}_{i:05d}"
            if i < count - n_dup:
                width = int(rng.integers(syn.min_side, syn.max_side + 1))
                aspect = math.exp(rng.uniform(math.log(0.6), math.log(1.67)))
                height = int(np.clip(round(width * aspect), syn.min_side, syn.max_side))
                fmt = "PNG" if rng.random() < syn.png_fraction else "JPEG"
                coverage = float(rng.uniform(*recipe.coverage))
                seeds = int(rng.integers(2**63)), int(rng.integers(2**63))
                job = Job(f"{stem}.{EXTENSIONS[fmt]}", recipe.style, coverage, *seeds, width, height, fmt,
                          int(rng.integers(75, 96)))
                originals.append(job)
            else:
                source = originals[int(rng.integers(len(originals)))]
                exact = (i - len(originals)) % 2 == 0  # alternately an exact copy and a near duplicate
                job = _duplicate(source, stem, exact, rng, syn.min_side, syn.max_side)
            jobs.append(job)
    return jobs


def _duplicate(src: Job, stem: str, exact: bool, rng: np.random.Generator, min_side: int, max_side: int) -> Job:
    """An exact copy (same bytes) or a near duplicate (the same image resized and saved as another JPEG)."""
    if exact:
        return dataclasses.replace(src, relpath=f"{stem}.{EXTENSIONS[src.fmt]}")
    scale = rng.uniform(0.8, 1.25)
    size = tuple(int(np.clip(round(side * scale), min_side, max_side)) for side in (src.width, src.height))
    return dataclasses.replace(src, relpath=f"{stem}.jpg", fmt="JPEG", quality=int(rng.integers(70, 90)),
                               resize_to=size)


# ---- rendering -------------------------------------------------------------------------------------

INK = (24, 20, 28)


def _rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    return tuple(int(round(255 * c)) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _non_skin_hue(rng: np.random.Generator) -> float:
    # Yellow-green through magenta: skin's reds, oranges and browns stay exclusive to skin regions.
    return rng.uniform(75, 330) / 360


def _skin_tone(rng: np.random.Generator) -> np.ndarray:
    light, dark = np.array([241, 194, 167]), np.array([141, 85, 60])
    t = rng.uniform()
    return np.clip(light + t * (dark - light) + rng.uniform(-8, 8, 3), 0, 255).astype(np.float32)


def _resize_plane(plane: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(plane.astype(np.float32), "F").resize((width, height), Image.BILINEAR))


def _skin_field(rng: np.random.Generator, grid: int = 24) -> np.ndarray:
    """A smooth low-resolution field; its top quantile is the skin region (body-like blobs)."""
    y, x = np.mgrid[0:grid, 0:grid] / (grid - 1)
    field = np.zeros((grid, grid), np.float32)
    for _ in range(int(rng.integers(1, 3))):
        cx, cy = rng.uniform(0.25, 0.75, 2)
        sx, sy = rng.uniform(0.12, 0.35, 2)
        field += np.exp(-(((x - cx) / sx) ** 2 + ((y - cy) / sy) ** 2) / 2).astype(np.float32)
    noise = rng.standard_normal((5, 5)).astype(np.float32)
    return field + 0.3 * np.asarray(Image.fromarray(noise, "F").resize((grid, grid), Image.BICUBIC))


def _threshold(field: np.ndarray, coverage: float) -> float:
    """The value above which exactly `coverage` of the pixels lie (inf for no skin)."""
    if coverage <= 0:
        return math.inf
    flat = field.ravel()
    k = min(int(round((1 - coverage) * flat.size)), flat.size - 1)
    return float(np.partition(flat, k)[k])


def _dilate(mask: np.ndarray, radius: int) -> np.ndarray:
    """Binary dilation by a (2r+1)-square, separably with shifted ORs."""
    out = mask.copy()
    for axis in (0, 1):
        src = out.copy()
        for r in range(1, radius + 1):
            out |= np.roll(src, r, axis) | np.roll(src, -r, axis)
    return out


def _shapes(draw: ImageDraw.ImageDraw, rng: np.random.Generator, size: tuple[int, int], colour, **style) -> None:
    """Background objects: ellipses, boxes and triangles in normalised coordinates, scaled to the image."""
    for _ in range(int(rng.integers(2, 6))):
        kind = int(rng.integers(3))
        x0, y0 = rng.uniform(-0.1, 0.8, 2)
        w, h = rng.uniform(0.15, 0.5, 2)
        box = [x0 * size[0], y0 * size[1], (x0 + w) * size[0], (y0 + h) * size[1]]
        fill = colour(rng)
        if kind == 0:
            draw.ellipse(box, fill=fill, **style)
        elif kind == 1:
            draw.rectangle(box, fill=fill, **style)
        else:
            apex = (box[0] + rng.uniform() * (box[2] - box[0]), box[1])
            draw.polygon([apex, (box[0], box[3]), (box[2], box[3])], fill=fill, **style)


def _render_drawn(job: Job) -> Image.Image:
    rng = np.random.default_rng(job.content_seed)
    w, h = job.width, job.height
    ink_width = max(1, round(min(w, h) * rng.uniform(0.012, 0.025)))
    img = Image.new("RGB", (w, h), _rgb(_non_skin_hue(rng), rng.uniform(0.1, 0.35), rng.uniform(0.85, 1.0)))
    draw = ImageDraw.Draw(img)
    if rng.random() < 0.5:  # a floor or horizon, as many drawings have
        top = h * rng.uniform(0.55, 0.8)
        draw.rectangle([-ink_width, top, w + ink_width, h + ink_width], outline=INK, width=ink_width,
                       fill=_rgb(_non_skin_hue(rng), rng.uniform(0.2, 0.5), rng.uniform(0.6, 0.9)))
    _shapes(draw, rng, (w, h), lambda r: _rgb(_non_skin_hue(r), r.uniform(0.5, 0.9), r.uniform(0.7, 1.0)),
            outline=INK, width=ink_width)
    px = np.array(img)
    field = _resize_plane(_skin_field(rng), w, h)
    skin = field >= _threshold(field, job.coverage)
    tone = _skin_tone(rng)
    px[skin] = tone.astype(np.uint8)
    highlight = field >= _threshold(field, job.coverage * 0.3)  # cel shading: a lighter core
    px[highlight] = np.clip(tone * 1.08 + 10, 0, 255).astype(np.uint8)
    px[_dilate(skin, ink_width) & ~skin] = INK
    return Image.fromarray(px)


def _render_photo(job: Job) -> Image.Image:
    rng = np.random.default_rng(job.content_seed)
    w, h = job.width, job.height
    muted = lambda r: _rgb(_non_skin_hue(r), r.uniform(0.05, 0.45), r.uniform(0.3, 0.9))  # noqa: E731
    # Scene drawn at low resolution and upscaled: smooth colour fields and out-of-focus objects, cheaply.
    grid = np.array([[muted(rng) for _ in range(3)] for _ in range(3)], dtype=np.uint8)
    blur = rng.uniform(3, 6)
    low = (max(8, round(w / blur)), max(8, round(h / blur)))
    scene = Image.fromarray(grid).resize(low, Image.BICUBIC)
    _shapes(ImageDraw.Draw(scene), rng, low, muted)
    px = np.asarray(scene.resize((w, h), Image.BICUBIC), dtype=np.float32)

    field = _resize_plane(_skin_field(rng), w, h)
    threshold = _threshold(field, job.coverage)
    tone = _skin_tone(rng)
    if math.isfinite(threshold):
        span = max(float(field.max()) - threshold, 1e-6)
        alpha = np.clip((field - threshold) / (0.08 * span) + 0.5, 0, 1)[..., None]  # soft edges
        shade = 0.75 + 0.4 * np.clip((field - threshold) / span, 0, 1)[..., None]  # rounded, lit bodies
        px += alpha * (tone * shade - px)

    angle = rng.uniform(0, 2 * math.pi)
    ramp = math.cos(angle) * np.linspace(-0.5, 0.5, w)[None, :] + math.sin(angle) * np.linspace(-0.5, 0.5, h)[:, None]
    px *= (1 + rng.uniform(0.3, 0.7) * ramp.astype(np.float32))[..., None]  # lighting gradient
    # Sensor noise, luminance only (a third of the cost of per-channel noise).
    px += np.random.default_rng(job.noise_seed).standard_normal((h, w, 1), dtype=np.float32) * rng.uniform(3, 10)
    return Image.fromarray(np.clip(px, 0, 255).astype(np.uint8))


def render(job: Job) -> Image.Image:
    return _render_drawn(job) if job.style == "drawn" else _render_photo(job)


def encode(img: Image.Image, fmt: str, quality: int = 90, **options) -> bytes:
    """Fixed save options and no metadata, so equal pixels give equal bytes."""
    buf = io.BytesIO()
    if fmt == "JPEG":
        img.save(buf, "JPEG", quality=quality, **options)
    else:
        img.save(buf, "PNG", compress_level=PNG_COMPRESS_LEVEL, **options)
    return buf.getvalue()


def _render_job(job: Job) -> tuple[str, bytes]:
    img = render(job)
    if job.resize_to:
        img = img.resize(job.resize_to, Image.Resampling.BICUBIC)
    return job.relpath, encode(img, job.fmt, job.quality)


# ---- broken files ----------------------------------------------------------------------------------

def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _bilevel_png(width: int, height: int, rows: Iterator[bytes]) -> bytes:
    """A 1-bit greyscale PNG written chunk by chunk, streaming its rows (no PIL image in memory)."""
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for row in rows) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _too_many_pixels_png(max_pixels: int) -> bytes:
    """A valid, tiny (1-bit, all black) PNG with one pixel more than the limit allows, or a few more."""
    width = math.isqrt(max_pixels) + 1
    height = max_pixels // width + 1
    row = bytes(1 + (width + 7) // 8)  # filter byte 0 + packed 1-bit pixels
    return _bilevel_png(width, height, (row for _ in range(height)))


def broken_file_bytes(kind: str, base: Image.Image, max_pixels: int) -> bytes:
    """The bytes of one injected failure case; `base` is a regular rendered image."""
    if kind == "zero_byte":
        return b""
    if kind == "truncated_jpeg":
        whole = encode(base, "JPEG")
        return whole[: len(whole) * 6 // 10]
    if kind == "html_as_jpg":
        return (b"<!DOCTYPE html>\n<html><head><title>403 Forbidden</title></head>\n"
                b"<body><h1>Forbidden</h1></body></html>\n")
    if kind == "corrupt_png_data":  # a valid header, then a data stream that is not zlib
        header = struct.pack(">IIBBBBB", 64, 64, 8, 0, 0, 0, 0)
        return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", bytes(range(256)) * 4)
                + _png_chunk(b"IEND", b""))
    if kind == "cmyk_jpeg":
        return encode(base.convert("CMYK"), "JPEG")
    if kind == "palette_png_transparency":
        return encode(base.quantize(64), "PNG", transparency=0)
    if kind == "gray16_png":
        return encode(Image.fromarray(np.asarray(base.convert("L"), dtype=np.uint16) * 257), "PNG")
    if kind == "too_many_pixels":
        return _too_many_pixels_png(max_pixels)
    if kind == "exif_rotated_jpeg":  # stored on its side; orientation 6 says "rotate 90° clockwise to view"
        exif = Image.Exif()
        exif[0x0112] = 6
        return encode(base.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif.tobytes())
    raise ValueError(f"unknown broken-file kind {kind!r}")


def broken_file_plan(params: config.Params) -> dict[str, str]:
    """relpath -> kind of each injected broken file (none when data.synthetic.broken_files is off).

    The kinds go round the classes; each file is numbered on from its class's regular images.
    """
    if not params.data.synthetic.broken_files:
        return {}
    classes = params.data.classes
    next_index = class_counts(classes, params.data.synthetic.total)
    plan = {}
    for k, (kind, ext) in enumerate(BROKEN_KINDS.items()):
        name = classes[k % len(classes)]
        plan[f"{name}/{name}_{next_index[name]:05d}.{ext}"] = kind
        next_index[name] += 1
    return plan


def _broken_base(params: config.Params, relpath: str) -> Image.Image:
    """A regular image of the file's class (the fixable cases are real members of it), its own scene."""
    name = relpath.split("/")[0]
    rng = _class_rng(params.data.seed, name, zlib.crc32(relpath.encode()))
    return render(Job(relpath, RECIPES[name.lower()].style, float(rng.uniform(*RECIPES[name.lower()].coverage)),
                      int(rng.integers(2**63)), int(rng.integers(2**63)), 160, 120, "JPEG", 90))


# ---- the stage -------------------------------------------------------------------------------------

def generate(params: config.Params, out_dir: Path) -> int:
    """Write the synthetic dataset into `out_dir` (which must not exist yet); returns the number of files."""
    jobs = plan_images(params)
    for name in params.data.classes:
        (out_dir / name).mkdir(parents=True)
    with multiprocessing.Pool(params.data.synthetic.workers) as pool:
        for relpath, data in pool.imap(_render_job, jobs, chunksize=16):
            (out_dir / relpath).write_bytes(data)
    broken = broken_file_plan(params)
    for relpath, kind in broken.items():
        data = broken_file_bytes(kind, _broken_base(params, relpath), params.validate_.max_pixels)
        (out_dir / relpath).write_bytes(data)
    return len(jobs) + len(broken)


def source_note(root: str) -> str:
    return (f"data.source is folder: the images are read from data.root = {root}.\n"
            "This file only stands for the generate stage's output, which holds no images for a folder source.\n")


def run(params: config.Params) -> None:
    """Replace data/raw as a whole (temp folder, then rename), so a failed run leaves no half dataset."""
    raw = RAW
    tmp = raw.with_name(f".{raw.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if params.data.source == "synthetic":
        count = generate(params, tmp)
        message = f"generate: wrote {count} files to {raw}"
    else:
        tmp.mkdir(parents=True)
        (tmp / SOURCE_NOTE).write_text(source_note(params.data.root))
        message = f"generate: data.source is folder, wrote only {raw / SOURCE_NOTE}"
    shutil.rmtree(raw, ignore_errors=True)
    tmp.rename(raw)
    print(message)
