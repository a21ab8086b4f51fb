"""Landing-zone sensor: new product folders become partitions, new or changed files trigger ingestion.

Cursor: JSON {hash of relative path: fingerprint}. A file's run_key is derived from (path, size,
mtime/ETag), so a file is never ingested twice and a changed file is ingested again. Files
modified in the last `min_age_seconds` are still being written and wait for a later tick.
Paths are stored hashed: file names can hold customer names or emails, and the cursor and run
keys live in the Dagster instance, downstream of nothing that redacts them.
"""


import hashlib
import json
import os
import time

import dagster as dg

from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from ft_resources.landing import LandingZone, scan_landing

__all__ = ["landing_zone_sensor", "plan_landing_tick", "scan_landing"]

INGEST_ASSETS = [dg.AssetKey("raw_tickets"), dg.AssetKey("rejected_tickets")]


def path_key(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()[:20]


def plan_landing_tick(found: dict[str, dict[str, str]], seen: dict[str, str], known_products: set[str]):
    """Pure: which partitions to add, which runs to request, and the next cursor."""
    new_products = sorted(set(found) - known_products)
    run_requests = []
    cursor = dict(seen)
    for product, files in found.items():
        keyed = {path_key(p): fp for p, fp in files.items()}
        changed = sorted(k for k, fp in keyed.items() if seen.get(k) != fp)
        if not changed:
            continue
        digest = hashlib.sha256("|".join(f"{k}@{keyed[k]}" for k in changed).encode()).hexdigest()[:20]
        run_requests.append(dg.RunRequest(run_key=f"{product}|{len(changed)} files|{digest}", partition_key=product,
                                          asset_selection=INGEST_ASSETS, tags={"tuneline/trigger": "landing_sensor"}))
        cursor.update({k: keyed[k] for k in changed})
    return new_products, run_requests, cursor


def default_status() -> dg.DefaultSensorStatus:
    """Stopped unless TUNELINE_SENSORS=running: a deployment decides to watch its landing zone."""
    running = os.environ.get("TUNELINE_SENSORS", "stopped").lower() == "running"
    return dg.DefaultSensorStatus.RUNNING if running else dg.DefaultSensorStatus.STOPPED


@dg.sensor(minimum_interval_seconds=int(os.environ.get("TUNELINE_SENSOR_INTERVAL", "30")),
           default_status=default_status(), asset_selection=INGEST_ASSETS)
def landing_zone_sensor(context: dg.SensorEvaluationContext, landing: LandingZone) -> dg.SensorResult:
    """Watch `<landing>/<product>/<file>` (a directory or an S3 prefix) and ingest what arrived."""
    seen = json.loads(context.cursor) if context.cursor else {}
    known = set(context.instance.get_dynamic_partitions(PRODUCTS_PARTITION_NAME))
    found = landing.scan(min_age_seconds=landing.min_age_seconds, now=time.time())
    new_products, run_requests, cursor = plan_landing_tick(found, seen, known)
    requests = [dg.AddDynamicPartitionsRequest(PRODUCTS_PARTITION_NAME, new_products)] if new_products else []
    return dg.SensorResult(run_requests=run_requests, dynamic_partitions_requests=requests,
                           cursor=json.dumps(cursor, sort_keys=True))


automation_sensor = dg.AutomationConditionSensorDefinition(
    "data_automation", target=dg.AssetSelection.all(), default_status=default_status(),
    minimum_interval_seconds=int(os.environ.get("TUNELINE_SENSOR_INTERVAL", "30")),
    description="Evaluates the eager conditions: curated data follows ingestion without anyone clicking.")
