"""Persist asset values per partition under the storage root, atomically.

Polars frames become parquet, dicts become JSON: `<root>/assets/<asset>/<partition>.<ext>`, on local
disk (rename into place) or in S3 (one PUT, which S3 makes visible whole or not at all). A `PartedFrame`
becomes its new parts, `<asset>/<partition>.parts/<key>.parquet`, and then its manifest
`<asset>/<partition>.parts.json`, written last: a reader sees the old list of parts or the new one. Parts
listed by neither the new manifest nor the one it replaced are deleted once an hour old (a younger one may
belong to a concurrent run of the same partition that has not written its manifest yet).
Downstream assets and DuckDB SQL models read them back through the IO manager: an input annotated
`PartedFrame` gets the parts (read on demand), any other the whole frame.
"""

from __future__ import annotations

import io
import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import polars as pl
from botocore.exceptions import BotoCoreError, ClientError
from dagster_aws.s3 import S3Resource

from ft_resources.storage import is_missing_key
from tuneline.names import product_key
from tuneline.parts import PartedFrame, PartReader, parquet_part_reader
from tuneline.paths import under
from tuneline.storage import ORPHAN_AGE_SECONDS, atomic_write, content_version


def partition_file_name(partition: str | None, ext: str) -> str:
    """`<product>.<ext>`; a partition key that is no valid product key never becomes a file or S3 key."""
    return f"{product_key(partition) if partition is not None else '__all__'}.{ext}"


def asset_partition_path(root: str | Path, asset_name: str, partition: str | None, ext: str) -> Path:
    return under(root, "assets", asset_name, partition_file_name(partition, ext))


def parts_relative(asset_name: str, partition: str | None, key: str | None = None) -> str:
    """`assets/<asset>/<partition>.parts.json` (the manifest), or one part's `<partition>.parts/<key>.parquet`."""
    if key is None:
        return f"assets/{asset_name}/{partition_file_name(partition, 'parts.json')}"
    return f"assets/{asset_name}/{partition_file_name(partition, 'parts')}/{key}.parquet"


def read_asset_frame(root: str | Path, asset_name: str, partition: str | None) -> pl.DataFrame | None:
    """A frame asset's stored value on a local root, whole (parted or not); None when it has none."""
    loaded = PartitionedFileIOManager(root=str(root))._load(dg.AssetKey(asset_name), partition, parted=False)
    return loaded if isinstance(loaded, pl.DataFrame) else None


def remove_asset_value(root: str | Path, asset_name: str, partition: str | None) -> None:
    """Delete a frame asset's stored value on a local root (its file, or its parts and manifest): the next
    run rebuilds it from scratch."""
    asset_partition_path(root, asset_name, partition, "parquet").unlink(missing_ok=True)
    manifest = under(root, *parts_relative(asset_name, partition).split("/"))
    folder = under(root, *parts_relative(asset_name, partition, "0" * 16).split("/")).parent
    manifest.unlink(missing_ok=True)
    if folder.is_dir():
        for file in folder.iterdir():
            file.unlink()
        folder.rmdir()


def drop_asset_rows(root: str | Path, asset_name: str, partition: str | None,
                    matches: Callable[[pl.DataFrame], pl.Series]) -> tuple[int, pl.DataFrame | None]:
    """Remove the rows `matches` marks from a frame asset's stored value on a local root, in place (each
    part rewritten atomically, then the manifest's row counts): `tuneline forget`'s one deliberate edit of
    stored values. Returns how many rows went and, for a value stored whole, the rows kept."""
    path = asset_partition_path(root, asset_name, partition, "parquet")
    manifest = under(root, *parts_relative(asset_name, partition).split("/"))
    if manifest.exists():
        listed = json.loads(manifest.read_text())
        removed = 0
        for entry in listed["parts"]:
            part = under(root, *parts_relative(asset_name, partition, entry["key"]).split("/"))
            frame = pl.read_parquet(part, glob=False)
            mask = matches(frame)
            if mask.any():
                kept = frame.filter(~mask)
                atomic_write(part, lambda tmp, kept=kept: kept.write_parquet(tmp))
                removed += frame.height - kept.height
                entry["rows"] = kept.height
        if removed:
            atomic_write(manifest, lambda tmp: tmp.write_text(json.dumps(listed) + "\n"))
        listed_keys = {entry["key"] for entry in listed["parts"]}
        folder = under(root, *parts_relative(asset_name, partition, "0" * 16).split("/")).parent
        for file in folder.iterdir() if folder.is_dir() else ():  # the replaced generation holds the rows too
            if file.name.removesuffix(".parquet") not in listed_keys:
                file.unlink(missing_ok=True)
        return removed, None
    if not path.exists():
        return 0, None
    frame = pl.read_parquet(path, glob=False)
    mask = matches(frame)
    if not mask.any():
        return 0, frame
    kept = frame.filter(~mask)
    atomic_write(path, lambda tmp: kept.write_parquet(tmp))
    return frame.height - kept.height, kept


def _wants_parts(context: dg.InputContext) -> bool:
    """The input is annotated `PartedFrame` (or, for every partition, `dict[str, PartedFrame]`)."""
    import typing

    annotation = getattr(context.dagster_type, "typing_type", None)
    return annotation is PartedFrame or PartedFrame in typing.get_args(annotation)


def _as_requested(value, parted: bool):
    """A stored value as the reader asked for it: parts stay parts for a `PartedFrame` input, become one frame
    for any other; a single stored frame becomes one part for a `PartedFrame` input."""
    if isinstance(value, PartedFrame) and not parted:
        return value.collect()
    if isinstance(value, pl.DataFrame) and parted:
        return PartedFrame.whole(value, f"whole-{content_version(value)}")
    return value


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
    materialized yet are left out); `load(asset_key, partition, parted)` returns None for a missing one."""
    parted = _wants_parts(context)
    if _reads_every_partition(context):
        found = {p: load(context.asset_key, p, parted) for p in sorted(context.asset_partition_keys)}
        return {p: v for p, v in found.items() if v is not None}
    value = load(context.asset_key, _partition(context), parted)
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

    def _file(self, relative: str) -> Path:
        return under(self.root, *relative.split("/"))

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        partition = _partition(context)
        manifest = self._file(parts_relative(context.asset_key.to_python_identifier(), partition))
        if isinstance(obj, PartedFrame):
            self._write_parts(context.asset_key, partition, obj)
            self._path(context.asset_key, partition, "parquet").unlink(missing_ok=True)
            context.add_output_metadata({"path": dg.MetadataValue.path(str(manifest)), "parts": len(obj)})
            return
        ext, body = _serialize(context, obj)
        path = atomic_write(self._path(context.asset_key, partition, ext), lambda tmp: tmp.write_bytes(body))
        manifest.unlink(missing_ok=True)  # a frame replaces parts: never two values for one partition
        context.add_output_metadata({"path": dg.MetadataValue.path(str(path))})

    def _write_parts(self, asset_key: dg.AssetKey, partition: str | None, value: PartedFrame) -> None:
        name = asset_key.to_python_identifier()
        manifest = self._file(parts_relative(name, partition))
        before = set(self._manifest_keys(manifest))
        for part in value.parts:
            if part.frame is not None:
                atomic_write(self._file(parts_relative(name, partition, part.key)),
                             lambda tmp, frame=part.frame: frame.write_parquet(tmp))
            elif part.spilled is not None:  # moved, not copied: no copy of the rows stays outside the store
                final = self._file(parts_relative(name, partition, part.key))
                final.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(part.spilled, final)
        atomic_write(manifest, lambda tmp: tmp.write_text(json.dumps(value.manifest()) + "\n"))
        value.stored(self._part_reader(name, partition))
        keep = before | {p.key for p in value.parts}  # the replaced list's parts stay for readers still on it
        folder = self._file(parts_relative(name, partition, "x")).parent
        cutoff = time.time() - ORPHAN_AGE_SECONDS  # a younger one may be a concurrent run's, not yet listed
        for file in folder.iterdir() if folder.is_dir() else ():
            if file.name.endswith(".parquet") and file.name[:-len(".parquet")] not in keep \
                    and file.stat().st_mtime < cutoff:
                file.unlink(missing_ok=True)

    def _part_reader(self, name: str, partition: str | None) -> PartReader:
        return parquet_part_reader(lambda key: self._file(parts_relative(name, partition, key)))

    @staticmethod
    def _manifest_keys(manifest: Path) -> list[str]:
        try:
            return [p["key"] for p in json.loads(manifest.read_text())["parts"]]
        except (OSError, ValueError, KeyError, TypeError):
            return []

    def _load(self, asset_key: dg.AssetKey, partition: str | None, parted: bool = False):
        name = asset_key.to_python_identifier()
        manifest = self._file(parts_relative(name, partition))
        if manifest.exists():
            value = PartedFrame.from_manifest(json.loads(manifest.read_text()), self._part_reader(name, partition))
            return _as_requested(value, parted)
        parquet = self._path(asset_key, partition, "parquet")
        if parquet.exists():
            return _as_requested(pl.read_parquet(parquet, glob=False), parted)
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

    def _object(self, relative: str) -> str:
        return f"{self.prefix.strip('/')}/{relative}" if self.prefix.strip("/") else relative

    def _get(self, client, key: str) -> bytes | None:
        try:
            return client.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        except ClientError as err:
            if is_missing_key(err):
                return None
            raise self._fail("read of", key, err) from err
        except BotoCoreError as err:
            raise self._fail("read of", key, err) from err

    def handle_output(self, context: dg.OutputContext, obj) -> None:
        partition = _partition(context)
        manifest = self._object(parts_relative(context.asset_key.to_python_identifier(), partition))
        if isinstance(obj, PartedFrame):
            self._write_parts(context.asset_key, partition, obj)
            context.add_output_metadata({"uri": f"s3://{self.bucket}/{manifest}", "parts": len(obj)})
            return
        ext, body = _serialize(context, obj)
        key = self._key(context.asset_key, partition, ext)
        # delete the other format's object (and a parted value's manifest) so no stale twin is ever read
        stale = [self._key(context.asset_key, partition, "json" if ext == "parquet" else "parquet"), manifest]
        try:
            client = self.s3.get_client()
            client.put_object(Bucket=self.bucket, Key=key, Body=body)
            for twin in stale:
                client.delete_object(Bucket=self.bucket, Key=twin)
        except (ClientError, BotoCoreError) as err:
            raise self._fail("write to", key, err) from err
        context.add_output_metadata({"uri": f"s3://{self.bucket}/{key}", "bytes": len(body)})

    def _write_parts(self, asset_key: dg.AssetKey, partition: str | None, value: PartedFrame) -> None:
        """New parts, then the manifest (one PUT: the commit), then parts neither manifest lists."""
        name = asset_key.to_python_identifier()
        manifest = self._object(parts_relative(name, partition))
        client = self.s3.get_client()
        key = manifest
        try:
            old = self._get(client, manifest)
            before = {p["key"] for p in json.loads(old)["parts"]} if old else set()
            for part in value.parts:
                key = self._object(parts_relative(name, partition, part.key))
                if part.frame is not None:
                    buffer = io.BytesIO()
                    part.frame.write_parquet(buffer)
                    client.put_object(Bucket=self.bucket, Key=key, Body=buffer.getvalue())
                elif part.spilled is not None:
                    client.upload_file(str(part.spilled), self.bucket, key)
                    part.spilled.unlink()  # no copy of the rows stays outside the store
            key = manifest
            client.put_object(Bucket=self.bucket, Key=manifest, Body=json.dumps(value.manifest()).encode())
            value.stored(self._part_reader(client, name, partition))
            client.delete_object(Bucket=self.bucket, Key=self._key(asset_key, partition, "parquet"))
            keep = before | {p.key for p in value.parts}
            folder = self._object(parts_relative(name, partition, "x"))[:-len("x.parquet")]
            cutoff = time.time() - ORPHAN_AGE_SECONDS  # a younger one may be a concurrent run's, not yet listed
            for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=folder):
                for item in page.get("Contents", []):
                    stem = item["Key"][len(folder):].removesuffix(".parquet")
                    if stem not in keep and item["LastModified"].timestamp() < cutoff:
                        client.delete_object(Bucket=self.bucket, Key=item["Key"])
        except (ClientError, BotoCoreError) as err:
            raise self._fail("write to", key, err) from err

    def _part_reader(self, client, name: str, partition: str | None):
        def read(key: str, columns: list[str] | None) -> pl.DataFrame:
            object_key = self._object(parts_relative(name, partition, key))
            body = self._get(client, object_key)
            if body is None:
                raise FileNotFoundError(f"s3://{self.bucket}/{object_key} is listed but missing")
            return pl.read_parquet(io.BytesIO(body), columns=columns)

        return read

    def _load(self, asset_key: dg.AssetKey, partition: str | None, parted: bool = False):
        client = self.s3.get_client()
        name = asset_key.to_python_identifier()
        manifest = self._get(client, self._object(parts_relative(name, partition)))
        if manifest is not None:
            return _as_requested(PartedFrame.from_manifest(json.loads(manifest), self._part_reader(
                client, name, partition)), parted)
        for ext in ("parquet", "json"):
            body = self._get(client, self._key(asset_key, partition, ext))
            if body is not None:
                return _as_requested(pl.read_parquet(io.BytesIO(body)), parted) if ext == "parquet" \
                    else json.loads(body)
        return None

    def load_input(self, context: dg.InputContext):
        return _load_input(context, self._load, f"s3://{self.bucket}/{self.prefix}")
