"""DVC stage `check`: `efficientnext.check.run` on params.yaml (`-S KEY=VALUE` overrides it)."""

from efficientnext.check import run
from efficientnext.stage import stage_main

if __name__ == "__main__":
    stage_main(run)
