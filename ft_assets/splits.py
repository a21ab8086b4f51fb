"""dataset_splits: stable train/val/test by thread; chat JSONL, Alpaca and HF datasets exports."""

from collections import Counter

import dagster as dg
import polars as pl

from ft_assets.catalog import counts_table, parts_metadata, problems_table, table
from ft_assets.freshness import DATA_FRESHNESS
from ft_assets.partitions import product_check, product_partitions
from ft_resources.models import BaseModel
from ft_resources.pii import PiiEngine
from ft_resources.storage import TunelineStorage
from tuneline.cleaning import cleaning_rules_digest
from tuneline.parts import PartedFrame, Spill, part_key
from tuneline.splits import (
    DEFAULT_SYSTEM_PROMPT,
    EXPORT_SPLITS,
    SplitRatios,
    corrections_in_train,
    split_part,
    stratum_ratio_problems,
    system_prompt_for,
    tokenizer_digest,
    write_exports_from_parts,
)
from tuneline.storage import atomic_directory
from tuneline.validators import split_leakage


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
def dataset_splits(context: dg.AssetExecutionContext, config: SplitConfig, scored_dataset: PartedFrame,
                   storage: TunelineStorage, base_model: BaseModel, pii: PiiEngine):
    """Kept conversations with a `split`, one part per scored part; exports under `<root>/exports/<product>/`:
    {train,val,test}.jsonl (OpenAI chat), alpaca.json, hf_dataset/ (DatasetDict). Incremental: a part made
    before under the same settings, tokenizer and PII rules is carried over unread (its JSONL lines are stored
    in it); in a new part, token lengths and the PII re-scan of strings an earlier part of the same source
    holds are reused (content-addressed, never by id). The exports are rewritten whole from the parts' lines."""
    from transformers import AutoTokenizer

    product = context.partition_key
    ratios = SplitRatios(config.train_ratio, config.val_ratio, config.test_ratio)
    if config.too_long not in ("drop", "truncate"):
        raise dg.Failure(f"too_long must be 'drop' or 'truncate', got {config.too_long!r}", allow_retries=False)
    tokenizer = AutoTokenizer.from_pretrained(base_model.resolve(storage.model_cache))
    tokenized_with = tokenizer_digest(tokenizer)
    scan_rules = cleaning_rules_digest("export re-scan", pii.model_dump_json())
    seed = part_key(config.model_dump(), tokenized_with, scan_rules, splits_code_digest())
    previous = storage.previous_parts("dataset_splits", product) or PartedFrame([])
    spill = Spill(storage.work_dir(product))
    parts = []
    for scored_part in scored_dataset.parts:
        key = part_key(seed, scored_part.key)  # splits are per thread: a part depends on its own rows only
        if carried := previous.carried_part(key):
            parts.append(carried)
            continue
        source = scored_part.facts.get("source")
        earlier = [previous.frame_of(p) for p in previous.of_source(source)]
        made = split_part(scored_dataset.frame_of(scored_part), ratios, config.system_prompt, config.display_names,
                          tokenizer, config.max_tokens, config.too_long, tokenized_with, scan_rules,
                          pl.concat(earlier, how="diagonal_relaxed") if earlier else None,
                          pii.redactor().find_high_confidence)
        parts.append(spill.made(key, made.frame, source=source, too_long=made.too_long, truncated=made.truncated,
                               problems=made.problems[:20], problem_count=len(made.problems),
                               pii_found=made.pii_found, texts=made.texts, texts_scanned=made.texts_scanned))
    value = PartedFrame(parts).carried_from(previous, spill)
    too_long = {k: v for p in parts for k, v in p.facts.get("too_long", {}).items()}
    truncated = value.fact_total("truncated")
    if truncated:
        context.log.info(f"{truncated} examples longer than max_tokens={config.max_tokens} cut at a turn boundary")
    if too_long:  # one long ticket must not stop a product: left out, counted, named in the metadata
        context.log.warning(f"{len(too_long)} examples longer than max_tokens={config.max_tokens} left out")
    found: Counter = Counter()
    for part in parts:
        found.update(part.facts.get("pii_found", {}))
    export_dir = storage.exports_dir(product)
    if found:  # exports with PII are never written: the previous ones stay
        context.log.error(f"{sum(found.values())} PII findings in the new exports: they were not published")
        split_sizes = dict(value.collect(["split"])["split"].value_counts().iter_rows())
        sizes = {name: split_sizes.get(name, 0) for name in EXPORT_SPLITS}
    else:
        with atomic_directory(export_dir) as staging:  # all exports swap in together: never a mix of two runs
            sizes = write_exports_from_parts(staging, (f for _, f in value.frames(
                ["split", "record_json", "alpaca_json", "messages", "content_hash", "ticket_id"])))
    export_uri = storage.publish(export_dir) if not found else None
    summary = value.collect(["content_hash", "thread_id", "split", "topic", "source_kind"])
    problems = [problem for p in parts for problem in p.facts.get("problems", [])]
    problem_count = value.fact_total("problem_count")
    texts, scanned = value.fact_total("texts"), sum(int(p.facts.get("texts_scanned", 0)) for p in parts
                                                     if p.is_new)
    yield dg.Output(value, metadata={
        **parts_metadata(value), **{f"{k}_examples": v for k, v in sizes.items()},
        "parts": len(parts), "parts_split_now": sum(1 for p in parts if p.is_new),
        "export_dir": dg.MetadataValue.path(str(export_dir)),
        **({"export_uri": dg.MetadataValue.url(export_uri)} if export_uri else {}),
        "system_prompt": system_prompt_for(product, config.system_prompt, config.display_names),
        "train_corrections": corrections_in_train(summary),
        "too_long_examples": len(too_long),
        "truncated_examples": truncated,
        "too_long": table([{"example_id": k, "tokens": v} for k, v in list(too_long.items())[:20]],
                          ["example_id", "tokens"]),
        "topics": table(topic_split_rows(summary), ["topic", "train", "val", "test"]),
    })
    if problem_count:  # a blocking check: say why in the log as well as in the check's metadata
        context.log.error(f"{product}: chat_format failed: " + "; ".join(problems[:5]))
    yield dg.AssetCheckResult(check_name="chat_format", passed=not problem_count,
                              description=f"{product}: {problem_count} problems in {value.height} examples",
                              metadata={"product": product, "problems": problems_table(problems[:20])})
    yield dg.AssetCheckResult(check_name="no_pii_in_exports", passed=not found,
                              description=f"{product}: {sum(found.values())} PII findings in {texts} exported texts",
                              metadata={"product": product, "texts_scanned": scanned,
                                        "texts_known_clean": texts - scanned,
                                        "exports_published": not found,
                                        "found": counts_table(dict(sorted(found.items())), "type", "findings")})
    leaks = split_leakage(summary)
    yield dg.AssetCheckResult(check_name="no_leakage_across_splits", passed=not leaks,
                              description=f"{product}: {len(leaks)} conversations or threads in two splits",
                              metadata={"product": product, "problems": problems_table(leaks)})
    skew = stratum_ratio_problems(summary, ratios)
    yield dg.AssetCheckResult(check_name="split_ratios_per_topic", passed=not skew,
                              severity=dg.AssetCheckSeverity.WARN,
                              description=f"{product}: {len(skew)} topics outside the ratio's tolerance",
                              metadata={"product": product, "problems": problems_table(skew)})


def splits_code_digest() -> str:
    """The code that splits, measures and exports: a change of it makes every part again."""
    import hashlib
    from pathlib import Path

    from tuneline import splits, validators

    return hashlib.sha256(Path(splits.__file__).read_bytes() + Path(validators.__file__).read_bytes()).hexdigest()


def topic_split_rows(splits: pl.DataFrame) -> list[dict]:
    """Examples per topic and split, one row per topic."""
    counts = splits.group_by("topic", "split").len().iter_rows()
    rows: dict[str, dict] = {}
    for topic, split, n in counts:
        rows.setdefault(str(topic), {"topic": str(topic), "train": 0, "val": 0, "test": 0})[split] = n
    return [rows[t] for t in sorted(rows)]
