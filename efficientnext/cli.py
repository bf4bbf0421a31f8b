"""`efficientnext` command line: check params, and the tools of each module (summary, sweep, predict, ...),
registered by importing the module and calling its `add_command`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from efficientnext import predict
from efficientnext.stage import add_params_arguments, load_params, reported


def _check_params(args: argparse.Namespace) -> None:
    from efficientnext.check import check_inputs

    check_inputs(load_params(args))
    print(f"{args.params}: ok")


def _set_args(args: argparse.Namespace) -> None:
    """Print a scale file's dotted keys as `-S KEY=VALUE` arguments for `dvc exp run` (shell-quoted)."""
    import shlex

    from efficientnext import config

    overrides = config.read_yaml(args.file)
    config.load(args.params, overrides)  # the scale must be valid on top of params.yaml
    print(" ".join(f"-S {shlex.quote(f'{key}={json.dumps(value)}')}" for key, value in overrides.items()))


def _parser(torch_free: bool = False) -> argparse.ArgumentParser:
    """Every command; `torch_free`: only those whose modules import no torch (`predict`'s onnx backend must run
    where torch is not installed)."""
    parser = argparse.ArgumentParser(prog="efficientnext", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check-params", help="validate params.yaml and exit")
    add_params_arguments(check)
    check.set_defaults(func=_check_params)
    set_args = sub.add_parser("set-args", help="a scale file (e.g. scales/paper.yaml) as -S arguments for dvc exp run")
    set_args.add_argument("file", help="YAML of dotted keys and values")
    set_args.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    set_args.set_defaults(func=_set_args)
    predict.add_command(sub)
    if torch_free:
        return parser
    # Imported here, not at module level: these modules import torch.
    from efficientnext import ablations, export
    from efficientnext.models import summary
    from efficientnext.sweep import sweep as sweep_stage

    for module in (summary, sweep_stage, ablations, export):
        module.add_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser(torch_free=argv[:1] == [predict.COMMAND]).parse_args(argv)  # predict: no torch import
    return reported(lambda: args.func(args))


if __name__ == "__main__":
    sys.exit(main())
