"""Pure validators behind the asset checks; each returns problems (empty = pass)."""

from __future__ import annotations

import polars as pl


def conservation_problems(records_in: int, kept: int, rejected: int) -> list[str]:
    if records_in != kept + rejected:
        return [f"records in ({records_in}) != kept ({kept}) + rejected ({rejected})"]
    return []


def chat_format_problems(records: list[dict], limit: int = 20) -> list[str]:
    """System first, then user/assistant turns, non-empty content, ending on the assistant."""
    problems = []
    for i, record in enumerate(records):
        messages = record.get("messages") or []
        roles = [m.get("role") for m in messages]
        if len(messages) < 3 or roles[0] != "system":
            problems.append(f"example {i}: must start with a system turn and hold a user and an assistant turn")
        elif roles[-1] != "assistant":
            problems.append(f"example {i}: last turn is {roles[-1]!r}, not 'assistant'")
        elif any(r not in ("user", "assistant") for r in roles[1:]):
            problems.append(f"example {i}: unknown role in {roles[1:]}")
        elif any(not (m.get("content") or "").strip() for m in messages):
            problems.append(f"example {i}: empty content")
        if len(problems) >= limit:
            break
    return problems


def split_leakage(splits: pl.DataFrame) -> list[str]:
    """Content hashes or threads that appear in more than one split."""
    problems = []
    for column in ("content_hash", "thread_id"):
        leaked = (splits.group_by(column).agg(pl.col("split").n_unique().alias("n")).filter(pl.col("n") > 1))
        if leaked.height:
            problems.append(f"{leaked.height} {column} value(s) span several splits, e.g. {leaked[column][0]}")
    return problems
