# The DVC prefix the runs read (data/prepared, data/splits, data/subset.csv, sweep/best.yaml), made by DVC
# itself. The only rule that runs dvc, once: `dvc repro` takes the repository lock. A checkpoint: the runs
# are planned from sweep/best.yaml once it exists. The runs do not list these files as inputs; their
# specs hold the files' checksums, so a timestamp DVC rewrote never re-trains anything.


checkpoint dvc_prefix:
    output:
        ablations.dvc_outputs(PARAMS),
    params:
        targets=" ".join(ablations.dvc_targets(PARAMS)),
    log:
        "results/logs/dvc_prefix.log",
    threads: os.cpu_count() or 1  # the sweep uses every core it sees (profiles set this on a cluster)
    resources:
        gpu=1,
        mem_mb=8000,
        runtime=240,
    shell:
        "dvc repro {params.targets} > {log} 2>&1"


# With the DVC prefix already there, plan before the DAG is built: the specs the runs take as inputs
# must exist when Snakemake first looks for them (the main process only, not inside cluster jobs).
if workflow.is_main_process and ablations.dvc_prefix_ready(PARAMS):
    prepared_plan()
