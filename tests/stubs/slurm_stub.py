#!/usr/bin/env python3
"""A stand-in for the SLURM commands the Snakemake SLURM executor calls (tests/test_snakemake.py).

Each tool (sbatch, squeue, sacct, scontrol, sinfo, sacctmgr, sshare, scancel) is a two-line script here
that runs this file with its own name. Every call is appended as one JSON line {tool, argv, stdin} to
$SLURM_STUB_DIR/calls.jsonl. sbatch prints a new job id; sacct and squeue report every submitted job as
$SLURM_STUB_STATE (default FAILED), so the workflow stops right after its first submissions.
"""

import fcntl
import json
import os
import sys
from pathlib import Path


def main() -> int:
    tool, argv = sys.argv[1], sys.argv[2:]
    state = Path(os.environ["SLURM_STUB_DIR"])
    state.mkdir(parents=True, exist_ok=True)
    stdin = sys.stdin.read() if tool == "sbatch" and "/dev/stdin" in argv else ""
    with open(state / "calls.jsonl", "a+") as log:
        fcntl.flock(log, fcntl.LOCK_EX)
        log.seek(0)
        calls = [json.loads(line) for line in log if line.strip()]
        job_ids = [str(1000 + i) for i, call in enumerate(c for c in calls if c["tool"] == "sbatch")]
        log.write(json.dumps({"tool": tool, "argv": argv, "stdin": stdin}) + "\n")
    if tool == "sbatch":
        print(str(1000 + len(job_ids)))
    elif tool in ("sacct", "squeue") and "--name" in argv:
        status = os.environ.get("SLURM_STUB_STATE", "FAILED")
        print("\n".join(f"{job_id}|{status}" for job_id in job_ids))
    elif tool == "scontrol" and argv[:2] == ["show", "config"]:
        print("MaxArraySize            = 1001\nMinJobAge               = 300 sec")
    return 0


if __name__ == "__main__":
    sys.exit(main())
