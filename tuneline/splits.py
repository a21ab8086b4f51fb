"""Deterministic splits by thread, and chat-format exports with the system prompt in every example."""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from tuneline.curation import KEPT
from tuneline.names import product_display_name

DEFAULT_SYSTEM_PROMPT = ("You are a helpful, accurate and polite customer-support agent for {product}. "
                         "Answer the customer's request with concrete next steps.")


@dataclass(frozen=True)
class SplitRatios:
    train: float = 0.8
    val: float = 0.1
    test: float = 0.1

    def __post_init__(self):
        if min(self.train, self.val, self.test) < 0 or abs(self.train + self.val + self.test - 1) > 1e-9:
            raise ValueError(f"split ratios must be non-negative and sum to 1, got {self}")


def split_for_thread(thread_id: str, ratios: SplitRatios, salt: str = "tuneline-v1") -> str:
    """A thread's split depends only on its id: stable when new tickets arrive, never spans splits."""
    bucket = int(hashlib.sha256(f"{salt}:{thread_id}".encode()).hexdigest()[:12], 16) / 16**12
    if bucket < ratios.train:
        return "train"
    return "val" if bucket < ratios.train + ratios.val else "test"


def system_prompt_for(product: str, template: str = DEFAULT_SYSTEM_PROMPT,
                      display_names: Mapping[str, str] | None = None) -> str:
    """The system prompt a product's examples are trained and served with: the product by its display name
    (never the partition key), so one shared adapter can learn what products have in common and apart."""
    return template.replace("{product}", product_display_name(product, display_names))


def assign_splits(scored: pl.DataFrame, ratios: SplitRatios = SplitRatios(),
                  system_prompt: str = DEFAULT_SYSTEM_PROMPT,
                  display_names: Mapping[str, str] | None = None) -> pl.DataFrame:
    """Kept rows only, with `split`; `messages` become full chats with the product's system prompt first."""
    kept = scored.filter(pl.col("status") == KEPT)
    chats = [[{"role": "system", "content": system_prompt_for(product, system_prompt, display_names)}]
             + list(messages)
             for product, messages in zip(kept["product"].to_list(), kept["messages"].to_list(), strict=True)]
    return kept.with_columns(
        pl.Series("messages", chats, dtype=kept.schema["messages"]),
        pl.col("thread_id").map_elements(lambda t: split_for_thread(t, ratios), return_dtype=pl.String)
        .alias("split"))


def to_chat_records(splits: pl.DataFrame) -> list[dict]:
    """OpenAI chat JSONL records: messages (system first), split, metadata for lineage."""
    records = []
    for row in splits.iter_rows(named=True):
        records.append({
            "messages": list(row["messages"]),
            "split": row["split"],
            "metadata": {"example_id": row["content_hash"], "ticket_id": row["ticket_id"],
                         "thread_id": row["thread_id"], "product": row["product"],
                         "quality_score": row["quality_score"], "topic": row.get("topic")},
        })
    return records


def to_alpaca(records: list[dict]) -> list[dict]:
    """Alpaca format: system prompt as instruction, the last user turn as input, the reply as output;
    earlier turns are folded into the input so multi-turn context is not lost."""
    rows = []
    for record in records:
        messages = record["messages"]
        history = messages[1:-1]
        context = "\n".join(f"{m['role']}: {m['content']}" for m in history[:-1])
        last_user = history[-1]["content"] if history else ""
        rows.append({"instruction": messages[0]["content"],
                     "input": f"{context}\nuser: {last_user}".strip() if context else last_user,
                     "output": messages[-1]["content"], "split": record["split"],
                     "example_id": record["metadata"]["example_id"]})
    return rows


def stratum_ratio_problems(splits: pl.DataFrame, ratios: SplitRatios, column: str = "topic",
                           min_size: int = 30) -> list[str]:
    """Per stratum with at least `min_size` examples, the train share must lie within a binomial 3-sigma
    band (+2 points) of the configured ratio: hashing threads is stable, and stratified in expectation."""
    problems = []
    for (stratum,), part in splits.group_by(column):
        n = part.height
        if n < min_size:
            continue
        share = (part["split"] == "train").sum() / n
        tolerance = 3 * (ratios.train * (1 - ratios.train) / n) ** 0.5 + 0.02
        if abs(share - ratios.train) > tolerance:
            problems.append(f"{column}={stratum}: train share {share:.2f} vs {ratios.train:.2f} (n={n})")
    return problems


def corrections_in_train(splits: pl.DataFrame) -> int:
    """Training examples that are corrected replies from serving (source_kind "correction"): what the
    retraining policy counts apart, as direct evidence of answers that were wrong."""
    if "source_kind" not in splits.columns:
        return 0
    return splits.filter((pl.col("split") == "train") & (pl.col("source_kind") == "correction")).height


def record_digest(record: dict) -> str:
    """What decides an example's token length: its messages, exactly as training reads them."""
    return hashlib.sha256(json.dumps(record["messages"], sort_keys=True).encode()).hexdigest()


def tokenizer_digest(tokenizer) -> str:
    """The tokenizer as lengths depend on it: its vocabulary and merges, and its chat template."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    vocabulary = backend.to_str() if backend is not None else json.dumps(tokenizer.get_vocab(), sort_keys=True)
    return hashlib.sha256((vocabulary + "\x00" + (tokenizer.chat_template or "")).encode()).hexdigest()


def chat_token_lengths(records: list[dict], tokenizer, known: Mapping[str, int] | None = None) -> list[int]:
    """Each record's length in tokens as training sees it: the chat template applied to all its turns.
    `known` ({record_digest: tokens}, measured with the same tokenizer) spares the unchanged examples."""
    known = known or {}
    lengths = []
    for record in records:
        length = known.get(record_digest(record))
        if length is None:
            ids = tokenizer.apply_chat_template(record["messages"], tokenize=True, return_dict=True)["input_ids"]
            length = len(ids)
        lengths.append(length)
    return lengths


def reusable_token_lengths(previous: pl.DataFrame | None, tokenizer_sha256: str) -> dict[str, int]:
    """{record_digest: tokens} from the previous dataset_splits, when it was measured with this tokenizer."""
    if previous is None or not {"record_sha256", "chat_tokens", "tokenized_with"} <= set(previous.columns):
        return {}
    same = previous.filter(pl.col("tokenized_with") == tokenizer_sha256)
    return dict(zip(same["record_sha256"].to_list(), same["chat_tokens"].to_list(), strict=True))


def token_length_problems(records: list[dict], lengths: list[int], max_tokens: int, limit: int = 20) -> list[str]:
    """Examples whose chat-templated length exceeds what training will see."""
    problems = []
    for record, length in zip(records, lengths, strict=True):
        if length > max_tokens:
            problems.append(f"{record['metadata']['example_id']}: {length} tokens > {max_tokens}")
            if len(problems) >= limit:
                break
    return problems


_EXAMPLE_ID = re.compile(r"[0-9a-f]{16}")  # content_hash: the first 16 hex digits of a sha256


def strings_of(value) -> list[str]:
    """Every string value in a JSON-like value (message contents, metadata), as a downstream reader sees it,
    except the example ids tuneline derives itself: a 16-hex-digit digest made only of decimal digits passes
    the Luhn check one time in ten and reads as a card number (about one example in 18,000 would block its
    product's exports). An `example_id` that is not such a digest is scanned like any other string."""
    found: list[str] = []

    def walk(item):
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            for key, nested in item.items():
                if key == "example_id" and isinstance(nested, str) and _EXAMPLE_ID.fullmatch(nested):
                    continue
                walk(nested)
        elif isinstance(item, list):
            for nested in item:
                walk(nested)

    walk(value)
    return found


def scanned_clean_strings(previous: pl.DataFrame | None, scan_rules: str) -> set[str]:
    """The strings of the previous exports that the PII re-scan passed under the same rules (`scan_rules`,
    recorded per row only when the exports were published): they need no second scan."""
    if previous is None or "pii_scanned_with" not in previous.columns:
        return set()
    clean = previous.filter(pl.col("pii_scanned_with") == scan_rules)
    return {text for record in to_chat_records(clean) for text in strings_of(json.loads(json.dumps(record)))}


def too_long_for_training(records: list[dict], lengths: list[int], max_tokens: int) -> dict[str, int]:
    """{example_id: tokens} of the examples longer than training's max length. They are left out of the
    exports (a reply cut mid-sentence would teach the model to stop there), never a reason to stop a product."""
    return {r["metadata"]["example_id"]: n for r, n in zip(records, lengths, strict=True) if n > max_tokens}


def truncate_at_turn_boundary(messages: list[dict], tokenizer, max_tokens: int) -> list[dict] | None:
    """The longest prefix of a conversation that ends on an agent reply and fits `max_tokens`, or None when
    not even the first exchange fits. Turns are kept whole: no reply is cut mid-sentence."""
    for end in range(len(messages) - 1, 1, -1):
        if messages[end]["role"] != "assistant":
            continue
        prefix = list(messages[:end + 1])
        if len(tokenizer.apply_chat_template(prefix, tokenize=True, return_dict=True)["input_ids"]) <= max_tokens:
            return prefix
    return None


EXPORT_SPLITS = ("train", "val", "test")


def write_exports(directory: Path, records: list[dict]) -> dict[str, int]:
    """The exports of chat records into `directory`: {train,val,test}.jsonl (OpenAI chat), alpaca.json and
    hf_dataset/ (a DatasetDict). Returns the examples per split."""
    from datasets import Dataset, DatasetDict

    from tuneline.storage import atomic_write_json, atomic_write_jsonl

    by_split = {name: [r for r in records if r["split"] == name] for name in EXPORT_SPLITS}
    for name, chosen in by_split.items():
        atomic_write_jsonl(directory / f"{name}.jsonl", chosen)
    atomic_write_json(directory / "alpaca.json", to_alpaca(records))
    DatasetDict({name: Dataset.from_list([
        {"messages": r["messages"], "example_id": r["metadata"]["example_id"],
         "ticket_id": r["metadata"]["ticket_id"], "split": r["split"]} for r in chosen])
        for name, chosen in by_split.items() if chosen}).save_to_disk(str(directory / "hf_dataset"))
    return {name: len(chosen) for name, chosen in by_split.items()}


@dataclass
class SplitPart:
    """One part of dataset_splits: its rows (kept examples with `split`, token length, the exported JSONL line
    and Alpaca row) and what its checks need later without the rows."""

    frame: pl.DataFrame
    too_long: dict[str, int]
    truncated: int
    problems: list[str]
    pii_found: dict[str, int]
    texts: int
    texts_scanned: int


def split_part(scored: pl.DataFrame, ratios: SplitRatios, system_prompt: str, display_names: Mapping[str, str],
               tokenizer, max_tokens: int, too_long_mode: str, tokenized_with: str, scan_rules: str,
               previous: pl.DataFrame | None, find_pii: Callable[[list[str]], list]) -> SplitPart:
    """Split, measure, export and PII-scan one part of scored_dataset. `previous` (earlier splits rows of the
    same source) spares measuring and scanning what it holds under the same tokenizer and PII rules."""
    from tuneline.validators import chat_format_problems
    splits = assign_splits(scored, ratios, system_prompt, display_names)
    records = to_chat_records(splits)
    lengths = chat_token_lengths(records, tokenizer, reusable_token_lengths(previous, tokenized_with))
    tokens = {r["metadata"]["example_id"]: n for r, n in zip(records, lengths, strict=True)}
    too_long = too_long_for_training(records, lengths, max_tokens)
    truncated: dict[str, list[dict]] = {}
    if too_long and too_long_mode == "truncate":
        for record in records:
            example_id = record["metadata"]["example_id"]
            if example_id in too_long:
                prefix = truncate_at_turn_boundary(record["messages"], tokenizer, max_tokens)
                if prefix is not None:
                    truncated[example_id] = prefix
                    record["messages"] = prefix
                    tokens[example_id] = chat_token_lengths([record], tokenizer)[0]
                    del too_long[example_id]
        splits = splits.with_columns(pl.Series("messages", [
            truncated.get(h, m) for h, m in zip(splits["content_hash"], splits["messages"].to_list(), strict=True)],
            dtype=splits.schema["messages"]))
    if too_long:  # one long ticket must not stop a product: left out, counted, named in the metadata
        splits = splits.filter(~pl.col("content_hash").is_in(list(too_long)))
        records = [r for r in records if r["metadata"]["example_id"] not in too_long]
    lines = [json.dumps(r, ensure_ascii=False) for r in records]
    # the re-scan reads each line as a reader of the JSONL file will: every string in it
    exported = sorted({text for line in lines for text in strings_of(json.loads(line))})
    known_clean = scanned_clean_strings(previous, scan_rules)
    unknown = [t for t in exported if t not in known_clean]
    found = find_pii(unknown) if unknown else []
    final_tokens = [tokens[r["metadata"]["example_id"]] for r in records]
    frame = splits.with_columns(
        pl.Series("record_sha256", [record_digest(r) for r in records], dtype=pl.String),
        pl.Series("chat_tokens", final_tokens, dtype=pl.Int64),
        pl.lit(tokenized_with, dtype=pl.String).alias("tokenized_with"),
        pl.lit(None if found else scan_rules, dtype=pl.String).alias("pii_scanned_with"),
        pl.Series("record_json", lines, dtype=pl.String),
        pl.Series("alpaca_json", [json.dumps(a, ensure_ascii=False) for a in to_alpaca(records)], dtype=pl.String))
    return SplitPart(frame, too_long, len(truncated),
                     chat_format_problems(records) + token_length_problems(records, final_tokens, max_tokens),
                     dict(Counter(kind for _, kind, _ in found)), len(exported), len(unknown))


def write_exports_from_parts(directory: Path, parts) -> dict[str, int]:
    """The exports of dataset_splits' parts (frames with split, record_json, alpaca_json, messages,
    content_hash, ticket_id), written part by part from the lines stored in them: {train,val,test}.jsonl,
    alpaca.json and hf_dataset/ (a DatasetDict from Arrow streams written part by part and memory-mapped:
    no Python objects per example, one part in memory at a time). Returns the examples per split."""
    import shutil

    import pyarrow.ipc
    from datasets import Dataset, DatasetDict

    sizes = dict.fromkeys(EXPORT_SPLITS, 0)
    arrow_dir = directory / ".arrow-streams"  # inside the staging directory, removed before it is swapped in
    arrow_dir.mkdir()
    streams: dict[str, object] = {}
    handles = {name: open(directory / f"{name}.jsonl", "w", encoding="utf-8") for name in EXPORT_SPLITS}
    try:
        with open(directory / "alpaca.json", "w", encoding="utf-8") as alpaca:
            alpaca.write("[")
            first = True
            for frame in parts:
                for row in frame["alpaca_json"].to_list():
                    alpaca.write(("" if first else ",\n") + row)
                    first = False
                for name in EXPORT_SPLITS:
                    chosen = frame.filter(pl.col("split") == name)
                    if chosen.height:
                        handles[name].write("\n".join(chosen["record_json"].to_list()) + "\n")
                        sizes[name] += chosen.height
                        table = chosen.select("messages", pl.col("content_hash").alias("example_id"), "ticket_id",
                                              "split").to_arrow()
                        if name not in streams:
                            streams[name] = pyarrow.ipc.new_stream(str(arrow_dir / f"{name}.arrow"), table.schema)
                        streams[name].write_table(table)
            alpaca.write("]\n")
    finally:
        for handle in [*handles.values(), *streams.values()]:
            handle.close()
    DatasetDict({name: Dataset.from_file(str(arrow_dir / f"{name}.arrow")) for name in EXPORT_SPLITS
                 if name in streams}).save_to_disk(str(directory / "hf_dataset"))
    shutil.rmtree(arrow_dir)
    return sizes
