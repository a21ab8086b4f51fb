"""Run-failure sensor: every failed run is recorded under the storage root and, when configured, posted
to a webhook (Slack/Teams-compatible JSON with a `text` field)."""

from __future__ import annotations

import json
import os
import urllib.request

import dagster as dg

from ft_resources.storage import TunelineStorage
from tuneline.paths import under
from tuneline.storage import atomic_write_json


def failure_record(run_id: str, job_name: str, tags: dict, message: str) -> dict:
    return {"run_id": run_id, "job": job_name, "product": tags.get("dagster/partition"),
            "trigger": tags.get("tuneline/trigger"), "error": message[:2000]}


def post_webhook(url: str, record: dict, timeout: float = 10.0) -> int:
    text = f"tuneline run {record['run_id'][:8]} failed ({record['job']}, product {record['product']}): " \
           f"{record['error'][:300]}"
    request = urllib.request.Request(url, data=json.dumps({"text": text, "run": record}).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return response.status


@dg.run_failure_sensor(default_status=dg.DefaultSensorStatus.RUNNING, monitor_all_code_locations=False,
                       description="On every failed run: writes <root>/failures/<run id>.json (job, product, trigger, "
                                   "error) and posts it to TUNELINE_FAILURE_WEBHOOK when set.")
def run_failure_sensor(context: dg.RunFailureSensorContext, storage: TunelineStorage):
    """Writes `<root>/failures/<run id>.json`; posts it to TUNELINE_FAILURE_WEBHOOK when set."""
    run = context.dagster_run
    message = context.failure_event.message or "run failed"
    record = failure_record(run.run_id, run.job_name, dict(run.tags), message)
    atomic_write_json(under(storage.root_path, "failures", f"{run.run_id}.json"), record)
    webhook = os.environ.get("TUNELINE_FAILURE_WEBHOOK")
    if webhook:
        try:
            post_webhook(webhook, record)
        except OSError as exc:  # a broken webhook must not hide the failure record
            context.log.warning(f"failure webhook {webhook} did not answer: {exc}")
