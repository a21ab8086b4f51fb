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


def png_markdown(figure, alt: str) -> str:
    """A matplotlib figure as an inline markdown image (the Dagster UI renders data URIs)."""
    import base64
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return f"![{alt}](data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()})"


def png_file_markdown(path, alt: str) -> str:
    import base64
    from pathlib import Path

    return f"![{alt}](data:image/png;base64,{base64.b64encode(Path(path).read_bytes()).decode()})"


def funnel_chart(stages: dict[str, int]):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 2.6))
    names, values = list(stages)[::-1], list(stages.values())[::-1]
    top = max(values[-1], 1)
    axis.barh(names, values, color="#4f7cac")
    for y, value in enumerate(values):
        axis.text(value, y, f" {value} ({value / top:.0%})", va="center", fontsize=8)
    axis.set_xlim(0, top * 1.25)
    axis.set_title("curation funnel")
    plt.close(figure)
    return figure


FORMULA_LEADS = ("=", "+", "-", "@", "\t", "\r", "\n", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def spreadsheet_safe(value: object) -> object:
    """A cell a spreadsheet will show as text: a string starting like a formula gets a leading `'` (OWASP's
    advice for CSV injection; full-width lookalikes too, since spreadsheets fold them). Numbers stay numbers."""
    if isinstance(value, str) and value.startswith(FORMULA_LEADS):
        return "'" + value
    return value


def write_people_csv(path, rows: list[dict]) -> None:
    """The one writer of CSV files meant for people (opened in a spreadsheet): every cell and header made
    `spreadsheet_safe`, written atomically."""
    import csv
    from pathlib import Path

    from tuneline.storage import atomic_write

    fields = list(rows[0]) if rows else ["row"]

    def write(tmp: Path):
        with tmp.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow([spreadsheet_safe(f) for f in fields])
            writer.writerows([[spreadsheet_safe(row.get(f)) for f in fields] for row in rows])

    atomic_write(Path(path), write)
