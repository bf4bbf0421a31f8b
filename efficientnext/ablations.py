"""Ablations and baselines around the selected configuration: the logic behind the top-level Snakefile.

The Snakefile holds workflow mechanics only; everything it decides comes from here, read from params.yaml's
`ablations` group (validated with the rest of the file by `efficientnext.config`):

* the plan (`make_plan`): the selected configuration (params.yaml with its `sweep` keys filled from
  sweep/best.yaml, exactly as the train stage fills them), then one factor at a time, each level on top of
  it. A level equal to the selection's own value is the selection's runs (`results/ablations/selected/`),
  trained once per seed and shared by every factor and by the baselines; a level the sweep's own
  constraints reject (`efficientnext.sweep.constraints.violation` on the full record) is skipped with the
  reason, never trained; every other level is a variant `results/ablations/<factor>-<level>/`. Baselines
  are `results/baselines/<arch>/` (model.arch swapped on the selected configuration).
* the runs: `python -m stages.train --out DIR -S ...` then `python -m stages.evaluate --out DIR -S ...`
  (the pipeline's own entry points), per variant and seed, on the per-run budget (`ablations.epochs`,
  `ablations.split`). `ablations.split: subset` trains on the sweep's balanced subset (its train part;
  its val part picks the best epoch) by running the train stage inside `results/subset-view/`, where
  data/splits/{train,val}.csv are the subset's two parts and data/prepared and sweep/ link to the
  repository's; evaluation always scores the repository's full test split (and val split).
* rerun triggers (`prepare`): per run, `spec.train.yaml` and `spec.evaluate.yaml` hold everything its
  outputs depend on (the trained configuration, budget, and the digests of the data files it reads and of
  the code dvc.yaml lists for the train / evaluate stage) and
  are rewritten only when that content changes; the Snakefile makes them the runs' inputs and marks the
  DVC-made files `ancient`, so a timestamp DVC rewrote never re-trains, and a changed param re-runs
  exactly the runs whose spec it changes.
* the summary (`summarize`): per level, mean and std over seeds of test macro-F1, accuracy and ECE; the
  paired difference to the selected configuration on the same test images (paired bootstrap of macro-F1,
  McNemar on the pooled predictions); a verdict (better / worse / within noise); params, MACs and train
  img/s per variant.

`python -m efficientnext.ablations plan|summary` (or `efficientnext ablations ...` once registered with
`add_command`) runs the same from the command line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shlex
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from efficientnext import config, paper, search_space
from efficientnext.choices import sweep_choices
from efficientnext.config import Params, UserError
from efficientnext.paths import BEST_YAML, PREPARED, PREPARED_INDEX, SUBSET_CSV, RunPaths, split_csv
from efficientnext.sweep import constraints

RESULTS = Path("results")
KINDS = ("ablations", "baselines")
SELECTED = "selected"          # the selected configuration's variant (results/ablations/selected/)
REFERENCE_ARCH = "efficientnext"
SUBSET_VIEW = RESULTS / "subset-view"
PLAN = "plan.json"
SUMMARY = "summary.csv"
TRAIN_SPEC = "spec.train.yaml"
EVALUATE_SPEC = "spec.evaluate.yaml"

# What the runs' specs take from the configuration (the rest of params.yaml cannot change a run).
TRAIN_GROUPS = ("augment", "model", "train")
EVALUATE_KEYS = ("data.classes", "augment", "train.device", "train.precision", "train.channels_last",
                 "train.workers", "evaluate")

SUMMARY_COLUMNS = ["factor", "level", "variant", "n_seeds",
                   "macro_f1_mean", "macro_f1_std", "accuracy_mean", "accuracy_std", "ece_mean", "ece_std",
                   "delta_macro_f1", "delta_macro_f1_low", "delta_macro_f1_high", "p_bootstrap",
                   "delta_accuracy", "mcnemar_b", "mcnemar_c", "mcnemar_p", "verdict",
                   "params", "macs", "train_img_per_s", "note"]
REFERENCE, BETTER, WORSE, NOISE, SKIPPED = "selected", "better", "worse", "within noise", "skipped"


# --------------------------------------------------------------------------------------------- the plan

@dataclass(frozen=True)
class Variant:
    """One trained configuration: its kind (ablations | baselines), directory name and -S overrides."""

    kind: str
    name: str
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def root(self) -> Path:
        return RESULTS / self.kind / self.name

    def run_dir(self, seed: int) -> Path:
        return self.root / f"seed{seed}"


SELECTED_VARIANT = Variant("ablations", SELECTED)


@dataclass(frozen=True)
class Row:
    """One row of a summary: a factor's level and the variant that trained it (None: skipped, see reason)."""

    factor: str
    level: Any
    variant: Variant | None
    reason: str | None = None

    @property
    def reference(self) -> bool:
        return self.variant == SELECTED_VARIANT


@dataclass
class Plan:
    params: Params                 # params.yaml as validated (the `sweep` keys still marked)
    selected: Params               # the selected configuration, every key filled
    origin: str                    # where the `sweep` keys came from
    rows: dict[str, list[Row]] = field(default_factory=dict)   # kind -> rows

    @property
    def budget(self) -> config.AblationsParams:
        return self.params.ablations

    @property
    def seeds(self) -> list[int]:
        return list(self.budget.seeds)

    @property
    def variants(self) -> list[Variant]:
        """Every variant to train, the selected configuration first, each once."""
        found: dict[Variant, None] = {SELECTED_VARIANT: None}
        for kind in KINDS:
            found.update((row.variant, None) for row in self.rows.get(kind, []) if row.variant is not None)
        return list(found)

    @property
    def skipped(self) -> list[Row]:
        return [row for rows in self.rows.values() for row in rows if row.variant is None]

    def runs(self) -> list[tuple[Variant, int]]:
        return [(variant, seed) for variant in self.variants for seed in self.seeds]

    def variant(self, kind: str, name: str) -> Variant:
        for variant in self.variants:
            if (variant.kind, variant.name) == (kind, name):
                return variant
        raise UserError(f"results/{kind}/{name} is not a variant of params.yaml's ablations group "
                        f"({', '.join(str(v.root) for v in self.variants)})")


def factor_keys() -> dict[str, str]:
    """A factor's name (a searched row's short name, e.g. attention) -> its params key (model.attention)."""
    return {row.name: row.key for row in search_space.PAPER_SPACE if row.key in search_space.SEARCHED_KEYS}


def level_name(level: Any) -> str:
    """A level as it appears in a directory name: se, 7, true, 0.2."""
    return json.dumps(level) if isinstance(level, bool) else str(level)


def resolve(params: Params, choices: dict[str, Any], overrides: dict[str, Any] | None = None) -> Params:
    """params with `overrides` applied, then the keys still left to the sweep filled from `choices`: what
    the train stage trains for `-S` overrides."""
    raw = config.apply_overrides(params.dump(), overrides or {}, source="-S")
    return config.with_choices(config.validate(raw, source="-S"), choices, source="sweep choices")


def full_record(params: Params) -> dict[str, Any]:
    """The full record of a configuration (every row of the space), as the sweep's constraints read it."""
    return search_space.full_record({key: params.value(key) for key in search_space.SEARCHED_KEYS},
                                    paper.selected_configuration())


def make_plan(params: Params, best_yaml: Path = BEST_YAML) -> Plan:
    """The rows of both summaries and the variants to train, from params.yaml and the sweep's choice."""
    choices, origin = sweep_choices(params, best_yaml)
    selected = resolve(params, choices)
    reason = constraints.violation(full_record(selected))
    if reason is not None:
        raise UserError(f"the selected configuration itself is infeasible ({reason}): nothing to ablate around")
    plan = Plan(params=params, selected=selected, origin=origin)
    keys = factor_keys()
    rows: list[Row] = []
    for factor, levels in params.ablations.factors.items():
        key = keys[factor]
        for level in levels:
            if selected.value(key) == level:
                rows.append(Row(factor, level, SELECTED_VARIANT))
                continue
            configuration = resolve(params, choices, {key: level})
            reason = constraints.violation(full_record(configuration))
            variant = Variant("ablations", f"{factor}-{level_name(level)}", ((key, level),))
            rows.append(Row(factor, level, None if reason else variant, reason))
    plan.rows["ablations"] = rows
    baselines = [Row("arch", REFERENCE_ARCH, SELECTED_VARIANT)]
    for arch in params.ablations.baselines:
        configuration = resolve(params, choices, {"model.arch": arch})
        reason = constraints.violation(full_record(configuration))
        baselines.append(Row("arch", arch, None if reason else Variant("baselines", arch, (("model.arch", arch),)),
                             reason))
    plan.rows["baselines"] = baselines
    return plan


def run_overrides(plan: Plan, variant: Variant, seed: int) -> dict[str, Any]:
    """The -S overrides of one run: the variant's, then the seed and the per-run budget."""
    epochs = plan.budget.epochs
    overrides = {**dict(variant.overrides), "train.seed": seed, "train.epochs": epochs}
    if dict(variant.overrides).get("model.arch") == "transfer":
        # The tutorial's two phases within the same budget: frozen backbone first, then fine-tuning.
        overrides["train.transfer.feature_epochs"] = (epochs + 1) // 2
        overrides["train.transfer.finetune_epochs"] = epochs // 2
    return overrides


def overrides_args(overrides: dict[str, Any]) -> str:
    """-S KEY=VALUE arguments, each value as YAML reads it back (plain words stay unquoted)."""

    def text(value: Any) -> str:
        plain = isinstance(value, str) and yaml.safe_load(value) == value
        return value if plain else json.dumps(value)

    return " ".join(f"-S {shlex.quote(f'{key}={text(value)}')}" for key, value in overrides.items())


# ------------------------------------------------------------------------------ DVC prefix and the specs

def dvc_targets(params: Params) -> list[str]:
    """The DVC stages the runs need: select (sweep/best.yaml) unless the `sweep` keys come from table 8.4."""
    if params.train.choices_from == "sweep":
        return ["select"]
    return ["prepare", "subset"] if params.ablations.split == "subset" else ["prepare"]


def train_data(params: Params) -> list[Path]:
    """The DVC-made files a training reads (its spec holds their digests)."""
    files = [PREPARED_INDEX]
    files += [SUBSET_CSV] if params.ablations.split == "subset" else [split_csv("train"), split_csv("val")]
    return files + ([BEST_YAML] if params.train.choices_from == "sweep" else [])


def evaluate_data() -> list[Path]:
    return [PREPARED_INDEX, split_csv("val"), split_csv("test")]


def dvc_outputs(params: Params) -> list[str]:
    """What the Snakefile's DVC rule promises: every file a run reads."""
    return sorted({str(path) for path in [*train_data(params), *evaluate_data()]})


def dvc_prefix_ready(params: Params) -> bool:
    return all(Path(path).is_file() for path in dvc_outputs(params))


def _digest(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pick(params: Params, dotted: Sequence[str]) -> dict[str, Any]:
    raw = params.dump()
    picked: dict[str, Any] = {}
    for key in dotted:
        group, _, leaf = key.partition(".")
        picked[key] = raw[group][leaf] if leaf else raw[group]
    return picked


def stage_code(stage: str, dvc_yaml: Path = Path("dvc.yaml")) -> dict[str, str]:
    """Digests of the code a DVC stage's script reaches: its Python deps in dvc.yaml (tests/test_dvc_deps.py
    keeps them exact), so the runs re-train exactly when DVC's own train (evaluate) stage would."""
    if not dvc_yaml.is_file():
        return {}
    stages = (yaml.safe_load(dvc_yaml.read_text()) or {}).get("stages", {})
    deps = [dep for dep in stages.get(stage, {}).get("deps", []) if isinstance(dep, str) and dep.endswith(".py")]
    return {dep: _digest(Path(dep)) for dep in deps if Path(dep).is_file()}


def train_spec(plan: Plan, variant: Variant, seed: int, choices: dict[str, Any],
               code: dict[str, str] | None = None) -> dict[str, Any]:
    """Everything a training's outputs depend on; its file changes exactly when the run must re-train."""
    overrides = run_overrides(plan, variant, seed)
    trained = resolve(plan.params, choices, overrides)
    return {"run": str(variant.run_dir(seed)), "overrides": overrides, "split": plan.budget.split,
            "configuration": _pick(trained, ("data.classes", *TRAIN_GROUPS)),
            "data": {str(path): _digest(path) for path in train_data(plan.params) if path != BEST_YAML},
            "code": stage_code("train") if code is None else code}


def evaluate_spec(plan: Plan, variant: Variant, seed: int, code: dict[str, str] | None = None) -> dict[str, Any]:
    """What an evaluation depends on besides the checkpoint (which brings its model and image size)."""
    overrides = run_overrides(plan, variant, seed)
    evaluated = config.validate(config.apply_overrides(plan.params.dump(), overrides, source="-S"), source="-S")
    return {"run": str(variant.run_dir(seed)), "configuration": _pick(evaluated, EVALUATE_KEYS),
            "data": {str(path): _digest(path) for path in evaluate_data()},
            "code": stage_code("evaluate") if code is None else code}


def write_if_changed(path: Path, text: str) -> bool:
    """Write `text` to `path` unless it holds exactly that already (keeping its timestamp); True if written."""
    from efficientnext import artifacts

    if path.is_file() and path.read_text() == text:
        return False
    artifacts.write_text(path, text)
    return True


def _yaml(data: Any) -> str:
    return ("# written by efficientnext.ablations; rewritten only when its content changes (a Snakemake input)\n"
            + yaml.safe_dump(data, sort_keys=True))


def plan_record(plan: Plan, kind: str) -> dict[str, Any]:
    """results/<kind>/plan.json: what the summary of `kind` reads (rewritten only when it changes)."""
    return {"kind": kind, "seeds": plan.seeds, "significance": plan.budget.significance,
            "bootstrap": plan.budget.bootstrap, "reference": str(SELECTED_VARIANT.root),
            "rows": [{"factor": row.factor, "level": row.level,
                      "variant": None if row.variant is None else str(row.variant.root),
                      "reference": row.reference, "reason": row.reason} for row in plan.rows[kind]]}


def write_subset_view(plan: Plan) -> None:
    """results/subset-view/: the subset's train and val parts as data/splits, links to the cache and sweep/."""
    if plan.budget.split != "subset":
        return
    from efficientnext.data.tables import read_rows

    rows = read_rows(SUBSET_CSV)
    for part in ("train", "val"):
        chosen = rows[rows["part"] == part].drop(columns=["part"])
        write_if_changed(SUBSET_VIEW / split_csv(part), chosen.to_csv(index=False))
    for link in (PREPARED, BEST_YAML.parent):
        where = SUBSET_VIEW / link
        target = os.path.relpath(link, where.parent)
        if not where.is_symlink() or os.readlink(where) != target:
            where.parent.mkdir(parents=True, exist_ok=True)
            where.unlink(missing_ok=True)
            where.symlink_to(target, target_is_directory=True)



def prepare(params_path: str | Path = "params.yaml", best_yaml: Path = BEST_YAML,
            announce: Callable[[str], None] | None = None) -> Plan:
    """Plan, and write what the Snakefile's runs take as inputs: each run's specs, each summary's plan.json
    and the subset view, every file only when its content changed. Announces the skipped levels."""
    params = config.load(params_path)
    plan = make_plan(params, best_yaml)
    choices, _ = sweep_choices(params, best_yaml)
    write_subset_view(plan)
    train_code, evaluate_code = stage_code("train"), stage_code("evaluate")
    for variant, seed in plan.runs():
        write_if_changed(variant.run_dir(seed) / TRAIN_SPEC,
                         _yaml(train_spec(plan, variant, seed, choices, train_code)))
        write_if_changed(variant.run_dir(seed) / EVALUATE_SPEC,
                         _yaml(evaluate_spec(plan, variant, seed, evaluate_code)))
    for kind in KINDS:
        write_if_changed(RESULTS / kind / PLAN, json.dumps(plan_record(plan, kind), indent=2) + "\n")
    for row in plan.skipped:
        (announce or _stderr)(skip_line(row))
    return plan


def skip_line(row: Row) -> str:
    return f"ablations: skipped {row.factor}={level_name(row.level)}: {row.reason}"


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------------- the rules' commands

def run_files(plan: Plan, kind: str) -> list[str]:
    """What the summary of `kind` reads: every run's metrics, predictions and checkpoint, the selected
    configuration's (the reference) first."""
    files = []
    variants = [SELECTED_VARIANT, *(row.variant for row in plan.rows[kind] if row.variant is not None)]
    for variant in dict.fromkeys(variants):
        for seed in plan.seeds:
            out = RunPaths(variant.run_dir(seed))
            files += [str(out.train_metrics), str(out.test_metrics), str(out.predictions), str(out.best)]
    return list(dict.fromkeys(files))


def train_command(plan: Plan, variant: Variant, seed: int, params_path: str | Path = "params.yaml") -> str:
    """The train stage for one run (inside the subset view with `ablations.split: subset`)."""
    args = overrides_args(run_overrides(plan, variant, seed))
    out = variant.run_dir(seed)
    if plan.budget.split == "subset":
        up = os.path.relpath(".", SUBSET_VIEW)
        return (f"cd {SUBSET_VIEW} && PYTHONPATH={up}${{PYTHONPATH:+:$PYTHONPATH}} python -m stages.train "
                f"--params {shlex.quote(os.path.relpath(params_path, SUBSET_VIEW))} "
                f"--out {shlex.quote(os.path.relpath(out, SUBSET_VIEW))} {args}")
    return f"python -m stages.train --params {shlex.quote(str(params_path))} --out {shlex.quote(str(out))} {args}"


def evaluate_command(plan: Plan, variant: Variant, seed: int, params_path: str | Path = "params.yaml") -> str:
    args = overrides_args(run_overrides(plan, variant, seed))
    return (f"python -m stages.evaluate --params {shlex.quote(str(params_path))} "
            f"--out {shlex.quote(str(variant.run_dir(seed)))} {args}")


# ------------------------------------------------------------------------------------------ statistics

def macro_f1_weighted(y_true: Any, y_pred: Any, weights: Any, num_classes: int) -> Any:
    """Macro-F1 over all classes (absent ones score 0, as metrics/test.json) for each row of `weights`
    (resamples x images: how often each image is drawn)."""
    import numpy as np

    true_1h = np.eye(num_classes)[y_true]
    pred_1h = np.eye(num_classes)[y_pred]
    tp = weights @ (true_1h * pred_1h)
    fp = weights @ ((1 - true_1h) * pred_1h)
    fn = weights @ (true_1h * (1 - pred_1h))
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp, dtype=float), where=denominator > 0)
    return f1.mean(axis=-1)


@dataclass(frozen=True)
class Paired:
    delta: float          # mean over seeds of macro-F1(variant) - macro-F1(reference)
    low: float            # the bootstrap interval at the significance level
    high: float
    p: float              # two-sided bootstrap p-value of delta = 0
    per_seed: tuple[float, ...]
    delta_accuracy: float
    mcnemar_b: int        # reference right, variant wrong (pooled over seeds)
    mcnemar_c: int        # reference wrong, variant right
    mcnemar_p: float


def paired_comparison(y_true: Any, reference: Sequence[Any], variant: Sequence[Any], num_classes: int,
                      resamples: int, significance: float, seed: int = 0) -> Paired:
    """Variant vs reference on the same test images, seed k against seed k. Bootstrap: the images are
    resampled (one draw shared by every seed and both models) and the statistic is the mean over seeds of
    the macro-F1 difference. McNemar: exact binomial test on the discordant pairs pooled over seeds."""
    import numpy as np
    from scipy.stats import binomtest

    y_true = np.asarray(y_true)
    n = len(y_true)
    rng = np.random.default_rng(seed)
    weights = np.vstack([np.ones(n), rng.multinomial(n, np.full(n, 1.0 / n), size=resamples)])
    deltas = np.mean([macro_f1_weighted(y_true, np.asarray(v), weights, num_classes)
                      - macro_f1_weighted(y_true, np.asarray(r), weights, num_classes)
                      for r, v in zip(reference, variant)], axis=0)
    observed, boot = float(deltas[0]), deltas[1:]
    low, high = np.quantile(boot, [significance / 2, 1 - significance / 2])
    tail = min(np.sum(boot <= 0), np.sum(boot >= 0))
    p = min(1.0, 2 * (tail + 1) / (resamples + 1))
    per_seed = tuple(float(macro_f1_weighted(y_true, np.asarray(v), np.ones((1, n)), num_classes)[0]
                           - macro_f1_weighted(y_true, np.asarray(r), np.ones((1, n)), num_classes)[0])
                     for r, v in zip(reference, variant))
    b = int(sum(np.sum((np.asarray(r) == y_true) & (np.asarray(v) != y_true)) for r, v in zip(reference, variant)))
    c = int(sum(np.sum((np.asarray(r) != y_true) & (np.asarray(v) == y_true)) for r, v in zip(reference, variant)))
    mcnemar_p = 1.0 if b + c == 0 else float(binomtest(c, b + c, 0.5).pvalue)
    accuracy = float(np.mean([np.mean(np.asarray(v) == y_true) - np.mean(np.asarray(r) == y_true)
                              for r, v in zip(reference, variant)]))
    return Paired(observed, float(low), float(high), float(p), per_seed, accuracy, b, c, mcnemar_p)


def verdict(paired: Paired) -> str:
    """better / worse: the bootstrap interval of the macro-F1 difference excludes 0 *and* every seed moved
    the same way (the interval covers the test images' noise, the agreement of seeds the training's);
    within noise otherwise."""
    if paired.low > 0 and all(d > 0 for d in paired.per_seed):
        return BETTER
    if paired.high < 0 and all(d < 0 for d in paired.per_seed):
        return WORSE
    return NOISE


def model_cost(best_pt: Path) -> tuple[int, int]:
    """Parameters and MACs (one image at the trained size) of a run's best checkpoint."""
    from efficientnext.config import ModelParams
    from efficientnext.models import create_model
    from efficientnext.models.summary import summarize
    from efficientnext.train.checkpoint import load_record

    record = load_record(best_pt)
    model = create_model(ModelParams(**record.model_config), len(record.classes))
    cost = summarize(model.eval(), record.image_size)
    return cost.params, cost.macs


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return float("nan")
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarize(kind: str, root: Path = Path("."), cost: Callable[[Path], tuple[int, int]] = model_cost,
              log: Callable[[str], None] = print) -> Any:
    """The summary table of `kind` from results/<kind>/plan.json and the runs' outputs."""
    import numpy as np
    import pandas as pd

    record = json.loads((root / RESULTS / kind / PLAN).read_text())
    seeds = record["seeds"]

    def runs_of(variant: str) -> list[RunPaths]:
        return [RunPaths(root / variant / f"seed{seed}") for seed in seeds]

    def predictions(runs: list[RunPaths]) -> tuple[Any, list[Any], list[str]]:
        frames = [pd.read_csv(run.predictions) for run in runs]
        classes = [c for c in frames[0].columns if c not in ("path", "label", "predicted")]
        index = {name: i for i, name in enumerate(classes)}
        order = frames[0]["path"]
        aligned = [frame.set_index("path").loc[order] for frame in frames]
        y_true = aligned[0]["label"].map(index).to_numpy()
        return y_true, [frame["predicted"].map(index).to_numpy() for frame in aligned], classes

    reference_runs = runs_of(record["reference"])
    y_ref, reference_preds, classes = predictions(reference_runs)
    costs: dict[str, tuple[int, int]] = {}
    table = []
    for row in record["rows"]:
        line = {column: None for column in SUMMARY_COLUMNS}
        line.update(factor=row["factor"], level=level_name(row["level"]),
                    variant=row["variant"] or "", n_seeds=0, note="")
        if row["variant"] is None:
            line.update(verdict=SKIPPED, note=row["reason"])
            log(f"{kind}: skipped {row['factor']}={level_name(row['level'])}: {row['reason']}")
            table.append(line)
            continue
        runs = runs_of(row["variant"])
        tests = [json.loads(run.test_metrics.read_text()) for run in runs]
        trains = [json.loads(run.train_metrics.read_text()) for run in runs]
        for metric in ("macro_f1", "accuracy", "ece"):
            values = [float(test[metric]) for test in tests]
            line[f"{metric}_mean"] = float(np.mean(values))
            line[f"{metric}_std"] = _std(values)
        line["n_seeds"] = len(runs)
        line["train_img_per_s"] = float(np.mean([float(train["img_per_s"]) for train in trains]))
        if row["variant"] not in costs:
            costs[row["variant"]] = cost(runs[0].best)
        line["params"], line["macs"] = costs[row["variant"]]
        if row["reference"]:
            line.update(delta_macro_f1=0.0, delta_accuracy=0.0, verdict=REFERENCE,
                        note="the selected configuration" if kind == "ablations" else "the selected EfficientNext")
        else:
            y_true, preds, _ = predictions(runs)
            if not np.array_equal(y_true, y_ref):
                raise UserError(f"{row['variant']}: its test predictions are not over the reference's test images")
            paired = paired_comparison(y_true, reference_preds, preds, len(classes), record["bootstrap"],
                                       record["significance"])
            line.update(delta_macro_f1=paired.delta, delta_macro_f1_low=paired.low, delta_macro_f1_high=paired.high,
                        p_bootstrap=paired.p, delta_accuracy=paired.delta_accuracy, mcnemar_b=paired.mcnemar_b,
                        mcnemar_c=paired.mcnemar_c, mcnemar_p=paired.mcnemar_p, verdict=verdict(paired),
                        note="per-seed Δ macro-F1 " + ", ".join(f"{d:+.3f}" for d in paired.per_seed))
        table.append(line)
    frame = pd.DataFrame(table, columns=SUMMARY_COLUMNS)
    for column in ("n_seeds", "params", "macs", "mcnemar_b", "mcnemar_c"):
        frame[column] = frame[column].astype("Int64")
    return frame


def write_summary(kind: str, root: Path = Path(".")) -> Path:
    """results/<kind>/summary.csv, and the table on stdout."""
    from efficientnext import artifacts

    frame = summarize(kind, root)
    out = root / RESULTS / kind / SUMMARY
    artifacts.write_csv(out, frame.round(6))
    shown = frame[["factor", "level", "n_seeds", "macro_f1_mean", "macro_f1_std", "delta_macro_f1",
                   "p_bootstrap", "verdict"]]
    print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"), flush=True)
    print(f"{kind}: {len(frame)} rows -> {out}", flush=True)
    return out


# ---------------------------------------------------------------------------------------- command line

def _plan_command(args: argparse.Namespace) -> None:
    plan = make_plan(config.load(args.params))
    print(f"selected configuration from {plan.origin}; seeds {plan.seeds}, {plan.budget.epochs} epochs on "
          f"the {plan.budget.split} split")
    for kind in KINDS:
        for row in plan.rows[kind]:
            target = "skipped: " + str(row.reason) if row.variant is None else str(row.variant.root)
            print(f"{kind:9}  {row.factor}={level_name(row.level):12} {target}")
    print(f"{len(plan.variants)} variants x {len(plan.seeds)} seeds = {len(plan.runs())} trainings")


def _summary_command(args: argparse.Namespace) -> None:
    write_summary(args.kind)


def _add_subcommands(commands: Any) -> None:
    plan = commands.add_parser("plan", help="print the variants, runs and skipped levels params.yaml asks for")
    plan.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    plan.set_defaults(func=_plan_command)
    summary = commands.add_parser("summary", help="write results/KIND/summary.csv from the runs' outputs")
    summary.add_argument("kind", choices=KINDS)
    summary.set_defaults(func=_summary_command)


def add_command(sub: Any) -> None:
    """`efficientnext ablations plan|summary KIND` (the `efficientnext` command line registers it)."""
    parser = sub.add_parser("ablations", help="the Snakefile's ablation and baseline plan and summaries")
    _add_subcommands(parser.add_subparsers(dest="ablations_command", required=True))


def main(argv: Sequence[str] | None = None) -> int:
    from efficientnext.stage import reported

    parser = argparse.ArgumentParser(prog="python -m efficientnext.ablations", description=__doc__.splitlines()[0])
    _add_subcommands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return reported(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
