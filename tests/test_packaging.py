"""The pins in pyproject.toml and environment.yml are one set; the repo has what users and CI rely on."""

import configparser
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_pins() -> list[str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def _conda_pip_pins() -> list[str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_sections = [dep["pip"] for dep in env["dependencies"] if isinstance(dep, dict) and "pip" in dep]
    assert len(pip_sections) == 1, "environment.yml must have exactly one pip section"
    return pip_sections[0]


def test_every_dependency_is_pinned_exactly():
    for pin in _pyproject_pins():
        name, sep, version = pin.partition("==")
        assert sep and version and not any(c in version for c in "<>=!~*,"), f"not an exact pin: {pin}"


def test_environment_yml_lists_the_same_pins_as_pyproject():
    assert sorted(_conda_pip_pins()) == sorted(_pyproject_pins())


def test_torch_and_torchvision_pins():
    pins = dict(p.split("==") for p in _pyproject_pins())
    assert pins["torch"] == "2.14.1" and pins["torchvision"] == "0.29.1"


def test_dvc_analytics_off_in_committed_config():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / ".dvc/config")
    assert cfg.get("core", "analytics") == "false"


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci/run").read_text()


def test_readme_starts_with_the_two_commands():
    head = "\n".join((ROOT / "README.md").read_text().splitlines()[:15])
    assert "make repro" in head and "make test" in head


def test_console_script_help():
    out = subprocess.run([str(Path(sys.executable).parent / "efficientnext"), "--help"],
                         capture_output=True, text=True, check=True).stdout
    for command in ("check-params", "summary", "sweep"):
        assert command in out
