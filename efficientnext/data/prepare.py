"""Stage `prepare`: decode every usable image once, resize it (short side = prepare.short_side, aspect
kept) and store all of them in one uint8 file, so epochs and sweep trials never decode originals again
and DVC tracks two files instead of one per image.

data/prepared/pixels.u8  the images' HWC RGB bytes, back to back
data/prepared/index.csv  path, label, offset (bytes into pixels.u8), height, width; one row per image
Random access by index: `np.memmap` of pixels.u8 sliced at offset (see datasets.PreparedImages).
"""

from __future__ import annotations

import functools
import multiprocessing
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from tqdm import tqdm

from efficientnext import artifacts, config
from efficientnext.data.images import load_rgb
from efficientnext.data.tables import read_rows
from efficientnext.paths import PREPARED, PREPARED_INDEX, PREPARED_PIXELS, SPLIT_NAMES, SPLITS

PIXELS, INDEX = PREPARED_PIXELS.name, PREPARED_INDEX.name  # file names inside any prepared folder


def resize_short_side(im: Image.Image, short_side: int) -> Image.Image:
    """Scale so the shorter side is `short_side` (up or down), keeping the aspect ratio."""
    scale = short_side / min(im.size)
    size = tuple(max(1, round(side * scale)) for side in im.size)
    return im if size == im.size else im.resize(size, Image.Resampling.BICUBIC)


def prepared_pixels(rgb: Image.Image, short_side: int) -> np.ndarray:
    """The cached form of a decoded RGB image: resized, HWC uint8 (`predict` makes it from a user's file)."""
    return np.asarray(resize_short_side(rgb, short_side))


def decode_resized(path: str | Path, short_side: int, max_pixels: int) -> np.ndarray:
    """The cached form of one file."""
    return prepared_pixels(load_rgb(path, max_pixels), short_side)


def build_cache(rows: pd.DataFrame, root: Path, out_dir: Path, prepare: config.PrepareParams,
                max_pixels: int) -> pd.DataFrame:
    """Write pixels.u8 (streamed, in row order) and index.csv for `rows` (path, label); return the index."""
    decode = functools.partial(decode_resized, short_side=prepare.short_side, max_pixels=max_pixels)
    offsets, heights, widths = [], [], []
    offset = 0
    with artifacts.atomic_path(out_dir / PIXELS) as tmp, open(tmp, "wb") as blob, \
            multiprocessing.Pool(prepare.workers) as pool:
        images = pool.imap(decode, [root / p for p in rows["path"]], chunksize=16)
        for pixels in tqdm(images, total=len(rows), desc="prepare", unit="img", mininterval=1.0):
            blob.write(pixels.tobytes())
            offsets.append(offset)
            heights.append(pixels.shape[0])
            widths.append(pixels.shape[1])
            offset += pixels.nbytes
    index = pd.DataFrame({"path": rows["path"].to_numpy(), "label": rows["label"].to_numpy(), "offset": offsets,
                          "height": heights, "width": widths})
    artifacts.write_csv(out_dir / INDEX, index)
    return index


def read_split_rows(split_dir: Path) -> pd.DataFrame:
    """Every row of the three splits, in path order."""
    rows = pd.concat([read_rows(split_dir / f"{s}.csv") for s in SPLIT_NAMES], ignore_index=True)
    return rows.sort_values("path", ignore_index=True)


def run(params: config.Params) -> None:
    rows = read_split_rows(SPLITS)
    index = build_cache(rows, Path(params.data.root), PREPARED, params.prepare, params.validate_.max_pixels)
    size_mb = (3 * index["height"] * index["width"]).sum() / 2**20
    print(f"prepare: {len(index)} images, short side {params.prepare.short_side}, {size_mb:.1f} MiB in {PREPARED}")
