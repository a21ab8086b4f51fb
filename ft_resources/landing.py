"""The landing zone where ticket exports arrive: a local directory or an S3 prefix, same interface.

Layout in both: `<root>/<product>/<file>`. `scan` returns stable files with a fingerprint (size +
mtime locally, size + ETag on S3) that the sensor turns into run keys; `product_files` gives ingestion
a local folder with the product's files (S3 objects are downloaded into a work directory first).
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource

from tuneline.ingest import SUPPORTED_SUFFIXES


def scan_landing(landing: Path, min_age_seconds: float, now: float) -> dict[str, dict[str, str]]:
    """{product: {relative path: fingerprint}} of stable landing files."""
    found: dict[str, dict[str, str]] = {}
    if not landing.is_dir():
        return found
    for product_dir in sorted(p for p in landing.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = {}
        for f in sorted(product_dir.iterdir()):
            if not f.is_file() or f.name.startswith(".") or f.suffix.lower() not in SUPPORTED_SUFFIXES:
                continue
            stat = f.stat()
            if now - stat.st_mtime < min_age_seconds:
                continue
            files[f"{product_dir.name}/{f.name}"] = f"{stat.st_size}:{int(stat.st_mtime_ns)}"
        found[product_dir.name] = files
    return found


def _wanted(name: str) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED_SUFFIXES


class LandingZone(dg.ConfigurableResource, ABC):
    """`min_age_seconds`: a file must be unchanged this long before it is ingested (uploads in flight wait)."""

    min_age_seconds: float = 5.0
    @abstractmethod
    def scan(self, min_age_seconds: float, now: float) -> dict[str, dict[str, str]]:
        """{product: {product/file: fingerprint}} of files that stopped changing `min_age_seconds` ago."""

    @abstractmethod
    def product_files(self, product: str, work_dir: Path) -> Path | None:
        """A local folder holding the product's landing files, or None when the product has none."""

    @abstractmethod
    def describe(self) -> str: ...


class LocalLandingZone(LandingZone):
    path: str

    def scan(self, min_age_seconds: float, now: float) -> dict[str, dict[str, str]]:
        return scan_landing(Path(self.path), min_age_seconds, now)

    def product_files(self, product: str, work_dir: Path) -> Path | None:
        folder = Path(self.path).resolve() / product
        return folder if folder.is_dir() else None

    def describe(self) -> str:
        return str(Path(self.path).resolve())


class S3LandingZone(LandingZone):
    """`s3://bucket/prefix/<product>/<file>`; credentials through the S3 resource (env vars / profile)."""

    bucket: str
    prefix: str = ""
    s3: S3Resource

    def _objects(self, product: str | None = None):
        client = self.s3.get_client()
        base = self.prefix.strip("/")
        prefix = f"{base}/" if base else ""
        if product:
            prefix += f"{product}/"
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for item in page.get("Contents", []):
                relative = item["Key"][len(f"{base}/" if base else ""):]
                parts = relative.split("/")
                if len(parts) == 2 and _wanted(parts[1]):
                    yield parts[0], relative, item

    def scan(self, min_age_seconds: float, now: float) -> dict[str, dict[str, str]]:
        found: dict[str, dict[str, str]] = {}
        for product, relative, item in self._objects():
            files = found.setdefault(product, {})
            if now - item["LastModified"].timestamp() >= min_age_seconds:
                etag = item["ETag"].strip('"')
                files[relative] = f"{item['Size']}:{etag}"
        return found

    def product_files(self, product: str, work_dir: Path) -> Path | None:
        target = work_dir / "landing" / product
        shutil.rmtree(target, ignore_errors=True)
        client = self.s3.get_client()
        count = 0
        for _, relative, item in self._objects(product):
            target.mkdir(parents=True, exist_ok=True)
            client.download_file(self.bucket, item["Key"], str(target / Path(relative).name))
            count += 1
        return target if count else None

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix.strip('/')}"


def landing_zone_from(location: str, endpoint_url: str | None = None) -> LandingZone:
    """`s3://bucket/prefix` or a directory."""
    if location.startswith("s3://"):
        bucket, _, prefix = location[5:].partition("/")
        return S3LandingZone(bucket=bucket, prefix=prefix, s3=S3Resource(endpoint_url=endpoint_url))
    return LocalLandingZone(path=location)
