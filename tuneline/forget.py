"""Forget one customer: remove their tickets from every stored stage, keep a PII-free audit record.

A request names an email or a ticket id. Raw tickets are matched on the id, or on the email anywhere in
the messages or metadata; downstream stages carry pseudonymized ids (`cleaning.pseudonym`), so the same
tickets are found there through the keyed hash. The ids (as keyed hashes) go on a suppression list that
ingestion reads, so a later re-ingest of the same landing files does not bring them back.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from tuneline.cleaning import pseudonym
from tuneline.splits import EXPORT_SPLITS

# assets whose rows carry the raw ticket id, and those carrying its pseudonym
RAW_ID_ASSETS = ("raw_tickets", "rejected_tickets")
PSEUDONYM_ASSETS = ("cleaned_conversations", "near_duplicate_index", "scored_dataset", "dataset_splits")
EXPORT_FILES = tuple(f"{name}.jsonl" for name in EXPORT_SPLITS)


@dataclass
class ForgetReport:
    """What one request removed, per product and stage: counts and keyed hashes only, never the values."""

    request_kind: str
    request_hash: str
    at: float = field(default_factory=time.time)
    removed: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def products(self) -> list[str]:
        return sorted(p for p, counts in self.removed.items() if any(counts.values()))

    def as_json(self) -> dict:
        return {"request_kind": self.request_kind, "request_hash": self.request_hash, "at": self.at,
                "removed": self.removed, "products": self.products}


def matching_raw_ids(raw: pl.DataFrame, email: str | None, ticket_id: str | None) -> set[str]:
    """Raw ticket ids of the customer: the id itself, or every ticket whose text or metadata holds the email."""
    ids: set[str] = set()
    if ticket_id is not None:
        ids |= set(raw.filter(pl.col("ticket_id") == ticket_id)["ticket_id"].to_list())
    if email:
        needle = email.strip().lower()
        text = pl.col("messages").list.eval(pl.element().struct.field("content")).list.join("\n")
        if "metadata" in raw.columns:
            text = text + "\n" + pl.col("metadata").fill_null("")
        ids |= set(raw.filter(text.str.to_lowercase().str.contains(needle, literal=True))["ticket_id"].to_list())
    return ids


def rejected_matches(rejected: pl.DataFrame, email: str | None, ids: set[str]) -> pl.Series:
    """Rows of rejected_tickets that belong to the customer (by id, or the email in the raw record)."""
    mask = pl.col("ticket_id").is_in(list(ids))
    if email:
        mask = mask | pl.col("raw").fill_null("").str.to_lowercase().str.contains(email.strip().lower(), literal=True)
    return rejected.select(mask.fill_null(False)).to_series()


def without_records(path: Path, pseudonyms: set[str]) -> tuple[list[dict], int]:
    """The records of an exported chat JSONL file whose ticket is not among `pseudonyms`, and how many went."""
    kept, removed = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        if record.get("metadata", {}).get("ticket_id") in pseudonyms:
            removed += 1
        else:
            kept.append(record)
    return kept, removed


def pseudonyms_of(ids: set[str], key: bytes) -> set[str]:
    return {pseudonym(i, key) for i in ids}
