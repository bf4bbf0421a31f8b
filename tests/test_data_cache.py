"""prepare + datasets + transforms: the cache equals a direct decode + resize; datasets serve it fast."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from torchvision.transforms import v2

from conftest import ROOT, TINY_PROFILE
from efficientnext import config
from efficientnext.config import UserError
from efficientnext.data import datasets, generate, layout, prepare, transforms, validate


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """The tiny synthetic set, validated, its usable rows cached at short side 40."""
    params = config.load(ROOT / "params.yaml", {**TINY_PROFILE, "data.synthetic.total": 50})
    base = tmp_path_factory.mktemp("cache")
    root = base / "raw"
    generate.generate(params, root)
    manifest = validate.build_manifest(layout.discover(root, params.data.classes), root, params.validate_)
    rows = manifest[manifest["status"] != "quarantined"].reset_index(drop=True)
    index = prepare.build_cache(rows, root, base / "prepared", params.prepare, params.validate_.max_pixels)
    return params, root, base / "prepared", rows, index


def test_cache_round_trip_equals_direct_decode_and_resize(prepared):
    params, root, out, rows, index = prepared
    assert sorted(p.name for p in out.iterdir()) == [prepare.INDEX, prepare.PIXELS]
    assert "fixed" in set(rows["status"])  # CMYK, palette, 16-bit and EXIF-rotated files are in the cache too
    dataset = datasets.PreparedImages(out, rows, params.data.classes)
    for i, path in enumerate(rows["path"]):
        direct = prepare.decode_resized(root / path, params.prepare.short_side, params.validate_.max_pixels)
        cached, label = dataset[i]
        assert min(direct.shape[:2]) == params.prepare.short_side
        assert cached.dtype == torch.uint8 and np.array_equal(cached.permute(1, 2, 0).numpy(), direct), path
        assert label == params.data.classes.index(rows["label"][i])
    assert (out / prepare.PIXELS).stat().st_size == int((3 * index["height"] * index["width"]).sum())


def test_dataset_follows_the_rows_order_and_reports_targets(prepared):
    params, _, out, rows, _ = prepared
    picked = rows.iloc[[5, 0, 3]].reset_index(drop=True)
    dataset = datasets.PreparedImages(out, picked, params.data.classes)
    full = datasets.PreparedImages(out, rows, params.data.classes)
    assert dataset.targets.tolist() == [params.data.classes.index(label) for label in picked["label"]]
    assert torch.equal(dataset[0][0], full[5][0])


def test_dataset_pickles_without_its_memmap_and_feeds_worker_processes(prepared):
    params, _, out, rows, _ = prepared
    dataset = datasets.PreparedImages(out, rows, params.data.classes,
                                      transforms.build_transforms(params.augment, 32, train=True))
    dataset[0]  # maps the file in this process
    assert len(pickle.dumps(dataset)) < 20_000
    loader = DataLoader(dataset, batch_size=16, num_workers=2)
    batches = list(loader)
    assert sum(len(y) for _, y in batches) == len(rows)
    assert batches[0][0].shape == (16, 3, 32, 32) and batches[0][0].dtype == torch.float32


def test_rows_missing_from_the_cache_or_classes_are_errors(prepared):
    params, _, out, rows, _ = prepared
    stray = rows.head(2).assign(path=["nope/1.jpg", "nope/2.jpg"])
    with pytest.raises(UserError, match=r"^2 rows are not in the prepared cache .* \(first: nope/1.jpg\); "
                                        r"rerun `dvc repro prepare`$"):
        datasets.PreparedImages(out, stray, params.data.classes)
    with pytest.raises(UserError, match=r"^labels \['drawings'\] are not in data.classes \['hentai', 'porn'\]$"):
        datasets.PreparedImages(out, rows[rows["label"].isin(["drawings", "porn"])], ["hentai", "porn"])


def test_eval_transform_is_resize_centre_crop_normalise():
    augment = config.AugmentParams()
    image = torch.randint(0, 256, (3, 40, 60), dtype=torch.uint8)
    out = transforms.build_transforms(augment, 32, train=False)(image)
    resized = v2.functional.center_crop(v2.functional.resize(image, 32, antialias=True), 32)
    mean, std = (torch.tensor(v)[:, None, None] for v in (augment.mean, augment.std))
    manual = (resized.float() / 255 - mean) / std
    assert out.shape == (3, 32, 32) and torch.allclose(out, manual, atol=1e-5)


def test_train_transform_is_the_papers_augmentation_from_params():
    augment = config.AugmentParams(scale_min=0.5, rotation=7.0, hflip=0.3, brightness=0.1, contrast=0.15, erasing=0.2)
    steps = transforms.build_transforms(augment, 48, train=True).transforms
    assert [type(t).__name__ for t in steps] == ["RandomResizedCrop", "RandomRotation", "RandomHorizontalFlip",
                                                 "ColorJitter", "ToDtype", "Normalize", "RandomErasing"]
    assert (steps[0].size, steps[0].scale, steps[1].degrees, steps[2].p, steps[6].p) == ((48, 48), (0.5, 1.0),
                                                                                       [-7.0, 7.0], 0.3, 0.2)
    assert (steps[3].brightness, steps[3].contrast) == ((0.9, 1.1), (0.85, 1.15))
    out = transforms.build_transforms(augment, 48, train=True)(torch.randint(0, 256, (3, 50, 70), dtype=torch.uint8))
    assert out.shape == (3, 48, 48) and out.dtype == torch.float32
