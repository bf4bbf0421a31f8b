"""subset: class-balanced, from train and val only, val share, shortfall reported."""

from __future__ import annotations

import pandas as pd

from efficientnext import config
from efficientnext.data import subset

CLASSES = ["a", "b", "c"]


def rows(counts: dict[str, int], prefix: str) -> pd.DataFrame:
    return pd.DataFrame([(f"{prefix}/{label}/{i}.jpg", label) for label, n in counts.items() for i in range(n)],
                        columns=["path", "label"])


def test_balanced_subset_from_train_and_val_with_shortfall():
    train = rows({"a": 100, "b": 30, "c": 5}, "train")
    val = rows({"a": 20, "b": 3, "c": 2}, "val")
    picked, report = subset.draw_subset(train, val, CLASSES, config.SubsetParams(per_class=40, val_fraction=0.2))
    assert report == {
        "a": {"train": 32, "val": 8, "target": 40, "shortfall": 0},
        "b": {"train": 30, "val": 3, "target": 40, "shortfall": 7},  # both parts short: all it has
        "c": {"train": 5, "val": 2, "target": 40, "shortfall": 33},
    }
    assert picked.groupby(["label", "part"]).size().to_dict() == {
        ("a", "train"): 32, ("a", "val"): 8, ("b", "train"): 30, ("b", "val"): 3, ("c", "train"): 5, ("c", "val"): 2}
    assert picked["path"].is_unique
    assert picked.loc[picked["part"] == "train", "path"].str.startswith("train/").all()
    assert picked.loc[picked["part"] == "val", "path"].str.startswith("val/").all()


def test_a_short_val_split_is_topped_up_from_train():
    train, val = rows({"a": 100, "b": 100, "c": 100}, "train"), rows({"a": 2, "b": 50, "c": 50}, "val")
    _, report = subset.draw_subset(train, val, CLASSES, config.SubsetParams(per_class=50, val_fraction=0.2))
    assert report["a"] == {"train": 48, "val": 2, "target": 50, "shortfall": 0}
    assert report["b"] == {"train": 40, "val": 10, "target": 50, "shortfall": 0}


def test_subset_is_deterministic_by_seed():
    train, val = rows({"a": 100, "b": 100, "c": 100}, "train"), rows({"a": 30, "b": 30, "c": 30}, "val")
    params = config.SubsetParams(per_class=20)
    first, _ = subset.draw_subset(train, val, CLASSES, params)
    again, _ = subset.draw_subset(train, val, CLASSES, params)
    other, _ = subset.draw_subset(train, val, CLASSES, config.SubsetParams(per_class=20, seed=1))
    assert first.equals(again) and not first.equals(other)
