"""`efficientnext predict PATH…`: the trained classifier on a user's files, folders (recursively) and globs.

Every file becomes exactly what `evaluate` feeds the model for a prepared image: the strict decode of
`validate` (data/images.py), the prepared cache's resize (data/prepare.py `prepared_pixels`), then the eval
transform (data/eval_input.py, equal to transforms.build_transforms(train=False) bit for bit). One row per
file, in the order given (a folder's files sorted): path, one probability column per class, top_class,
unsafe_score (the summed probability of the unsafe classes), decision (unsafe when unsafe_score >=
threshold, else safe; error when the file could not be used) and error (why: empty, not_an_image,
undecodable, truncated, too_many_pixels, unreadable, not_found). A bad file never stops the run.

Backends: torch (a checkpoint; unsafe classes from params.yaml, the default threshold from the run's
metrics/test.json) or onnx (models/model.onnx from `efficientnext export`, whose metadata carries all of it).
This module imports no torch: the onnx path runs with onnxruntime, Pillow and numpy.
"""

from __future__ import annotations

import argparse
import glob
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from efficientnext import artifacts
from efficientnext.config import Params, UserError
from efficientnext.data.eval_input import eval_input
from efficientnext.data.images import Unusable, load_strict, open_strict
from efficientnext.data.prepare import prepared_pixels
from efficientnext.model_card import ModelCard
from efficientnext.operating_points import unsafe_score
from efficientnext.paths import RunPaths
from efficientnext.stage import add_params_arguments, load_params

COMMAND = "predict"
UNSAFE, SAFE, ERROR = "unsafe", "safe", "error"
Classifier = Callable[[np.ndarray], np.ndarray]  # float32 NCHW batch -> class probabilities


@dataclass(frozen=True)
class Item:
    """One file of the run: what to show as its path, and why it cannot be read ('' when it can be tried)."""

    path: str
    error: str = ""


def expand(patterns: Sequence[str]) -> list[Item]:
    """Files, folders (every file below, sorted) and globs, in the order given, each file once."""
    items: dict[str, Item] = {}
    for pattern in patterns:
        path = Path(pattern)
        if path.is_dir():
            found = [str(p) for p in sorted(path.rglob("*")) if p.is_file()]
        elif path.exists():
            found = [pattern]
        else:
            found = [p for p in sorted(glob.glob(pattern, recursive=True)) if Path(p).is_file()]
            if not found:
                items.setdefault(pattern, Item(pattern, "not_found"))
        for name in found:
            items.setdefault(name, Item(name))
    return list(items.values())


def model_input(path: str, card: ModelCard, max_pixels: int) -> np.ndarray:
    """The model's float32 CHW input for one file; `Unusable` or OSError when the file cannot be used."""
    rgb, _ = load_strict(open_strict(Path(path).read_bytes(), max_pixels))
    return eval_input(prepared_pixels(rgb, card.short_side), card.image_size, card.mean, card.std)


def _load(item: Item, card: ModelCard, max_pixels: int) -> tuple[np.ndarray | None, str]:
    if item.error:
        return None, item.error
    try:
        return model_input(item.path, card, max_pixels), ""
    except Unusable as exc:
        return None, str(exc)
    except OSError as exc:  # a folder entry that vanished, a permission, a device error
        return None, f"unreadable: {exc.strerror or exc}"


def _chunks(items: list[Item], size: int) -> Iterator[list[Item]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def predict_items(items: list[Item], classifier: Classifier, card: ModelCard, threshold: float, batch_size: int,
                  max_pixels: int, workers: int = 2, progress: bool | None = None) -> pd.DataFrame:
    """The table of the module docstring, one row per item. Files are decoded by `workers` threads (Pillow
    releases the GIL), a batch at a time; `progress`: a tqdm bar on stderr (None: when there are several
    batches)."""
    probs = np.full((len(items), len(card.classes)), np.nan)
    errors = [""] * len(items)
    show = len(items) > batch_size if progress is None else progress
    with ThreadPoolExecutor(workers) as pool, tqdm(total=len(items), desc=COMMAND, unit="img", disable=not show,
                                                    file=sys.stderr) as bar:
        start = 0
        for chunk in _chunks(items, batch_size):
            loaded = list(pool.map(lambda item: _load(item, card, max_pixels), chunk))
            good = [start + i for i, (inputs, _) in enumerate(loaded) if inputs is not None]
            if good:
                probs[good] = classifier(np.stack([loaded[i - start][0] for i in good]))
            for i, (_, error) in enumerate(loaded):
                errors[start + i] = error
            start += len(chunk)
            bar.update(len(chunk))
    return prediction_table([item.path for item in items], probs, errors, card, threshold)


def prediction_table(paths: list[str], probs: np.ndarray, errors: list[str], card: ModelCard,
                     threshold: float) -> pd.DataFrame:
    failed = np.asarray([bool(error) for error in errors], dtype=bool)
    score = unsafe_score(np.nan_to_num(probs), card.classes, card.unsafe_classes)
    table = pd.concat([pd.DataFrame({"path": paths}), pd.DataFrame(probs, columns=card.classes)], axis=1)
    table["top_class"] = np.where(failed, "", np.asarray(card.classes)[np.nan_to_num(probs, nan=-1).argmax(1)])
    table["unsafe_score"] = np.where(failed, np.nan, score)
    table["decision"] = np.where(failed, ERROR, np.where(score >= threshold, UNSAFE, SAFE))
    table["error"] = errors
    return table


def write_table(table: pd.DataFrame, out: Path | None) -> None:
    """CSV or JSON Lines by `out`'s suffix; None: an aligned table on stdout."""
    if out is None:
        print(table.to_string(index=False, float_format=lambda value: f"{value:.4f}", na_rep=""))
    elif out.suffix == ".csv":
        artifacts.write_csv(out, table)
    elif out.suffix == ".jsonl":
        records = table.replace({np.nan: None}).to_dict(orient="records")
        artifacts.write_text(out, "".join(json.dumps(record) + "\n" for record in records))
    else:
        raise UserError(f"--out {out}: expected a .csv or .jsonl file")


def summary(table: pd.DataFrame, threshold: float, card: ModelCard) -> str:
    decisions = Counter(table["decision"])
    reasons = Counter(error.split(":")[0] for error in table["error"] if error)
    why = f" ({', '.join(f'{n} {reason}' for reason, n in sorted(reasons.items()))})" if reasons else ""
    return (f"{COMMAND}: {len(table)} files: {decisions[UNSAFE]} unsafe, {decisions[SAFE]} safe, "
            f"{decisions[ERROR]} errors{why}; unsafe = {' + '.join(card.unsafe_classes)} >= {threshold:.4f}")


def _classifier(args: argparse.Namespace, params: Params) -> tuple[Classifier, ModelCard, str]:
    """The backend's classifier, its model card (threshold: the default one, possibly None) and device."""
    if args.backend == "onnx":
        from efficientnext.onnx_model import OnnxClassifier  # onnxruntime loads only for this backend

        onnx = OnnxClassifier(args.model, args.device)
        return onnx, onnx.card, onnx.device
    from efficientnext.torch_classifier import TorchClassifier, checkpoint_card, run_threshold  # imports torch

    model = TorchClassifier(args.checkpoint, args.device, params.train.channels_last)
    threshold = None if args.threshold is not None else run_threshold(args.checkpoint, params)
    return model, checkpoint_card(model.record, params, threshold), model.device.type


def run(args: argparse.Namespace) -> None:
    # The onnx backend reads only validate.max_pixels and evaluate.batch_size from params: where a deployed
    # model.onnx has no params.yaml beside it, the schema's defaults serve.
    standalone = args.backend == "onnx" and not Path(args.params).is_file() and not args.overrides
    params = Params() if standalone else load_params(args)
    classifier, card, device = _classifier(args, params)
    threshold = args.threshold if args.threshold is not None else card.threshold
    if threshold is None:
        raise UserError("no default threshold: no target precision (evaluate.target_precisions) was reached on the "
                        "validation split; pass --threshold (README, \"Picking a threshold\")")
    items = expand(args.paths)
    table = predict_items(items, classifier, card, threshold, args.batch_size or params.evaluate.batch_size,
                          params.validate_.max_pixels, args.workers)
    write_table(table, args.out)
    print(f"{summary(table, threshold, card)}; {args.backend} on {device}" + (f" -> {args.out}" if args.out else ""),
          file=sys.stderr)


def _threshold(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not in [0, 1]")
    return value


def add_command(sub: argparse._SubParsersAction) -> None:
    run_paths = RunPaths()
    parser = sub.add_parser(COMMAND, help="classify image files, folders and globs (CSV, JSON Lines or a table)")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="image files, folders (recursively) and globs")
    parser.add_argument("--backend", choices=["torch", "onnx"], default="torch")
    parser.add_argument("--checkpoint", type=Path, default=run_paths.best,
                        help=f"torch backend: the checkpoint (default {run_paths.best})")
    parser.add_argument("--model", type=Path, default=run_paths.onnx,
                        help=f"onnx backend: the exported model (default {run_paths.onnx})")
    parser.add_argument("--threshold", type=_threshold, default=None,
                        help="unsafe when the unsafe score is >= this (default: evaluate's operating point)")
    parser.add_argument("--batch-size", type=int, default=None, help="default: evaluate.batch_size")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto")
    parser.add_argument("--workers", type=int, default=2, help="decoding threads (default 2)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="FILE.csv or FILE.jsonl (default: a table on stdout)")
    add_params_arguments(parser)
    parser.set_defaults(func=run)
