"""Small renderers for what people read: markdown tables in the Dagster UI and the terminal."""

from __future__ import annotations

import polars as pl


def markdown_table(headers: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def frame_to_markdown(frame: pl.DataFrame) -> str:
    if frame.height == 0:
        return "(empty)"
    return markdown_table(frame.columns, [list(r) for r in frame.iter_rows()])


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
