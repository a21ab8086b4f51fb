"""Atomic writes: a reader sees the previous version or the new one, never half a file.

Every writer goes to a temporary sibling first and is renamed into place; on POSIX a
rename within one filesystem is atomic. Directories (adapters, dataset dumps) are built
beside their final place and swapped in.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl


def _tmp_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{uuid.uuid4().hex[:8]}")


ORPHAN_AGE_SECONDS = 3600


def sweep_orphans(path: Path, older_than: float = ORPHAN_AGE_SECONDS) -> list[Path]:
    """Remove temp/staging siblings of `path` left by a writer that was killed (SIGKILL, OOM, power loss).

    Only ones older than `older_than` seconds: a younger one may belong to a writer still running."""
    import time

    removed = []
    cutoff = time.time() - older_than
    prefixes = tuple(f".{path.name}.{kind}-" for kind in ("tmp", "staging", "old"))
    if not path.parent.is_dir():
        return removed
    for orphan in path.parent.iterdir():  # prefix match, never a glob: names may hold pattern characters
        if orphan.name.startswith(prefixes):
            try:
                if orphan.lstat().st_mtime < cutoff:
                    shutil.rmtree(orphan) if orphan.is_dir() and not orphan.is_symlink() else orphan.unlink()
                    removed.append(orphan)
            except FileNotFoundError:
                pass
    return removed


def atomic_write(path: Path, write: Callable[[Path], Any]) -> Path:
    """Call `write(tmp_path)`, fsync, then rename over `path`. A killed writer leaves at most a hidden
    temp sibling, swept by a later write once it is an hour old."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sweep_orphans(path)
    tmp = _tmp_sibling(path)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def atomic_write_text(path: Path, text: str) -> Path:
    return atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))


def atomic_write_json(path: Path, payload: Any) -> Path:
    return atomic_write_text(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def atomic_write_parquet(path: Path, frame: pl.DataFrame) -> Path:
    return atomic_write(path, lambda p: frame.write_parquet(p))


def atomic_write_jsonl(path: Path, records: list[dict]) -> Path:
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return atomic_write_text(path, lines)


@contextmanager
def locked(path: Path):
    """An exclusive lock beside `path`, so two partitions never update the index at once."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(f".{path.name}.lock"), "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@contextmanager
def atomic_directory(final: Path):
    """Yield a fresh staging directory; on success it replaces `final` in two renames.

    On an exception the staging directory is removed and `final` is untouched.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep_orphans(final)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.staging-", dir=final.parent))
    current = os.umask(0)
    os.umask(current)
    staging.chmod(0o777 & ~current)  # mkdtemp makes it 0700; the swapped-in directory follows the umask
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    retired = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    with locked(final):  # two writers of the same directory swap one after the other, never interleaved
        if final.exists():
            os.replace(final, retired)
        os.replace(staging, final)
    shutil.rmtree(retired, ignore_errors=True)


def content_version(frame: pl.DataFrame) -> str:
    """A short hash of a frame's schema and rows: equal data, equal version (Dagster data versions use it)."""
    import hashlib

    digest = hashlib.sha256(repr(list(frame.schema.items())).encode())
    if frame.height:
        digest.update(frame.hash_rows(seed=0, seed_1=1, seed_2=2, seed_3=3).to_numpy().tobytes())
    return digest.hexdigest()[:16]
