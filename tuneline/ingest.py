"""Read landing files into conversations; quarantine every unusable record with a reason.

The invariant this module guarantees, and the asset check verifies: for each file,
records in = kept + rejected. A whole unreadable file counts as one rejected record.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

SUPPORTED_SUFFIXES = (".csv", ".jsonl", ".ndjson", ".parquet", ".md")

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


def record_to_row(record: object, mapping: ColumnMapping, product: str, source: str, row: int) -> dict:
    """Turn one source record into a kept row, or a rejected row (has a `reason` key)."""
    raw = json.dumps(record, ensure_ascii=False, default=str)[:10_000]
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


def _iter_records(path: Path) -> list[tuple[int, object]]:
    """(row number, record) pairs; a JSON line that does not parse yields its raw text wrapped in an error."""
    if path.suffix == ".csv":
        text, _ = decode_export(path.read_bytes())
        if not text.strip():
            raise ValueError("empty file")
        frame = pl.read_csv(io.StringIO(text), infer_schema=False)
        return list(enumerate(frame.to_dicts(), start=1))
    if path.suffix == ".parquet":
        return list(enumerate(pl.read_parquet(path).to_dicts(), start=1))
    if path.suffix == ".md":
        return kb_article_to_records(decode_export(path.read_bytes())[0])
    records: list[tuple[int, object]] = []
    text, _ = decode_export(path.read_bytes())
    if not text.strip():
        raise ValueError("empty file")
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as exc:
            records.append((number, _MalformedLine(line, str(exc))))
    return records


@dataclass(frozen=True)
class _MalformedLine:
    text: str
    error: str


def ingest_file(path: Path, product: str, mapping: ColumnMapping = ColumnMapping()) -> IngestResult:
    """Ingest one landing file. Never raises for bad content: it quarantines."""
    source = path.name
    try:
        records = _iter_records(path)
    except (pl.exceptions.PolarsError, UnicodeDecodeError, OSError, ValueError) as exc:
        rejected = [{"product": product, "source_file": source, "source_row": None, "ticket_id": None,
                     "reason": "unreadable_file", "raw": f"{type(exc).__name__}: {exc}"[:2000]}]
        return IngestResult(pl.DataFrame(schema=KEPT_SCHEMA), pl.DataFrame(rejected, schema=REJECTED_SCHEMA), 1)
    kept, rejected = [], []
    is_kb = path.suffix == ".md"
    for row, record in records:
        if is_kb:
            record = {mapping.id_column: stable_id(product, source, row), mapping.user_column: record["question"],
                      mapping.assistant_column: record["answer"]}
        if isinstance(record, _MalformedLine):
            rejected.append({"product": product, "source_file": source, "source_row": row, "ticket_id": None,
                             "reason": "malformed_json", "raw": record.text[:10_000]})
            continue
        result = record_to_row(record, mapping, product, source, row)
        base = {"product": product, "source_file": source, "source_row": row}
        if "reason" in result:
            rejected.append({**base, **result})
        else:
            if is_kb:
                result["source_kind"] = "kb"
            kept.append({**base, **result})
    return IngestResult(pl.DataFrame(kept, schema=KEPT_SCHEMA), pl.DataFrame(rejected, schema=REJECTED_SCHEMA),
                        len(records))


def list_landing_files(product_dir: Path) -> list[Path]:
    return sorted(p for p in product_dir.iterdir() if p.is_file() and p.suffix.lower() in SUPPORTED_SUFFIXES
                  and not p.name.startswith("."))


def ingest_product(product_dir: Path, product: str, mapping: ColumnMapping = ColumnMapping()) -> IngestResult:
    """All files of one product, in name order. Rows sharing a ticket_id keep the first; later ones are rejected."""
    results = [ingest_file(p, product, mapping) for p in list_landing_files(product_dir)]
    kept = pl.concat([r.kept for r in results]) if results else pl.DataFrame(schema=KEPT_SCHEMA)
    rejected = pl.concat([r.rejected for r in results]) if results else pl.DataFrame(schema=REJECTED_SCHEMA)
    duplicate_id = kept.select(pl.col("ticket_id").is_duplicated() & ~pl.col("ticket_id").is_first_distinct())
    duplicate_mask = duplicate_id.to_series()
    if duplicate_mask.any():
        dupes = kept.filter(duplicate_mask)
        rejected = pl.concat([rejected, dupes.select(
            "product", "source_file", "source_row", "ticket_id",
            pl.lit("duplicate_ticket_id").alias("reason"),
            pl.col("messages").map_elements(lambda m: json.dumps(m.to_list() if hasattr(m, "to_list") else m,
                                                                 ensure_ascii=False),
                                            return_dtype=pl.String).alias("raw"))])
        kept = kept.filter(~duplicate_mask)
    return IngestResult(kept, rejected, sum(r.records_in for r in results))


def split_by_product(source: Path, landing: Path, product_column: str) -> dict[str, int]:
    """Write one landing file per product from a single export that has a product column (e.g. bitext's
    `category`). Rows without a product go to `_unassigned` so that nothing is dropped."""
    frame = pl.read_csv(source, infer_schema=False) if source.suffix == ".csv" else pl.read_parquet(source)
    if product_column not in frame.columns:
        raise ValueError(f"{source} has no column {product_column!r}; columns: {frame.columns}")
    counts = {}
    frame = frame.with_columns(pl.col(product_column).fill_null("_unassigned").str.to_lowercase())
    for (product,), part in frame.group_by(product_column, maintain_order=True):
        folder = landing / re.sub(r"[^a-z0-9_-]+", "_", product)
        folder.mkdir(parents=True, exist_ok=True)
        part.write_parquet(folder / f"{source.stem}.parquet")
        counts[folder.name] = part.height
    return counts
