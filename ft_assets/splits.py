"""dataset_splits: stable train/val/test by thread; chat JSONL, Alpaca and HF datasets exports."""

from collections import Counter

import dagster as dg
import polars as pl

from ft_assets.catalog import counts_table, frame_metadata, problems_table, table
from ft_assets.freshness import DATA_FRESHNESS
from ft_assets.partitions import product_check, product_partitions
from ft_resources.models import BaseModel
from ft_resources.pii import PiiEngine
from ft_resources.storage import TunelineStorage
from tuneline.cleaning import cleaning_rules_digest
from tuneline.splits import (
    DEFAULT_SYSTEM_PROMPT,
    EXPORT_SPLITS,
    SplitRatios,
    assign_splits,
    chat_token_lengths,
    corrections_in_train,
    record_digest,
    reusable_token_lengths,
    scanned_clean_strings,
    stratum_ratio_problems,
    strings_of,
    system_prompt_for,
    to_chat_records,
    token_length_problems,
    tokenizer_digest,
    too_long_for_training,
    truncate_at_turn_boundary,
    write_exports,
)
from tuneline.storage import atomic_directory
from tuneline.validators import chat_format_problems, split_leakage


class _ExportsRefused(Exception):
    """Raised inside the staging block so that exports with PII are discarded, never swapped in."""


def strings_in_jsonl(path) -> list[str]:
    """Every string value in a JSONL file (message contents, metadata), as a downstream reader sees them."""
    import json

    with open(path, encoding="utf-8") as fh:
        return [text for line in fh if line.strip() for text in strings_of(json.loads(line))]


class SplitConfig(dg.Config):
    train_ratio: float = 0.8
    val_ratio: float = 0.1
    test_ratio: float = 0.1
    system_prompt: str = DEFAULT_SYSTEM_PROMPT  # "{product}" becomes the product's display name
    display_names: dict[str, str] = {}  # product key -> how prompts name it; default: the key in words
    max_tokens: int = 512  # the training max_length; longer examples are handled as `too_long` says (counted)
    too_long: str = "drop"  # drop: left out of the exports; truncate: cut at a turn boundary, dropped if none fits


@dg.asset(
    partitions_def=product_partitions,
    group_name="curation",
    kinds={"polars", "huggingface"},
    code_version="2",
    automation_condition=dg.AutomationCondition.eager(),
    freshness_policy=DATA_FRESHNESS,
    check_specs=[
        product_check("chat_format", asset="dataset_splits", blocking=True,
                          description="System first, user/assistant turns, non-empty, ends on the assistant, "
                                      "fits max_tokens with the base model's tokenizer."),
        product_check("no_leakage_across_splits", asset="dataset_splits", blocking=True,
                          description="No conversation or thread appears in two splits."),
        product_check("no_pii_in_exports", asset="dataset_splits", blocking=True,
                          description="A re-scan of the JSONL files as written finds no email, phone, card, IBAN, "
                                      "IP or SSN: nothing reaches training or another team's hands. A text "
                                      "the previous re-scan passed under the same PII rules is not scanned "
                                      "twice."),
        product_check("split_ratios_per_topic", asset="dataset_splits",
                          description="Train share per topic within a binomial tolerance of the ratio."),
    ],
)
def dataset_splits(context: dg.AssetExecutionContext, config: SplitConfig, scored_dataset: pl.DataFrame,
                   storage: TunelineStorage, base_model: BaseModel, pii: PiiEngine):
    """Kept conversations with a `split`; exports under `<root>/exports/<product>/`:
    {train,val,test}.jsonl (OpenAI chat), alpaca.json, hf_dataset/ (DatasetDict)."""
    from transformers import AutoTokenizer

    product = context.partition_key
    ratios = SplitRatios(config.train_ratio, config.val_ratio, config.test_ratio)
    splits = assign_splits(scored_dataset, ratios, config.system_prompt, config.display_names)
    records = to_chat_records(splits)
    tokenizer = AutoTokenizer.from_pretrained(base_model.resolve(storage.model_cache))
    if config.too_long not in ("drop", "truncate"):
        raise dg.Failure(f"too_long must be 'drop' or 'truncate', got {config.too_long!r}", allow_retries=False)
    # incremental: an example the previous splits measured with this tokenizer, or whose exported strings the
    # previous PII re-scan passed under the same rules, costs neither again (content-addressed, never by id)
    previous = storage.previous_asset_frame("dataset_splits", product)
    tokenized_with = tokenizer_digest(tokenizer)
    known_lengths = reusable_token_lengths(previous, tokenized_with)
    scan_rules = cleaning_rules_digest("export re-scan", pii.model_dump_json())
    lengths = chat_token_lengths(records, tokenizer, known_lengths)
    tokens = {r["metadata"]["example_id"]: n for r, n in zip(records, lengths, strict=True)}
    too_long = too_long_for_training(records, lengths, config.max_tokens)
    truncated: dict[str, list[dict]] = {}
    if too_long and config.too_long == "truncate":
        for record in records:
            example_id = record["metadata"]["example_id"]
            if example_id in too_long:
                prefix = truncate_at_turn_boundary(record["messages"], tokenizer, config.max_tokens)
                if prefix is not None:
                    truncated[example_id] = prefix
                    record["messages"] = prefix
                    tokens[example_id] = chat_token_lengths([record], tokenizer)[0]
                    del too_long[example_id]
        splits = splits.with_columns(pl.Series("messages", [
            truncated.get(h, m) for h, m in zip(splits["content_hash"], splits["messages"].to_list(), strict=True)],
            dtype=splits.schema["messages"]))
        context.log.info(f"{len(truncated)} examples longer than max_tokens={config.max_tokens} cut at a turn "
                         "boundary")
    if too_long:  # one long ticket must not stop a product: left out, counted, named in the metadata
        context.log.warning(f"{len(too_long)} examples longer than max_tokens={config.max_tokens} left out")
        splits = splits.filter(~pl.col("content_hash").is_in(list(too_long)))
        records = [r for r in records if r["metadata"]["example_id"] not in too_long]
    export_dir = storage.exports_dir(product)
    found: list = []
    try:
        with atomic_directory(export_dir) as staging:  # all exports swap in together: never a mix of two runs
            sizes = write_exports(staging, records)
            # checked in staging: exports with PII are never swapped in; the previous exports stay
            exported = sorted({text for name in EXPORT_SPLITS for text in strings_in_jsonl(staging / f"{name}.jsonl")})
            known_clean = scanned_clean_strings(previous, scan_rules)
            exported_unknown = [t for t in exported if t not in known_clean]
            found = pii.redactor().find_high_confidence(exported_unknown) if exported_unknown else []
            if found:
                raise _ExportsRefused
    except _ExportsRefused:
        context.log.error(f"{len(found)} PII findings in the new exports: they were not published")
    export_uri = storage.publish(export_dir) if not found else None
    final_tokens = [tokens[r["metadata"]["example_id"]] for r in records]
    splits = splits.with_columns(
        pl.Series("record_sha256", [record_digest(r) for r in records], dtype=pl.String),
        pl.Series("chat_tokens", final_tokens, dtype=pl.Int64),
        pl.lit(tokenized_with, dtype=pl.String).alias("tokenized_with"),
        pl.lit(None if found else scan_rules, dtype=pl.String).alias("pii_scanned_with"))
    yield dg.Output(splits, metadata={
        **frame_metadata(splits), **{f"{k}_examples": v for k, v in sizes.items()},
        "export_dir": dg.MetadataValue.path(str(export_dir)),
        **({"export_uri": dg.MetadataValue.url(export_uri)} if export_uri else {}),
        "system_prompt": system_prompt_for(product, config.system_prompt, config.display_names),
        "train_corrections": corrections_in_train(splits),
        "too_long_examples": len(too_long),
        "truncated_examples": len(truncated),
        "too_long": table([{"example_id": k, "tokens": v} for k, v in list(too_long.items())[:20]],
                          ["example_id", "tokens"]),
        "topics": table(topic_split_rows(splits), ["topic", "train", "val", "test"]),
    })
    problems = chat_format_problems(records) + token_length_problems(records, final_tokens, config.max_tokens)
    if problems:  # a blocking check: say why in the log as well as in the check's metadata
        context.log.error(f"{product}: chat_format failed: " + "; ".join(problems[:5]))
    yield dg.AssetCheckResult(check_name="chat_format", passed=not problems,
                              description=f"{product}: {len(problems)} problems in {len(records)} examples",
                              metadata={"product": product, "problems": problems_table(problems)})
    yield dg.AssetCheckResult(check_name="no_pii_in_exports", passed=not found,
                              description=f"{product}: {len(found)} PII findings in {len(exported)} exported texts",
                              metadata={"product": product, "texts_scanned": len(exported_unknown),
                                        "texts_known_clean": len(exported) - len(exported_unknown),
                                        "exports_published": not found,
                                        "found": counts_table(dict(Counter(kind for _, kind, _ in found)), "type",
                                                              "findings")})
    leaks = split_leakage(splits)
    yield dg.AssetCheckResult(check_name="no_leakage_across_splits", passed=not leaks,
                              description=f"{product}: {len(leaks)} conversations or threads in two splits",
                              metadata={"product": product, "problems": problems_table(leaks)})
    skew = stratum_ratio_problems(splits, ratios)
    yield dg.AssetCheckResult(check_name="split_ratios_per_topic", passed=not skew,
                              severity=dg.AssetCheckSeverity.WARN,
                              description=f"{product}: {len(skew)} topics outside the ratio's tolerance",
                              metadata={"product": product, "problems": problems_table(skew)})


def topic_split_rows(splits: pl.DataFrame) -> list[dict]:
    """Examples per topic and split, one row per topic."""
    counts = splits.group_by("topic", "split").len().iter_rows()
    rows: dict[str, dict] = {}
    for topic, split, n in counts:
        rows.setdefault(str(topic), {"topic": str(topic), "train": 0, "val": 0, "test": 0})[split] = n
    return [rows[t] for t in sorted(rows)]
