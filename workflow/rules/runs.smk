# One training and its evaluation per variant and seed, through the pipeline's own entry points
# (python -m stages.train / stages.evaluate --out DIR -S ...), everything under results/<kind>/<variant>/seed<k>/.
# Inputs are the run's spec files (rewritten only when what the run depends on changes). A killed
# training resumes from its models/last.pt (not an output, so Snakemake never deletes it) with
# --rerun-incomplete. On a cluster, a run's training and evaluation are one job (group "run").


rule train:
    input:
        spec=f"{RUN}/{ablations.TRAIN_SPEC}",
    output:
        best=f"{RUN}/models/best.pt",
        metrics=f"{RUN}/metrics/train.json",
    params:
        command=lambda wildcards: ablations.train_command(
            run_plan(), run_variant(wildcards), int(wildcards.seed), PARAMS_FILE
        ),
    log:
        f"{RUN}/logs/train.log",
    benchmark:
        f"{RUN}/logs/train.benchmark.tsv"
    group:
        "run"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=120,
    shell:
        "export OMP_NUM_THREADS={threads}; ({params.command}) > {log} 2>&1"


rule evaluate:
    input:
        best=f"{RUN}/models/best.pt",
        spec=f"{RUN}/{ablations.EVALUATE_SPEC}",
    output:
        metrics=f"{RUN}/metrics/test.json",
        predictions=f"{RUN}/predictions/test.csv",
    params:
        command=lambda wildcards: ablations.evaluate_command(
            run_plan(), run_variant(wildcards), int(wildcards.seed), PARAMS_FILE
        ),
    log:
        f"{RUN}/logs/evaluate.log",
    group:
        "run"
    threads: 1
    resources:
        gpu=1,
        mem_mb=4000,
        runtime=30,
    shell:
        "export OMP_NUM_THREADS={threads}; ({params.command}) > {log} 2>&1"
