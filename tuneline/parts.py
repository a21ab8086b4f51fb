"""An asset partition stored as ordered parts: parquet files named by a digest of what made them.

A product's history grows by landing files; an asset whose value is a `PartedFrame` keeps one part per
piece of its input (per landing file for raw_tickets, per raw part downstream). A run computes only the
parts whose key is new and carries the others over by key, without reading them, so new tickets cost in
proportion to the new tickets and no step needs the product's whole history in one frame.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import uuid
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl

PARTS_FORMAT = 1
_KEY = re.compile(r"(whole-)?[0-9a-f]{16,64}")  # a part key names a file: digests only, never a path


def part_key(*inputs: object) -> str:
    """The key of a part: a digest of everything that decides its rows (JSON-able inputs, in order)."""
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()


@dataclass(frozen=True)
class Part:
    """One part: its key, row count and small facts (counts, settings) readable without the rows. A part this
    run made holds its rows in `frame`, or in the file `spilled` (see `Spill`); a part carried over from the
    last run has neither."""

    key: str
    rows: int
    facts: dict = field(default_factory=dict)
    frame: pl.DataFrame | None = None
    spilled: Path | None = None

    @classmethod
    def made(cls, key: str, frame: pl.DataFrame, **facts) -> Part:
        return cls(key, frame.height, facts, frame)

    @property
    def is_new(self) -> bool:
        return self.frame is not None or self.spilled is not None

    def carried(self) -> Part:
        return replace(self, frame=None, spilled=None)


class Spill:
    """Where a run's new parts wait for the IO manager: each is written to a file as soon as it is made, so
    a run holds one part's rows at a time however many parts it makes. The directory (under `base`, on the
    storage root's disk, not a RAM-backed /tmp) goes with the object."""

    def __init__(self, base: Path):
        import time

        Path(base).mkdir(parents=True, exist_ok=True)
        for orphan in Path(base).iterdir():  # left by a run that was killed; an hour old, so not a live one's
            if orphan.name.startswith(".parts-") and orphan.stat().st_mtime < time.time() - 3600:
                shutil.rmtree(orphan, ignore_errors=True)
        self.directory = Path(tempfile.mkdtemp(prefix=".parts-", dir=base))
        self._cleanup = weakref.finalize(self, shutil.rmtree, self.directory, True)

    def made(self, key: str, frame: pl.DataFrame, **facts) -> Part:
        path = self.directory / f"{uuid.uuid4().hex}.parquet"  # two assets' parts may share a key
        frame.write_parquet(path)
        return Part(key, frame.height, facts, None, path)


# how a stored part's rows are read: (key, columns or None) -> frame
PartReader = Callable[[str, "list[str] | None"], pl.DataFrame]


def parquet_part_reader(locate: Callable[[str], Path]) -> PartReader:
    """Reads a part from the parquet file `locate(key)` names (a local store, or a mirror's local copy); the
    reader keeps `locate`, so a query engine can scan the files themselves (`PartedFrame.parquet_files`)."""
    def read(key: str, columns: list[str] | None) -> pl.DataFrame:
        return pl.read_parquet(locate(key), columns=columns, glob=False)

    read.locate = locate
    return read


class PartedFrame:
    """An ordered list of parts, read one at a time. `collect()` gives the whole frame for readers that
    need it (the kept examples, small products); stages that scale read `frames()` or single columns, and
    query engines scan `parquet_files()`."""

    def __init__(self, parts: list[Part], read: PartReader | None = None, schema: dict | None = None,
                 spill: Spill | None = None):
        self.parts = list(parts)
        self._read = read
        self.schema = schema
        self._spill = spill  # kept alive until the IO manager has stored the spilled parts
        self._keys: dict[str, Part] | None = None

    @classmethod
    def whole(cls, frame: pl.DataFrame, key: str) -> PartedFrame:
        """A frame stored before parts existed, as one part."""
        return cls([Part.made(key, frame)])

    def __len__(self) -> int:
        return len(self.parts)

    @property
    def height(self) -> int:
        return sum(p.rows for p in self.parts)

    def by_key(self) -> dict[str, Part]:
        return {p.key: p for p in self.parts}

    def carried_part(self, key: str) -> Part | None:
        """The part stored under `key`, without its rows (to carry over), or None."""
        if self._keys is None or len(self._keys) != len(self.parts):
            self._keys = self.by_key()
        part = self._keys.get(key)
        return part.carried() if part is not None else None

    def of_source(self, source: str | None) -> list[Part]:
        """The parts made from `source` (a landing file's pseudonym), and those of unknown source (stored
        whole before parts existed): where a new part of that source finds rows made before."""
        return [p for p in self.parts if p.facts.get("source") in (source, None)]

    def frame_of(self, part: Part, columns: list[str] | None = None) -> pl.DataFrame:
        if part.frame is not None:
            return part.frame.select(columns) if columns else part.frame
        if part.spilled is not None:
            return pl.read_parquet(part.spilled, columns=columns, glob=False)
        if self._read is None:
            raise ValueError(f"part {part.key[:12]} has no rows in memory and no reader")
        return self._read(part.key, columns)

    def frames(self, columns: list[str] | None = None) -> Iterator[tuple[Part, pl.DataFrame]]:
        for part in self.parts:
            yield part, self.frame_of(part, columns)

    def parquet_files(self, scratch: Path) -> list[Path]:
        """One parquet file per part, for engines that scan files (DuckDB): the stored file where the store is
        on this machine, else the part written under `scratch` (read one part at a time)."""
        locate = getattr(self._read, "locate", None)
        files = []
        for index, part in enumerate(self.parts):
            if part.spilled is not None:
                files.append(part.spilled)
            elif part.frame is None and locate is not None:
                files.append(Path(locate(part.key)))
            else:
                path = Path(scratch) / f"{index:06d}.parquet"
                self.frame_of(part).write_parquet(path)
                files.append(path)
        return files

    def collect(self, columns: list[str] | None = None) -> pl.DataFrame:
        frames = [f for _, f in self.frames(columns)]
        if frames:
            return pl.concat(frames, how="diagonal_relaxed")
        return pl.DataFrame(schema=self.schema or {})

    def carried_from(self, previous: PartedFrame, spill: Spill | None = None) -> PartedFrame:
        """These parts, reading the carried ones (no rows in memory) through `previous`'s reader."""
        return PartedFrame(self.parts, previous._read, self.schema or previous.schema, spill or self._spill)

    def stored(self, read: PartReader) -> None:
        """Once the IO manager has stored every part (spilled files moved into the store): read them all from
        the store from now on, so nothing of this run's rows waits outside it."""
        self.parts = [p.carried() for p in self.parts]
        self._keys = None
        self._read = read
        self._spill = None

    def version(self) -> str:
        """A data version: equal keys in equal order, equal data."""
        return part_key(PARTS_FORMAT, [p.key for p in self.parts])[:16]

    def manifest(self) -> dict:
        return {"format": PARTS_FORMAT, "parts": [{"key": p.key, "rows": p.rows, "facts": p.facts}
                                                  for p in self.parts]}

    @classmethod
    def from_manifest(cls, manifest: dict, read: PartReader) -> PartedFrame:
        if manifest.get("format") != PARTS_FORMAT:
            raise ValueError(f"unknown parts format {manifest.get('format')!r}")
        parts = [Part(p["key"], int(p["rows"]), dict(p.get("facts") or {})) for p in manifest["parts"]]
        bad = [p.key for p in parts if not isinstance(p.key, str) or not _KEY.fullmatch(p.key)]
        if bad:
            raise ValueError(f"parts manifest lists keys that are no digests: {bad[:3]!r}")
        return cls(parts, read)

    def fact_total(self, name: str) -> int:
        return sum(int(p.facts.get(name, 0)) for p in self.parts)
