# The summary tables: per factor level (per architecture), mean and std over seeds, the paired difference
# to the selected configuration and a verdict, params, MACs and train img/s (efficientnext/ablations.py).


localrules:
    ablations_summary,
    baselines_summary,


rule ablations_summary:
    input:
        summary_inputs("ablations"),
    output:
        "results/ablations/summary.csv",
    log:
        "results/ablations/summary.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m efficientnext.ablations summary ablations > {log} 2>&1"


rule baselines_summary:
    input:
        summary_inputs("baselines"),
    output:
        "results/baselines/summary.csv",
    log:
        "results/baselines/summary.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m efficientnext.ablations summary baselines > {log} 2>&1"
