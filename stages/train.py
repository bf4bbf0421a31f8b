"""DVC stage `train`: `efficientnext.train.train.run` on params.yaml (`-S KEY=VALUE` overrides it)."""

from efficientnext.stage import stage_main
from efficientnext.train.train import run

if __name__ == "__main__":
    stage_main(run)
