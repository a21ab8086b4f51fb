"""Normalise text and replace PII in every turn of every conversation."""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections import Counter

import polars as pl

from tuneline.ingest import MESSAGE_DTYPE
from tuneline.pii import PiiRedactor

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"[ \t\f\v\u00a0]+")
_NEWLINES = re.compile(r"\n{3,}")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def normalize_text(text: str) -> str:
    """NFKC, HTML tags and entities out, control characters out, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text)
    if "<" in text or "&" in text:
        text = html.unescape(_TAG.sub(" ", text))
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = "\n".join(_SPACE.sub(" ", line).strip() for line in text.split("\n"))
    return _NEWLINES.sub("\n\n", text).strip()


def clean_conversations(raw: pl.DataFrame, redactor: PiiRedactor) -> pl.DataFrame:
    """Normalised, redacted copy of `raw` with per-row PII counts (`pii_entities`, `pii_total`)."""
    conversations = [m if isinstance(m, list) else m.to_list() for m in raw["messages"].to_list()]
    flat = [normalize_text(turn["content"]) for conv in conversations for turn in conv]
    redacted = iter(redactor.redact_many(flat))
    cleaned, entity_counts = [], []
    for conv in conversations:
        counts: Counter = Counter()
        turns = []
        for turn in conv:
            result = next(redacted)
            counts.update(result.entities)
            turns.append({"role": turn["role"], "content": result.text})
        cleaned.append(turns)
        entity_counts.append(dict(counts))
    return raw.with_columns(
        pl.Series("messages", cleaned, dtype=MESSAGE_DTYPE),
        pl.Series("pii_entities", [json.dumps(dict(sorted(c.items()))) for c in entity_counts], dtype=pl.String),
        pl.Series("pii_total", [sum(c.values()) for c in entity_counts], dtype=pl.Int64),
    )


def count_entities(cleaned: pl.DataFrame) -> dict[str, int]:
    """Totals per entity type across a cleaned frame (parsed back from `pii_entities`)."""
    total: Counter = Counter()
    for value in cleaned["pii_entities"].to_list():
        total.update(json.loads(value))
    return dict(sorted(total.items()))
