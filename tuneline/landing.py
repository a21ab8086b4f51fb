"""What in a landing zone may be read, decided in one place for local folders and S3 keys alike.

Layout: `<root>/<product folder>/<file>`. A folder becomes a product only through `names.product_key`
(with the operator's aliases); a file is read only when it is a regular file (never a symlink), not
hidden, of a supported format, and has a valid single-component name. Everything else is skipped with a
reason code, so that files in = files read + files skipped + files waiting.

Readiness: a file is ingested once it has stopped changing: the sensor requires the same fingerprint
(size + mtime, or size + ETag) on two observations and an age of at least `min_age_seconds`; the reader
checks again that nothing changed while it read. Writers that need more certainty upload under a
hidden name (`.tickets.csv.part`) and rename when done: hidden files are never read.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tuneline.names import InvalidName, file_name, product_key

SUPPORTED_FORMATS = (".csv", ".jsonl", ".ndjson", ".parquet", ".md")
COMPRESSED_SUFFIX = ".gz"

# reasons a file is skipped for good (they become rejected records) vs. for now (it will be read later)
PERMANENT_SKIPS = {"symlink", "not_a_regular_file", "unsupported_type", "invalid_file_name"}
WAITING = {"hidden_file", "not_ready"}


def file_format(name: str) -> str | None:
    """`.csv`, `.jsonl`, ... for a supported name (any case, optionally `.gz`), else None."""
    lowered = name.lower()
    if lowered.endswith(COMPRESSED_SUFFIX):
        lowered = lowered[: -len(COMPRESSED_SUFFIX)]
    suffix = os.path.splitext(lowered)[1]
    if suffix == ".ndjson":
        return ".jsonl"
    return suffix if suffix in SUPPORTED_FORMATS else None


def entry_key(raw_path: str | bytes) -> str:
    """A short opaque id for a landing path: cursors and run keys never hold names (they can hold PII)."""
    data = raw_path if isinstance(raw_path, bytes) else os.fsencode(raw_path)
    return hashlib.sha256(data).hexdigest()[:20]


def file_problem(name: str | bytes, mode: int | None) -> str | None:
    """Why a landing entry with this name and lstat mode may not be read (None: it may).
    `mode` None means an S3 object (always a regular object)."""
    if mode is not None and stat.S_ISLNK(mode):
        return "symlink"
    if mode is not None and not stat.S_ISREG(mode):
        return "not_a_regular_file"
    try:
        text = file_name(name)
    except InvalidName:
        return "invalid_file_name"
    if text.startswith("."):
        return "hidden_file"
    if file_format(text) is None:
        return "unsupported_type"
    return None


@dataclass(frozen=True)
class LandingFile:
    product: str
    name: str
    fingerprint: str
    modified: float

    @property
    def key(self) -> str:
        return entry_key(f"{self.product}/{self.name}")


@dataclass
class LandingScan:
    """Files that may be read, by product; every other entry with its reason, keyed by an opaque id."""

    files: list[LandingFile] = field(default_factory=list)
    products: set[str] = field(default_factory=set)
    skipped: dict[str, str] = field(default_factory=dict)


def product_folders(root: Path, aliases: Mapping[str, str] | None, scan: LandingScan) -> dict[str, Path]:
    """{product key: folder} of the real (non-symlink) folders whose names pass the product-key gate."""
    found: dict[str, Path] = {}
    if not root.is_dir():
        return found
    with os.scandir(os.fsencode(root)) as entries:
        for entry in sorted(entries, key=lambda e: e.name):
            if entry.name.startswith(b"."):
                scan.skipped[entry_key(entry.name)] = "hidden_folder"
                continue
            if entry.is_symlink() or not entry.is_dir(follow_symlinks=False):
                scan.skipped[entry_key(entry.name)] = "symlink" if entry.is_symlink() else "not_a_product_folder"
                continue
            try:
                product = product_key(entry.name, aliases)
            except InvalidName as err:
                scan.skipped[entry_key(entry.name)] = f"invalid_product_name:{err.reason}"
                continue
            if product in found:
                scan.skipped[entry_key(entry.name)] = "duplicate_product_folder"
                continue
            found[product] = Path(os.fsdecode(entry.path))
    return found


def folder_entries(folder: Path) -> list[tuple[os.DirEntry, os.stat_result, str | None]]:
    """Every entry of a product folder in name order, with its lstat and the reason it may not be read
    (None: it may). The sensor's scan and the ingest both list a folder through this one function."""
    with os.scandir(os.fsencode(folder)) as entries:
        listed = sorted(entries, key=lambda e: e.name)
    return [(entry, info, file_problem(entry.name, info.st_mode))
            for entry, info in ((e, e.stat(follow_symlinks=False)) for e in listed)]


def scan_folder(folder: Path, product: str, scan: LandingScan) -> None:
    """Add one product folder's readable files to `scan`, and its other entries with their reasons."""
    scan.products.add(product)
    for entry, info, problem in folder_entries(folder):
        if problem:
            scan.skipped[entry_key(os.fsencode(product) + b"/" + entry.name)] = problem
            continue
        scan.files.append(LandingFile(product, os.fsdecode(entry.name), f"{info.st_size}:{info.st_mtime_ns}",
                                      info.st_mtime))


def scan_local(root: Path, aliases: Mapping[str, str] | None = None) -> LandingScan:
    scan = LandingScan()
    for product, folder in product_folders(root, aliases, scan).items():
        scan_folder(folder, product, scan)
    return scan


class ChangedWhileReading(OSError):
    """The file's size or mtime moved during the read: a writer is still at it."""


def read_regular_file(path: Path) -> bytes:
    """The bytes of a regular file, refusing symlinks (O_NOFOLLOW) and anything that changed while read."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0))
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise OSError(f"{path.name}: not a regular file")
        with os.fdopen(os.dup(fd), "rb") as fh:
            data = fh.read()
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if (before.st_size, before.st_mtime_ns) != (after.st_size, after.st_mtime_ns) or len(data) != after.st_size:
        raise ChangedWhileReading(f"{path.name} changed while it was read")
    return data
