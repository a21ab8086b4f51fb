"""Persist asset values per partition under the storage root, atomically.

Polars frames become parquet, dicts become JSON: `<root>/assets/<asset>/<partition>.<ext>`.
Downstream assets and DuckDB SQL models read the same files.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl

from tuneline.storage import atomic_write_json, atomic_write_parquet


def asset_partition_path(root: str | Path, asset_name: str, partition: str | None, ext: str) -> Path:
    return Path(root).resolve() / "assets" / asset_name / f"{partition or '__all__'}.{ext}"


class PartitionedFileIOManager(dg.ConfigurableIOManager):
    """Parquet for DataFrames, JSON for dicts; one file per asset partition, rewritten, never appended."""

    root: str

    def _path(self, asset_key: dg.AssetKey, partition: str | None, ext: str) -> Path:
        return asset_partition_path(self.root, asset_key.to_python_identifier(), partition, ext)

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        partition = context.asset_partition_key if context.has_asset_partitions else None
        if isinstance(obj, pl.DataFrame):
            path = atomic_write_parquet(self._path(context.asset_key, partition, "parquet"), obj)
        elif isinstance(obj, dict):
            path = atomic_write_json(self._path(context.asset_key, partition, "json"), obj)
        else:
            raise TypeError(f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; "
                            "expected a polars DataFrame or a dict")
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def load_input(self, context: dg.InputContext):
        partition = context.asset_partition_key if context.has_asset_partitions else None
        parquet = self._path(context.asset_key, partition, "parquet")
        if parquet.exists():
            return pl.read_parquet(parquet)
        path = self._path(context.asset_key, partition, "json")
        if path.exists():
            return json.loads(path.read_text())
        raise FileNotFoundError(f"{context.asset_key.to_user_string()} has no materialization for partition "
                                f"{partition!r} under {self.root}; materialize it first")
