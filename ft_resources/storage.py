"""Where everything lives: one storage root, one directory per kind of output.

The root is a local directory, optionally mirrored to an S3 prefix (`remote`): files written under the
root are published there, and a machine that lacks one (another worker, a wiped cache) fetches it back
with `localize`. Directories are published with a manifest object written last, so a reader never
takes a half-uploaded directory for a complete one.
"""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import polars as pl
from botocore.exceptions import ClientError
from dagster_aws.s3 import S3Resource

from tuneline.names import product_key
from tuneline.parts import PartedFrame, parquet_part_reader
from tuneline.paths import relative_under, under

DIRECTORY_MANIFEST = ".tuneline-manifest.json"


def is_missing_key(err: ClientError) -> bool:
    """S3 said the object is not there (GET answers NoSuchKey, HEAD a bare 404)."""
    return err.response.get("Error", {}).get("Code") in ("NoSuchKey", "404")


def split_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix")."""
    if not url.startswith("s3://"):
        raise ValueError(f"expected an s3://bucket/prefix URL, got {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise ValueError(f"no bucket in {url!r}")
    return bucket, prefix.strip("/")


def new_installation_secret() -> str:
    """256 random bits, hex: an installation's key when none is configured."""
    import secrets

    return secrets.token_hex(32)


class TunelineStorage(dg.ConfigurableResource):
    """The storage root (default ./.tuneline). Exports, adapters, reports and caches hang off it.

    `remote` (s3://bucket/prefix, empty = local only) mirrors the root to S3; `endpoint_url` points at an
    S3-compatible service. Credentials come from the usual AWS environment, never from config."""

    root: str
    remote: str = ""
    endpoint_url: str | None = None

    @property
    def root_path(self) -> Path:
        return Path(self.root).resolve()

    def product_dir(self, kind: str, product: str) -> Path:
        """`<root>/<kind>/<product>`: the product passes the product-key gate, the path stays under the root."""
        return under(self.root_path, kind, product_key(product))

    def exports_dir(self, product: str) -> Path:
        return self.product_dir("exports", product)

    def adapter_dir(self, product: str) -> Path:
        return self.product_dir("adapters", product)

    @property
    def shared_adapter_dir(self) -> Path:
        """`<root>/shared_adapter`: beside the per-product folders, so no product key can name it."""
        return under(self.root_path, "shared_adapter")

    def reports_dir(self, product: str) -> Path:
        return self.product_dir("reports", product)

    def work_dir(self, product: str) -> Path:
        return self.product_dir("work", product)

    def previous_asset_frame(self, asset: str, product: str) -> pl.DataFrame | None:
        """An asset's last written value for a product (the IO manager's file, from the mirror when the home is
        on S3), or None when there is none (the first run) or it cannot be read (cut short by a crash). For
        content-addressed reuse only: a stale copy costs reuse, never correctness. An unreachable or refusing
        mirror is an error, not an absent value."""
        from ft_resources.io_manager import asset_partition_path, parts_relative

        if self.remote or relative_under(self.root_path, parts_relative(asset, product)).is_file():
            parts = self._previous_manifest_parts(asset, product)
            if parts is not None:
                try:
                    return parts.collect()
                except (pl.exceptions.PolarsError, OSError):
                    return None
        local = self.localize(asset_partition_path(self.root_path, asset, product, "parquet"))
        if not local.is_file():
            return None
        try:
            return pl.read_parquet(local, glob=False)
        except (pl.exceptions.PolarsError, OSError):
            return None

    def previous_parts(self, asset: str, product: str) -> PartedFrame | None:
        """A parted asset's last written parts for a product (read on demand), or None on the first run. The
        manifest is fetched fresh from the mirror: a part is carried over by key only if the store lists it.
        A value stored whole before parts existed comes back as one part."""
        from tuneline.storage import content_version

        parts = self._previous_manifest_parts(asset, product)
        if parts is not None:
            return parts
        whole = self.previous_asset_frame(asset, product)
        return None if whole is None else PartedFrame.whole(whole, f"whole-{content_version(whole)}")

    def _previous_manifest_parts(self, asset: str, product: str) -> PartedFrame | None:
        from ft_resources.io_manager import parts_relative

        manifest = relative_under(self.root_path, parts_relative(asset, product))
        if self.remote:
            manifest.unlink(missing_ok=True)
            manifest = self.localize(manifest)
        if not manifest.is_file():
            return None
        try:
            return PartedFrame.from_manifest(json.loads(manifest.read_text()), parquet_part_reader(
                lambda key: self.localize(parts_relative(asset, product, key))))
        except (OSError, ValueError):
            return None

    def response_log_dir(self, product: str) -> Path:
        """Where `tuneline serve --home <root>` logs a product's answers and their feedback."""
        return under(self.root_path, "serving", "responses", product_key(product))

    def installation_key(self, name: str) -> bytes:
        """A random secret created once per storage root (owner-only file `keys/<name>.key`, mirrored like
        everything else), for installations that configure none."""
        import os

        path = self.localize(under(self.root_path, "keys", f"{name}.key"))
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                return path.read_bytes().strip()
            with os.fdopen(fd, "w") as fh:
                fh.write(new_installation_secret())
            self.publish(path)
        return path.read_bytes().strip()

    def suppressed_path(self, product: str) -> Path:
        """Keyed hashes of the ticket ids `tuneline forget` removed: ingestion never takes them in again."""
        return under(self.root_path, "forgotten", f"{product_key(product)}.json")

    def suppressed_ids(self, product: str) -> set[str]:
        path = self.localize(self.suppressed_path(product))
        return set(json.loads(path.read_text())) if path.exists() else set()

    @property
    def model_cache(self) -> Path:
        return self.root_path / "models"

    # --- the S3 mirror -------------------------------------------------------------------------------
    def _client(self):
        return S3Resource(endpoint_url=self.endpoint_url).get_client()

    def _key(self, path: Path) -> str:
        relative = self.relative(path)
        _, prefix = split_s3_url(self.remote)
        return f"{prefix}/{relative}" if prefix else relative

    def publish(self, path: Path) -> str | None:
        """Upload a file or directory under the root to the mirror; returns its s3:// URL (None if local only)."""
        if not self.remote:
            return None
        path = Path(path).resolve()
        bucket, _ = split_s3_url(self.remote)
        client = self._client()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.name != DIRECTORY_MANIFEST)
            for file in files:
                client.upload_file(str(file), bucket, self._key(file))
            manifest = [f.relative_to(path).as_posix() for f in files]
            client.put_object(Bucket=bucket, Key=f"{self._key(path)}/{DIRECTORY_MANIFEST}",
                              Body=json.dumps(manifest).encode())
        else:
            client.upload_file(str(path), bucket, self._key(path))
        return f"s3://{bucket}/{self._key(path)}"

    def publish_into_directory(self, file: Path) -> str | None:
        """Upload one file into a directory published earlier and list it in that directory's manifest
        (rewritten after the upload), so a machine fetching the directory by its manifest gets the file too."""
        if not self.remote:
            return None
        file = Path(file).resolve()
        bucket, _ = split_s3_url(self.remote)
        client = self._client()
        client.upload_file(str(file), bucket, self._key(file))
        manifest_key = f"{self._key(file.parent)}/{DIRECTORY_MANIFEST}"
        try:
            listed = json.loads(client.get_object(Bucket=bucket, Key=manifest_key)["Body"].read())
        except ClientError as err:
            if not is_missing_key(err):
                raise
            listed = []
        client.put_object(Bucket=bucket, Key=manifest_key, Body=json.dumps(sorted({*listed, file.name})).encode())
        return f"s3://{bucket}/{self._key(file)}"

    def _download_file(self, client, bucket: str, path: Path) -> Path:
        """Fetch one object to `path` atomically; a key that does not exist leaves `path` absent."""
        from tuneline.storage import atomic_write

        try:
            client.head_object(Bucket=bucket, Key=self._key(path))
        except ClientError as err:
            if is_missing_key(err):
                return path
            raise
        return atomic_write(path, lambda tmp: client.download_file(bucket, self._key(path), str(tmp)))

    def relative(self, path: str | Path) -> str:
        """`path` relative to the root: how outputs refer to files so that another machine can find them."""
        return Path(path).resolve().relative_to(self.root_path).as_posix()

    def localize_adapter(self, summary: dict) -> Path:
        """The adapter directory a lora_adapter/preference_adapter summary refers to, on this machine."""
        return self.localize(summary.get("adapter_key") or summary["adapter_dir"])

    def localize(self, path: str | Path) -> Path:
        """The local path (absolute, or relative to the root), fetched from the mirror first when this machine
        does not have it."""
        path = relative_under(self.root_path, path)
        if path.exists() or not self.remote:
            return path
        bucket, _ = split_s3_url(self.remote)
        client = self._client()
        try:
            body = client.get_object(Bucket=bucket, Key=f"{self._key(path)}/{DIRECTORY_MANIFEST}")["Body"].read()
        except ClientError as err:
            if not is_missing_key(err):
                raise
            return self._download_file(client, bucket, path)
        from tuneline.storage import atomic_directory

        with atomic_directory(path) as staging:
            for relative in json.loads(body):
                target = staging / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                client.download_file(bucket, f"{self._key(path)}/{relative}", str(target))
        return path
