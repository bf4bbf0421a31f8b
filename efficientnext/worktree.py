"""A throwaway copy of a repository's working tree as a git repository of its own (DVC runs only inside
one), with params.yaml overridden: what the tests' temporary pipelines and benchmarks/real_images.py run in.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from efficientnext import config

GIT_USER = ["-c", "user.email=copy@localhost", "-c", "user.name=copy"]


def write_params(repo: Path, overrides: dict[str, Any]) -> None:
    """Set dotted-key overrides in `repo`/params.yaml; the result must validate."""
    path = repo / "params.yaml"
    raw = config.apply_overrides(yaml.safe_load(path.read_text()), overrides)
    config.validate(raw)
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


def copy_worktree(source: Path, dest: Path, overrides: dict[str, Any]) -> Path:
    """Copy `source`'s tracked and non-ignored files (uncommitted edits included) to `dest`, apply
    `overrides` to its params.yaml and commit everything in a fresh git repository there."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=source,
                            capture_output=True, text=True, check=True).stdout.split("\0")
    for rel in filter(None, listed):
        if (source / rel).is_file():  # a deleted but still tracked file is listed too
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source / rel, dest / rel)
    write_params(dest, overrides)
    for command in (["init", "-q"], [*GIT_USER, "add", "-A"], [*GIT_USER, "commit", "-qm", "copy"]):
        subprocess.run(["git", *command], cwd=dest, capture_output=True, check=True)
    return dest
