"""`efficientnext` command line: run a pipeline stage, check params, and the tools of each module.

Stage scripts in stages/ call `run_stage(name)`; every stage validates the whole of
params.yaml first, and a problem stops it with one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from efficientnext import config

# DVC stage name -> "module:function"; each function takes the validated Params.
STAGES: dict[str, str] = {
    "generate": "efficientnext.data.synthetic:run",
    "validate": "efficientnext.data.validate:run",
    "split": "efficientnext.data.split:run",
    "prepare": "efficientnext.data.cache:run",
    "subset": "efficientnext.data.subset:run",
    "sweep": "efficientnext.sweep.study:run",
    "select": "efficientnext.sweep.select:run",
    "train": "efficientnext.train.run:run",
    "evaluate": "efficientnext.evaluate:run",
}

# Subcommands contributed by library modules: name -> "module:function(subparsers)".
COMMANDS: dict[str, str] = {
    "summary": "efficientnext.models.summary:add_command",
    "sweep": "efficientnext.sweep.study:add_command",
}


def _resolve(target: str) -> Callable:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


class UserError(Exception):
    """An error whose message is the one line to show the user (bad input, missing file)."""


def run_stage(name: str, argv: Sequence[str] | None = None) -> None:
    """Entry point of stages/<name>.py."""
    sys.exit(main(["stage", name, *(sys.argv[1:] if argv is None else argv)]))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="efficientnext", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    stage = sub.add_parser("stage", help="run one pipeline stage (what dvc.yaml calls)")
    stage.add_argument("name", choices=sorted(STAGES))
    stage.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    stage.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                       help="override a param, e.g. -S model.attention=se (repeatable)")
    stage.set_defaults(func=_stage_command)

    check = sub.add_parser("check-params", help="validate params.yaml and exit")
    check.add_argument("--params", default="params.yaml")
    check.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    check.set_defaults(func=lambda args: (load_params(args), print(f"{args.params}: ok"))[-1])

    for target in COMMANDS.values():
        _resolve(target)(sub)
    return parser


def load_params(args: argparse.Namespace) -> config.Params:
    overrides = dict(config.parse_override(item) for item in getattr(args, "overrides", []))
    return config.load(args.params, overrides)


def _stage_command(args: argparse.Namespace) -> None:
    params = load_params(args)
    _resolve(STAGES[args.name])(params)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        args.func(args)
    except (config.ParamsError, UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
