"""Filters, deduplication and a quality score: fewer good examples beat many noisy ones.

Every conversation keeps a row; `status` is "kept" or the reason it was filtered, so
the funnel is auditable and nothing disappears silently.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import polars as pl

KEPT = "kept"
_WORD = re.compile(r"\w+", re.UNICODE)
_RESOLUTION = re.compile(
    r"\b(i have|i've|you can|go to|within|will|refund|sent|updated|issued|choose|click|settings)\b", re.I)


@dataclass(frozen=True)
class CurationRules:
    min_chars: int = 50
    languages: tuple[str, ...] = ("en",)
    near_dup_threshold: float = 0.8
    shingle_words: int = 5
    num_perm: int = 128
    min_quality: float = 0.3


def conversation_text(messages: list[dict]) -> str:
    return "\n".join(f"{m['role']}: {m['content']}" for m in messages)


def normalized_for_dedup(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


def content_hash(text: str) -> str:
    return hashlib.sha256(normalized_for_dedup(text).encode()).hexdigest()[:16]


def detect_language(texts: list[str]) -> list[str]:
    """ISO codes from py3langid, whose model ships inside the package."""
    import py3langid

    return [py3langid.classify(t)[0] for t in texts]


def quality_score(user: str, assistant: str) -> float:
    """Heuristic 0..1: sane length ratio, no repetition, signs the reply resolves something."""
    words = _WORD.findall(assistant.lower())
    if not words:
        return 0.0
    ratio = len(assistant) / max(len(user), 1)
    length_ok = 1.0 if 0.5 <= ratio <= 8 else 0.4
    distinct = len(set(words)) / len(words)
    repetition_ok = min(1.0, distinct / 0.6)
    resolves = 1.0 if _RESOLUTION.search(assistant) else 0.3
    substantive = min(1.0, len(words) / 20)
    return round((length_ok + repetition_ok + resolves + substantive) / 4, 4)


def near_duplicate_of(texts: list[str], rules: CurationRules) -> list[int | None]:
    """For each text, the index of an earlier near-duplicate (MinHash LSH), else None."""
    from datasketch import MinHash, MinHashLSH

    # Weighted towards recall: a missed duplicate costs more (memorised, leaks across splits) than a dropped one.
    lsh = MinHashLSH(threshold=rules.near_dup_threshold, num_perm=rules.num_perm, weights=(0.3, 0.7))
    result: list[int | None] = []
    for i, text in enumerate(texts):
        words = _WORD.findall(text.lower())
        n = rules.shingle_words
        shingles = {" ".join(words[j:j + n]) for j in range(max(1, len(words) - n + 1))}
        mh = MinHash(num_perm=rules.num_perm)
        mh.update_batch([s.encode() for s in shingles])
        hits = lsh.query(mh)
        result.append(min(int(h) for h in hits) if hits else None)
        if not hits:
            lsh.insert(str(i), mh)
    return result


def score_conversations(cleaned: pl.DataFrame, rules: CurationRules = CurationRules()) -> pl.DataFrame:
    """Add text, language, hash, quality and a `status` per row; filters apply in funnel order."""
    conversations = [m if isinstance(m, list) else m.to_list() for m in cleaned["messages"].to_list()]
    texts = [conversation_text(c) for c in conversations]
    users = [" ".join(t["content"] for t in c if t["role"] == "user") for c in conversations]
    replies = [" ".join(t["content"] for t in c if t["role"] == "assistant") for c in conversations]
    languages = detect_language(texts)
    hashes = [content_hash(t) for t in texts]
    scores = [quality_score(u, a) for u, a in zip(users, replies, strict=True)]

    status: list[str] = []
    seen_hashes: set[str] = set()
    survivors: list[int] = []
    for i in range(len(texts)):
        chars = len(users[i]) + len(replies[i])
        if chars < rules.min_chars:
            status.append("too_short")
        elif languages[i] not in rules.languages:
            status.append(f"language_{languages[i]}")
        elif hashes[i] in seen_hashes:
            status.append("exact_duplicate")
        else:
            seen_hashes.add(hashes[i])
            status.append(KEPT)
            survivors.append(i)
    near = near_duplicate_of([texts[i] for i in survivors], rules)
    for position, earlier in enumerate(near):
        if earlier is not None:
            status[survivors[position]] = "near_duplicate"
    for i in range(len(status)):
        if status[i] == KEPT and scores[i] < rules.min_quality:
            status[i] = "low_quality"
    return cleaned.with_columns(
        pl.Series("conversation_text", texts, dtype=pl.String),
        pl.Series("language", languages, dtype=pl.String),
        pl.Series("content_hash", hashes, dtype=pl.String),
        pl.Series("quality_score", scores, dtype=pl.Float64),
        pl.Series("status", status, dtype=pl.String),
    )


FUNNEL_STAGES = (("raw", ()), ("after_length", ("too_short",)), ("after_language", ("language_",)),
                 ("after_dedup", ("exact_duplicate", "near_duplicate")), ("final", ("low_quality",)))


def funnel(scored: pl.DataFrame) -> dict[str, int]:
    """Rows surviving each stage, in order: raw -> ... -> final."""
    statuses = scored["status"].to_list()
    remaining = len(statuses)
    result = {}
    for stage, prefixes in FUNNEL_STAGES:
        remaining -= sum(1 for s in statuses if prefixes and s.startswith(prefixes))
        result[stage] = remaining
    return result
