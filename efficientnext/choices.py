"""Which configuration trains: params.yaml's values, with every searched key it leaves to the sweep (`sweep`)
filled from sweep/best.yaml, or from table 8.4 with `train.choices_from: paper`. A value params.yaml (or
-S) sets always wins; the keys where it overrides the sweep's choice are named in one line.

Torch-free, so the ablation workflow plans with exactly what the train stage trains.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from efficientnext import config, paper, search_space
from efficientnext.config import Params, UserError
from efficientnext.paths import BEST_YAML


def sweep_choices(params: Params, best_yaml: Path = BEST_YAML) -> tuple[dict[str, Any], str]:
    """The values the keys left to the sweep take, and a phrase naming where they come from."""
    sweep = params.sweep
    if params.train.choices_from == "paper":
        pins = search_space.pinned(sweep.space, sweep.fixed)
        pinned_rows = ", ".join(f"{key}={value}" for key, value in pins.items() if key in params.from_sweep)
        return ({**paper.selected_configuration(), **pins},
                f"table 8.4{f' with {pinned_rows} pinned by sweep.fixed' if pinned_rows else ''}")
    if not best_yaml.is_file():
        raise UserError(f"{best_yaml} not found, and params.yaml leaves {len(params.from_sweep)} keys to the sweep: "
                        "run it (`dvc repro select`), or set train.choices_from: paper to train table 8.4")
    best = config.read_yaml(best_yaml)
    return best["params"], f"{best_yaml} (trial {best.get('trial')})"


def chosen_params(params: Params, best_yaml: Path = BEST_YAML) -> tuple[Params, dict[str, str]]:
    """The configuration to train, and per searched key where its value came from (sweep, paper or params)."""
    if not params.from_sweep:
        return params, {key: "params" for key in search_space.SEARCHED_KEYS}
    choices, origin = sweep_choices(params, best_yaml)
    chosen = config.with_choices(params, choices, source=str(best_yaml))
    filled_by = "paper" if params.train.choices_from == "paper" else "sweep"
    sources = {key: filled_by if key in params.from_sweep else "params" for key in search_space.SEARCHED_KEYS}
    overruled = [f"{key}={chosen.value(key)} (sweep: {choices[key]})" for key in search_space.SEARCHED_KEYS
                 if sources[key] == "params" and key in choices and choices[key] != chosen.value(key)]
    print(f"train: {len(params.from_sweep)} searched keys from {origin}"
          + (f"; params.yaml overrides {', '.join(overruled)}" if overruled else ""), flush=True)
    return chosen, sources
