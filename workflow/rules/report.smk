# The ablation report (design contract: reports/ablations.html and reports/ablations.md, made by `all`)
# comes with the report notebook. Its rule goes here, reading the two summaries, e.g.
#
#   rule ablations_report:
#       input: "results/ablations/summary.csv", "results/baselines/summary.csv", "<the notebook>"
#       output: "reports/ablations.html", "reports/ablations.md"
#       shell: "papermill ... && jupyter nbconvert ..."
#
# and REPORT lists its outputs, which `all` then requests.
REPORT = []
