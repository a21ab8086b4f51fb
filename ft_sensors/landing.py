"""Landing-zone sensor: new product folders become partitions, new or changed files trigger ingestion.

Cursor: JSON {"ingested": {file id: fingerprint}, "pending": {file id: fingerprint}, "skipped": {entry id:
reason}}. A file is requested once its fingerprint (size + mtime/ETag) was the same on the previous tick and
it is at least `min_age_seconds` old: a file still being appended changes between ticks and waits. Its
run_key is derived from (id, fingerprint), so a file is never ingested twice and a changed file is ingested
again. Ids are hashes: file names can hold customer names or emails, and the cursor and run keys live in the
Dagster instance, downstream of nothing that redacts them. Entries that are skipped (invalid product names,
symlinks, unsupported types) are listed with their reason and never become partitions.
"""


import hashlib
import json
import os
import time
from collections import Counter

import dagster as dg

from ft_assets.freshness import ADAPTER_WINDOW, DATA_WINDOW, FRESHNESS, freshness_evaluation
from ft_assets.partitions import PRODUCTS_PARTITION_NAME, product_partitions
from ft_resources.landing import LandingZone
from ft_sensors.jobs import INGEST_ASSETS, ingest_job
from tuneline.landing import LandingScan

__all__ = ["landing_zone_sensor", "plan_landing_tick"]


def _read_cursor(raw: str | None) -> dict[str, dict[str, str]]:
    state = json.loads(raw) if raw else {}
    if state and "ingested" not in state:  # the flat {id: fingerprint} cursor of earlier versions
        state = {"ingested": state}
    return {part: dict(state.get(part, {})) for part in ("ingested", "pending", "skipped")}


def plan_landing_tick(scan: LandingScan, cursor: str | None, known_products: set[str], now: float,
                      min_age_seconds: float):
    """Pure: which partitions to add, which runs to request, and the next cursor (a JSON string)."""
    state = _read_cursor(cursor)
    ingested, previous = state["ingested"], state["pending"]
    pending: dict[str, str] = {}
    ready: dict[str, dict[str, str]] = {}
    for f in scan.files:
        if ingested.get(f.key) == f.fingerprint:
            continue
        if previous.get(f.key) == f.fingerprint and now - f.modified >= min_age_seconds:
            ready.setdefault(f.product, {})[f.key] = f.fingerprint
        else:
            pending[f.key] = f.fingerprint
    run_requests = []
    for product, files in sorted(ready.items()):
        digest = hashlib.sha256("|".join(f"{k}@{files[k]}" for k in sorted(files)).encode()).hexdigest()[:20]
        run_requests.append(dg.RunRequest(run_key=f"{product}|{len(files)} files|{digest}", partition_key=product,
                                          tags={"tuneline/trigger": "landing_sensor"}))
        ingested.update(files)
    next_cursor = {"ingested": ingested, "pending": pending, "skipped": dict(sorted(scan.skipped.items()))}
    return sorted(scan.products - known_products), run_requests, json.dumps(next_cursor, sort_keys=True)


def default_status() -> dg.DefaultSensorStatus:
    """Stopped unless TUNELINE_SENSORS=running: a deployment decides to watch its landing zone."""
    running = os.environ.get("TUNELINE_SENSORS", "stopped").lower() == "running"
    return dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED


@dg.sensor(minimum_interval_seconds=int(os.environ.get("TUNELINE_SENSOR_INTERVAL", "30")),
           default_status=default_status(), job=ingest_job,
           description="Watches `<landing>/<product>/<file>` (a directory or an S3 prefix; every "
                       "TUNELINE_SENSOR_INTERVAL seconds, running when TUNELINE_SENSORS=running): a new folder becomes "
                       "a product partition, a new or changed file (unchanged for one tick) launches ingest_product. "
                       "Entries with invalid names, symlinks or unsupported types are skipped with a reason.")
def landing_zone_sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    """Watch the landing zone and ingest what arrived."""
    known = set(context.instance.get_dynamic_partitions(PRODUCTS_PARTITION_NAME))
    scan = landing.scan()
    new_products, run_requests, cursor = plan_landing_tick(scan, context.cursor, known, time.time(),
                                                           landing.min_age_seconds)
    if scan.skipped:
        reasons = dict(sorted(Counter(scan.skipped.values()).items()))
        context.log.warning(f"landing entries skipped (ids and reasons in the cursor): {reasons}")
    requests = [dg.AddDynamicPartitionsRequest(PRODUCTS_PARTITION_NAME, new_products)] if new_products else []
    return dg.SensorResult(run_requests=run_requests, dynamic_partitions_requests=requests, cursor=cursor)


automation_sensor = dg.AutomationConditionSensorDefinition(
    "data_automation", target=dg.AssetSelection.all(), default_status=default_status(),
    minimum_interval_seconds=int(os.environ.get("TUNELINE_SENSOR_INTERVAL", "30")),
    description="Evaluates the assets' automation conditions: cleaning, curation, splits, the SQL models and "
                "input_drift follow their upstream data (eager, never while upstream is in progress), "
                "evaluation_leaderboard follows every evaluation, serving_metrics refreshes hourly.")


retention_job = dg.define_asset_job("raw_data_retention", selection=dg.AssetSelection.assets(*INGEST_ASSETS),
                                    partitions_def=product_partitions,
                                    description="Re-ingest a product: landing files past TUNELINE_RETENTION_DAYS are "
                                                "deleted first, so raw and rejected tickets no longer hold them.")


@dg.schedule(cron_schedule="0 2 * * *", job=retention_job, default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Daily at 02:00 UTC (stopped by default): re-ingest every product, deleting landing files "
                         "older than TUNELINE_RETENTION_DAYS first.")
def raw_data_retention(context: dg.ScheduleEvaluationContext):
    """Daily at 02:00 (stopped by default): every product is re-ingested under the retention setting."""
    day = context.scheduled_execution_time.strftime("%Y-%m-%d")
    for product in context.instance.get_dynamic_partitions(PRODUCTS_PARTITION_NAME):
        yield dg.RunRequest(partition_key=product, run_key=f"retention:{product}:{day}",
                            tags={"tuneline/trigger": "retention"})


@dg.sensor(minimum_interval_seconds=3600, default_status=default_status(),
           description="Hourly: for every product, reports curated_data_fresh (dataset_splits within "
                       f"{DATA_WINDOW.days} days) and adapter_fresh (lora_adapter within {ADAPTER_WINDOW.days} "
                       "days) as check results under the product; a stale product warns.")
def freshness_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    """Checks reported without a run: reading two timestamps per product needs no step process."""
    now = time.time()
    products = context.instance.get_dynamic_partitions(PRODUCTS_PARTITION_NAME)
    stale = []
    for product in products:
        for asset, check_name, window in FRESHNESS:
            evaluation = freshness_evaluation(context.instance, asset, check_name, window, product, now)
            context.instance.report_runless_asset_event(evaluation)
            if not evaluation.passed:
                stale.append(f"{product}/{asset}")
    return dg.SkipReason(f"{len(products)} products checked; stale: {', '.join(stale) or 'none'}")
