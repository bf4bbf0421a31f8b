"""benchmarks/real_images.py's dataset: load_digits as the pipeline's class-folder layout (not the full run)."""

from __future__ import annotations

import importlib.util

import numpy as np
from PIL import Image

from conftest import ROOT
from efficientnext import config
from efficientnext.data.layout import discover

SPEC = importlib.util.spec_from_file_location("real_images", ROOT / "benchmarks/real_images.py")
real_images = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(real_images)


def test_digits_become_one_class_folder_each_of_64px_rgb_pngs(tmp_path):
    counts = real_images.write_digits(tmp_path)
    # load_digits' own counts of 0, 1, 3, 7, 8
    assert counts == {"zero": 178, "one": 182, "three": 183, "seven": 179, "eight": 174}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eight", "one", "seven", "three", "zero"]
    found = discover(tmp_path, list(real_images.DIGITS))
    assert found.kind == "class folders" and not found.stray_folders and not found.stray_files
    assert {label: sum(f.label == label for f in found.files) for label in counts} == counts
    for name in ("one", "eight"):
        with Image.open(tmp_path / name / "000.png") as image:
            assert (image.format, image.mode, image.size) == ("PNG", "RGB", (64, 64))
            pixels = np.asarray(image)
        assert (pixels[..., 0] == pixels[..., 1]).all() and (pixels[..., 1] == pixels[..., 2]).all()  # grey
        assert pixels.min() == 0 and pixels.max() >= 200  # 16 grey levels spread over 0..255, not 0..16


def test_the_pipeline_copy_params_validate(tmp_path):
    params = config.load(ROOT / "params.yaml", real_images.digit_params(tmp_path))
    assert params.data.classes == list(real_images.DIGITS) and params.data.source == "folder"
    assert set(params.evaluate.unsafe_classes) <= set(params.data.classes)
