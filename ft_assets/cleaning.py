"""cleaned_conversations: normalised text, PII replaced by typed placeholders."""


import hashlib
import json

import dagster as dg
import polars as pl

from ft_assets.catalog import counts_table, frame_metadata
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
def cleaned_conversations(context: dg.AssetExecutionContext, config: CleaningConfig, raw_tickets: pl.DataFrame,
                          pii: PiiEngine, storage: TunelineStorage):
    """NFKC/HTML/whitespace; internal notes, quoted replies and signatures out; then presidio on every turn,
    metadata value and file name; ticket and thread ids replaced by keyed hashes. Incremental: a ticket this
    asset already cleaned under the same rules (configuration, PII settings, key, rule code) is taken from its
    previous value, so new tickets cost in proportion to the new tickets; any rule change cleans all again."""
    redactor = pii.redactor()
    company_names = [*config.company_names, product_display_name(context.partition_key)]
    key = pseudonym_key(pii, storage)
    rules = cleaning_rules_digest(config.model_dump_json(), pii.model_dump_json(), json.dumps(company_names),
                                  hashlib.sha256(key).hexdigest())

    def clean(rows: pl.DataFrame) -> pl.DataFrame:
        cleaned = clean_conversations(rows, redactor, config.product_names, config.replace_urls, company_names)
        return pseudonymize_identifiers(cleaned, key)

    previous = storage.previous_asset_frame("cleaned_conversations", context.partition_key)
    cleaned, reused = clean_incrementally(raw_tickets, previous, rules, clean)
    entities = count_entities(cleaned)
    yield dg.Output(cleaned, metadata={
        **frame_metadata(cleaned),
        "cleaned_now": cleaned.height - reused, "reused_from_previous": reused,
        "pii_entities_replaced": sum(entities.values()),
        "pii_by_type": counts_table(entities, "type", "replaced"),
        "tickets_with_pii": int((cleaned["pii_total"] > 0).sum()),
    })
    texts = [turn["content"] for conv in cleaned["messages"].to_list() for turn in conv]
    leftovers = redactor.find_high_confidence(texts)
    kinds = sorted({t for _, t, _ in leftovers})
    yield dg.AssetCheckResult(passed=not leftovers, description=f"{context.partition_key}: {len(leftovers)} "
                              f"high-confidence PII findings left in {len(texts)} turns", metadata={
        "product": context.partition_key,
        "remaining": len(leftovers),
        "types": counts_table({k: sum(1 for _, t, _ in leftovers if t == k) for k in kinds}, "type", "findings"),
    })
