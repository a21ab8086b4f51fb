"""The landing zone where ticket exports arrive: a local directory or an S3 prefix, same interface.

Layout in both: `<root>/<product folder>/<file>`. What may be read is decided by `tuneline.landing`
(product keys through `tuneline.names`, regular files only, no symlinks); `scan` returns a `LandingScan`
the sensor turns into partitions and run keys; `product_files` gives ingestion a local folder with the
product's files (S3 objects are downloaded into a work directory first, under validated names).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource

from tuneline.landing import (
    LandingFile,
    LandingScan,
    entry_key,
    file_problem,
    product_folders,
    scan_folder,
    scan_local,
)
from tuneline.names import InvalidName, file_name, product_key
from tuneline.paths import remove_tree, under


def scan_landing(landing: Path, aliases: dict[str, str] | None = None) -> LandingScan:
    """Every readable file of a local landing zone, and every skipped entry with its reason."""
    return scan_local(Path(landing), aliases)


class LandingZone(dg.ConfigurableResource, ABC):
    """`min_age_seconds`: a file must be unchanged this long (and across two sensor ticks) before it is
    ingested. `product_aliases` maps a landing folder name that is no valid product key to one that is."""

    min_age_seconds: float = 5.0
    product_aliases: dict[str, str] = {}
    retention_days: float = 0  # > 0: landing files older than this are deleted at ingest (TUNELINE_RETENTION_DAYS)

    def expired(self, modified: float, now: float) -> bool:
        return self.retention_days > 0 and now - modified > self.retention_days * 86400

    @abstractmethod
    def expire(self, product: str, now: float) -> int:
        """Delete the product's landing files older than `retention_days`; returns how many went."""

    @abstractmethod
    def scan(self) -> LandingScan:
        """Readable files by product, and every other entry with the reason it is skipped."""

    @abstractmethod
    def product_files(self, product: str, work_dir: Path) -> Path | None:
        """A local folder holding the product's landing files, or None when the product has none."""

    @abstractmethod
    def describe(self) -> str: ...


class LocalLandingZone(LandingZone):
    path: str

    def scan(self) -> LandingScan:
        return scan_landing(Path(self.path), self.product_aliases)

    def product_files(self, product: str, work_dir: Path) -> Path | None:
        return product_folders(Path(self.path), self.product_aliases, LandingScan()).get(product_key(product))

    def expire(self, product: str, now: float) -> int:
        scan = LandingScan()
        folder = product_folders(Path(self.path), self.product_aliases, scan).get(product_key(product))
        if folder is None or self.retention_days <= 0:
            return 0
        scan_folder(folder, product, scan)
        old = [f for f in scan.files if self.expired(f.modified, now)]
        for f in old:  # regular files that passed the gate, deleted inside the landing root only
            remove_tree(self.path, under(folder, f.name))
        return len(old)

    def describe(self) -> str:
        return str(Path(self.path).resolve())


class S3LandingZone(LandingZone):
    """`s3://bucket/prefix/<product>/<file>`; credentials through the S3 resource (env vars / profile).
    Keys are split on '/' and each part goes through the same gates as a local name; a key with more or
    fewer parts, or a part that fails its gate, is skipped with its reason."""

    bucket: str
    prefix: str = ""
    s3: S3Resource

    def _base(self) -> str:
        base = self.prefix.strip("/")
        return f"{base}/" if base else ""

    def _objects(self, scan: LandingScan, only: str | None = None):
        """(product, file name, object) of every readable object; others land in scan.skipped."""
        client = self.s3.get_client()
        base = self._base()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=base):
            for item in page.get("Contents", []):
                relative = item["Key"][len(base):]
                parts = relative.split("/")
                key = entry_key(relative)
                if len(parts) != 2:
                    scan.skipped[key] = "not_in_a_product_folder"
                    continue
                folder, name = parts
                if folder.startswith("."):
                    scan.skipped[key] = "hidden_folder"
                    continue
                try:
                    product = product_key(folder, self.product_aliases)
                except InvalidName as err:
                    scan.skipped[key] = f"invalid_product_name:{err.reason}"
                    continue
                if only is not None and product != only:
                    continue
                scan.products.add(product)
                problem = file_problem(name, None)
                if problem:
                    scan.skipped[key] = problem
                    continue
                yield product, name, item

    def scan(self) -> LandingScan:
        scan = LandingScan()
        for product, name, item in self._objects(scan):
            scan.files.append(LandingFile(product, name, f"{item['Size']}:{item['ETag'].strip(chr(34))}",
                                          item["LastModified"].timestamp()))
        return scan

    def product_files(self, product: str, work_dir: Path) -> Path | None:
        """Download the product's readable objects; each keeps its S3 LastModified as mtime, so the
        ingest's readiness check sees the object's age, not the download's."""
        product = product_key(product)
        work_dir.mkdir(parents=True, exist_ok=True)
        target = under(work_dir, "landing", product)
        remove_tree(work_dir, target)
        client = self.s3.get_client()
        count = 0
        for _, name, item in self._objects(LandingScan(), only=product):
            target.mkdir(parents=True, exist_ok=True)
            local = under(target, file_name(name))
            client.download_file(self.bucket, item["Key"], str(local))
            modified = item["LastModified"].timestamp()
            os.utime(local, (modified, modified))
            count += 1
        return target if count else None

    def expire(self, product: str, now: float) -> int:
        if self.retention_days <= 0:
            return 0
        client = self.s3.get_client()
        old = [item["Key"] for _, _, item in self._objects(LandingScan(), only=product_key(product))
               if self.expired(item["LastModified"].timestamp(), now)]
        for key in old:
            client.delete_object(Bucket=self.bucket, Key=key)
        return len(old)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix.strip('/')}"


def landing_zone_from(location: str, endpoint_url: str | None = None, **settings) -> LandingZone:
    """`s3://bucket/prefix` or a directory."""
    if location.startswith("s3://"):
        bucket, _, prefix = location[5:].partition("/")
        return S3LandingZone(bucket=bucket, prefix=prefix, s3=S3Resource(endpoint_url=endpoint_url), **settings)
    return LocalLandingZone(path=location, **settings)
