"""The top-level Snakefile in a temporary git copy on the tiny profile (tests/profiles/tiny.yaml): `all` from a
fresh clone (DVC prefix through its rule, ablations, baselines, both summaries), nothing left to do after,
no re-training for DVC timestamps, a changed param re-running exactly its runs, kill -9 then
--rerun-incomplete resuming, a bad param as one line, the SLURM profile against stub sbatch/squeue/sacct,
and --lint. The end-to-end tests share one finished workflow (module fixture; one xdist worker)."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import ROOT, VENV_BIN, make_repo
from test_ablations import fake_prefix

from efficientnext.train.checkpoint import load_record

pytestmark = pytest.mark.xdist_group("snakemake")

SNAKEMAKE = str(VENV_BIN / "snakemake")
STUBS = ROOT / "tests/stubs"
# On top of the tiny profile: values win over the sweep's choice, so the selection is known whatever the
# two tiny trials find: ECA (the attention factor's `eca` level is the selected runs) and GELU (EvoNorm-S0
# is then infeasible by the sweep's own constraint, and must be reported, not trained).
WORKFLOW = {"model.attention": "eca", "model.activation": "gelu"}
RUNS = ["results/ablations/selected", "results/ablations/attention-none", "results/baselines/transfer"]


def environment(**extra: str) -> dict[str, str]:
    return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1",
            "OMP_NUM_THREADS": "1", **extra}


def snakemake(repo: Path, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    result = subprocess.run([SNAKEMAKE, *args], cwd=repo, env=environment(**env), capture_output=True, text=True,
                            check=False)
    if check and result.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n"
                             f"{result.stderr[-6000:]}")
    return result


def job_counts(output: str) -> dict[str, int]:
    """The first 'Job stats' table of a dry run: rule -> jobs ({} when there is nothing to do)."""
    if "Nothing to be done" in output:
        return {}
    table = output.split("Job stats:", 1)[1].split("total", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.MULTILINE)}


def set_params(repo: Path, overrides: dict) -> None:
    raw = yaml.safe_load((repo / "params.yaml").read_text())
    for dotted, value in overrides.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            node = node[part]
        node[leaf] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))


def read_summary(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """`snakemake --cores 2 all` on a fresh tiny clone: DVC prefix, 3 variants x 2 seeds, both summaries."""
    repo = make_repo(tmp_path_factory.mktemp("workflow") / "repo", WORKFLOW)
    assert not (repo / "sweep/best.yaml").exists() and not (repo / "results").exists()
    return repo, snakemake(repo, "--cores", "2", "all")


@pytest.mark.slow
def test_all_from_a_fresh_clone_then_nothing_to_do(finished):
    repo, result = finished
    log = result.stdout + result.stderr
    assert "dvc_prefix" in log and (repo / "sweep/best.yaml").is_file()  # DVC made its prefix, through DVC
    assert "ablations: skipped norm=evonorms0: evonorm_own_activation" in log

    rows = read_summary(repo / "results/ablations/summary.csv")
    assert list(rows[0]) == ["factor", "level", "variant", "n_seeds", "macro_f1_mean", "macro_f1_std",
                             "accuracy_mean", "accuracy_std", "ece_mean", "ece_std", "delta_macro_f1",
                             "delta_macro_f1_low", "delta_macro_f1_high", "p_bootstrap", "delta_accuracy",
                             "mcnemar_b", "mcnemar_c", "mcnemar_p", "verdict", "params", "macs",
                             "train_img_per_s", "note"]
    assert [(r["factor"], r["level"], r["variant"], r["n_seeds"], r["verdict"]) for r in rows] == [
        ("attention", "eca", "results/ablations/selected", "2", "selected"),
        ("attention", "none", "results/ablations/attention-none", "2", rows[1]["verdict"]),
        ("norm", "evonorms0", "", "0", "skipped")]
    assert rows[1]["verdict"] in ("better", "worse", "within noise")
    assert rows[2]["note"].startswith("evonorm_own_activation: model.norm=evonorms0 with model.activation=gelu")
    for row in rows[:2]:
        assert 0 <= float(row["macro_f1_mean"]) <= 1 and float(row["macro_f1_std"]) >= 0
        assert int(row["params"]) > 0 and int(row["macs"]) > 0 and float(row["train_img_per_s"]) > 0
    assert int(rows[1]["params"]) < int(rows[0]["params"])  # no ECA weights
    assert "skipped norm=evonorms0" in (repo / "results/ablations/summary.log").read_text()
    baselines = read_summary(repo / "results/baselines/summary.csv")
    assert [(r["factor"], r["level"], r["variant"], r["n_seeds"]) for r in baselines] == [
        ("arch", "efficientnext", "results/ablations/selected", "2"),
        ("arch", "transfer", "results/baselines/transfer", "2")]
    assert baselines[0]["verdict"] == "selected" and baselines[1]["verdict"] in ("better", "worse", "within noise")
    for run in RUNS:
        for seed in (1, 2):
            out = repo / run / f"seed{seed}"
            for name in ("models/best.pt", "models/last.pt", "metrics/train.json", "metrics/test.json",
                         "predictions/test.csv", "dvclive/params.yaml", "logs/train.log", "logs/evaluate.log"):
                assert (out / name).is_file(), out / name
            assert load_record(out / "models/best.pt").train_config["seed"] == seed
            assert yaml.safe_load((out / "dvclive/params.yaml").read_text())["model.activation"] == "gelu"
            assert json.loads((out / "metrics/train.json").read_text())["epochs"] == 3
    assert yaml.safe_load((repo / "results/baselines/transfer/seed1/dvclive/params.yaml").read_text())["arch"] == \
        "transfer"
    report = (repo / "reports/ablations.md").read_text()  # its contents: tests/test_report.py
    assert "## Ablations" in report and "## Baselines" in report and (repo / "reports/ablations.html").is_file()
    ignored = subprocess.run(["git", "status", "--porcelain", "--", "results", ".snakemake", "reports"], cwd=repo,
                             capture_output=True, text=True, check=True)
    assert ignored.stdout == ""  # results/, .snakemake/ and the ablation report never land in the repository

    assert job_counts(snakemake(repo, "-n", "all").stdout) == {}
    # DVC rewrites timestamps (checkout, a re-run that restores from its cache): nothing re-trains
    for path in ["params.yaml", "sweep/best.yaml", "data/subset.csv", *map(str, (repo / "data/splits").glob("*")),
                 *map(str, (repo / "data/prepared").glob("*"))]:
        os.utime(repo / path)
    assert job_counts(snakemake(repo, "-n", "ablations").stdout) == {}


@pytest.mark.slow
def test_a_changed_param_reruns_exactly_its_runs(finished):
    repo, _ = finished
    original = (repo / "params.yaml").read_text()
    try:
        set_params(repo, {"ablations.factors": {"attention": ["eca", "none", "se"], "norm": ["evonorms0"]}})
        assert job_counts(snakemake(repo, "-n", "all").stdout) == {
            "train": 2, "evaluate": 2, "ablations_summary": 1, "ablations_report": 1, "all": 1}
        (repo / "params.yaml").write_text(original)
        set_params(repo, {"ablations.significance": 0.1})
        assert job_counts(snakemake(repo, "-n", "all").stdout) == {
            "ablations_summary": 1, "baselines_summary": 1, "ablations_report": 1, "all": 1}
        (repo / "params.yaml").write_text(original)
        set_params(repo, {"evaluate.ece_bins": 10})
        assert job_counts(snakemake(repo, "-n", "baselines").stdout) == {
            "evaluate": 4, "baselines_summary": 1, "baselines": 1}
    finally:
        (repo / "params.yaml").write_text(original)
    assert job_counts(snakemake(repo, "-n", "all").stdout) == {}


@pytest.mark.slow
def test_kill_then_rerun_incomplete_resumes_and_keeps_finished_runs(finished, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(finished[0], repo, symlinks=True)
    set_params(repo, {"ablations.seeds": [1, 2, 3], "ablations.baselines": []})
    kept = {path: path.stat().st_mtime_ns for path in (repo / "results").rglob("seed[12]/*/*") if path.is_file()}
    process = subprocess.Popen([SNAKEMAKE, "--cores", "2", "ablations"], cwd=repo, env=environment(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    logs = [repo / run / "seed3/logs/train.log" for run in RUNS[:2]]
    killed = None
    deadline = time.monotonic() + 240
    while killed is None and time.monotonic() < deadline and process.poll() is None:
        for log in logs:
            text = log.read_text() if log.is_file() else ""
            if "epoch 1/3" in text and "train: best epoch" not in text:
                os.killpg(process.pid, signal.SIGKILL)  # the whole workflow: snakemake and its trainings
                killed = log
                break
        time.sleep(0.05)
    process.wait()
    assert killed is not None, "no training was caught mid-run"
    assert not (killed.parent.parent / "metrics/train.json").exists()

    locked = snakemake(repo, "--cores", "2", "ablations", "--rerun-incomplete", check=False)
    assert "--unlock" in locked.stderr + locked.stdout  # a kill -9 leaves Snakemake's lock behind
    snakemake(repo, "--unlock")
    snakemake(repo, "--cores", "2", "ablations", "--rerun-incomplete")
    resumed = killed.read_text()
    assert re.search(r"last\.pt: resuming after epoch [12]\b", resumed), resumed
    assert "train: best epoch" in resumed
    assert {path: path.stat().st_mtime_ns for path in kept} == kept  # no finished run was touched
    rows = read_summary(repo / "results/ablations/summary.csv")
    assert [r["n_seeds"] for r in rows] == ["3", "3", "0"]
    assert job_counts(snakemake(repo, "-n", "ablations").stdout) == {}


def test_a_bad_ablations_param_is_one_line_before_anything_runs(tmp_path):
    repo = make_repo(tmp_path / "repo")
    set_params(repo, {"ablations.epochs": 0})
    result = snakemake(repo, "--cores", "2", "all", check=False)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: params.yaml: ablations.epochs = 0 is out of range, allowed >= 1"
    set_params(repo, {"ablations.epochs": 2, "ablations.factors": {"kernel": [3, 5]}})
    result = snakemake(repo, "-n", check=False)
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "ablations.factors: 'kernel' is not a searched row; one of" in result.stderr
    assert not (repo / "results").exists() and not (repo / "data/splits").exists()


def test_slurm_profile_submits_one_gpu_job_per_run(tmp_path):
    repo = make_repo(tmp_path / "repo", WORKFLOW)
    fake_prefix(repo)  # the DVC prefix as if made: the DAG is known up front
    dry = snakemake(repo, "--profile", "profiles/slurm", "-n", "all")
    assert job_counts(dry.stdout) == {"train": 6, "evaluate": 6, "ablations_summary": 1, "baselines_summary": 1,
                                      "ablations_report": 1, "all": 1}
    stub_dir = tmp_path / "slurm"
    process = subprocess.Popen(
        [SNAKEMAKE, "--profile", "profiles/slurm", "all", "--slurm-no-account",
         "--slurm-init-seconds-before-status-checks", "1"], cwd=repo, start_new_session=True,
        env=environment(PATH=f"{STUBS}{os.pathsep}{VENV_BIN}{os.pathsep}{os.environ['PATH']}",
                        SLURM_STUB_DIR=str(stub_dir), SLURM_STUB_PYTHON=str(VENV_BIN / "python")),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def submitted() -> list[list[str]]:
        calls = stub_dir / "calls.jsonl"
        lines = calls.read_text().splitlines() if calls.is_file() else []
        return [call["argv"] for call in map(json.loads, lines) if call["tool"] == "sbatch"]

    deadline = time.monotonic() + 120
    while len(submitted()) < 6 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.2)
    time.sleep(0.5)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    jobs = submitted()
    assert len(jobs) == 6  # one job per run (3 variants x 2 seeds), its training and evaluation together
    targets = set()
    for argv in jobs:
        command = " ".join(argv)
        assert "--gpus=1" in argv, command                       # one GPU each
        assert argv[argv.index("--mem") + 1] == "32000", command  # the larger of train's and evaluate's
        assert argv[argv.index("-t") + 1] == "780", command       # train 720 + evaluate 60 minutes
        assert "--cpus-per-task=8" in argv and "--parsable" in argv
        wrapped = next(arg for arg in argv if arg.startswith("--wrap="))
        assert "--executor slurm-jobstep" in wrapped and re.search(r"--allowed-rules (train|evaluate) (train|evaluate)",
                                                                   wrapped)
        found = re.findall(r"'(train|evaluate):kind=(\w+),variant=([\w.-]+),seed=(\d+)'", wrapped)
        assert sorted(rule for rule, *_ in found) == ["evaluate", "train"]
        assert len({tuple(run) for _, *run in found}) == 1
        targets.add(tuple(found[0][1:]))
    assert targets == {(kind, variant, seed) for kind, variant in
                       [("ablations", "selected"), ("ablations", "attention-none"), ("baselines", "transfer")]
                       for seed in ("1", "2")}


def test_lint_is_clean_but_for_per_rule_conda_environments(tmp_path):
    repo = make_repo(tmp_path / "repo")
    result = snakemake(repo, "--lint", check=False)  # (9.27.1 prints text whatever --lint's format)
    report = result.stdout + result.stderr
    assert "Lints for snakefile" not in report
    rules = re.findall(r"^Lints for rule (\w+)", report, re.MULTILINE)
    assert sorted(rules) == ["ablations_report", "ablations_summary", "baselines_summary", "dvc_prefix", "evaluate",
                             "train"]
    assert set(re.findall(r"^    \* (.+?):$", report, re.MULTILINE)) == {
        "Specify a conda environment or container for each rule."}  # one pinned venv: see README
