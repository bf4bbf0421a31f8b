"""Reading the pipeline's row tables (data/manifest.csv, data/splits/*.csv, data/subset.csv).

Text columns stay text (a phash of digits is not a number) and an empty reason stays "", not NaN.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from efficientnext.config import UserError

TEXT_COLUMNS = ("path", "label", "sha256", "mode", "format", "status", "reason", "phash", "preset_split", "part")


def read_rows(path: str | Path) -> pd.DataFrame:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} not found; run `dvc repro` to make it")
    return pd.read_csv(path, dtype=dict.fromkeys(TEXT_COLUMNS, str), keep_default_na=False)
