"""What every stage script in stages/ shares: it imports the function that does the stage's work by name
and hands it to `stage_main`, which validates the whole of params.yaml first (with `-S KEY=VALUE`
overrides, and `--out DIR` for a stage that takes a run directory); a problem stops it with one line on
stderr and exit code 2. Light on purpose: the data stages import it without torch.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from efficientnext import config, params_trace
from efficientnext.paths import RunPaths


def add_params_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    parser.add_argument("-S", "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a param, e.g. -S model.attention=se (repeatable)")


def load_params(args: argparse.Namespace) -> config.Params:
    overrides = dict(config.parse_override(item) for item in getattr(args, "overrides", []))
    return config.load(args.params, overrides)


def reported(action: Callable[[], None]) -> int:
    try:
        action()
    except (config.ParamsError, config.UserError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def stage_main(stage: Callable[..., None], argv: Sequence[str] | None = None) -> None:
    """Run a DVC stage function on the validated params; `--out DIR` for stages that take a run directory."""
    parser = argparse.ArgumentParser(description=f"{stage.__module__}.{stage.__name__} on params.yaml")
    add_params_arguments(parser)
    relocatable = "out" in inspect.signature(stage).parameters
    if relocatable:
        parser.add_argument("--out", type=Path, default=None, metavar="DIR",
                            help="run directory to write into (default: the pipeline's own paths)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)

    def action() -> None:
        params = load_params(args)
        with params_trace.traced(Path(sys.argv[0]).stem, params):
            if relocatable and args.out is not None:
                stage(params, out=RunPaths(args.out))
            else:
                stage(params)

    sys.exit(reported(action))
