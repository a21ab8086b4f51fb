"""raw_tickets and rejected_tickets: the product's landing files, split into usable and quarantined."""


import time

import dagster as dg
import polars as pl

from ft_assets.catalog import PII_RAW, counts_table, frame_metadata, problems_table, table
from ft_assets.partitions import product_check, product_partitions
from ft_resources.landing import LandingZone
from ft_resources.pii import PiiEngine, pseudonym_key
from ft_resources.storage import TunelineStorage
from tuneline.ab_testing import read_response_log
from tuneline.ingest import (
    MAX_RECORD_CHARS,
    ColumnMapping,
    combine,
    correction_records,
    ingest_corrections,
    ingest_product,
    suppress_forgotten,
)
from tuneline.storage import content_version
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
    result = ingest_product(folder, product, mapping, max_record_chars=max_record_chars,
                            min_age_seconds=landing.min_age_seconds if min_age is None else min_age)
    files = result.files
    responses, feedback, _ = read_response_log(storage.response_log_dir(product))  # what `tuneline serve` logged
    corrections = ingest_corrections(correction_records(responses, feedback), product, mapping, max_record_chars)
    result = combine(result, corrections)
    result = suppress_forgotten(result, storage.suppressed_ids(product), pseudonym_key(pii, storage))
    # content hashes as data versions: re-ingesting unchanged files leaves everything downstream fresh
    yield dg.Output(result.kept, output_name="raw_tickets", data_version=dg.DataVersion(content_version(result.kept)),
                    metadata={
        "records_in": result.records_in, "kept": result.kept.height, "rejected": result.rejected.height,
        # files in = files read + files skipped (hidden and not-yet-ready files wait for a later run)
        "files_in": len(files.readable) + len(files.skipped), "files_read": len(files.readable),
        "files_skipped": counts_table(files.skipped_counts(), "reason", "files"),
        "files_expired": expired,
        # file names can carry a customer's name or email: the UI shows them redacted
        "files": table([{"file": r.text} for r in pii.redactor().redact_many([f.name for f in files.readable])],
                       ["file"]),
        "kb_examples": int((result.kept["source_kind"] == "kb").sum()),
        # served answers a user corrected (`POST /v1/feedback` with corrected_reply): new training examples
        "corrections": int((result.kept["source_kind"] == "correction").sum()),
        **frame_metadata(result.kept),
    })
    yield dg.Output(result.rejected, output_name="rejected_tickets",
                    data_version=dg.DataVersion(content_version(result.rejected)), metadata={
        **frame_metadata(result.rejected),
        "reasons": counts_table(reason_counts(result.rejected), "reason", "records"),
    })
    problems = conservation_problems(result.records_in, result.kept.height, result.rejected.height)
    yield dg.AssetCheckResult(check_name="records_in_equal_kept_plus_rejected", asset_key="raw_tickets",
                              passed=not problems, description=f"{product}: {result.records_in} records in, "
                              f"{result.kept.height} kept + {result.rejected.height} rejected",
                              metadata={"product": product, "problems": problems_table(problems)})


def reason_counts(rejected: pl.DataFrame) -> dict[str, int]:
    return dict(sorted(rejected.group_by("reason").len().iter_rows())) if rejected.height else {}
