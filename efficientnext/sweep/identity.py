"""Which study a sweep works on: `<sweep.study_name>-<digest>` of everything its trials depend on.

A study belongs to its data and its search: the subset and the prepared cache (file digests), the active
space and constraints, the budget (n_trials, timeout, per-trial epochs), the sampler and pruner, and the
non-searched keys a trial trains with. Changing any of them starts a new study in the same storage; a
rerun with the same inputs resumes. The sweep writes the identity to sweep/study.json, and `select`
refuses a study whose data digests differ from the files on disk.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from efficientnext import config
from efficientnext.paths import PREPARED_INDEX, SUBSET_CSV
from efficientnext import search_space
from efficientnext.sweep import constraints

# The search: every sweep key but where the study lives and how many processes work on it.
SEARCH_KEYS = ("space", "n_trials", "timeout", "epochs", "pruner", "sampler_seed", "startup_trials",
               "pruner_startup", "precision", "start_from_paper", "fixed")
# Keys of the final training only: a trial sets or ignores them.
FINAL_TRAINING_ONLY = ("train.epochs", "train.choices_from", "train.precision")


def file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def data_digests(root: Path) -> dict[str, str | None]:
    """Digests of the subset and the cache index (None for a file not there: a trainer that needs no data)."""
    return {str(rel): file_digest(root / rel) if (root / rel).is_file() else None
            for rel in (SUBSET_CSV, PREPARED_INDEX)}


def trial_base(params: config.Params) -> dict[str, Any]:
    """The keys a trial trains with that the search does not set."""
    raw = params.dump()
    base = {"data.classes": raw["data"]["classes"], "augment": raw["augment"]}
    skipped = {row.key for row in search_space.PAPER_SPACE} | set(FINAL_TRAINING_ONLY)  # a trial sets every row
    for group in ("model", "train"):
        base.update({f"{group}.{key}": value for key, value in raw[group].items() if f"{group}.{key}" not in skipped})
    return base


def identity(params: config.Params, root: Path) -> dict[str, Any]:
    sweep = params.sweep.model_dump(mode="json")
    return {
        "data": data_digests(root),
        "search": {key: sweep[key] for key in SEARCH_KEYS},
        "space": search_space.table(params.sweep.space),
        "constraints": [constraint.name for constraint in constraints.CONSTRAINTS],
        "trial_base": trial_base(params),
    }


def study_name(params: config.Params, identity_record: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(identity_record, sort_keys=True).encode()).hexdigest()[:12]
    return f"{params.sweep.study_name}-{digest}"
