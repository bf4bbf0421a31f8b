"""The ablation and baseline report's loading and tables, from the Snakefile's results/: each summary.csv
(per factor level or architecture: mean and std over seeds, the paired comparison to the selected
configuration and its verdict; efficientnext.ablations) and, for the per-seed points, every run's
metrics/test.json listed by results/<kind>/plan.json.

    python -m efficientnext.report.ablation_results   # reports/ablations.html and .md (the Snakefile's rule)
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pandas as pd

from efficientnext import ablations
from efficientnext.report.inputs import Artifact, parameters, require
from efficientnext.report.text import metric

NOTEBOOK = Path("reports/ablations.ipynb")
ABLATIONS: dict[str, Artifact] = {
    f"{kind}_{name}": Artifact(ablations.RESULTS / kind / file,
                               f"the Snakefile's {kind} target (`snakemake --cores all {kind}`)")
    for kind in ablations.KINDS for name, file in (("summary", ablations.SUMMARY), ("plan", ablations.PLAN))
}


COST_NUMBERS = ("Params (M)", "MMACs", "Train img/s")  # the cost table's right-aligned columns


def load_summary(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"level": str}, keep_default_na=False, na_values=[""])


def seed_runs(plan: str | Path, root: Path = Path(".")) -> pd.DataFrame:
    """One row per trained run of a summary's rows: factor, level (the selected one marked), variant, seed
    and its test metrics."""
    record = json.loads(Path(plan).read_text())
    rows = []
    for row in record["rows"]:
        if row["variant"] is None:
            continue
        for seed in record["seeds"]:
            test = json.loads((root / row["variant"] / f"seed{seed}" / "metrics/test.json").read_text())
            level = ablations.level_name(row["level"]) + (" (selected)" if row["reference"] else "")
            rows.append({"factor": row["factor"], "level": level,
                         "variant": row["variant"], "seed": seed,
                         **{key: test[key] for key in ("macro_f1", "accuracy", "ece")}})
    return pd.DataFrame(rows)


def design_note(plan: str | Path) -> str:
    """One line on how the comparisons were made, from a summary's plan.json."""
    record = json.loads(Path(plan).read_text())
    return (f"Seeds {', '.join(map(str, record['seeds']))}; reference: the selected configuration's runs "
            f"(`{record['reference']}`); bootstrap intervals at significance {record['significance']} over "
            f"{record['bootstrap']} resamples of the test images.")


def _mean_sd(mean: float, sd: float) -> str:
    if isinstance(mean, float) and math.isnan(mean):
        return "—"
    return f"{metric(mean)} ± {metric(sd)}"


def _delta(row: pd.Series) -> str:
    if pd.isna(row["delta_macro_f1"]):
        return "—"
    if pd.isna(row["delta_macro_f1_low"]):
        return f"{row['delta_macro_f1']:+.3f}"
    return f"{row['delta_macro_f1']:+.3f} [{row['delta_macro_f1_low']:+.3f}, {row['delta_macro_f1_high']:+.3f}]"


def comparison_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Each row: seeds, macro-F1 / accuracy / ECE as mean ± sd, the paired Δ macro-F1 with its bootstrap
    interval and p-value, McNemar's p, the verdict, and the note (skip reason or per-seed Δ)."""
    return pd.DataFrame([{
        "Factor": row["factor"], "Level": row["level"], "Seeds": str(row["n_seeds"]),
        "Macro F1": _mean_sd(row["macro_f1_mean"], row["macro_f1_std"]),
        "Accuracy": _mean_sd(row["accuracy_mean"], row["accuracy_std"]),
        "ECE": _mean_sd(row["ece_mean"], row["ece_std"]),
        "Δ macro F1 [interval]": _delta(row), "p (bootstrap)": metric(row["p_bootstrap"]),
        "p (McNemar)": metric(row["mcnemar_p"]), "Verdict": row["verdict"], "Note": row["note"] or "",
    } for _, row in summary.iterrows()])


def cost_table(summary: pd.DataFrame) -> pd.DataFrame:
    """Each trained row's size and speed: parameters, MACs per image at its trained size, train img/s."""
    trained = summary[summary["n_seeds"].fillna(0).astype(int) > 0]
    return pd.DataFrame([{"Factor": row["factor"], "Level": row["level"], "Params (M)": f"{row['params'] / 1e6:.3f}",
                          "MMACs": f"{row['macs'] / 1e6:.1f}", "Train img/s": f"{row['train_img_per_s']:.0f}"}
                         for _, row in trained.iterrows()])


def main() -> int:
    """reports/ablations.html and .md from results/ (what the Snakefile's ablations_report rule runs)."""
    from efficientnext.report.render import render
    from efficientnext.stage import reported

    def action() -> None:
        require(ABLATIONS)
        out = render(NOTEBOOK, parameters(ABLATIONS))
        print(f"ablations report: {out.html}, {out.markdown}", flush=True)

    return reported(action)


if __name__ == "__main__":
    sys.exit(main())
