# The ablations and baselines around the selected configuration (README, "Ablations and baselines"):
#
#   snakemake --cores all              # all: both, ending at results/{ablations,baselines}/summary.csv
#   snakemake --cores all ablations    # attention / depthwise kernel / normalisation, one factor at a time
#   snakemake --cores all baselines    # the selected EfficientNext vs efficientnet_b2 vs the transfer baseline
#   snakemake --profile profiles/slurm all   # one SLURM job (one GPU) per run
#
# Workflow mechanics only. What trains (factors, levels, seeds, epochs, split) and the statistics live in
# params.yaml's `ablations` group, validated with the rest of params.yaml; the logic is
# efficientnext/ablations.py. Rules are split by concern under workflow/rules/.

from snakemake.utils import min_version

min_version("9.0")


include: "workflow/rules/common.smk"
include: "workflow/rules/dvc.smk"
include: "workflow/rules/runs.smk"
include: "workflow/rules/summary.smk"
include: "workflow/rules/report.smk"


localrules:
    all,
    ablations,
    baselines,


rule all:
    default_target: True
    input:
        "results/ablations/summary.csv",
        "results/baselines/summary.csv",
        REPORT,


rule ablations:
    input:
        "results/ablations/summary.csv",


rule baselines:
    input:
        "results/baselines/summary.csv",
