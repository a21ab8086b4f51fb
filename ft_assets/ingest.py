"""raw_tickets and rejected_tickets: the product's landing files, split into usable and quarantined."""


import hashlib
import time
from pathlib import Path

import dagster as dg
import polars as pl

from ft_assets.catalog import PII_RAW, counts_table, parts_metadata, problems_table, table
from ft_assets.partitions import product_check, product_partitions
from ft_resources.landing import LandingZone
from ft_resources.pii import PiiEngine, pseudonym_key
from ft_resources.storage import TunelineStorage
from tuneline.ab_testing import read_response_log
from tuneline.cleaning import pseudonym
from tuneline.ingest import (
    CORRECTIONS_SOURCE,
    MAX_RECORD_CHARS,
    ColumnMapping,
    Source,
    content_digest,
    correction_records,
    ingest_corrections,
    ingest_in_parts,
    landing_sources,
    list_landing_files,
    suppress_forgotten,
)
from tuneline.parts import Spill, part_key
from tuneline.validators import conservation_problems


class IngestConfig(dg.Config):
    """Source column names; multi-turn JSONL rows use `messages_column` instead of user/assistant."""

    id_column: str = "ticket_id"
    thread_column: str = "thread_id"
    user_column: str = "customer_message"
    assistant_column: str = "agent_response"
    messages_column: str = "messages"
    created_column: str = "created_at"
    csat_column: str = "csat"
    metadata_columns: list[str] = ["category", "intent"]
    max_record_chars: int = MAX_RECORD_CHARS
    # a file younger than this is still being written and waits for a later run; None: the landing zone's
    # min_age_seconds. 0 for files you know are complete (the demo wrote them itself).
    min_file_age_seconds: float | None = None


@dg.multi_asset(
    outs={
        "raw_tickets": dg.AssetOut(description="Usable conversations from the landing zone, one row per ticket.",
                                   group_name="ingest", kinds={"polars"}, code_version="1", tags=PII_RAW),
        "rejected_tickets": dg.AssetOut(description="Quarantined records with a reason code and their raw text.",
                                        group_name="ingest", kinds={"polars"}, code_version="1",
                                        tags=PII_RAW),
    },
    partitions_def=product_partitions,
    check_specs=[product_check("records_in_equal_kept_plus_rejected", asset="raw_tickets", blocking=True,
                                   description="No ticket is silently lost: in = kept + rejected.")],
    retry_policy=dg.RetryPolicy(max_retries=2, delay=2),
)
def ingest_tickets(context: dg.AssetExecutionContext, config: IngestConfig, storage: TunelineStorage,
                   landing: LandingZone, pii: PiiEngine):
    """Read every CSV/JSONL/Parquet/Markdown file of the product's landing folder, and the served answers
    users corrected (the server's response log); quarantine what cannot be used. Transient storage errors
    (S3) are retried by the retry policy."""
    product = context.partition_key
    expired = landing.expire(product, time.time())  # retention: old landing files go before anything is read
    folder = landing.product_files(product, storage.work_dir(product))
    if folder is None:
        raise dg.Failure(f"no landing folder for product {product!r}: expected {landing.describe()}/{product}/",
                         allow_retries=False)
    settings = config.model_dump()
    max_record_chars = settings.pop("max_record_chars")
    min_age = settings.pop("min_file_age_seconds")
    mapping = ColumnMapping(**{**settings, "metadata_columns": tuple(settings["metadata_columns"])})
    files = list_landing_files(folder, landing.min_age_seconds if min_age is None else min_age)
    sources = landing_sources(files, product, mapping, max_record_chars)
    responses, feedback, _ = read_response_log(storage.response_log_dir(product))  # what `tuneline serve` logged
    corrected = correction_records(responses, feedback)
    if corrected:
        sources.append(Source(CORRECTIONS_SOURCE, content_digest(corrected), lambda: ingest_corrections(
            corrected, product, mapping, max_record_chars)))
    key = pseudonym_key(pii, storage)
    suppressed = storage.suppressed_ids(product)
    # what decides every part besides its source: the settings, the row rules' code, who is forgotten
    seed = part_key(settings, max_record_chars, rules_source_digest(), sorted(suppressed),
                    hashlib.sha256(key).hexdigest())
    kept, rejected = ingest_in_parts(sources, seed, storage.previous_parts("raw_tickets", product),
                                     storage.previous_parts("rejected_tickets", product),
                                     after=lambda result: suppress_forgotten(result, suppressed, key),
                                     label=lambda name: pseudonym(name, key), spill=Spill(storage.work_dir(product)))
    made = sum(1 for p in kept.parts if p.is_new)
    records_in = kept.fact_total("records_in")
    reasons = reason_counts(rejected.collect(["reason"]))
    # parts' keys as data versions: re-ingesting unchanged files leaves everything downstream fresh
    yield dg.Output(kept, output_name="raw_tickets", data_version=dg.DataVersion(kept.version()), metadata={
        "records_in": records_in, "kept": kept.height, "rejected": rejected.height,
        # files in = files read + files skipped (hidden and not-yet-ready files wait for a later run)
        "files_in": len(files.readable) + len(files.skipped), "files_read": len(files.readable),
        "files_skipped": counts_table(files.skipped_counts(), "reason", "files"),
        "files_expired": expired,
        # one part per source; a part whose source and earlier sources are unchanged is carried over unread
        "parts": len(kept), "parts_ingested_now": made, "parts_carried_over": len(kept) - made,
        # file names can carry a customer's name or email: the UI shows them redacted
        "files": table([{"file": r.text} for r in pii.redactor().redact_many([f.name for f in files.readable])],
                       ["file"]),
        "kb_examples": kept.fact_total("kb"),
        # served answers a user corrected (`POST /v1/feedback` with corrected_reply): new training examples
        "corrections": kept.fact_total("corrections"),
        **parts_metadata(kept),
    })
    yield dg.Output(rejected, output_name="rejected_tickets", data_version=dg.DataVersion(rejected.version()),
                    metadata={**parts_metadata(rejected), "reasons": counts_table(reasons, "reason", "records")})
    problems = conservation_problems(records_in, kept.height, rejected.height)
    yield dg.AssetCheckResult(check_name="records_in_equal_kept_plus_rejected", asset_key="raw_tickets",
                              passed=not problems, description=f"{product}: {records_in} records in, "
                              f"{kept.height} kept + {rejected.height} rejected",
                              metadata={"product": product, "problems": problems_table(problems)})


def rules_source_digest() -> str:
    """The code that turns a landing record into a row: a change of it re-ingests every file."""
    from tuneline import ingest, landing

    return hashlib.sha256(Path(ingest.__file__).read_bytes() + Path(landing.__file__).read_bytes()).hexdigest()


def reason_counts(rejected: pl.DataFrame) -> dict[str, int]:
    return dict(sorted(rejected.group_by("reason").len().iter_rows())) if rejected.height else {}
