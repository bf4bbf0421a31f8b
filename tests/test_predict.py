"""`efficientnext predict`: evaluate's preprocessing bit for bit, one row per file with the reason for each
unusable one, torch and onnx backends agreeing, the onnx path without torch, and the CLI's defaults."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torchvision import tv_tensors

from conftest import ROOT, TINY_PROFILE, VENV_BIN, dvc, run, tiny_classifier
from efficientnext import cli, config
from efficientnext.config import AugmentParams
from efficientnext.data.eval_input import eval_input
from efficientnext.data.transforms import build_transforms
from efficientnext.export import export_onnx
from efficientnext.model_card import ModelCard
from efficientnext.onnx_model import OnnxClassifier
from efficientnext.predict import expand, predict_items
from efficientnext.torch_classifier import TorchClassifier
from efficientnext.train import checkpoint

CLASSES = ["drawings", "hentai", "neutral", "porn", "sexy"]


@pytest.mark.parametrize(("height", "width", "size"), [
    (80, 120, 64), (97, 80, 64),  # down, landscape and portrait
    (40, 61, 64), (33, 33, 64),  # up
    (64, 100, 64), (256, 300, 224),  # short side already the size; paper scale
])
def test_eval_input_is_the_eval_transform_bit_for_bit(height, width, size):
    pixels = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    augment = AugmentParams()
    image = tv_tensors.Image(torch.from_numpy(pixels).permute(2, 0, 1))  # as PreparedImages serves it
    expected = build_transforms(augment, size, train=False)(image).numpy()
    assert np.array_equal(eval_input(pixels, size, augment.mean, augment.std), expected)


def photo(seed: int, size: tuple[int, int] = (70, 50), mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, size[0] * size[1] * 3).reshape(size[1], size[0], 3)
    return Image.fromarray(np.clip(base + rng.normal(0, 40, base.shape), 0, 255).astype(np.uint8)).convert(mode)


def encoded(im: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, fmt)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """Good and broken files, one of them in a subfolder."""
    root = tmp_path_factory.mktemp("images")
    (root / "sub").mkdir()
    jpeg = encoded(photo(1), "JPEG")
    files = {
        "a.jpg": jpeg,
        "b.png": encoded(photo(2, mode="RGBA"), "PNG"),
        "sub/c.webp": encoded(photo(3, (90, 60)), "WEBP"),
        "d.jpg": encoded(photo(4, (48, 48), "L"), "JPEG"),
        "empty.jpg": b"",
        "notes.txt": b"not an image",
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "huge.png": encoded(photo(5, (120, 100)), "PNG"),  # 12000 pixels: over the max_pixels the tests pass
        "garbage.png": encoded(photo(6), "PNG")[:60] + b"\x00" * 200,
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    return root


MAX_PIXELS = 10_000
REASONS = {"empty.jpg": "empty", "notes.txt": "not_an_image", "truncated.jpg": "truncated",
           "huge.png": "too_many_pixels: 120x100 pixels > 10000", "garbage.png": "undecodable"}
GOOD = {"a.jpg", "b.png", "sub/c.webp", "d.jpg"}


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A run directory as train, evaluate and export leave it: models/best.pt, metrics/test.json (its
    operating point) and models/model.onnx, for a tiny model."""
    run = tmp_path_factory.mktemp("run")
    model, params = tiny_classifier()
    record = checkpoint.ModelRecord.capture(model, params, CLASSES, epoch=1, metrics={})
    checkpoint.save(run / "models/best.pt", record.to_dict())
    (run / "metrics").mkdir()
    (run / "metrics/test.json").write_text(json.dumps(
        {"operating_points": {"unsafe_classes": ["porn", "hentai", "sexy"], "default_threshold": 0.6}}))
    card = ModelCard(classes=CLASSES, image_size=params.train.image_size, short_side=params.prepare.short_side,
                     mean=list(params.augment.mean), std=list(params.augment.std),
                     unsafe_classes=["porn", "hentai", "sexy"], threshold=0.6)
    export_onnx(model, run / "models/model.onnx", card.image_size, card.metadata())
    return run


def test_one_row_per_file_with_the_reason_for_each_unusable_one(folder: Path, trained: Path):
    onnx = OnnxClassifier(trained / "models/model.onnx", device="cpu")
    items = expand([str(folder), str(folder / "a.jpg"), str(folder / "missing.jpg")])
    table = predict_items(items, onnx, onnx.card, threshold=0.5, batch_size=3, max_pixels=MAX_PIXELS)
    assert list(table.columns) == ["path", *CLASSES, "top_class", "unsafe_score", "decision", "error"]
    names = [Path(p).relative_to(folder).as_posix() if p.startswith(str(folder)) else p for p in table["path"]]
    assert sorted(names[:-1]) == sorted(GOOD | set(REASONS)) and len(set(names)) == len(names)  # a.jpg once
    assert names[-1] == "missing.jpg"  # a path that is not there keeps its place, with its reason
    rows = dict(zip(names, table.to_dict(orient="records")))
    assert rows["missing.jpg"]["error"] == "not_found"
    for name, reason in REASONS.items():
        row = rows[name]
        assert row["error"] == reason or row["error"].startswith(f"{reason}: ")
        assert (row["decision"], row["top_class"]) == ("error", "") and np.isnan(row["unsafe_score"])
    for name in GOOD:
        row = rows[name]
        probs = np.array([row[c] for c in CLASSES])
        assert row["error"] == "" and probs.sum() == pytest.approx(1.0, abs=1e-5)
        assert row["top_class"] == CLASSES[probs.argmax()]
        assert row["unsafe_score"] == pytest.approx(row["porn"] + row["hentai"] + row["sexy"])
        assert row["decision"] == ("unsafe" if row["unsafe_score"] >= 0.5 else "safe")


def test_torch_and_onnx_backends_agree_on_the_same_files(folder: Path, trained: Path):
    onnx = OnnxClassifier(trained / "models/model.onnx", device="cpu")
    items = expand([str(folder)])
    torch_table = predict_items(items, TorchClassifier(trained / "models/best.pt", "cpu"), onnx.card, 0.5, 2,
                                MAX_PIXELS)
    onnx_table = predict_items(items, onnx, onnx.card, 0.5, 4, MAX_PIXELS)
    good = torch_table["error"] == ""
    assert good.sum() == len(GOOD) and (onnx_table["error"] == torch_table["error"]).all()
    diff = np.abs(torch_table.loc[good, CLASSES].to_numpy() - onnx_table.loc[good, CLASSES].to_numpy())
    assert diff.max() <= 1e-4
    assert (torch_table["top_class"] == onnx_table["top_class"]).all()
    # the decisions agree at any threshold the scores are not within the backends' difference of
    scores = np.sort(torch_table.loc[good, "unsafe_score"].to_numpy())
    gap = np.diff(scores).argmax()
    threshold = float(scores[gap:gap + 2].mean())
    assert scores[gap + 1] - scores[gap] > 1e-3
    decided = [predict_items(items, model, onnx.card, threshold, 4, MAX_PIXELS)["decision"].tolist()
               for model in (TorchClassifier(trained / "models/best.pt", "cpu"), onnx)]
    assert decided[0] == decided[1] and {"safe", "unsafe"} <= set(decided[0])


def test_cli_defaults_take_the_threshold_from_the_run_and_write_csv_or_jsonl(folder: Path, trained: Path,
                                                                           tmp_path: Path, monkeypatch, capsys):
    monkeypatch.chdir(trained)
    params = config.apply_overrides(config.read_yaml(ROOT / "params.yaml"),
                                    {**TINY_PROFILE, "validate.max_pixels": MAX_PIXELS})
    (trained / "params.yaml").write_text(json.dumps(params))
    assert cli.main(["predict", str(folder), "--out", str(tmp_path / "p.csv")]) == 0
    summary = capsys.readouterr().err.strip().splitlines()[-1]
    assert summary.startswith("predict: 9 files: ") and "5 errors (1 empty, 1 not_an_image, 1 too_many_pixels, " \
        "1 truncated, 1 undecodable); unsafe = porn + hentai + sexy >= 0.6000; torch on cpu" in summary
    csv = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert len(csv) == 9 and set(csv["decision"]) <= {"safe", "unsafe", "error"}
    assert cli.main(["predict", str(folder / "a.jpg"), "--backend", "onnx", "--threshold", "0",
                     "--out", str(tmp_path / "p.jsonl")]) == 0
    (line,) = (tmp_path / "p.jsonl").read_text().splitlines()
    assert json.loads(line)["decision"] == "unsafe" and json.loads(line)["error"] == ""
    assert cli.main(["predict", str(folder), "--out", str(tmp_path / "p.txt")]) == 2
    assert "--out " in capsys.readouterr().err


TORCH_FREE = """
import sys
from efficientnext import cli
code = cli.main(sys.argv[1:])
print(code, sorted({m.split(".")[0] for m in sys.modules} & {"torch", "torchvision", "timm"}))
"""


def test_the_onnx_backend_runs_without_importing_torch(folder: Path, trained: Path, tmp_path: Path):
    # No params.yaml here: a deployed model.onnx is used with the schema's defaults.
    out = subprocess.run([sys.executable, "-c", TORCH_FREE, "predict", str(folder), "--backend", "onnx",
                          "--model", str(trained / "models/model.onnx"), "--out", "p.csv"], cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "0 []"
    table = pd.read_csv(tmp_path / "p.csv", keep_default_na=False)
    assert len(table) == 9 and (table["decision"] == "error").sum() == 4  # huge.png is within the default limit
    assert "onnx on cpu" in out.stderr


@pytest.mark.slow
def test_predict_on_raw_files_is_what_evaluate_saw(tiny_repo: Path):
    """The tiny pipeline, then export and predict on data/raw (the injected broken files included): every file
    one row, the quarantined ones with validate's reason, the test split's probabilities exactly evaluate's."""
    dvc(tiny_repo, "repro", "evaluate")
    python = str(VENV_BIN / "python")
    exported = run([python, "-m", "efficientnext.cli", "export"], tiny_repo).stdout
    assert "export: models/model.onnx" in exported and "0 top-class mismatches" in exported
    metrics = json.loads((tiny_repo / "metrics/test.json").read_text())["operating_points"]
    assert metrics["unsafe_classes"] == ["porn", "hentai", "sexy"] and len(metrics["targets"]) == 2
    assert OnnxClassifier(tiny_repo / "models/model.onnx").card.threshold == metrics["default_threshold"]
    threshold = [] if metrics["default_threshold"] is not None else ["--threshold", "0.5"]
    tables = {}
    for backend in ("torch", "onnx"):
        run([python, "-m", "efficientnext.cli", "predict", "data/raw", "--backend", backend, "--out",
             f"{backend}.csv", *threshold], tiny_repo)
        tables[backend] = pd.read_csv(tiny_repo / f"{backend}.csv", keep_default_na=False).set_index("path")

    manifest = pd.read_csv(tiny_repo / "data/manifest.csv", keep_default_na=False)
    manifest.index = "data/raw/" + manifest["path"]
    files = sorted(p.relative_to(tiny_repo).as_posix() for p in (tiny_repo / "data/raw").rglob("*") if p.is_file())
    for table in tables.values():
        assert sorted(table.index) == files
        quarantined = manifest[manifest["status"] == "quarantined"]
        assert len(quarantined) >= 4
        assert table.loc[quarantined.index, "error"].str.split(":").str[0].tolist() == quarantined["reason"].tolist()
    evaluated = pd.read_csv(tiny_repo / "predictions/test.csv").set_index("path")
    evaluated.index = "data/raw/" + evaluated.index
    # Same pixels, same model: only float32 rounding may differ (another batch size or thread count picks
    # other kernels); a preprocessing difference moves probabilities by 1e-3 and more.
    assert np.abs(tables["torch"].loc[evaluated.index, CLASSES].to_numpy(dtype=float)
                  - evaluated[CLASSES].to_numpy()).max() <= 1e-6
    assert np.abs(tables["onnx"].loc[evaluated.index, CLASSES].to_numpy(dtype=float)
                  - evaluated[CLASSES].to_numpy()).max() <= 1e-4
