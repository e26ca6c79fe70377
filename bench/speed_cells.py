"""Cells and tables of the speed section's Markdown (shared by its renderers)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["cell", "size_label", "table"]


def cell(value: Any, digits: int = 1, unit: str = "") -> str:
    """A number as the tables show it (a dash when there is none)."""
    if value is None:
        return "–"
    if isinstance(value, float):
        if math.isnan(value):
            return "–"
        if abs(value) >= 100:
            return f"{value:,.0f}{unit}"
        return f"{value:.{digits}f}{unit}"
    if isinstance(value, int):
        return f"{value:,}{unit}"
    return f"{value}{unit}"


def size_label(n: int) -> str:
    """A store size as a column heading: 100k, 1M."""
    return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1000}k"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table, numbers right-aligned after the first column."""
    lines = [
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
