"""DVC stage `generate`: `efficientnext.data.generate.run` on params.yaml (`-S KEY=VALUE` overrides it)."""

from efficientnext.stage import stage_main
from efficientnext.data.generate import run

if __name__ == "__main__":
    stage_main(run)
