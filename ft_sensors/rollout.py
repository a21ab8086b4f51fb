"""The A/B rollout policy in motion: when a product's response log grew since the last look (new answers
or new feedback), served_conversations and ab_test_report run for that product, and the report's decision
moves the challenger's share in the registry, where the server reads it."""

from __future__ import annotations

import json

import dagster as dg

from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from ft_resources.storage import TunelineStorage
from ft_sensors.jobs import TRIGGER_TAG, ab_rollout_job
from tuneline.ab_testing import LOG_FILE


def log_size(folder) -> int:
    """Bytes in a product's log files: grows with every answer and every piece of feedback."""
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.iterdir() if LOG_FILE.fullmatch(p.name) and p.is_file())


def grown_products(sizes: dict[str, int], seen: dict[str, int], min_new_bytes: int) -> list[str]:
    """Products whose log grew by at least `min_new_bytes` since the cursor's sizes (or shrank: rotated)."""
    return [p for p, size in sorted(sizes.items())
            if size and (size - seen.get(p, 0) >= min_new_bytes or size < seen.get(p, 0))]


@dg.sensor(job=ab_rollout_job, minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.STOPPED,
           description="Runs the A/B report (and its rollout decision) for a product whose served answers or "
                       "feedback grew by 64 KiB since the last run. Start it where `tuneline serve` logs to "
                       "this storage root.")
def rollout_sensor(context: dg.SensorEvaluationContext, storage: TunelineStorage):
    seen = json.loads(context.cursor) if context.cursor else {}
    products = context.instance.get_dynamic_partitions(PRODUCTS_PARTITION_NAME)
    sizes = {p: log_size(storage.response_log_dir(p)) for p in products}
    grown = grown_products(sizes, seen, min_new_bytes=64 * 1024)
    for product in grown:
        yield dg.RunRequest(run_key=f"{product}:{sizes[product]}", partition_key=product,
                            tags={TRIGGER_TAG: "rollout_sensor"})
    if not grown:
        yield dg.SkipReason("no product's response log grew enough since the last A/B report")
    context.update_cursor(json.dumps({**seen, **{p: sizes[p] for p in grown}}))
