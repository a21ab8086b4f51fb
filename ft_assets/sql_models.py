"""One asset per `dbt_like_sql/*.sql` file, run by DuckDB over the upstream assets' parquet.

Upstream assets are found by parsing the SQL with sqlglot: every table name that is not
a CTE must be an asset of the graph.
"""


import hashlib
from pathlib import Path

import dagster as dg
import duckdb
import sqlglot
from sqlglot import exp

from ft_assets.partitions import product_partitions
from ft_resources.io_manager import asset_partition_path
from ft_resources.storage import TunelineStorage
from tuneline.reporting import frame_to_markdown

SQL_DIR = Path(__file__).resolve().parent.parent / "dbt_like_sql"


def upstream_tables(sql: str) -> list[str]:
    tree = sqlglot.parse_one(sql, read="duckdb")
    ctes = {cte.alias_or_name for cte in tree.find_all(exp.CTE)}
    return sorted({t.name for t in tree.find_all(exp.Table)} - ctes)


def run_sql_model(sql: str, sources: dict[str, Path]):
    """Run `sql` with each upstream name bound to a view over its parquet file; returns a polars frame."""
    with duckdb.connect() as con:
        for name, path in sources.items():
            literal = str(path).replace("'", "''")
            con.execute(f'create view "{name}" as select * from read_parquet(\'{literal}\')')
        return con.sql(sql).pl()


def build_sql_asset(path: Path) -> dg.AssetsDefinition:
    sql = path.read_text()
    name = path.stem
    upstream = upstream_tables(sql)

    @dg.asset(
        name=name, deps=upstream, partitions_def=product_partitions, group_name="sql_models",
        kinds={"duckdb", "sql"}, code_version=hashlib.sha256(sql.encode()).hexdigest()[:12],
        automation_condition=dg.AutomationCondition.eager(),
        description=f"DuckDB model `{path.name}` over {', '.join(upstream)}.",
        metadata={"sql": dg.MetadataValue.md(f"```sql\n{sql}\n```"), "upstream": upstream},
    )
    def _sql_asset(context: dg.AssetExecutionContext, storage: TunelineStorage):
        sources = {t: asset_partition_path(storage.root, t, context.partition_key, "parquet") for t in upstream}
        result = run_sql_model(sql, sources)
        preview = frame_to_markdown(result.head(20))
        return dg.Output(result, metadata={"dagster/row_count": result.height,
                                           "preview": dg.MetadataValue.md(preview)})

    return _sql_asset


def load_sql_assets(sql_dir: Path = SQL_DIR) -> list[dg.AssetsDefinition]:
    return [build_sql_asset(p) for p in sorted(sql_dir.glob("*.sql"))]
