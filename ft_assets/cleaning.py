"""cleaned_conversations: normalised text, PII replaced by typed placeholders."""


import hashlib
import json
from collections import Counter

import dagster as dg
import polars as pl

from ft_assets.catalog import counts_table, parts_metadata
from ft_assets.partitions import product_check, product_partitions
from ft_resources.pii import PiiEngine, pseudonym_key
from ft_resources.storage import TunelineStorage
from tuneline.cleaning import (
    clean_conversations,
    clean_incrementally,
    cleaning_rules_digest,
    count_entities,
    pseudonymize_identifiers,
)
from tuneline.names import product_display_name
from tuneline.parts import PartedFrame, Spill, part_key


class CleaningConfig(dg.Config):
    """Canonical product names ({"acme-pro": "Acme Pro"}), the company's own names, products and plans
    (never redacted: ["Freemium", "Acme Cloud"]) and whether URLs become [URL]."""

    product_names: dict[str, str] = {}
    company_names: list[str] = []
    replace_urls: bool = True


@dg.asset(
    partitions_def=product_partitions,
    group_name="curation",
    kinds={"polars", "presidio"},
    code_version="3",
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[product_check("no_high_confidence_pii", asset="cleaned_conversations", blocking=True,
                                   description="A re-scan finds no email, phone, card, IBAN, IP or SSN left.")],
)
def cleaned_conversations(context: dg.AssetExecutionContext, config: CleaningConfig, raw_tickets: PartedFrame,
                          pii: PiiEngine, storage: TunelineStorage):
    """NFKC/HTML/whitespace; internal notes, quoted replies and signatures out; then presidio on every turn,
    metadata value and file name; ticket and thread ids replaced by keyed hashes. One part per raw_tickets
    part: a part cleaned before under the same rules (configuration, PII settings, key, rule code) is carried
    over unread, and within a new part a row cleaned before from the same source is reused, so new tickets
    cost in proportion to the new tickets; any rule change cleans all again."""
    redactor = pii.redactor()
    company_names = [*config.company_names, product_display_name(context.partition_key)]
    key = pseudonym_key(pii, storage)
    rules = cleaning_rules_digest(config.model_dump_json(), pii.model_dump_json(), json.dumps(company_names),
                                  hashlib.sha256(key).hexdigest())

    def clean(rows: pl.DataFrame) -> pl.DataFrame:
        cleaned = clean_conversations(rows, redactor, config.product_names, config.replace_urls, company_names)
        return pseudonymize_identifiers(cleaned, key)

    previous = storage.previous_parts("cleaned_conversations", context.partition_key) or PartedFrame([])
    spill = Spill(storage.work_dir(context.partition_key))
    parts, reused, turns = [], 0, 0
    for raw_part in raw_tickets.parts:
        part_id = part_key(raw_part.key, rules)
        if carried := previous.carried_part(part_id):
            parts.append(carried)
            continue
        source = raw_part.facts.get("source")
        # a file appended to, or rewritten by `tuneline forget`: rows cleaned before from the same source count
        earlier = [previous.frame_of(p) for p in previous.of_source(source)]
        cleaned, reused_here = clean_incrementally(raw_tickets.frame_of(raw_part),
                                                   pl.concat(earlier, how="diagonal_relaxed") if earlier else None,
                                                   rules, clean)
        texts = [turn["content"] for conv in cleaned["messages"].to_list() for turn in conv]
        leftovers = redactor.find_high_confidence(texts)  # the check's re-scan, once per part
        reused += reused_here
        turns += len(texts)
        parts.append(spill.made(part_id, cleaned, source=source, entities=count_entities(cleaned),
                               kb=int((cleaned["source_kind"] == "kb").sum()),
                               tickets_with_pii=int((cleaned["pii_total"] > 0).sum()),
                               leftovers=dict(Counter(t for _, t, _ in leftovers))))
    value = PartedFrame(parts).carried_from(previous, spill)
    made = [p for p in parts if p.is_new]
    cleaned_now = sum(p.rows for p in made) - reused
    entities: Counter = Counter()
    leftovers: Counter = Counter()
    for part in parts:
        entities.update(part.facts.get("entities", {}))
        leftovers.update(part.facts.get("leftovers", {}))
    yield dg.Output(value, metadata={
        **parts_metadata(value),
        "cleaned_now": cleaned_now, "reused_from_previous": value.height - cleaned_now,
        "parts": len(parts), "parts_cleaned_now": len(made),
        "pii_entities_replaced": sum(entities.values()),
        "pii_by_type": counts_table(dict(sorted(entities.items())), "type", "replaced"),
        "tickets_with_pii": sum(int(p.facts.get("tickets_with_pii", 0)) for p in parts),
    })
    remaining = sum(leftovers.values())
    yield dg.AssetCheckResult(passed=not remaining, description=f"{context.partition_key}: {remaining} "
                              f"high-confidence PII findings left ({turns} turns re-scanned in "
                              f"{len(made)} new parts; a carried part counts the findings of its own scan)", metadata={
        "product": context.partition_key,
        "remaining": remaining,
        "types": counts_table(dict(sorted(leftovers.items())), "type", "findings"),
    })
