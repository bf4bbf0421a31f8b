"""DVC stage `report`: `efficientnext.report.render.run` on params.yaml (`-S KEY=VALUE` overrides it)."""

from efficientnext.stage import stage_main
from efficientnext.report.render import run

if __name__ == "__main__":
    stage_main(run)
