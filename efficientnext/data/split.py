"""Stage `split`: stratified, group-aware train/val/test split of the usable manifest rows.

A duplicate group (exact or near duplicates, from `validate`) is never divided: whole groups are dealt
out, class by class, each to the split furthest below its target count for that class (seeded order,
biggest groups first), which keeps every class's proportions within one group of the ratios.
With the scraper layout's test/ folder, those files are the test split and the rest is divided into
train and val in the ratio train : val; a duplicate group touching test/ goes wholly to test, so no
copy of a test image is trained on.
"""

from __future__ import annotations


import numpy as np
import pandas as pd

from efficientnext import artifacts, config
from efficientnext.config import UserError
from efficientnext.data.tables import read_rows
from efficientnext.paths import MANIFEST, SPLIT_METRICS, SPLIT_NAMES, split_csv


def _deal(groups: pd.DataFrame, ratios: dict[str, float], rng: np.random.Generator) -> dict[int, str]:
    """group id -> split, for the groups of one class (columns: group, size)."""
    order = groups.iloc[rng.permutation(len(groups))].sort_values("size", ascending=False, kind="stable")
    target = {s: r * order["size"].sum() for s, r in ratios.items()}
    filled = dict.fromkeys(ratios, 0)
    assigned = {}
    for group, size in zip(order["group"], order["size"]):
        split = max(ratios, key=lambda s: target[s] - filled[s])  # ties: the first in SPLIT_NAMES order
        assigned[int(group)] = split
        filled[split] += int(size)
    return assigned


def assign_splits(rows: pd.DataFrame, classes: list[str], params: config.SplitParams) -> pd.Series:
    """The split of every row (rows: usable manifest rows with label, group, preset_split)."""
    preset = rows.groupby("group")["preset_split"].agg(lambda s: "test" if (s == "test").any() else "")
    if (preset == "test").any():
        ratios = {"train": params.train / (params.train + params.val), "val": params.val / (params.train + params.val)}
    else:
        ratios = {"train": params.train, "val": params.val, "test": params.test}
    # A group's class for stratification is its most frequent label (a group is almost always one class).
    label = rows.groupby("group")["label"].agg(lambda s: s.value_counts().index[0])
    sizes = rows.groupby("group").size()
    table = pd.DataFrame({"group": sizes.index, "size": sizes.to_numpy(), "label": label.loc[sizes.index].to_numpy(),
                          "preset": preset.loc[sizes.index].to_numpy()})
    rng = np.random.default_rng(params.seed)
    assigned = {int(g): "test" for g in table.loc[table["preset"] == "test", "group"]}
    free = table[table["preset"] != "test"]
    for name in classes:
        assigned.update(_deal(free[free["label"] == name], ratios, rng))
    return rows["group"].map(assigned)


def split_manifest(manifest: pd.DataFrame, classes: list[str], params: config.SplitParams) -> dict[str, pd.DataFrame]:
    usable = manifest[manifest["status"] != "quarantined"]
    for name in classes:
        if not (usable["label"] == name).any():
            total = int((manifest["label"] == name).sum())
            raise UserError(f"class '{name}' has no usable image ({total} files, all quarantined; "
                            "see metrics/validate.json)")
    split = assign_splits(usable, classes, params)
    return {s: usable[split == s].sort_values("path") for s in SPLIT_NAMES}


def summarize(splits: dict[str, pd.DataFrame], classes: list[str]) -> dict:
    rows = pd.concat(splits.values())
    group_sizes = rows.groupby("group").size()
    return {
        "test_from_folder": bool((rows["preset_split"] == "test").any()),
        "counts": {s: {c: int((frame["label"] == c).sum()) for c in classes} for s, frame in splits.items()},
        "totals": {s: len(frame) for s, frame in splits.items()},
        "duplicate_groups": int((group_sizes > 1).sum()),
    }


def run(params: config.Params) -> None:
    splits = split_manifest(read_rows(MANIFEST), params.data.classes, params.split)
    for name, frame in splits.items():
        artifacts.write_csv(split_csv(name), frame)
    summary = summarize(splits, params.data.classes)
    artifacts.write_json(SPLIT_METRICS, summary)
    print(f"split: {summary['totals']}, {summary['duplicate_groups']} duplicate groups kept whole")
