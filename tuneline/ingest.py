"""Read landing files into conversations; quarantine every unusable record with a reason.

The invariant this module guarantees, and the asset check verifies: for each file,
records in = kept + rejected. A whole unreadable file counts as one rejected record.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import polars as pl

from tuneline.landing import PERMANENT_SKIPS, SUPPORTED_FORMATS, file_format, folder_entries, read_regular_file
from tuneline.names import product_key_problem
from tuneline.parts import Part, PartedFrame, Spill, part_key
from tuneline.paths import under

SUPPORTED_SUFFIXES = SUPPORTED_FORMATS

MESSAGE_DTYPE = pl.List(pl.Struct({"role": pl.String, "content": pl.String}))

KEPT_SCHEMA = {
    "ticket_id": pl.String,
    "thread_id": pl.String,
    "product": pl.String,
    "source_file": pl.String,
    "source_row": pl.Int64,
    "created_at": pl.String,
    "source_kind": pl.String,  # "ticket" or "kb" (a knowledge-base article turned into Q/A)
    "csat": pl.Float64,
    "metadata": pl.String,  # JSON of the configured metadata columns (category, intent, ...)
    "messages": MESSAGE_DTYPE,
}
REJECTED_SCHEMA = {
    "product": pl.String,
    "source_file": pl.String,
    "source_row": pl.Int64,
    "ticket_id": pl.String,
    "reason": pl.String,
    "raw": pl.String,
}

MAX_RECORD_CHARS = 100_000  # a ticket longer than this is rejected as too_long (IngestConfig.max_record_chars)
MAX_LINE_CHARS = 10 * MAX_RECORD_CHARS  # a line this long is too_long whatever the limit; never parsed

VALID_ROLES = {"user", "assistant"}
ROLE_ALIASES = {"customer": "user", "client": "user", "agent": "assistant", "support": "assistant"}


@dataclass(frozen=True)
class ColumnMapping:
    """Which source columns hold what; single-turn rows use user/assistant, multi-turn use messages."""

    id_column: str = "ticket_id"
    thread_column: str = "thread_id"
    user_column: str = "customer_message"
    assistant_column: str = "agent_response"
    messages_column: str = "messages"
    created_column: str = "created_at"
    csat_column: str = "csat"
    metadata_columns: tuple[str, ...] = ("category", "intent")


@dataclass
class IngestResult:
    kept: pl.DataFrame
    rejected: pl.DataFrame
    records_in: int
    files: LandingFiles | None = None


def stable_id(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(map(str, parts)).encode()).hexdigest()[:16]


def _normalise_messages(raw_messages: object) -> list[dict] | str:
    """Return a clean list of {role, content} turns, or a reason string."""
    if not isinstance(raw_messages, list) or not raw_messages:
        return "invalid_messages"
    turns = []
    for turn in raw_messages:
        if isinstance(turn, (list, tuple)) and len(turn) == 2:
            role, content = turn
        elif isinstance(turn, dict):
            role, content = turn.get("role"), turn.get("content")
        else:
            return "invalid_messages"
        role = ROLE_ALIASES.get(str(role).lower(), str(role).lower())
        if role == "system":
            continue  # the project's own system prompt is added at export time
        if role not in VALID_ROLES or not isinstance(content, str):
            return "invalid_messages"
        if content.strip():
            turns.append({"role": role, "content": content})
    roles = {t["role"] for t in turns}
    if "user" not in roles:
        return "missing_user_text"
    if "assistant" not in roles:
        return "missing_assistant_text"
    return turns


def record_to_row(record: object, mapping: ColumnMapping, product: str, source: str, row: int,
                  max_record_chars: int = MAX_RECORD_CHARS) -> dict:
    """Turn one source record into a kept row, or a rejected row (has a `reason` key)."""
    full = json.dumps(record, ensure_ascii=False, default=str)
    raw = full[:10_000]
    if len(full) > max_record_chars:
        return {"reason": "too_long", "raw": raw, "ticket_id": None}
    if not isinstance(record, dict):
        return {"reason": "not_an_object", "raw": raw, "ticket_id": None}
    ticket_id = record.get(mapping.id_column)
    ticket_id = str(ticket_id) if ticket_id not in (None, "") else stable_id(product, source, row)
    if record.get(mapping.messages_column) not in (None, ""):
        messages = record[mapping.messages_column]
        if isinstance(messages, str):
            try:
                messages = json.loads(messages)
            except json.JSONDecodeError:
                return {"reason": "invalid_messages", "raw": raw, "ticket_id": ticket_id}
    else:
        messages = [{"role": "user", "content": record.get(mapping.user_column)},
                    {"role": "assistant", "content": record.get(mapping.assistant_column)}]
        if not isinstance(messages[0]["content"], str) or not messages[0]["content"].strip():
            return {"reason": "missing_user_text", "raw": raw, "ticket_id": ticket_id}
        if not isinstance(messages[1]["content"], str) or not messages[1]["content"].strip():
            return {"reason": "missing_assistant_text", "raw": raw, "ticket_id": ticket_id}
    turns = _normalise_messages(messages)
    if isinstance(turns, str):
        return {"reason": turns, "raw": raw, "ticket_id": ticket_id}
    thread = record.get(mapping.thread_column)
    created = record.get(mapping.created_column)
    csat = _as_float(record.get(mapping.csat_column))
    if csat is _INVALID:
        return {"reason": "invalid_csat", "raw": raw, "ticket_id": ticket_id}
    metadata = {c: record[c] for c in mapping.metadata_columns if record.get(c) not in (None, "")}
    return {
        "ticket_id": ticket_id,
        "thread_id": str(thread) if thread not in (None, "") else ticket_id,
        "created_at": str(created) if created not in (None, "") else None,
        "source_kind": "ticket",
        "csat": csat,
        "metadata": json.dumps(metadata, ensure_ascii=False, sort_keys=True, default=str),
        "messages": turns,
    }


_INVALID = object()


def _as_float(value: object):
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return _INVALID


_FAQ_HEADING = re.compile(r"^#{2,3}\s+(.+?)\s*$", re.MULTILINE)


def kb_article_to_records(text: str) -> list[tuple[int, dict]]:
    """A Markdown FAQ: each `## question` heading and the text under it become one Q/A record."""
    headings = list(_FAQ_HEADING.finditer(text))
    records = []
    for i, heading in enumerate(headings):
        end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
        answer = text[heading.end():end].strip()
        line = text.count("\n", 0, heading.start()) + 1
        records.append((line, {"question": heading.group(1).strip(), "answer": answer}))
    return records


def decode_export(raw: bytes) -> tuple[str, str]:
    """Text of an export and the encoding used: BOM first (UTF-8/UTF-16), then UTF-8, then cp1252
    (help-desk tools on Windows still write it). Null bytes are dropped: they only ever break parsers."""
    for bom, encoding in ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16")):
        if raw.startswith(bom):
            return raw.decode(encoding).replace("\x00", ""), encoding
    try:
        return raw.decode("utf-8").replace("\x00", ""), "utf-8"
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="strict").replace("\x00", ""), "cp1252"


MAX_DECOMPRESSED_BYTES = 2 * 1024**3


def _decompress(raw: bytes) -> bytes:
    """gzip content whatever the file is called (a gzip renamed .csv is still read), bounded in size."""
    import zlib

    if not raw.startswith(b"\x1f\x8b"):
        return raw
    inflater = zlib.decompressobj(wbits=31)
    try:
        data = inflater.decompress(raw, MAX_DECOMPRESSED_BYTES)
    except zlib.error as exc:
        raise ValueError(f"gzip data is corrupt, its rows are unknown: {exc}") from None
    if inflater.unconsumed_tail:
        raise ValueError(f"gzip data inflates beyond {MAX_DECOMPRESSED_BYTES} bytes, its rows are unknown")
    if not inflater.eof:
        raise ValueError("gzip data is truncated, its rows are unknown")
    return data


def _iter_records(raw: bytes, fmt: str) -> list[tuple[int, object]]:
    """(row number, record) pairs of one file's bytes; blank rows and lines are not records. A JSON line
    that does not parse (or nests too deep) yields its raw text wrapped in an error."""
    raw = _decompress(raw)
    if fmt == ".parquet":
        frame = pl.read_parquet(io.BytesIO(raw)).with_row_index("__row", offset=1)
        return [(r.pop("__row"), r) for r in frame.to_dicts()]
    text, _ = decode_export(raw)
    if fmt == ".md":
        return kb_article_to_records(text)
    if not text.strip():
        raise ValueError("empty file")
    if fmt == ".csv":
        frame = pl.read_csv(io.StringIO(text), infer_schema=False).with_row_index("__row", offset=1)
        columns = [c for c in frame.columns if c != "__row"]
        if columns:  # blank lines parse as all-null rows: they are not tickets
            frame = frame.filter(~pl.all_horizontal(pl.col(columns).str.strip_chars().fill_null("") == ""))
        return [(r.pop("__row"), r) for r in frame.to_dicts()]
    records: list[tuple[int, object]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(line) > MAX_LINE_CHARS:
            records.append((number, _MalformedLine(line[:10_000], "too_long")))
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            records.append((number, _MalformedLine(line, str(exc))))
        except RecursionError:
            records.append((number, _MalformedLine(line[:10_000], "nested too deep")))
    return records


@dataclass(frozen=True)
class _MalformedLine:
    text: str
    error: str


def _unreadable(product: str, source: str, exc: BaseException) -> IngestResult:
    rejected = [{"product": product, "source_file": source, "source_row": None, "ticket_id": None,
                 "reason": "unreadable_file", "raw": f"{type(exc).__name__}: {exc}"[:2000]}]
    return IngestResult(pl.DataFrame(schema=KEPT_SCHEMA), pl.DataFrame(rejected, schema=REJECTED_SCHEMA), 1)


def ingest_file(path: Path, product: str, mapping: ColumnMapping = ColumnMapping(),
                max_record_chars: int = MAX_RECORD_CHARS, body: bytes | None = None) -> IngestResult:
    """Ingest one landing file (`body`: its bytes, when the caller read them already). Never raises for bad
    content: it quarantines. Reads the bytes of a regular file only (never through a symlink), and never
    takes the name for a pattern."""
    source = path.name
    fmt = file_format(source)
    try:
        if fmt is None:
            raise ValueError(f"unsupported file type; supported: {', '.join(SUPPORTED_SUFFIXES)} (optionally .gz)")
        records = _iter_records(read_regular_file(path) if body is None else body, fmt)
    except (pl.exceptions.PolarsError, UnicodeDecodeError, OSError, ValueError, RecursionError) as exc:
        return _unreadable(product, source, exc)
    kept, rejected = [], []
    is_kb = fmt == ".md"
    for row, record in records:
        if is_kb:
            record = {mapping.id_column: stable_id(product, source, row), mapping.user_column: record["question"],
                      mapping.assistant_column: record["answer"]}
        base = {"product": product, "source_file": source, "source_row": row}
        if isinstance(record, _MalformedLine):
            reason = "too_long" if record.error == "too_long" else "malformed_json"
            rejected.append({**base, "ticket_id": None, "reason": reason, "raw": record.text[:10_000]})
            continue
        try:
            result = record_to_row(record, mapping, product, source, row, max_record_chars)
        except RecursionError:
            result = {"reason": "malformed_json", "raw": "nested too deep", "ticket_id": None}
        if "reason" in result:
            rejected.append({**base, **result})
        else:
            if is_kb:
                result["source_kind"] = "kb"
            kept.append({**base, **result})
    return IngestResult(pl.DataFrame(kept, schema=KEPT_SCHEMA), pl.DataFrame(rejected, schema=REJECTED_SCHEMA),
                        len(records))


@dataclass
class LandingFiles:
    """One product folder's files: the ones to read, and every other entry's reason by name."""

    readable: list[Path]
    skipped: dict[str, str]

    def skipped_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.skipped.values()).items()))


def list_landing_files(product_dir: Path, min_age_seconds: float = 0.0, now: float | None = None) -> LandingFiles:
    """Regular, visible, supported files of a product folder older than `min_age_seconds`, in name order."""
    import time

    now = time.time() if now is None else now
    readable, skipped = [], {}
    for entry, info, problem in folder_entries(product_dir):
        if problem is None and now - info.st_mtime < min_age_seconds:
            problem = "not_ready"
        if problem:
            skipped[os.fsdecode(entry.name)] = problem
        else:
            readable.append(Path(os.fsdecode(entry.path)))
    return LandingFiles(readable, skipped)


def _skipped_rejections(product: str, files: LandingFiles) -> pl.DataFrame:
    """A rejected record per file skipped for good (symlinks, unsupported types, invalid names)."""
    rows = [{"product": product, "source_file": name.encode("utf-8", "replace").decode("utf-8"), "source_row": None,
             "ticket_id": None, "reason": reason, "raw": f"file skipped: {reason}"}
            for name, reason in files.skipped.items() if reason in PERMANENT_SKIPS]
    return pl.DataFrame(rows, schema=REJECTED_SCHEMA)


def reject_duplicate_ids(result: IngestResult, seen: set[str] | None = None) -> IngestResult:
    """Rows whose ticket_id an earlier row has (in this result, or in `seen`: earlier files) are rejected as
    `duplicate_ticket_id` with their text, counted, never dropped; the first keeps it."""
    kept, rejected = result.kept, result.rejected
    duplicate_mask = (kept["ticket_id"].is_duplicated() & ~kept["ticket_id"].is_first_distinct())
    if seen:
        duplicate_mask = duplicate_mask | kept["ticket_id"].is_in(pl.Series(list(seen), dtype=pl.String).implode())
    if duplicate_mask.any():
        dupes = kept.filter(duplicate_mask)
        rejected = pl.concat([rejected, dupes.select(
            "product", "source_file", "source_row", "ticket_id",
            pl.lit("duplicate_ticket_id").alias("reason"),
            pl.col("messages").map_elements(lambda m: json.dumps(m.to_list() if hasattr(m, "to_list") else m,
                                                                 ensure_ascii=False),
                                            return_dtype=pl.String).alias("raw"))])
        kept = kept.filter(~duplicate_mask)
    return IngestResult(kept, rejected, result.records_in, result.files)


def ingest_product(product_dir: Path, product: str, mapping: ColumnMapping = ColumnMapping(),
                   min_age_seconds: float = 0.0, max_record_chars: int = MAX_RECORD_CHARS) -> IngestResult:
    """All ready files of one product, in name order, as one frame. Rows sharing a ticket_id keep the first;
    later ones are rejected. Files skipped for good count as one rejected record each; hidden and
    not-yet-ready files wait. (The raw_tickets asset reads the same files part by part: `ingest_in_parts`.)"""
    files = list_landing_files(product_dir, min_age_seconds)
    results = [ingest_file(p, product, mapping, max_record_chars) for p in files.readable]
    skipped = _skipped_rejections(product, files)
    kept = pl.concat([r.kept for r in results]) if results else pl.DataFrame(schema=KEPT_SCHEMA)
    rejected = pl.concat([r.rejected for r in results] + [skipped])
    result = IngestResult(kept, rejected, sum(r.records_in for r in results) + skipped.height, files)
    return reject_duplicate_ids(result)


@dataclass(frozen=True)
class Source:
    """One piece of a product's input, in order: a landing file, the quarantined names, the corrections.
    `digest` is a digest of its content; `read()` ingests it."""

    name: str
    digest: str
    read: Callable[[], IngestResult]


class ChangedWhileIngesting(RuntimeError):
    """A landing file's bytes changed between hashing and parsing: the run is retried (retry policy)."""


def _ingest_if_unchanged(path: Path, digest: str, product: str, mapping: ColumnMapping,
                         max_record_chars: int) -> IngestResult:
    body = read_regular_file(path)
    if hashlib.sha256(body).hexdigest() != digest:
        raise ChangedWhileIngesting(f"{path.name!r} changed while it was ingested")
    return ingest_file(path, product, mapping, max_record_chars, body=body)


def landing_sources(files: LandingFiles, product: str, mapping: ColumnMapping = ColumnMapping(),
                    max_record_chars: int = MAX_RECORD_CHARS) -> list[Source]:
    """The product's ready landing files (each hashed now, and read again to be parsed only if its part is
    new, so no more than one file's bytes are held at a time) and, last, the files skipped for good (one
    rejected record each)."""
    sources = []
    for path in files.readable:
        try:
            digest = hashlib.sha256(read_regular_file(path)).hexdigest()
        except (OSError, ValueError) as exc:  # vanished or swapped since it was listed: quarantined as unreadable
            sources.append(Source(path.name, f"unreadable:{exc}",
                                  lambda p=path, e=exc: _unreadable(product, p.name, e)))
            continue
        sources.append(Source(path.name, digest, lambda p=path, d=digest: _ingest_if_unchanged(
            p, d, product, mapping, max_record_chars)))
    skipped = _skipped_rejections(product, files)
    if skipped.height:
        sources.append(Source("(files skipped for good)", content_digest(skipped.to_dicts()),
                              lambda: IngestResult(pl.DataFrame(schema=KEPT_SCHEMA), skipped, skipped.height)))
    return sources


def content_digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


PART_ROWS = 50_000  # a landing file larger than this becomes several parts: a stage holds one part at a time


def ingest_in_parts(sources: list[Source], seed: str, previous_kept: PartedFrame | None = None,
                    previous_rejected: PartedFrame | None = None,
                    after: Callable[[IngestResult], IngestResult] = lambda r: r,
                    label: Callable[[str], str] = lambda name: name, spill: Spill | None = None,
                    part_rows: int = PART_ROWS) -> tuple[PartedFrame, PartedFrame]:
    """Kept and rejected rows, one part per source (several, of `part_rows` kept rows each, for a large one).
    A part's key chains `seed` (the settings) with every source up to it, so a part is carried over unread
    from the last run exactly when it and everything before it is unchanged; only its ticket ids are read,
    to reject later duplicates. New sources cost in proportion to their size. `after` (suppression of
    forgotten tickets) applies to each new source. Each part records its source as `label(name)` (a keyed
    hash: a file name may hold a customer's name, and the facts travel downstream, where parts of the same
    source are matched to reuse rows cleaned before). `spill` writes new parts to disk as they are made."""
    previous_kept = previous_kept or PartedFrame([])
    previous_rejected = previous_rejected or PartedFrame([])
    old_kept, old_rejected = previous_kept.by_key(), previous_rejected.by_key()
    make = spill.made if spill is not None else Part.made
    chain, seen = seed, set()
    kept_parts, rejected_parts = [], []
    for source in sources:
        chain = part_key(chain, source.name, source.digest)
        first = old_kept.get(chain)
        keys = [chain] + [part_key(chain, "rows", j) for j in range(1, int(first.facts.get("chunks", 1)))] \
            if first is not None else []
        if keys and all(k in old_kept and k in old_rejected for k in keys):
            for k in keys:
                kept_parts.append(old_kept[k].carried())
                rejected_parts.append(old_rejected[k].carried())
                seen.update(previous_kept.frame_of(old_kept[k], ["ticket_id"])["ticket_id"].to_list())
            continue
        result = reject_duplicate_ids(source.read(), seen)
        seen.update(result.kept["ticket_id"].to_list())
        result = after(result)
        chunks = max(1, -(-result.kept.height // part_rows))
        for j in range(chunks):
            key = chain if j == 0 else part_key(chain, "rows", j)
            rows = result.kept.slice(j * part_rows, part_rows)
            kinds = dict(rows["source_kind"].value_counts().iter_rows()) if rows.height else {}
            kept_parts.append(make(key, rows, source=label(source.name), chunks=chunks,
                                   records_in=result.records_in if j == 0 else 0,
                                   kb=kinds.get("kb", 0), corrections=kinds.get("correction", 0)))
            rejected_parts.append(make(key, result.rejected if j == 0 else result.rejected.clear(),
                                       source=label(source.name)))
    if not sources:  # a folder emptied by retention: one empty part, so every stage has the columns
        key = part_key(seed, "no sources")
        kept_parts.append(make(key, pl.DataFrame(schema=KEPT_SCHEMA), records_in=0, chunks=1))
        rejected_parts.append(make(key, pl.DataFrame(schema=REJECTED_SCHEMA)))
    return (PartedFrame(kept_parts, schema=KEPT_SCHEMA).carried_from(previous_kept, spill),
            PartedFrame(rejected_parts, schema=REJECTED_SCHEMA).carried_from(previous_rejected, spill))


CORRECTIONS_SOURCE = "served-corrections"


def correction_records(responses: list[dict], feedback: list[dict]) -> list[dict]:
    """Served answers that a user corrected, as ticket records: the conversation as served with the corrected
    reply as the agent's turn (an SFT example), and the served reply kept in metadata as the rejected side of a
    preference pair. The ticket id names the response (lineage); the latest correction of a response wins.
    Everything was redacted by the server already and goes through cleaning, PII and dedup again."""
    corrected = {f["response_id"]: f for f in sorted(feedback, key=lambda f: f.get("created", 0))
                 if isinstance(f.get("corrected_reply"), str) and f["corrected_reply"].strip()}
    records = []
    for r in responses:
        f = corrected.get(r["response_id"])
        if f is None or r.get("error") or not r.get("messages"):
            continue
        records.append({"ticket_id": f"served:{r['response_id']}", "thread_id": r.get("conversation"),
                        "messages": [*r["messages"], {"role": "assistant", "content": f["corrected_reply"]}],
                        "created_at": f.get("created"), "csat": f.get("csat"),
                        "served_reply": r.get("reply") or "", "arm": r.get("arm")})
    return records


def ingest_corrections(records: list[dict], product: str, mapping: ColumnMapping = ColumnMapping(),
                       max_record_chars: int = MAX_RECORD_CHARS) -> IngestResult:
    """`correction_records` through the same row rules as landing files (source_kind "correction")."""
    mapping = replace(mapping, id_column="ticket_id", thread_column="thread_id", messages_column="messages",
                      created_column="created_at", csat_column="csat",
                      metadata_columns=(*mapping.metadata_columns, "served_reply", "arm"))
    kept, rejected = [], []
    for row, record in enumerate(records):
        base = {"product": product, "source_file": CORRECTIONS_SOURCE, "source_row": row}
        result = record_to_row(record, mapping, product, CORRECTIONS_SOURCE, row, max_record_chars)
        if "reason" in result:
            rejected.append({**base, **result})
        else:
            kept.append({**base, **result, "source_kind": "correction"})
    return IngestResult(pl.DataFrame(kept, schema=KEPT_SCHEMA), pl.DataFrame(rejected, schema=REJECTED_SCHEMA),
                        len(records))


def suppress_forgotten(result: IngestResult, suppressed: set[str], key: bytes) -> IngestResult:
    """Tickets a `tuneline forget` request removed stay out: each becomes a rejected record `forgotten` with
    neither its text nor its id, so in = kept + rejected still holds and nothing of it is stored."""
    if not suppressed or result.kept.height == 0:
        return result
    from tuneline.cleaning import pseudonym

    mask = result.kept["ticket_id"].map_elements(lambda v: pseudonym(v, key) in suppressed, return_dtype=pl.Boolean)
    if not mask.any():
        return result
    gone = result.kept.filter(mask).select("product", "source_file", "source_row").with_columns(
        pl.lit(None, dtype=pl.String).alias("ticket_id"), pl.lit("forgotten").alias("reason"),
        pl.lit("").alias("raw")).select(list(REJECTED_SCHEMA))
    return IngestResult(result.kept.filter(~mask), pl.concat([result.rejected, gone]), result.records_in,
                        result.files)


def split_by_product(source: Path, landing: Path, product_column: str) -> dict[str, int]:
    """Write one landing file per product from a single export that has a product column (e.g. bitext's
    `category`). Values are lowercased and non-key characters become `_`; a value that still is no valid
    product key (names.product_key), and rows without one, go to `unassigned`: nothing is dropped."""
    raw = read_regular_file(source)
    frame = (pl.read_csv(io.BytesIO(raw), infer_schema=False) if file_format(source.name) == ".csv"
             else pl.read_parquet(io.BytesIO(raw)))
    if product_column not in frame.columns:
        raise ValueError(f"{source.name} has no column {product_column!r}; columns: {frame.columns}")

    def folder_of(value: str | None) -> str:
        candidate = re.sub(r"[^a-z0-9_-]+", "_", (value or "").lower()).strip("_-")
        return candidate if product_key_problem(candidate) is None else "unassigned"

    frame = frame.with_columns(pl.col(product_column).map_elements(folder_of, return_dtype=pl.String,
                                                                  skip_nulls=False).alias("__folder"))
    counts = {}
    for (product,), part in frame.group_by("__folder", maintain_order=True):
        folder = under(landing, product)
        folder.mkdir(parents=True, exist_ok=True)
        stem = source.name.split(".")[0] or "export"
        part.drop("__folder").write_parquet(under(folder, f"{stem}.parquet"))
        counts[product] = part.height
    return counts
