"""Stage `validate`: read and fully decode every file of data.root once; write data/manifest.csv and
metrics/validate.json. Source files are only ever opened for reading.

Each file is decoded strictly first (PIL's truncated-image loading off), so a truncated file is caught
and quarantined; later readers use `load_rgb`, which enables truncated loading as the paper does.
Outcomes: ok; fixed (usable after `to_rgb`: CMYK, L, LA, P with transparency, RGBA, I;16, EXIF
orientation); quarantined with a reason. Usable files are grouped into duplicate groups: exact
(same sha256) and near (perceptual hash within validate.near_duplicate_distance bits).
Files are inspected in a process pool and streamed back in order; no image is kept in memory.
"""

from __future__ import annotations

import functools
import hashlib
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import imagehash
import numpy as np
import pandas as pd
from tqdm import tqdm

from efficientnext import artifacts, config
from efficientnext.data.images import UNUSABLE_REASONS, Unusable, load_strict, open_strict
from efficientnext.data.layout import Layout, SourceFile, discover
from efficientnext.paths import MANIFEST, VALIDATE_METRICS

STATUSES = ("ok", "fixed", "quarantined")
COLUMNS = ["path", "label", "sha256", "size_bytes", "width", "height", "mode", "format", "status", "reason",
           "phash", "group", "preset_split"]


def inspect_bytes(data: bytes, max_pixels: int) -> dict:
    """Judge one file's bytes: header facts, status, reason (a quarantine reason or the fixes), phash."""
    facts = {"sha256": hashlib.sha256(data).hexdigest(), "size_bytes": len(data), "width": 0, "height": 0,
             "mode": "", "format": "", "phash": ""}
    try:
        im = open_strict(data, max_pixels)
    except Unusable as exc:
        header = exc.header
        if header is not None:
            facts.update(width=header.width, height=header.height, mode=header.mode, format=header.format or "")
        return {**facts, "status": "quarantined", "reason": exc.reason}
    facts.update(width=im.width, height=im.height, mode=im.mode, format=im.format or "")
    try:
        rgb, fixes = load_strict(im)
    except Unusable as exc:
        return {**facts, "status": "quarantined", "reason": exc.reason}
    facts["phash"] = str(imagehash.phash(rgb))
    return {**facts, "status": "fixed" if fixes else "ok", "reason": "; ".join(fixes)}


def _inspect(source: SourceFile, root: Path, max_pixels: int) -> dict:
    # Read once: hashing and decoding both use these bytes.
    record = inspect_bytes((root / source.path).read_bytes(), max_pixels)
    return {"path": source.path, "label": source.label, **record, "preset_split": source.preset_split}


def _band_pairs(hashes: np.ndarray, distance: int) -> Iterator[tuple[int, int]]:
    """Index pairs of 64-bit hashes within `distance` bits.

    Pigeonhole: split the bits into distance + 1 bands; two hashes that close agree on at least one band
    exactly, so only hashes sharing a band value are compared (near-linear instead of all pairs).
    """
    if distance >= 64:  # every pair of 64-bit hashes is that close
        yield from ((0, j) for j in range(1, len(hashes)))
        return
    bounds = np.linspace(0, 64, distance + 2).astype(int)
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        keys = (hashes >> np.uint64(lo)) & np.uint64((1 << int(hi - lo)) - 1)
        order = np.argsort(keys, kind="stable")
        ordered = keys[order]
        for bucket in np.split(order, np.flatnonzero(ordered[1:] != ordered[:-1]) + 1):
            if len(bucket) < 2:
                continue
            close = np.bitwise_count(hashes[bucket][:, None] ^ hashes[bucket][None, :]) <= distance
            for a, b in zip(*np.nonzero(np.triu(close, 1))):
                yield int(bucket[a]), int(bucket[b])


def duplicate_groups(sha256: list[str], phash: list[str], distance: int) -> np.ndarray:
    """Group id per row (the first row of its group): rows joined by equal sha256 or close phash."""
    parent = np.arange(len(sha256))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        parent[max(a, b)] = min(a, b)

    first_with: dict[str, int] = {}
    for i, digest in enumerate(sha256):
        union(first_with.setdefault(digest, i), i)
    hashes = np.array([int(h, 16) for h in phash], dtype=np.uint64)
    for i, j in _band_pairs(hashes, distance):
        union(i, j)
    return np.array([find(i) for i in range(len(sha256))], dtype=np.int64)


def build_manifest(layout: Layout, root: Path, params: config.ValidateParams) -> pd.DataFrame:
    inspect = functools.partial(_inspect, root=root, max_pixels=params.max_pixels)
    with multiprocessing.Pool(params.workers) as pool:
        records = list(tqdm(pool.imap(inspect, layout.files, chunksize=16), total=len(layout.files),
                            desc="validate", unit="file", mininterval=1.0))
    manifest = pd.DataFrame.from_records(records, columns=[c for c in COLUMNS if c != "group"])
    usable = manifest["status"] != "quarantined"
    groups = duplicate_groups(manifest.loc[usable, "sha256"].tolist(), manifest.loc[usable, "phash"].tolist(),
                              params.near_duplicate_distance)
    manifest["group"] = -1  # quarantined rows belong to no group
    manifest.loc[usable, "group"] = manifest.index[usable].to_numpy()[groups]
    return manifest[COLUMNS]


def summarize(manifest: pd.DataFrame, layout: Layout, classes: list[str]) -> dict:
    usable = manifest[manifest["status"] != "quarantined"]
    group_sizes = usable.groupby("group").size()
    exact_sizes = usable.groupby("sha256").size()
    labels_per_group = usable.groupby("group")["label"].nunique()
    fixes = manifest.loc[manifest["status"] == "fixed", "reason"].str.split("; ").explode()
    per_class = manifest.groupby(["label", "status"]).size()
    return {
        "layout": layout.kind,
        "files": len(manifest),
        "per_status": {s: int((manifest["status"] == s).sum()) for s in STATUSES},
        "per_reason": {r: int((manifest["reason"] == r).sum()) for r in UNUSABLE_REASONS},
        "fixes": {fix: int(n) for fix, n in fixes.value_counts().sort_index().items()},
        "per_class": {c: {s: int(per_class.get((c, s), 0)) for s in STATUSES} for c in classes},
        "duplicates": {
            "exact_groups": int((exact_sizes > 1).sum()),
            "groups": int((group_sizes > 1).sum()),
            "files_in_groups": int(group_sizes[group_sizes > 1].sum()),
            "groups_with_several_labels": int((labels_per_group > 1).sum()),
        },
        "stray": {"folders": layout.stray_folders, "files": layout.stray_files},
    }


def run(params: config.Params) -> None:
    root = Path(params.data.root)
    layout = discover(root, params.data.classes)
    manifest = build_manifest(layout, root, params.validate_)
    summary = summarize(manifest, layout, params.data.classes)
    artifacts.write_csv(MANIFEST, manifest)
    artifacts.write_json(VALIDATE_METRICS, summary)
    stray = len(layout.stray_folders) + len(layout.stray_files)
    print(f"validate: {summary['files']} files, {summary['per_status']}, {stray} stray entries not used")
