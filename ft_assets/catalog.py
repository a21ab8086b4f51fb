"""How tuneline's assets present themselves in the Dagster UI: owners, the `pii` tag, column schemas and
metadata tables. One place, so a new asset gets the same conventions without anyone remembering them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import dagster as dg
import polars as pl

from tuneline.parts import PartedFrame

OWNERS = ["team:ml-platform"]
# assets holding ticket text from before PII redaction: the UI filter `tag:pii=raw` lists what must be protected;
# every other asset is tagged `pii: redacted` (it holds nothing from before redaction)
PII_RAW = {"pii": "raw"}
PII_REDACTED = {"pii": "redacted"}


def with_catalog_conventions(assets: Sequence) -> list:
    """Every asset spec owned by OWNERS (on top of its own) and tagged `pii` (redacted unless it says raw)."""
    return list(dg.map_asset_specs(lambda spec: spec.replace_attributes(
        owners=list(dict.fromkeys([*spec.owners, *OWNERS])), tags={**PII_REDACTED, **spec.tags}), assets))


def column_schema(frame: pl.DataFrame) -> dg.TableSchema:
    return dg.TableSchema(columns=[dg.TableColumn(name, str(dtype)) for name, dtype in frame.schema.items()])


def frame_metadata(frame: pl.DataFrame) -> dict:
    """What every frame asset reports: its row count and its columns (`dagster/column_schema`)."""
    return {"dagster/row_count": frame.height, "dagster/column_schema": column_schema(frame)}


def parts_metadata(parted: PartedFrame) -> dict:
    """`frame_metadata` of a parted value, from its parts' row counts and schema (no rows read)."""
    made = next((p for p in parted.parts if p.is_new), None)
    sample = parted.frame_of(made).head(0) if made is not None else pl.DataFrame(schema=parted.schema or {})
    return {"dagster/row_count": parted.height, "dagster/column_schema": column_schema(sample.clear())}


def _table_type(values: Iterable[object]) -> str:
    """The column's type; a column with a missing value is text, so the cell can say "—" instead of blank."""
    values = list(values)
    present = [v for v in values if v is not None]
    if len(present) < len(values):
        return "string"
    if present and all(isinstance(v, bool) for v in present):
        return "bool"
    if present and all(isinstance(v, int) and not isinstance(v, bool) for v in present):
        return "int"
    if present and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in present):
        return "float"
    return "string"


def _cell(value: object, kind: str) -> object:
    if value is None:
        return "—" if kind == "string" else None
    if kind == "string" and isinstance(value, float):
        return f"{value:.4g}"
    if kind == "string" and not isinstance(value, str):
        return str(value)
    if kind == "float":
        return round(float(value), 4)
    return value


def table(rows: Sequence[Mapping[str, object]], columns: Sequence[str] | None = None) -> dg.TableMetadataValue:
    """Rows of plain values as a typed table the UI renders inline (no markdown, no JSON)."""
    names = list(columns or (rows[0].keys() if rows else ["(none)"]))
    kinds = {name: _table_type(row.get(name) for row in rows) for name in names}
    records = [dg.TableRecord({name: _cell(row.get(name), kinds[name]) for name in names}) for row in rows]
    schema = dg.TableSchema(columns=[dg.TableColumn(name, kinds[name]) for name in names])
    return dg.MetadataValue.table(records=records, schema=schema)


def counts_table(counts: Mapping[str, int], key: str, value: str = "rows") -> dg.TableMetadataValue:
    return table([{key: str(k), value: int(v)} for k, v in counts.items()], [key, value])


def frame_table(frame: pl.DataFrame, limit: int = 20) -> dg.TableMetadataValue:
    """A frame's first rows as a table; nested values as their text."""
    head = frame.head(limit)
    rows = [{k: (v if isinstance(v, (str, int, float, bool)) or v is None else str(v)) for k, v in row.items()}
            for row in head.iter_rows(named=True)]
    return table(rows, head.columns)


def without_empty(metadata: Mapping[str, object]) -> dict:
    """Drop values that would show as blank cells ("" and None): absent says the same, more clearly."""
    return {k: v for k, v in metadata.items() if v is not None and v != ""}


def problems_table(problems: Sequence[str]) -> dg.TableMetadataValue:
    """A check's findings, one row each (an empty table when it passed)."""
    return table([{"problem": p} for p in problems], ["problem"])
