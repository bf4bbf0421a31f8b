"""Stage `subset`: the class-balanced subset the sweep trains and validates on (paper: 10k per class).

Per class, subset.per_class images drawn (seeded) from the train and val splits only, the test split
untouched: about subset.val_fraction of them from val (part = val), the rest from train (part = train).
When one split has too few, the other tops it up; a class with fewer images in all gives all it has,
and the shortfall is reported in metrics/subset.json.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from efficientnext import artifacts, config
from efficientnext.data.tables import read_rows
from efficientnext.paths import SUBSET_CSV, SUBSET_METRICS, split_csv



def _counts(target: int, val_fraction: float, available_train: int, available_val: int) -> tuple[int, int]:
    """(train, val) images to take for one class."""
    want_val = round(target * val_fraction)
    n_train, n_val = min(target - want_val, available_train), min(want_val, available_val)
    n_train += min(target - n_train - n_val, available_train - n_train)  # train tops up a short val
    n_val += min(target - n_train - n_val, available_val - n_val)  # and val a short train
    return n_train, n_val


def draw_subset(train: pd.DataFrame, val: pd.DataFrame, classes: list[str],
                params: config.SubsetParams) -> tuple[pd.DataFrame, dict]:
    """The subset rows (split rows + part) and the per-class report."""
    rng = np.random.default_rng(params.seed)
    parts, report = [], {}
    for name in classes:
        pools = {"train": train[train["label"] == name], "val": val[val["label"] == name]}
        taken = dict(zip(pools, _counts(params.per_class, params.val_fraction, len(pools["train"]), len(pools["val"]))))
        for part, pool in pools.items():
            parts.append(pool.iloc[np.sort(rng.permutation(len(pool))[: taken[part]])].assign(part=part))
        report[name] = {**taken, "target": params.per_class, "shortfall": params.per_class - sum(taken.values())}
    subset = pd.concat(parts, ignore_index=True).sort_values(["part", "path"], ignore_index=True)
    return subset, report


def run(params: config.Params) -> None:
    train, val = read_rows(split_csv("train")), read_rows(split_csv("val"))
    subset, report = draw_subset(train, val, params.data.classes, params.subset)
    short = {name: r["shortfall"] for name, r in report.items() if r["shortfall"]}
    artifacts.write_csv(SUBSET_CSV, subset)
    artifacts.write_json(SUBSET_METRICS, {
        "per_class": report,
        "totals": {part: int((subset["part"] == part).sum()) for part in ("train", "val")},
        "shortfall": sum(short.values()),
    })
    note = f"; short of the target: {short}" if short else ""
    print(f"subset: {len(subset)} images, {params.subset.per_class} per class{note}")
