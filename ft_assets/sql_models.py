"""One asset per `dbt_like_sql/*.sql` file, run by DuckDB over the upstream assets' parts.

Upstream assets are found by parsing the SQL with sqlglot: every table name that is not
a CTE must be an asset of the graph. They are loaded through the IO manager, so the same
model runs over a local storage root or an S3 one.
"""


import hashlib
import tempfile
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import sqlglot
from sqlglot import exp

from ft_assets.catalog import PII_RAW, frame_metadata, frame_table
from ft_assets.partitions import product_partitions
from ft_resources.storage import TunelineStorage
from tuneline.parts import PartedFrame

SQL_DIR = Path(__file__).resolve().parent.parent / "dbt_like_sql"
# what arrives before cleaning may hold PII: models over it show no row preview in the UI
PRE_CLEANING_ASSETS = {"raw_tickets", "rejected_tickets"}


def upstream_tables(sql: str) -> list[str]:
    tree = sqlglot.parse_one(sql, read="duckdb")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return sorted({t.name for t in tree.find_all(exp.Table)} - ctes)


def _sql_string(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def run_sql_model(sql: str, sources: dict[str, Path | pl.DataFrame | PartedFrame],
                  scratch: Path | None = None) -> pl.DataFrame:
    """Run `sql` with each upstream name bound to a frame, a parquet file or the parts of a parted asset;
    returns a polars frame. Parts are scanned by DuckDB from their parquet files (only the columns and row
    groups the query needs, streamed), so a model over a product's whole history never holds it in memory;
    a store that is not on this machine has each part written under `scratch` first, one at a time."""
    if scratch is not None:  # a worker that made no part of this product has no work directory yet
        Path(scratch).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".sql-", dir=scratch) as tmp, duckdb.connect() as con:
        for index, (name, source) in enumerate(sources.items()):
            if isinstance(source, pl.DataFrame):
                con.register(name, source.to_arrow())
                continue
            if isinstance(source, PartedFrame):
                folder = Path(tmp) / f"{index:03d}"
                folder.mkdir()
                files = source.parquet_files(folder)
                if not files:  # no parts yet: the columns the asset would have, no rows
                    con.register(name, pl.DataFrame(schema=source.schema or {}).to_arrow())
                    continue
            else:
                files = [Path(source)]
            listed = ", ".join(_sql_string(f) for f in files)
            con.execute(f'create view "{name}" as select * from read_parquet([{listed}], union_by_name = true)')
        return con.sql(sql).pl()


def build_sql_asset(path: Path) -> dg.AssetsDefinition:
    sql = path.read_text()
    name = path.stem
    upstream = upstream_tables(sql)
    reads_raw_text = bool(PRE_CLEANING_ASSETS & set(upstream))

    @dg.asset(
        name=name, ins={t: dg.AssetIn(t, dagster_type=PartedFrame) for t in upstream},
        partitions_def=product_partitions, group_name="sql_models",
        kinds={"duckdb", "sql"}, code_version=hashlib.sha256(sql.encode()).hexdigest()[:12],
        automation_condition=dg.AutomationCondition.eager(),
        description=f"DuckDB model `{path.name}` over {', '.join(upstream)}.",
        metadata={"sql": dg.MetadataValue.md(f"```sql\n{sql}\n```"), "upstream": upstream},
        tags=PII_RAW if reads_raw_text else None,
    )
    def _sql_asset(context: dg.AssetExecutionContext, storage: TunelineStorage, **upstream_parts: PartedFrame):
        result = run_sql_model(sql, upstream_parts, storage.work_dir(context.partition_key))
        preview = dg.MetadataValue.text("(withheld: this model reads tickets from before PII redaction)") \
            if reads_raw_text else frame_table(result)
        return dg.Output(result, metadata={**frame_metadata(result), "preview": preview})

    return _sql_asset


def load_sql_assets(sql_dir: Path = SQL_DIR) -> list[dg.AssetsDefinition]:
    return [build_sql_asset(p) for p in sorted(sql_dir.glob("*.sql"))]
