"""DVC stage `sweep`: `efficientnext.sweep.study.run` on params.yaml (`-S KEY=VALUE` overrides it)."""

from efficientnext.stage import stage_main
from efficientnext.sweep.study import run

if __name__ == "__main__":
    stage_main(run)
