"""cleaned_conversations: normalised text, PII replaced by typed placeholders."""


import dagster as dg
import polars as pl

from ft_assets.catalog import counts_table, frame_metadata
from ft_assets.partitions import product_check, product_partitions
from ft_resources.pii import PiiEngine, pseudonym_key
from ft_resources.storage import TunelineStorage
from tuneline.cleaning import clean_conversations, count_entities, pseudonymize_identifiers
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
    code_version="2",
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[product_check("no_high_confidence_pii", asset="cleaned_conversations", blocking=True,
                                   description="A re-scan finds no email, phone, card, IBAN, IP or SSN left.")],
)
def cleaned_conversations(context: dg.AssetExecutionContext, config: CleaningConfig, raw_tickets: pl.DataFrame,
                          pii: PiiEngine, storage: TunelineStorage):
    """NFKC/HTML/whitespace; internal notes, quoted replies and signatures out; then presidio on every turn,
    metadata value and file name; ticket and thread ids replaced by keyed hashes."""
    redactor = pii.redactor()
    company_names = [*config.company_names, product_display_name(context.partition_key)]
    cleaned = clean_conversations(raw_tickets, redactor, config.product_names, config.replace_urls, company_names)
    cleaned = pseudonymize_identifiers(cleaned, pseudonym_key(pii, storage))
    entities = count_entities(cleaned)
    yield dg.Output(cleaned, metadata={
        **frame_metadata(cleaned),
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
