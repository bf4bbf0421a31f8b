"""How the reports print: Markdown tables (nbconvert renders them in the HTML and keeps them in the .md)
and the one precision every metric is printed at, so a reader (and the test) can match a cell to its file."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

METRIC_DIGITS = 3


def metric(value: Any) -> str:
    """A score in [0, 1] (or a loss) as printed in every table: 3 decimals; '—' when there is none."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{float(value):.{METRIC_DIGITS}f}"


def value(item: Any) -> str:
    """A configuration value as printed: floats to 4 significant digits, booleans in YAML's words."""
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, float):
        return f"{item:.4g}"
    return "—" if item is None else str(item)


def _cell(item: Any) -> str:
    """A cell's text with the characters Markdown would read as table or emphasis syntax escaped."""
    return str(item).replace("|", "\\|").replace("*", "\\*")


def markdown_table(frame: pd.DataFrame, align_right: tuple[str, ...] = ()) -> str:
    """A DataFrame of printed strings as a Markdown table (columns in `align_right` right-aligned)."""
    header = "| " + " | ".join(map(str, frame.columns)) + " |"
    rule = "|" + "".join("---:|" if column in align_right else "---|" for column in frame.columns)
    rows = ["| " + " | ".join(_cell(cell) for cell in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows])
