"""DVC stage `evaluate`: `efficientnext.evaluate.run` on params.yaml (`-S KEY=VALUE` overrides it)."""

from efficientnext.stage import stage_main
from efficientnext.evaluate import run

if __name__ == "__main__":
    stage_main(run)
