"""DVC stage `sweep`: `efficientnext.sweep.sweep.run` on params.yaml (`-S KEY=VALUE` overrides it)."""

from efficientnext.stage import stage_main
from efficientnext.sweep.sweep import run

if __name__ == "__main__":
    stage_main(run)
