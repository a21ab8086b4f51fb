"""Persist asset values per partition under the storage root, atomically.

Polars frames become parquet, dicts become JSON: `<root>/assets/<asset>/<partition>.<ext>`, on local
disk (rename into place) or in S3 (one PUT, which S3 makes visible whole or not at all).
Downstream assets and DuckDB SQL models read them back through the IO manager.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import dagster as dg
import polars as pl
from botocore.exceptions import BotoCoreError, ClientError
from dagster_aws.s3 import S3Resource

from ft_resources.storage import is_missing_key
from tuneline.names import product_key
from tuneline.paths import under
from tuneline.storage import atomic_write


def partition_file_name(partition: str | None, ext: str) -> str:
    """`<product>.<ext>`; a partition key that is no valid product key never becomes a file or S3 key."""
    return f"{product_key(partition) if partition is not None else '__all__'}.{ext}"


def asset_partition_path(root: str | Path, asset_name: str, partition: str | None, ext: str) -> Path:
    return under(root, "assets", asset_name, partition_file_name(partition, ext))


def _partition(context) -> str | None:
    return context.asset_partition_key if context.has_asset_partitions else None


def _serialize(context: dg.OutputContext, obj) -> tuple[str, bytes]:
    if isinstance(obj, pl.DataFrame):
        buffer = io.BytesIO()
        obj.write_parquet(buffer)
        return "parquet", buffer.getvalue()
    if isinstance(obj, dict):
        return "json", (json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n").encode()
    raise TypeError(f"{context.asset_key.to_user_string()} returned {type(obj).__name__}; "
                    "expected a polars DataFrame or a dict")


EVERY_PARTITION = "tuneline/every_partition"  # AssetIn metadata: this input is {partition: value} over all


def _reads_every_partition(context: dg.InputContext) -> bool:
    """An input declared with EVERY_PARTITION (the shared adapter over every product) gets {partition: value};
    declared, not inferred, so it holds inside a partitioned run and with a single product too."""
    return context.has_asset_partitions and bool((context.definition_metadata or {}).get(EVERY_PARTITION))


def _load_input(context: dg.InputContext, load, where: str):
    """One partition's value, or {partition: value} for an input declared with EVERY_PARTITION (partitions not
    materialized yet are left out); `load(asset_key, partition)` returns None for a missing one."""
    if _reads_every_partition(context):
        found = {p: load(context.asset_key, p) for p in sorted(context.asset_partition_keys)}
        return {p: v for p, v in found.items() if v is not None}
    value = load(context.asset_key, _partition(context))
    if value is None:
        raise _missing(context, where)
    return value


def _missing(context: dg.InputContext, where: str) -> FileNotFoundError:
    return FileNotFoundError(f"{context.asset_key.to_user_string()} has no materialization for partition "
                             f"{_partition(context)!r} under {where}; materialize it first")


class PartitionedFileIOManager(dg.ConfigurableIOManager):
    """Parquet for DataFrames, JSON for dicts; one file per asset partition, rewritten, never appended."""

    root: str

    def _path(self, asset_key: dg.AssetKey, partition: str | None, ext: str) -> Path:
        return asset_partition_path(self.root, asset_key.to_python_identifier(), partition, ext)

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        ext, body = _serialize(context, obj)
        path = atomic_write(self._path(context.asset_key, _partition(context), ext), lambda tmp: tmp.write_bytes(body))
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def _load(self, asset_key: dg.AssetKey, partition: str | None):
        parquet = self._path(asset_key, partition, "parquet")
        if parquet.exists():
            return pl.read_parquet(parquet, glob=False)
        path = self._path(asset_key, partition, "json")
        return json.loads(path.read_text()) if path.exists() else None

    def load_input(self, context: dg.InputContext):
        return _load_input(context, self._load, self.root)


class S3PartitionedIOManager(dg.ConfigurableIOManager):
    """The same layout in `s3://bucket/prefix/assets/<asset>/<partition>.<ext>`.

    Throttling and 5xx answers are retried by botocore (`s3.max_attempts`); anything else fails the step
    with the bucket, key and S3's error code in the message."""

    bucket: str
    prefix: str = ""
    s3: S3Resource

    def _key(self, asset_key: dg.AssetKey, partition: str | None, ext: str) -> str:
        relative = f"assets/{asset_key.to_python_identifier()}/{partition_file_name(partition, ext)}"
        return f"{self.prefix.strip('/')}/{relative}" if self.prefix.strip("/") else relative

    def _fail(self, action: str, key: str, err: Exception) -> dg.Failure:
        code = err.response.get("Error", {}).get("Code", "") if isinstance(err, ClientError) else ""
        return dg.Failure(f"S3 {action} s3://{self.bucket}/{key} failed after retries: {code or type(err).__name__}"
                          f" ({err})", allow_retries=not isinstance(err, ClientError))

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        ext, body = _serialize(context, obj)
        key = self._key(context.asset_key, _partition(context), ext)
        # delete the other format's object so a dict-then-frame asset never reads a stale twin
        stale = self._key(context.asset_key, _partition(context), "json" if ext == "parquet" else "parquet")
        try:
            client = self.s3.get_client()
            client.put_object(Bucket=self.bucket, Key=key, Body=body)
            client.delete_object(Bucket=self.bucket, Key=stale)
        except (ClientError, BotoCoreError) as err:
            raise self._fail("write to", key, err) from err
        context.add_output_metadata({"uri": f"s3://{self.bucket}/{key}", "bytes": len(body)})

    def _load(self, asset_key: dg.AssetKey, partition: str | None):
        client = self.s3.get_client()
        for ext in ("parquet", "json"):
            key = self._key(asset_key, partition, ext)
            try:
                body = client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as err:
                if is_missing_key(err):
                    continue
                raise self._fail("read of", key, err) from err
            except BotoCoreError as err:
                raise self._fail("read of", key, err) from err
            return pl.read_parquet(io.BytesIO(body)) if ext == "parquet" else json.loads(body)
        return None

    def load_input(self, context: dg.InputContext):
        return _load_input(context, self._load, f"s3://{self.bucket}/{self.prefix}")
