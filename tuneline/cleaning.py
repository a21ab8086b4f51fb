"""Normalise text and replace PII in every turn of every conversation."""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import polars as pl

from tuneline.ingest import MESSAGE_DTYPE
from tuneline.pii import PiiRedactor, customer_field_values

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"[ \t\f\v\u00a0]+")
_NEWLINES = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


_QUOTE_HEADER = re.compile(r"^\s*(?:On .{3,120} wrote:|-{2,}\s*Original Message\s*-{2,}|From: .+)\s*$",
                           re.IGNORECASE)
_INTERNAL = re.compile(r"^\s*(?:\[internal\]|internal note:|note to self:|\(internal\)|#internal)", re.IGNORECASE)
_SIGNATURE_START = re.compile(r"^\s*(?:--\s*|sent from my \w+.*|get outlook for \w+.*)$", re.IGNORECASE)
_URL = re.compile(r"\bhttps?://[^\s<>\"']+|\bwww\.[^\s<>\"']+", re.IGNORECASE)


def strip_support_noise(text: str) -> str:
    """Drop internal notes, quoted earlier replies (`>` lines and everything after "On ... wrote:"),
    and signatures (from a `--` line or a "Sent from my phone" line to the end)."""
    kept = []
    for line in text.split("\n"):
        if _QUOTE_HEADER.match(line) or _SIGNATURE_START.match(line):
            break
        if line.lstrip().startswith(">") or _INTERNAL.match(line):
            continue
        kept.append(line)
    return "\n".join(kept).strip()


def standardize_mentions(text: str, product_names: dict[str, str], replace_urls: bool = True) -> str:
    """URLs -> [URL]; product name variants -> their canonical spelling (case-insensitive, whole words)."""
    if replace_urls:
        text = _URL.sub("[URL]", text)
    for variant, canonical in product_names.items():
        text = re.sub(rf"(?<!\w){re.escape(variant)}(?!\w)", canonical, text, flags=re.IGNORECASE)
    return text


def normalize_text(text: str) -> str:
    """NFKC, HTML tags and entities out, control characters out, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    if "<" in text or "&" in text:
        text = html.unescape(_TAG.sub(" ", text))
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "\n".join(_SPACE.sub(" ", line).strip() for line in text.split("\n"))
    return _NEWLINES.sub("\n\n", text).strip()


def clean_text(text: str, product_names: dict[str, str] | None = None, replace_urls: bool = True) -> str:
    """Everything but PII: normalise, drop notes/quotes/signatures, standardise mentions."""
    return standardize_mentions(strip_support_noise(normalize_text(text)), product_names or {}, replace_urls)


def clean_conversations(raw: pl.DataFrame, redactor: PiiRedactor, product_names: dict[str, str] | None = None,
                        replace_urls: bool = True, company_names: Sequence[str] = ()) -> pl.DataFrame:
    """Cleaned, redacted copy of `raw` with per-row PII counts (`pii_entities`, `pii_total`).

    Every text that travels downstream is redacted: the turns, the string values of the metadata
    columns, and the source file name. A turn that is empty after cleaning (only a signature or a
    quote) is dropped; a conversation left without a user or an assistant turn keeps its row and is
    filtered later, never lost. The company's own names (`company_names` and the canonical product names)
    are never redacted.
    """
    conversations = [m if isinstance(m, list) else m.to_list() for m in raw["messages"].to_list()]
    metadata = [json.loads(m) if m else {} for m in raw["metadata"].to_list()] if "metadata" in raw.columns \
        else [{} for _ in conversations]
    sources = raw["source_file"].to_list() if "source_file" in raw.columns else [None] * len(conversations)
    # one group per ticket: its turns, its metadata texts, its file name (one decision per entity in it)
    groups = [[clean_text(turn["content"], product_names, replace_urls) for turn in conv]
              + [_metadata_text(v) for v in meta.values() if _metadata_text(v) is not None]
              + ([source] if source else [])
              for conv, meta, source in zip(conversations, metadata, sources, strict=True)]
    by_ticket = redactor.redact_groups(groups, [customer_field_values(meta) for meta in metadata],
                                       company_names=[*company_names, *(product_names or {}).values()])
    turns_of = [iter(group) for group in by_ticket]
    redacted = iter([next(it) for it, conv in zip(turns_of, conversations, strict=True) for _ in conv]
                    + [next(it) for it, meta in zip(turns_of, metadata, strict=True) for v in meta.values()
                       if _metadata_text(v) is not None]
                    + [next(it) for it, source in zip(turns_of, sources, strict=True) if source])
    cleaned, entity_counts = [], []
    for conv in conversations:
        counts: Counter = Counter()
        turns = []
        for turn in conv:
            result = next(redacted)
            counts.update(result.entities)
            if result.text:
                turns.append({"role": turn["role"], "content": result.text})
        cleaned.append(turns)
        entity_counts.append(counts)
    clean_metadata = []
    for meta, counts in zip(metadata, entity_counts, strict=True):
        scrubbed = {}
        for key, value in meta.items():
            if _metadata_text(value) is not None:  # strings, and nested lists/objects as their JSON text
                result = next(redacted)
                counts.update(result.entities)
                value = result.text
            scrubbed[key] = value
        clean_metadata.append(json.dumps(scrubbed, ensure_ascii=False, sort_keys=True))
    clean_sources = []
    for source, counts in zip(sources, entity_counts, strict=True):
        if source:
            result = next(redacted)
            counts.update(result.entities)
            source = result.text
        clean_sources.append(source)
    columns = [
        pl.Series("messages", cleaned, dtype=MESSAGE_DTYPE),
        pl.Series("pii_entities", [json.dumps(dict(sorted(c.items()))) for c in entity_counts], dtype=pl.String),
        pl.Series("pii_total", [sum(c.values()) for c in entity_counts], dtype=pl.Int64),
    ]
    if "metadata" in raw.columns:
        columns.append(pl.Series("metadata", clean_metadata, dtype=pl.String))
    if "source_file" in raw.columns:
        columns.append(pl.Series("source_file", clean_sources, dtype=pl.String))
    return raw.with_columns(columns)


def _metadata_text(value: object) -> str | None:
    """The text of a metadata value to redact: strings, and lists/objects as JSON (numbers need none)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return None


def pseudonym(value: str, key: bytes) -> str:
    """A keyed hash of an identifier: stable for one key (splits and lineage keep working), and without
    the key nobody can test a guess (an email used as a ticket id) against it."""
    return hmac.new(key, value.encode("utf-8"), hashlib.sha256).hexdigest()[:20]


def _timestamp_or_none(value: str | None) -> str | None:
    """An ISO date/time as normalised text; anything else (free text can hold PII) becomes null."""
    from datetime import datetime

    if not value:
        return None
    try:
        return datetime.fromisoformat(value.strip().replace("Z", "+00:00")).isoformat()
    except ValueError:
        return None


# the code that decides what a cleaned row looks like: a change to any of these files is a rule change
RULE_MODULES = ("cleaning.py", "pii.py", "pii_context.py", "pii_recognizers.py", "names.py", "pii_name_filter.py",
                "pii_name_filter.sha256")
RULE_PACKAGES = ("presidio-analyzer", "spacy", "scikit-learn")


def cleaning_rules_digest(*settings: str) -> str:
    """One digest of everything that decides a cleaned row besides the row itself: the `settings` (cleaning
    and PII configuration, company names, a digest of the pseudonym key), the source of the rule modules and
    the versions of the NER packages. A rule change of any kind changes it, so nothing cleaned under the old
    rules is reused."""
    from importlib.metadata import version

    digest = hashlib.sha256()
    for part in settings:
        digest.update(part.encode() + b"\x00")
    here = Path(__file__).parent
    for module in RULE_MODULES:
        digest.update((here / module).read_bytes())
    for package in RULE_PACKAGES:
        digest.update(f"{package}=={version(package)}".encode())
    return digest.hexdigest()


def row_digests(raw: pl.DataFrame, rules: str) -> list[str]:
    """Per raw row: a digest of the whole row (turns, metadata, ids, file) under `rules`."""
    return [hashlib.sha256((rules + json.dumps(row, sort_keys=True, default=str)).encode()).hexdigest()
            for row in raw.iter_rows(named=True)]


def clean_incrementally(raw: pl.DataFrame, previous: pl.DataFrame | None, rules: str,
                        clean: Callable[[pl.DataFrame], pl.DataFrame]) -> tuple[pl.DataFrame, int]:
    """`clean(raw)`, doing the work only for rows the `previous` cleaned frame does not hold under the same
    rules (content-addressed by `raw_digest`): new tickets cost in proportion to the new tickets. Rows keep
    raw's order. Returns the frame (with `raw_digest`) and how many rows were reused."""
    digests = row_digests(raw, rules)
    known: dict[str, int] = {}
    if previous is not None and "raw_digest" in previous.columns:
        known = {d: i for i, d in enumerate(previous["raw_digest"].to_list())}
    fresh_at = [i for i, d in enumerate(digests) if d not in known]
    reused_at = [i for i, d in enumerate(digests) if d in known]
    parts = []
    if reused_at:
        parts.append(previous[[known[digests[i]] for i in reused_at]].with_columns(
            pl.Series("_order", reused_at, dtype=pl.Int64)))
    if fresh_at or not parts:
        fresh = clean(raw[fresh_at])
        parts.append(fresh.with_columns(pl.Series("raw_digest", [digests[i] for i in fresh_at], dtype=pl.String),
                                        pl.Series("_order", fresh_at, dtype=pl.Int64)))
    combined = pl.concat(parts, how="diagonal_relaxed").sort("_order").drop("_order")
    return combined, len(reused_at)


def pseudonymize_identifiers(frame: pl.DataFrame, key: bytes) -> pl.DataFrame:
    """After raw_tickets nothing carries a source identifier: ticket and thread ids become keyed hashes,
    `created_at` keeps only a parseable timestamp."""
    columns = []
    for name in ("ticket_id", "thread_id"):
        if name in frame.columns:
            columns.append(frame[name].map_elements(lambda v: pseudonym(v, key), return_dtype=pl.String))
    if "created_at" in frame.columns:
        columns.append(frame["created_at"].map_elements(_timestamp_or_none, return_dtype=pl.String,
                                                        skip_nulls=False))
    return frame.with_columns(columns) if columns else frame


def count_entities(cleaned: pl.DataFrame) -> dict[str, int]:
    """Totals per entity type across a cleaned frame (parsed back from `pii_entities`)."""
    total: Counter = Counter()
    for value in cleaned["pii_entities"].to_list():
        total.update(json.loads(value))
    return dict(sorted(total.items()))
