"""validate: statuses and reasons of the injected files, source untouched, duplicates, layouts, errors."""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from conftest import ROOT, TINY_PROFILE
from efficientnext import config
from efficientnext.config import UserError
from efficientnext.data import generate, images, layout, validate
from efficientnext.data.tables import read_rows

EXPECTED = {  # injected kind -> (status, reason)
    "zero_byte": ("quarantined", "empty"),
    "truncated_jpeg": ("quarantined", "truncated"),
    "html_as_jpg": ("quarantined", "not_an_image"),
    "corrupt_png_data": ("quarantined", "undecodable"),
    "too_many_pixels": ("quarantined", "too_many_pixels"),
    "cmyk_jpeg": ("fixed", "mode CMYK"),
    "palette_png_transparency": ("fixed", "mode P with transparency"),
    "gray16_png": ("fixed", "mode I;16"),
    "exif_rotated_jpeg": ("fixed", "exif orientation 6"),
}


def snapshot(root: Path) -> dict[str, tuple[str, int]]:
    return {p.relative_to(root).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The tiny synthetic dataset, its manifest, and the source tree before and after validation."""
    params = config.load(ROOT / "params.yaml", {**TINY_PROFILE, "data.synthetic.total": 50,
                                                "data.synthetic.duplicate_fraction": 0.1})
    root = tmp_path_factory.mktemp("validate") / "raw"
    generate.generate(params, root)
    before = snapshot(root)
    manifest = validate.build_manifest(layout.discover(root, params.data.classes), root, params.validate_)
    return params, root, manifest, before, snapshot(root)


def test_every_injected_file_gets_its_status_and_nothing_else_is_touched(generated):
    params, _, manifest, _, _ = generated
    outcome = {row.path: (row.status, row.reason) for row in manifest.itertuples()}
    plan = generate.broken_file_plan(params)
    assert {path: outcome.pop(path) for path in plan} == {path: EXPECTED[kind] for path, kind in plan.items()}
    assert set(outcome.values()) == {("ok", "")}


def test_manifest_records_the_file_facts(generated):
    _, root, manifest, _, _ = generated
    assert list(manifest.columns) == validate.COLUMNS
    row = manifest.iloc[0]
    data = (root / row["path"]).read_bytes()
    with Image.open(root / row["path"]) as im:
        assert (row["sha256"], row["size_bytes"], row["width"], row["height"], row["mode"], row["format"]) == (
            hashlib.sha256(data).hexdigest(), len(data), im.width, im.height, im.mode, im.format)
    bomb = manifest[manifest["reason"] == "too_many_pixels"].iloc[0]
    assert bomb["width"] * bomb["height"] > config.ValidateParams().max_pixels
    assert (manifest.loc[manifest["status"] == "quarantined", "group"] == -1).all()


def test_validation_leaves_the_source_byte_identical(generated):
    *_, before, after = generated
    assert after == before


def test_planned_duplicates_share_a_group(generated):
    params, _, manifest, _, _ = generated
    usable = manifest[manifest["status"] != "quarantined"].set_index("path")
    scenes = pd.Series({job.relpath: job.content_seed for job in generate.plan_images(params)})
    duplicated = scenes[scenes.duplicated(keep=False)]
    assert len(duplicated) == 10  # 4 exact copies, 1 near duplicate, and their originals
    assert (usable.loc[duplicated.index, "group"].groupby(duplicated).nunique() == 1).all()
    assert usable["group"].nunique() == len(usable) - 5
    summary = validate.summarize(manifest, layout.discover(generated[1], params.data.classes), params.data.classes)
    assert summary["per_status"] == {"ok": 53, "fixed": 4, "quarantined": 5}
    assert summary["per_reason"] == {"empty": 1, "not_an_image": 1, "undecodable": 1, "truncated": 1,
                                     "too_many_pixels": 1}
    assert summary["duplicates"] == {"exact_groups": 4, "groups": 5, "files_in_groups": 10,
                                     "groups_with_several_labels": 0}


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def photo(seed: int, size=(120, 90)) -> Image.Image:
    job = generate.Job("x", "photo", 0.3, seed, seed, *size, "JPEG", 90)
    return generate.render(job)


def test_near_duplicates_group_by_perceptual_hash(tmp_path):
    scene = photo(1)
    root = make_tree(tmp_path, {
        "a/original.jpg": generate.encode(scene, "JPEG", 90),
        "a/copy.jpg": generate.encode(scene, "JPEG", 90),
        "b/smaller.png": generate.encode(scene.resize((100, 75)), "PNG"),  # another class: still one group
        "b/other.jpg": generate.encode(photo(2), "JPEG", 90),
    })
    params = config.ValidateParams(workers=1)
    manifest = validate.build_manifest(layout.discover(root, ["a", "b"]), root, params).set_index("path")
    groups = manifest["group"]
    assert groups["a/original.jpg"] == groups["a/copy.jpg"] == groups["b/smaller.png"] != groups["b/other.jpg"]
    summary = validate.summarize(manifest.reset_index(), layout.discover(root, ["a", "b"]), ["a", "b"])
    assert summary["duplicates"] == {"exact_groups": 1, "groups": 1, "files_in_groups": 3,
                                     "groups_with_several_labels": 1}


def test_band_search_finds_exactly_the_close_pairs():
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2**63, 300, dtype=np.uint64)
    hashes[10] = hashes[20] ^ np.uint64(0b1011)  # 3 bits apart
    hashes[30] = hashes[40] ^ np.uint64(0b11111)  # 5 bits apart
    brute = {(i, j) for i in range(300) for j in range(i + 1, 300)
             if bin(int(hashes[i]) ^ int(hashes[j])).count("1") <= 4}
    assert set(validate._band_pairs(hashes, 4)) == brute == {(10, 20)}


def test_load_rgb_converts_what_validate_calls_fixed(tmp_path):
    grey = np.tile(np.arange(0, 65536, 256, dtype=np.uint16), (8, 1))
    Image.fromarray(grey).save(tmp_path / "g16.png")
    converted = np.asarray(images.load_rgb(tmp_path / "g16.png", 10**6))
    assert np.array_equal(converted[..., 0], (grey >> 8).astype(np.uint8))  # scaled, not clipped at 255

    rgba = Image.new("RGBA", (4, 4), (10, 20, 30, 0))
    rgba.save(tmp_path / "clear.png")
    assert np.asarray(images.load_rgb(tmp_path / "clear.png", 10**6)).tolist() == [[[255, 255, 255]] * 4] * 4

    base = photo(3)
    (tmp_path / "exif.jpg").write_bytes(generate.broken_file_bytes("exif_rotated_jpeg", base, 10**6))
    upright = images.load_rgb(tmp_path / "exif.jpg", 10**6)
    assert upright.size == base.size and np.abs(np.asarray(upright, float) - np.asarray(base, float)).mean() < 4

    with pytest.raises(images.TooManyPixels):
        images.load_rgb(tmp_path / "exif.jpg", 100)


def test_scraper_layout_marks_the_test_folder_and_reports_strays(tmp_path, monkeypatch):
    jpeg = generate.encode(photo(4), "JPEG", 90)
    make_tree(tmp_path / "data", {
        "Train/Cats/1.jpg": jpeg, "Train/dogs/sub/2.jpg": jpeg, "Train/birds/3.jpg": jpeg,
        "test/cats/4.jpg": jpeg, "test/DOGS/5.jpg": jpeg, "README.md": b"scraped", "raw_data/x.txt": b"urls",
    })
    monkeypatch.chdir(tmp_path)
    params = config.load(ROOT / "params.yaml", {"data.source": "folder", "data.root": "data",
                                                "data.classes": ["cats", "dogs"], "evaluate.unsafe_classes": ["dogs"],
                                                "validate.workers": 1})
    validate.run(params)
    manifest = read_rows(validate.MANIFEST)
    assert manifest[["path", "label", "preset_split"]].values.tolist() == [
        ["Train/Cats/1.jpg", "cats", ""], ["Train/dogs/sub/2.jpg", "dogs", ""],
        ["test/cats/4.jpg", "cats", "test"], ["test/DOGS/5.jpg", "dogs", "test"]]
    summary = json.loads(validate.VALIDATE_METRICS.read_text())
    assert summary["layout"] == "scraper"
    assert summary["stray"] == {"folders": ["raw_data", "Train/birds"], "files": ["README.md"]}
    assert summary["per_class"] == {"cats": {"ok": 2, "fixed": 0, "quarantined": 0},
                                    "dogs": {"ok": 2, "fixed": 0, "quarantined": 0}}


def test_class_folders_layout_reports_stray_folders_and_files(tmp_path):
    jpeg = generate.encode(photo(5), "JPEG", 90)
    root = make_tree(tmp_path, {"Porn/a.jpg": jpeg, "sexy/b.jpg": jpeg, "misc/c.jpg": jpeg, "notes.txt": b"x"})
    found = layout.discover(root, ["porn", "sexy"])
    assert (found.kind, [f.path for f in found.files], [f.label for f in found.files]) == (
        "class folders", ["Porn/a.jpg", "sexy/b.jpg"], ["porn", "sexy"])
    assert (found.stray_folders, found.stray_files) == (["misc"], ["notes.txt"])


@pytest.mark.parametrize(("files", "message"), [
    (None, "data.root = '{root}': folder not found"),
    ({}, "data.root = '{root}' is empty; expected <root>/<class>/ or <root>/train/<class>/ folders "
         "for classes porn, sexy"),
    ({"porn/a.jpg": b"x", "sexy/.keep/": None},
     "data.root = '{root}': class 'sexy' is empty ({root}/sexy has no files)"),
    ({"porn/a.jpg": b"x"},
     "data.root = '{root}': no folder for class 'sexy' in {root} (folder names match data.classes case-insensitively)"),
    ({"porn/a.jpg": b"x", "Porn/b.jpg": b"x", "sexy/c.jpg": b"x"},
     "data.root = '{root}': class 'porn' matches two folders in {root}: Porn, porn"),
    ({"train/porn/a.jpg": b"x", "train/sexy/b.jpg": b"x", "test/porn/c.jpg": b"x"},
     "data.root = '{root}': no folder for class 'sexy' in {root}/test "
     "(folder names match data.classes case-insensitively)"),
])
def test_unusable_roots_are_one_line_errors(tmp_path, files, message):
    root = tmp_path / "root"
    if files is not None:
        root.mkdir()
        for rel, data in files.items():
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            if data is not None:
                (root / rel).write_bytes(data)
    with pytest.raises(UserError) as err:
        layout.discover(root, ["porn", "sexy"])
    assert str(err.value) == message.format(root=root)


def test_inspect_bytes_reads_the_header_of_an_oversized_image():
    record = validate.inspect_bytes(generate._too_many_pixels_png(10_000), 10_000)
    assert (record["status"], record["reason"], record["width"] * record["height"] > 10_000) == (
        "quarantined", "too_many_pixels", True)
    buf = io.BytesIO()
    photo(6).save(buf, "JPEG")
    assert validate.inspect_bytes(buf.getvalue(), 10_000)["status"] == "quarantined"
    assert validate.inspect_bytes(buf.getvalue(), 120 * 90)["status"] == "ok"
