"""The reports: the paper's tables and figures filled from the pipeline's cached artifacts.

`render` runs a notebook under reports/ with papermill and converts it with nbconvert (the DVC stage
`report` for reports/results.ipynb; the Snakefile's `ablations_report` rule for reports/ablations.ipynb);
`inputs` names each artifact a report reads and the stage that writes it; the notebooks stay thin:
`results` and `ablation_results` load and aggregate, `architecture` reads the trained model,
`figures` draws, `text` formats.
"""
