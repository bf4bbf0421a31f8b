"""efficientnext.ablations: the plan behind the Snakefile (factors, shared selected runs, skipped levels),
the runs' commands and rerun-trigger specs, and the summary statistics. No training here: the end-to-end
runs are tests/test_snakemake.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import f1_score

from efficientnext import ablations, config, paper
from efficientnext.paths import BEST_YAML, PREPARED_INDEX, SUBSET_CSV, split_csv

ROOT = Path(__file__).resolve().parents[1]


def best_yaml(path: Path, **changes) -> Path:
    """A sweep/best.yaml whose record is table 8.4 with `changes` (dotted keys)."""
    record = {**paper.selected_configuration(), **changes}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"trial": 3, "metric": "macro_f1", "value": 0.5, "params": record}))
    return path


def params_with(overrides: dict | None = None) -> config.Params:
    return config.load(ROOT / "params.yaml", overrides or {})


# ------------------------------------------------------------------------------------------- params

@pytest.mark.parametrize("overrides, expected", [
    ({"ablations.factors": {"kernel": [3]}}, "ablations.factors: 'kernel' is not a searched row"),
    ({"ablations.factors": {"attention": ["se", "foo"]}}, "attention level 'foo' is not one of"),
    ({"ablations.factors": {"kernel_size": [3, 9]}}, "kernel_size level 9 is not one of the search space's {3, 5, 7}"),
    ({"ablations.factors": {"norm": []}}, "norm has no levels"),
    ({"ablations.factors": {"attention": ["se", "se"]}}, "lists a level twice"),
    ({"ablations.seeds": [1]}, "ablations.seeds"),
    ({"ablations.seeds": [1, 1]}, "lists a value twice"),
    ({"ablations.epochs": 0}, "ablations.epochs = 0 is out of range"),
    ({"ablations.split": "val"}, "ablations.split = 'val' is not one of subset, train"),
    ({"ablations.baselines": ["efficientnext"]}, "ablations.baselines.0 = 'efficientnext' is not one of"),
    ({"ablations.significance": 0.7}, "ablations.significance = 0.7 is out of range"),
])
def test_a_bad_ablations_value_is_one_line(tmp_path, overrides, expected):
    raw = config.apply_overrides(yaml.safe_load((ROOT / "params.yaml").read_text()), overrides)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(config.ParamsError) as error:
        config.load(tmp_path / "params.yaml")
    message = str(error.value)
    assert expected in message and "\n" not in message and message.startswith("params.yaml: ablations.")


def test_the_default_factors_are_the_issue_s_and_the_space_s():
    defaults = config.AblationsParams()
    assert defaults.factors == {"attention": ["se", "eca", "cbam", "none"], "kernel_size": [3, 5, 7],
                                "norm": ["batchnorm", "groupnorm1", "groupnorm", "evonorms0", "rmsnorm2d"]}
    assert ablations.factor_keys()["kernel_size"] == "model.kernel_size"
    assert len(defaults.seeds) >= 2 and defaults.baselines == ["efficientnet_b2", "transfer"]


# --------------------------------------------------------------------------------------------- the plan

def test_selected_runs_are_shared_and_an_infeasible_level_is_skipped(tmp_path):
    best = best_yaml(tmp_path / "best.yaml")  # table 8.4: k7, eca, batchnorm, gelu
    plan = ablations.make_plan(params_with(), best)
    rows = {(row.factor, row.level): row for row in plan.rows["ablations"]}
    assert len(rows) == 4 + 3 + 5
    for own in (("attention", "eca"), ("kernel_size", 7), ("norm", "batchnorm")):
        assert rows[own].variant == ablations.SELECTED_VARIANT and rows[own].reference
    assert rows["attention", "se"].variant.root == Path("results/ablations/attention-se")
    assert rows["attention", "se"].variant.overrides == (("model.attention", "se"),)
    assert rows["kernel_size", 3].variant.root == Path("results/ablations/kernel_size-3")
    skipped = rows["norm", "evonorms0"]
    assert skipped.variant is None and skipped.reason.startswith("evonorm_own_activation: ")
    assert "model.activation=gelu" in skipped.reason
    assert plan.skipped == [skipped]
    assert ablations.skip_line(skipped).startswith("ablations: skipped norm=evonorms0: evonorm_own_activation")
    # selected once, then 3 attention + 2 kernel + 3 norm variants, then 2 baselines; every one per seed
    assert plan.variants[0] == ablations.SELECTED_VARIANT and len(plan.variants) == 1 + 3 + 2 + 3 + 2
    assert len(plan.runs()) == len(plan.variants) * len(plan.seeds)
    baselines = plan.rows["baselines"]
    assert [(row.level, row.variant.root.as_posix()) for row in baselines] == [
        ("efficientnext", "results/ablations/selected"), ("efficientnet_b2", "results/baselines/efficientnet_b2"),
        ("transfer", "results/baselines/transfer")]


def test_feasibility_is_decided_on_the_trained_configuration(tmp_path):
    # the sweep chose silu: EvoNorm-S0 is feasible and trains
    plan = ablations.make_plan(params_with(), best_yaml(tmp_path / "best.yaml", **{"model.activation": "silu"}))
    assert not plan.skipped
    # params.yaml's own value wins over the sweep's choice, also for the constraint
    plan = ablations.make_plan(params_with({"model.activation": "relu"}),
                               best_yaml(tmp_path / "best.yaml", **{"model.activation": "silu"}))
    assert [(row.factor, row.level) for row in plan.skipped] == [("norm", "evonorms0")]
    assert "model.activation=relu" in plan.skipped[0].reason


def test_an_infeasible_selection_is_one_line(tmp_path):
    best = best_yaml(tmp_path / "best.yaml", **{"model.norm": "evonorms0"})
    with pytest.raises(config.UserError, match="the selected configuration itself is infeasible"):
        ablations.make_plan(params_with(), best)


def test_paper_choices_need_no_sweep(tmp_path):
    params = params_with({"train.choices_from": "paper"})
    plan = ablations.make_plan(params, tmp_path / "missing.yaml")
    assert plan.selected.value("model.attention") == "eca"
    assert plan.selected.value("train.image_size") == 64  # sweep.fixed pins it, as the train stage does
    assert ablations.dvc_targets(params) == ["prepare", "subset"]
    assert ablations.dvc_targets(params_with()) == ["select"]
    assert "sweep/best.yaml" not in ablations.dvc_outputs(params)
    with pytest.raises(config.UserError, match="dvc repro select"):
        ablations.make_plan(params_with(), tmp_path / "missing.yaml")


@pytest.mark.parametrize("choices_from", ["sweep", "paper"])
def test_a_run_resolves_to_what_the_train_stage_trains(tmp_path, choices_from):
    from efficientnext.choices import chosen_params, sweep_choices

    params = params_with({"train.choices_from": choices_from})
    best = best_yaml(tmp_path / "best.yaml", **{"model.attention": "cbam"})
    trained, _ = chosen_params(config.load(ROOT / "params.yaml", {"model.attention": "se",
                                                                 "train.choices_from": choices_from}), best)
    assert ablations.resolve(params, sweep_choices(params, best)[0], {"model.attention": "se"}) == trained


def test_run_overrides_and_commands(tmp_path):
    plan = ablations.make_plan(params_with({"ablations.epochs": 3}), best_yaml(tmp_path / "best.yaml"))
    variant = plan.variant("ablations", "attention-se")
    assert ablations.run_overrides(plan, variant, 2) == {"model.attention": "se", "train.seed": 2, "train.epochs": 3}
    transfer = plan.variant("baselines", "transfer")
    assert ablations.run_overrides(plan, transfer, 1) == {
        "model.arch": "transfer", "train.seed": 1, "train.epochs": 3,
        "train.transfer.feature_epochs": 2, "train.transfer.finetune_epochs": 1}
    command = ablations.train_command(plan, variant, 2)
    assert command.startswith("cd results/subset-view && PYTHONPATH=../..")
    assert ("python -m stages.train --params ../../params.yaml --out ../ablations/attention-se/seed2 "
            "-S model.attention=se -S train.seed=2 -S train.epochs=3") in command
    assert ablations.evaluate_command(plan, variant, 2) == (
        "python -m stages.evaluate --params params.yaml --out results/ablations/attention-se/seed2 "
        "-S model.attention=se -S train.seed=2 -S train.epochs=3")
    full = ablations.make_plan(params_with({"ablations.split": "train"}), best_yaml(tmp_path / "best.yaml"))
    assert ablations.train_command(full, variant, 1).startswith(
        "python -m stages.train --params params.yaml --out results/ablations/attention-se/seed1 -S")
    with pytest.raises(config.UserError, match="not a variant"):
        plan.variant("ablations", "attention-foo")
    overrides = {"model.arch": "transfer", "model.conv_bias": True, "train.lr_head": 0.001, "x.y": "a b"}
    assert ablations.overrides_args(overrides) == (
        "-S model.arch=transfer -S model.conv_bias=true -S train.lr_head=0.001 -S 'x.y=a b'")
    assert config.parse_override("model.conv_bias=true") == ("model.conv_bias", True)


# ----------------------------------------------------------------------------- specs: the rerun triggers

def fake_prefix(root: Path) -> None:
    """The DVC-made files the plan digests and the subset view reads (contents do not matter here)."""
    for split in ("train", "val", "test"):
        (root / split_csv(split)).parent.mkdir(parents=True, exist_ok=True)
        (root / split_csv(split)).write_text(f"path,label\n{split}/a.jpg,porn\n")
    (root / PREPARED_INDEX).parent.mkdir(parents=True, exist_ok=True)
    (root / PREPARED_INDEX).write_text("path,label,offset,height,width\n")
    (root / SUBSET_CSV).write_text("path,label,part\nt/a.jpg,porn,train\nt/b.jpg,sexy,val\n")
    best_yaml(root / BEST_YAML)


def write_params(root: Path, overrides: dict) -> None:
    raw = config.apply_overrides(yaml.safe_load((ROOT / "params.yaml").read_text()), overrides)
    (root / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def written(root: Path) -> dict[str, float]:
    return {str(p.relative_to(root)): p.stat().st_mtime_ns for p in (root / "results").rglob("*")
            if p.is_file() and not p.is_symlink()}


def test_specs_and_plans_are_rewritten_exactly_when_their_runs_change(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_prefix(tmp_path)
    Path("dvc.yaml").write_text(yaml.safe_dump({"stages": {"train": {"deps": ["t.py", "data/splits"]},
                                                           "evaluate": {"deps": ["e.py"]}}}))
    Path("t.py").write_text("train = 1\n")
    Path("e.py").write_text("evaluate = 1\n")
    small = {"ablations.factors": {"attention": ["eca", "se"]}, "ablations.baselines": ["transfer"]}
    write_params(tmp_path, small)
    lines: list[str] = []
    plan = ablations.prepare("params.yaml", announce=lines.append)
    before = written(tmp_path)
    specs = [f"results/{kind}/{name}/seed{seed}/{spec}" for kind, name in
             [("ablations", "selected"), ("ablations", "attention-se"), ("baselines", "transfer")]
             for seed in (1, 2) for spec in (ablations.TRAIN_SPEC, ablations.EVALUATE_SPEC)]
    assert sorted(before) == sorted([*specs, "results/ablations/plan.json", "results/baselines/plan.json",
                                     "results/subset-view/data/splits/train.csv",
                                     "results/subset-view/data/splits/val.csv"])
    assert lines == []  # nothing skipped
    spec = yaml.safe_load(Path("results/ablations/attention-se/seed1/spec.train.yaml").read_text())
    assert spec["overrides"] == {"model.attention": "se", "train.seed": 1, "train.epochs": 2}
    assert spec["configuration"]["model"]["attention"] == "se" and spec["split"] == "subset"
    assert set(spec["data"]) == {"data/prepared/index.csv", "data/subset.csv"}
    assert (tmp_path / "results/subset-view/data/prepared").resolve() == (tmp_path / "data/prepared").resolve()
    assert Path("results/subset-view/data/splits/val.csv").read_text().splitlines() == ["path,label", "t/b.jpg,sexy"]
    assert json.loads(Path("results/ablations/plan.json").read_text())["rows"][1] == {
        "factor": "attention", "level": "se", "variant": "results/ablations/attention-se", "reference": False,
        "reason": None}
    assert len(plan.runs()) == 6

    current = dict(small)

    def changed_by(**overrides) -> set[str]:
        """Files prepare() rewrites after params.yaml takes `overrides` (dotted keys, '__' for '.')."""
        current.update({key.replace("__", "."): value for key, value in overrides.items()})
        write_params(tmp_path, current)
        start = written(tmp_path)
        ablations.prepare("params.yaml", announce=lines.append)
        return {path for path, mtime in written(tmp_path).items() if start.get(path) != mtime}

    plans = {"results/ablations/plan.json", "results/baselines/plan.json"}
    assert changed_by() == set()  # planning again rewrites nothing
    assert changed_by(ablations__significance=0.1) == plans
    seed3 = {p.replace("seed1", "seed3") for p in specs if "seed1" in p}
    assert changed_by(ablations__seeds=[1, 2, 3]) == plans | seed3
    train_specs = {p for p in specs + sorted(seed3) if p.endswith(ablations.TRAIN_SPEC)}
    evaluate_specs = {p for p in specs + sorted(seed3) if p.endswith(ablations.EVALUATE_SPEC)}
    assert changed_by(ablations__epochs=3) == train_specs  # the summaries' plans do not hold the budget
    assert changed_by(evaluate__ece_bins=10) == evaluate_specs
    assert changed_by(augment__hflip=0.4) == train_specs | evaluate_specs
    # new data content (not a new timestamp) re-trains
    Path(SUBSET_CSV).write_text("path,label,part\nt/a.jpg,porn,train\nt/c.jpg,sexy,val\n")
    assert changed_by() == train_specs | {"results/subset-view/data/splits/val.csv"}
    Path(SUBSET_CSV).touch()
    Path(PREPARED_INDEX).touch()
    assert changed_by() == set()
    # the code DVC's train stage reaches re-trains; DVC's evaluate stage's re-evaluates
    Path("t.py").write_text("train = 2\n")
    assert changed_by() == train_specs
    Path("e.py").write_text("evaluate = 2\n")
    assert changed_by() == evaluate_specs
    # the sweep's choice changes what the selection trains
    best_yaml(tmp_path / BEST_YAML, **{"model.norm": "rmsnorm2d"})
    assert changed_by() == train_specs


def test_specs_hold_the_code_dvc_yaml_lists_for_the_stage(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    train, evaluate = ablations.stage_code("train"), ablations.stage_code("evaluate")
    assert {"stages/train.py", "efficientnext/train/engine.py", "efficientnext/config.py"} <= set(train)
    assert "stages/evaluate.py" in evaluate and "stages/train.py" not in evaluate
    assert all(len(digest) == 64 for digest in [*train.values(), *evaluate.values()])
    assert ablations.stage_code("train", tmp_path / "dvc.yaml") == {}


def test_an_infeasible_level_is_announced_and_planned_as_a_skipped_row(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fake_prefix(tmp_path)
    write_params(tmp_path, {"ablations.factors": {"norm": ["batchnorm", "evonorms0"]}, "ablations.baselines": []})
    lines: list[str] = []
    plan = ablations.prepare("params.yaml", announce=lines.append)
    assert len(lines) == 1 and lines[0].startswith("ablations: skipped norm=evonorms0: evonorm_own_activation")
    assert [variant.name for variant in plan.variants] == ["selected"]
    rows = json.loads(Path("results/ablations/plan.json").read_text())["rows"]
    assert rows[1]["variant"] is None and rows[1]["reason"].startswith("evonorm_own_activation")
    assert not Path("results/ablations/norm-evonorms0").exists()


# ------------------------------------------------------------------------------------------- statistics

def test_weighted_macro_f1_is_the_test_json_macro_f1():
    rng = np.random.default_rng(0)
    y_true, y_pred = rng.integers(0, 5, 200), rng.integers(0, 4, 200)  # class 4 never predicted
    ours = ablations.macro_f1_weighted(y_true, y_pred, np.ones((1, 200)), 5)[0]
    assert ours == pytest.approx(f1_score(y_true, y_pred, labels=range(5), average="macro", zero_division=0))
    counts = rng.integers(0, 3, 200)
    repeated = np.repeat(np.arange(200), counts)
    assert ablations.macro_f1_weighted(y_true, y_pred, counts[None, :], 5)[0] == pytest.approx(
        f1_score(y_true[repeated], y_pred[repeated], labels=range(5), average="macro", zero_division=0))


def noisy(y_true: np.ndarray, error_rate: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    wrong = rng.random(len(y_true)) < error_rate
    return np.where(wrong, (y_true + rng.integers(1, 5, len(y_true))) % 5, y_true)


def test_paired_comparison_and_verdicts():
    y = np.random.default_rng(1).integers(0, 5, 400)
    reference = [noisy(y, 0.5, seed) for seed in (1, 2)]
    better = ablations.paired_comparison(y, reference, [noisy(y, 0.2, seed) for seed in (3, 4)], 5, 500, 0.05)
    assert better.delta > 0.2 and better.low > 0 and better.p < 0.01 and better.mcnemar_p < 1e-6
    assert better.mcnemar_c > better.mcnemar_b and ablations.verdict(better) == ablations.BETTER
    assert better.delta == pytest.approx(np.mean(better.per_seed))
    worse = ablations.paired_comparison(y, [noisy(y, 0.2, s) for s in (3, 4)], reference, 5, 500, 0.05)
    assert ablations.verdict(worse) == ablations.WORSE and worse.delta == pytest.approx(-better.delta)
    same = ablations.paired_comparison(y, reference, reference, 5, 500, 0.05)
    assert (same.delta, same.p, same.mcnemar_p, same.mcnemar_b, same.mcnemar_c) == (0.0, 1.0, 1.0, 0, 0)
    assert ablations.verdict(same) == ablations.NOISE
    # a big gain on one seed and a loss on the other is noise, whatever the pooled interval says
    mixed = ablations.paired_comparison(y, reference, [noisy(y, 0.1, 5), noisy(y, 0.55, 6)], 5, 500, 0.05)
    assert mixed.per_seed[0] > 0 > mixed.per_seed[1] and ablations.verdict(mixed) == ablations.NOISE
    again = ablations.paired_comparison(y, reference, [noisy(y, 0.1, 5), noisy(y, 0.55, 6)], 5, 500, 0.05)
    assert again == mixed  # seeded: the same table every time


def fake_run(root: Path, variant: str, seed: int, y: np.ndarray, predicted: np.ndarray, img_per_s: float) -> None:
    classes = ["drawings", "hentai", "neutral", "porn", "sexy"]
    run = root / variant / f"seed{seed}"
    (run / "metrics").mkdir(parents=True)
    (run / "predictions").mkdir()
    accuracy = float(np.mean(predicted == y))
    macro_f1 = float(f1_score(y, predicted, labels=range(5), average="macro", zero_division=0))
    (run / "metrics/test.json").write_text(json.dumps({"accuracy": accuracy, "macro_f1": macro_f1, "ece": 0.1}))
    (run / "metrics/train.json").write_text(json.dumps({"img_per_s": img_per_s}))
    probabilities = np.eye(5)[predicted]
    frame = pd.DataFrame({"path": [f"img{i}.jpg" for i in range(len(y))], "label": np.asarray(classes)[y],
                          "predicted": np.asarray(classes)[predicted]})
    frame = pd.concat([frame, pd.DataFrame(probabilities, columns=classes)], axis=1)
    frame.sample(frac=1.0, random_state=seed).to_csv(run / "predictions/test.csv", index=False)  # any row order


def test_summary_table(tmp_path):
    y = np.random.default_rng(2).integers(0, 5, 300)
    for seed in (1, 2):
        fake_run(tmp_path, "results/ablations/selected", seed, y, noisy(y, 0.5, seed), 100.0)
        fake_run(tmp_path, "results/ablations/attention-se", seed, y, noisy(y, 0.2, 10 + seed), 80.0 + seed)
    plan = {"kind": "ablations", "seeds": [1, 2], "significance": 0.05, "bootstrap": 300,
            "reference": "results/ablations/selected",
            "rows": [{"factor": "attention", "level": "eca", "variant": "results/ablations/selected",
                      "reference": True, "reason": None},
                     {"factor": "attention", "level": "se", "variant": "results/ablations/attention-se",
                      "reference": False, "reason": None},
                     {"factor": "norm", "level": "evonorms0", "variant": None, "reference": False,
                      "reason": "evonorm_own_activation: model.norm=evonorms0 with model.activation=gelu (...)"}]}
    (tmp_path / "results/ablations/plan.json").write_text(json.dumps(plan))
    logged: list[str] = []
    frame = ablations.summarize("ablations", tmp_path, cost=lambda best: (1000, 2000), log=logged.append)
    assert list(frame.columns) == ablations.SUMMARY_COLUMNS
    assert frame[["factor", "level", "verdict"]].values.tolist() == [
        ["attention", "eca", "selected"], ["attention", "se", "better"], ["norm", "evonorms0", "skipped"]]
    selected, se, skipped = (frame.iloc[i] for i in range(3))
    assert selected.n_seeds == 2 and selected.delta_macro_f1 == 0 and selected.params == 1000
    assert se.delta_macro_f1 == pytest.approx(se.macro_f1_mean - selected.macro_f1_mean)
    assert se.delta_macro_f1_low > 0 and se.mcnemar_p < 0.001 and se.train_img_per_s == 81.5
    assert se.macro_f1_std == pytest.approx(np.std([json.loads(
        (tmp_path / f"results/ablations/attention-se/seed{s}/metrics/test.json").read_text())["macro_f1"]
        for s in (1, 2)], ddof=1))
    assert skipped.n_seeds == 0 and skipped.note.startswith("evonorm_own_activation")
    assert logged == [("ablations: skipped norm=evonorms0: evonorm_own_activation: model.norm=evonorms0 with "
                       "model.activation=gelu (...)")]


def test_command_line_plan(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    fake_prefix(tmp_path)
    write_params(tmp_path, {})
    assert ablations.main(["plan"]) == 0
    out = capsys.readouterr().out
    assert "ablations  norm=evonorms0" in out and "skipped: evonorm_own_activation" in out
    assert "11 variants x 2 seeds = 22 trainings" in out
    assert not Path("results").exists()  # printing the plan writes nothing
    write_params(tmp_path, {"ablations.epochs": 0})
    assert ablations.main(["plan"]) == 2
    assert capsys.readouterr().err.strip() == "error: params.yaml: ablations.epochs = 0 is out of range, allowed >= 1"
