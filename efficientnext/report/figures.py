"""The reports' figures, drawn with seaborn and matplotlib from the loaded artifacts.

Each function returns a `matplotlib.figure.Figure` not managed by pyplot: a notebook shows it once, as
its cell's value, and nothing stays open. Axes carry labels and units, so a figure reads in print.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import FancyBboxPatch
from matplotlib.ticker import MultipleLocator
from sklearn.metrics import auc

from efficientnext.report.architecture import Box
from efficientnext.report.results import Results, split_counts

DPI = 110
CURVES = (("loss", "loss (the training objective)"), ("accuracy", "accuracy"), ("macro_f1", "macro F1"))


def style() -> None:
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)


def _figure(width: float, height: float, columns: int = 1) -> tuple[Figure, Sequence]:
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = figure.subplots(1, columns, squeeze=False)[0]
    return figure, axes


def _integer_axis(ax, values: pd.Series) -> None:
    """Epochs or trial numbers on x: whole numbers only, about ten ticks at most."""
    ax.set_xlim(values.min() - 0.5, values.max() + 0.5)
    ax.xaxis.set_major_locator(MultipleLocator(max(1, math.ceil((values.max() - values.min() + 1) / 10))))


def architecture(boxes: list[Box], title: str) -> Figure:
    """Figure 1: the network left to right, one box per part, its output shape on each arrow."""
    width = 1.0
    figure, (ax,) = _figure(1.45 * len(boxes), 3.2)
    ax.set_axis_off()
    ax.set_xlim(-0.2, len(boxes) * 1.4)
    ax.set_ylim(-1.3, 1.4)
    palette = sns.color_palette("pastel", 4)
    for index, box in enumerate(boxes):
        x = index * 1.4
        colour = palette[0 if box.title.startswith("stage") else 1 if box.title in ("stem", "projection")
                         else 2 if box.title == "head" else 3]
        ax.add_patch(FancyBboxPatch((x, -0.8), width, 1.9, boxstyle="round,pad=0.03", facecolor=colour,
                                    edgecolor="0.3"))
        ax.text(x + width / 2, 0.9, box.title, ha="center", va="center", fontsize=9, fontweight="bold")
        ax.text(x + width / 2, 0.15, "\n".join(box.lines), ha="center", va="center", fontsize=7.5, linespacing=1.5)
        ax.text(x + width / 2, -1.1, box.output, ha="center", va="center", fontsize=7.5, color="0.25")
        if index:
            ax.annotate("", xy=(x - 0.03, 0.15), xytext=(x - 0.37, 0.15),
                        arrowprops={"arrowstyle": "->", "color": "0.3"})
    ax.set_title(f"{title}: output shape (channels×height×width) under each box", fontsize=9)
    return figure


def training_curves(results: Results) -> Figure:
    """Loss, accuracy and macro-F1 per epoch (train and validation); the best epoch, and the transfer
    phase switch when there is one."""
    curves = results.curves
    figure, axes = _figure(11, 3.4, columns=3)
    for ax, (name, label) in zip(axes, CURVES):
        for split, colour in (("train", "C0"), ("val", "C1")):
            column = f"{split}/{name}"
            if column in curves:
                ax.plot(curves["step"], curves[column], marker="o", color=colour, label=split)
        ax.axvline(results.train["best_epoch"], color="0.4", linestyle=":", label="best epoch")
        for phase, start in results.train.get("phase_starts", {}).items():
            if start > 1:
                ax.axvline(start - 0.5, color="C3", linestyle="--", label=f"{phase} starts")
        _integer_axis(ax, curves["step"])
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.legend(fontsize=8)
    return figure


def confusion(results: Results) -> Figure:
    """The test confusion matrix: counts, and normalised by row (each true class sums to 1, its recall on the
    diagonal)."""
    classes = results.classes
    figure, axes = _figure(11, 4.4, columns=2)
    for ax, key, fmt, title in ((axes[0], "confusion_matrix", "d", "counts"),
                                (axes[1], "confusion_matrix_normalized", ".2f", "row-normalised")):
        frame = pd.DataFrame(results.test[key], index=classes, columns=classes)
        sns.heatmap(frame, annot=True, fmt=fmt, cmap="Blues", cbar=False, square=True, ax=ax)
        ax.set_xlabel("predicted class")
        ax.set_ylabel("true class")
        ax.set_title(f"test confusion matrix ({title})")
    return figure


def roc(results: Results) -> Figure:
    """One-vs-rest ROC curve of every class present in the test split, its AUC in the legend."""
    figure, (ax,) = _figure(5.5, 5)
    for name, curve in results.roc.items():
        ax.plot(curve["fpr"], curve["tpr"], label=f"{name} (AUC {auc(curve['fpr'], curve['tpr']):.3f})")
    ax.plot([0, 1], [0, 1], color="0.6", linestyle="--", label="chance")
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("one-vs-rest ROC, test split")
    ax.legend(fontsize=8, loc="lower right")
    return figure


def reliability(results: Results) -> Figure:
    """Accuracy against mean confidence per confidence bin (bar width: the bin), the diagonal being perfect
    calibration; the ECE is the count-weighted mean gap."""
    bins = results.reliability
    figure, (ax,) = _figure(5.5, 5)
    ax.bar(bins["lower"], bins["accuracy"], width=bins["upper"] - bins["lower"], align="edge", alpha=0.7,
           edgecolor="0.3", label="accuracy in bin")
    ax.plot(bins["confidence"], bins["accuracy"], "o", color="C1", label="bin mean confidence")
    ax.plot([0, 1], [0, 1], color="0.5", linestyle="--", label="perfect calibration")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(f"reliability, test split (ECE {results.test['ece']:.3f})")
    ax.legend(fontsize=8, loc="upper left")
    return figure


def per_class(results: Results) -> Figure:
    """Precision, recall and F1 of each class on the test split."""
    rows = [{"class": name, "metric": metric, "score": scores[metric]}
            for name, scores in results.test["per_class"].items() for metric in ("precision", "recall", "f1")]
    figure, (ax,) = _figure(8, 3.8)
    sns.barplot(pd.DataFrame(rows), x="class", y="score", hue="metric", ax=ax)
    ax.set_ylim(0, 1)
    ax.set_xlabel("class")
    ax.set_ylabel("score on the test split")
    return figure


def sweep_history(results: Results) -> Figure:
    """Each finished trial's validation macro-F1 (pruned trials at their last report) and the best so far."""
    history = results.history
    figure, (ax,) = _figure(7, 3.8)
    sns.scatterplot(history, x="number", y="value", hue="state", style="state", s=60, ax=ax)
    ax.step(history["number"], history["best_value"], where="post", color="0.3", label="best so far")
    _integer_axis(ax, history["number"])
    ax.set_xlabel("trial")
    ax.set_ylabel("validation macro F1 (subset)")
    ax.legend(fontsize=8)
    return figure


def importances(results: Results) -> Figure | None:
    """The fANOVA importance of each searched parameter; None when the sweep has none."""
    found = results.importances["importances"]
    if not found:
        return None
    frame = pd.DataFrame({"parameter": list(found), "importance": list(found.values())})
    figure, (ax,) = _figure(7, 0.35 * len(frame) + 1.2)
    sns.barplot(frame, y="parameter", x="importance", color="C0", ax=ax)
    ax.set_xlabel("importance (fraction of the variance of macro F1)")
    ax.set_ylabel("")
    return figure


def data_overview(results: Results) -> Figure:
    """Images per class in each split, and the validation outcomes (files per status and reason)."""
    figure, axes = _figure(11, 3.8, columns=2)
    sns.barplot(split_counts(results), x="class", y="images", hue="split", ax=axes[0])
    axes[0].set_ylabel("images")
    axes[0].set_title("images per class and split")
    validate = results.validate
    outcomes = pd.DataFrame([{"outcome": "ok", "files": validate["per_status"]["ok"]}]
                            + [{"outcome": f"fixed: {fix}", "files": n} for fix, n in validate["fixes"].items()]
                            + [{"outcome": f"quarantined: {reason}", "files": n}
                               for reason, n in validate["per_reason"].items() if n])
    sns.barplot(outcomes, y="outcome", x="files", color="C2", ax=axes[1])
    axes[1].set_xscale("log")
    axes[1].set_xlabel("files (log scale)")
    axes[1].set_ylabel("")
    axes[1].set_title("validation outcomes")
    return figure


def seed_points(runs: pd.DataFrame, metric: str, label: str) -> Figure:
    """Per factor, each level's mean ± sd over seeds (bars: sd) with every seed's value as a point."""
    factors = list(dict.fromkeys(runs["factor"]))
    figure, axes = _figure(4.2 * len(factors), 3.8, columns=len(factors))
    for ax, factor in zip(axes, factors):
        rows = runs[runs["factor"] == factor]
        sns.pointplot(rows, x="level", y=metric, errorbar="sd", linestyle="none", capsize=0.2, color="0.2",
                      marker="D", ax=ax)
        sns.stripplot(rows, x="level", y=metric, hue="seed", dodge=False, jitter=0.1, size=6, alpha=0.8,
                      palette="deep", ax=ax)
        ax.set_title(factor)
        ax.set_xlabel("level")
        ax.set_ylabel(label)
        ax.legend(title="seed", fontsize=8)
    return figure


def metric_vs_cost(summary: pd.DataFrame) -> Figure:
    """Mean test macro-F1 (± sd over seeds) against MACs per image, one point per trained variant."""
    trained = summary[summary["n_seeds"].fillna(0).astype(int) > 0]
    figure, (ax,) = _figure(6.5, 4.5)
    for index, (_, row) in enumerate(trained.iterrows()):
        ax.errorbar(row["macs"] / 1e6, row["macro_f1_mean"], yerr=np.nan_to_num(row["macro_f1_std"]), fmt="o",
                    capsize=3, color=f"C{index % 10}", label=f"{row['factor']}={row['level']}")
    ax.set_xlabel("MMACs per image (trained size)")
    ax.set_ylabel("test macro F1 (mean ± sd over seeds)")
    ax.legend(fontsize=8)
    return figure
