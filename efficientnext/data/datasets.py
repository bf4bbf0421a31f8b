"""Torch datasets over the prepared cache (data/prepared): no original image is decoded here.

`PreparedImages` opens pixels.u8 as a read-only memmap lazily, in the process that first reads an
item, so the dataset pickles small into DataLoader workers and each worker maps the file itself.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from torchvision import tv_tensors

from efficientnext.config import UserError
from efficientnext.data.prepare import INDEX, PIXELS
from efficientnext.data.tables import read_rows

__all__ = ["PreparedImages", "read_rows"]


class PreparedImages(Dataset):
    """Rows (columns path, label) of a split or the subset, served from the prepared cache.

    `__getitem__` -> (transform(uint8 CHW tv_tensors.Image), class index); no transform: the uint8 image.
    """

    def __init__(self, prepared_dir: str | Path, rows: pd.DataFrame, classes: list[str],
                 transform: Callable | None = None) -> None:
        self.pixels_path = Path(prepared_dir) / PIXELS
        index = read_rows(Path(prepared_dir) / INDEX).set_index("path")
        missing = ~rows["path"].isin(index.index)
        if missing.any():
            raise UserError(f"{int(missing.sum())} rows are not in the prepared cache {prepared_dir} "
                            f"(first: {rows['path'][missing].iloc[0]}); rerun `dvc repro prepare`")
        unknown = sorted(set(rows["label"]) - set(classes))
        if unknown:
            raise UserError(f"labels {unknown} are not in data.classes {classes}")
        located = index.loc[rows["path"]]
        self.offsets = located["offset"].to_numpy(np.int64)
        self.shapes = located[["height", "width"]].to_numpy(np.int64)
        self.targets = rows["label"].map({c: i for i, c in enumerate(classes)}).to_numpy(np.int64)
        self.transform = transform
        self._pixels: np.memmap | None = None

    def __len__(self) -> int:
        return len(self.targets)

    def image(self, i: int) -> tv_tensors.Image:
        if self._pixels is None:
            self._pixels = np.memmap(self.pixels_path, dtype=np.uint8, mode="r")
        height, width = self.shapes[i]
        start = self.offsets[i]
        hwc = np.array(self._pixels[start:start + height * width * 3]).reshape(height, width, 3)
        return tv_tensors.Image(torch.from_numpy(hwc).permute(2, 0, 1))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        image = self.image(i)
        return (self.transform(image) if self.transform else image), int(self.targets[i])

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_pixels": None}  # each process maps the file itself
