# The ablation and baseline report (design contract: reports/ablations.html and reports/ablations.md, made
# by `all`): papermill runs reports/ablations.ipynb on the two summaries and the runs' test metrics their
# plan.json files list (each summary's inputs, written with the plan), nbconvert writes the HTML and
# Markdown (efficientnext/report/ablation_results.py).


localrules:
    ablations_report,


rule ablations_report:
    input:
        "reports/ablations.ipynb",
        "results/ablations/summary.csv",
        "results/baselines/summary.csv",
    output:
        "reports/ablations.html",
        "reports/ablations.md",
        directory("reports/ablations_files"),
    log:
        "results/ablations_report.log",
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    shell:
        "python -m efficientnext.report.ablation_results > {log} 2>&1"


REPORT = rules.ablations_report.output[:2]
