"""DVC stage `prepare`: thin entry point; the logic is in the efficientnext library."""

from efficientnext.cli import run_stage

if __name__ == "__main__":
    run_stage("prepare")
