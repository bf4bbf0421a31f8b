"""split: disjoint, stratified, duplicate groups kept whole, deterministic, the scraper's test folder."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from efficientnext import config
from efficientnext.config import UserError
from efficientnext.data import split

CLASSES = ["drawings", "hentai", "neutral", "porn", "sexy"]
SIZES = {"drawings": 300, "hentai": 90, "neutral": 700, "porn": 1100, "sexy": 300}


def manifest(preset_test: int = 0) -> pd.DataFrame:
    """Usable rows per SIZES, every 25th image with a near duplicate, a few quarantined files."""
    rows = []
    for label, n in SIZES.items():
        for i in range(n):
            path = f"{label}/{i:05d}.jpg"
            group = f"{label}/{i - i % 2:05d}.jpg" if i % 50 < 2 else path  # pairs (0,1), (50,51), ...
            rows.append((path, label, "ok", group, "test" if i < preset_test else ""))
        rows.append((f"{label}/broken.jpg", label, "quarantined", "", ""))
    frame = pd.DataFrame(rows, columns=["path", "label", "status", "group_path", "preset_split"])
    frame["group"] = frame.groupby("group_path").ngroup().where(frame["status"] == "ok", -1)
    return frame.drop(columns="group_path")


def test_splits_are_disjoint_complete_and_stratified():
    params = config.SplitParams()
    splits = split.split_manifest(manifest(), CLASSES, params)
    paths = [set(frame["path"]) for frame in splits.values()]
    assert sum(map(len, paths)) == len(set.union(*paths)) == sum(SIZES.values())
    assert not any(frame["status"].eq("quarantined").any() for frame in splits.values())
    for label, n in SIZES.items():
        for name, ratio in (("train", params.train), ("val", params.val), ("test", params.test)):
            count = (splits[name]["label"] == label).sum()
            assert abs(count - ratio * n) <= 2, (label, name, count)  # within one duplicate pair


def test_duplicate_groups_never_straddle_splits():
    splits = split.split_manifest(manifest(), CLASSES, config.SplitParams())
    group_splits = pd.concat([frame.assign(split=name) for name, frame in splits.items()]).groupby("group")["split"]
    assert group_splits.nunique().max() == 1
    assert split.summarize(splits, CLASSES)["duplicate_groups"] == sum(-(-n // 50) for n in SIZES.values())


def test_split_is_deterministic_by_seed():
    first = split.split_manifest(manifest(), CLASSES, config.SplitParams())
    again = split.split_manifest(manifest(), CLASSES, config.SplitParams())
    other = split.split_manifest(manifest(), CLASSES, config.SplitParams(seed=1))
    assert all(first[s]["path"].tolist() == again[s]["path"].tolist() for s in split.SPLIT_NAMES)
    assert first["train"]["path"].tolist() != other["train"]["path"].tolist()


def test_scraper_test_folder_is_the_test_split():
    rows = manifest(preset_test=51)  # the group (50, 51) straddles test/ and train/: it goes to test whole
    splits = split.split_manifest(rows, CLASSES, config.SplitParams())
    usable = rows[rows["status"] == "ok"]
    expected_test = usable[usable["path"].str.slice(-9, -4).astype(int) < 52]
    assert sorted(splits["test"]["path"]) == sorted(expected_test["path"])
    summary = split.summarize(splits, CLASSES)
    assert summary["test_from_folder"] is True
    for label, n in SIZES.items():  # the rest divides 70 : 15 into train and val
        rest = n - 52
        assert abs(summary["counts"]["train"][label] - rest * 0.7 / 0.85) <= 2


def test_a_class_with_no_usable_image_is_an_error():
    rows = manifest()
    rows.loc[rows["label"] == "hentai", "status"] = "quarantined"
    with pytest.raises(UserError) as err:
        split.split_manifest(rows, CLASSES, config.SplitParams())
    assert str(err.value) == ("class 'hentai' has no usable image (91 files, all quarantined; "
                              "see metrics/validate.json)")


def test_deal_fills_the_class_targets_exactly_for_single_images():
    groups = pd.DataFrame({"group": np.arange(20), "size": 1})
    assigned = split._deal(groups, {"train": 0.7, "val": 0.15, "test": 0.15}, np.random.default_rng(0))
    assert pd.Series(assigned).value_counts().to_dict() == {"train": 14, "val": 3, "test": 3}
