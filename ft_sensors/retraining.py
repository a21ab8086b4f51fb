"""Retraining policy: train a product again when enough new curated examples arrived since its adapter,
or when input_drift says the new tickets look unlike the ones it was trained on.

Never more than once per cooldown per product, never while a training run for it is queued or running.
A weekly schedule (Monday 00:00, stopped by default) retrains every product regardless.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass

import dagster as dg

from ft_assets.partitions import PRODUCTS_PARTITION_NAME, latest_materialization
from ft_sensors.jobs import TRIGGER_TAG, retrain_job

PRODUCT_TAG = "tuneline/product"


@dataclass(frozen=True)
class RetrainPolicy:
    """From TUNELINE_RETRAIN_MIN_NEW_EXAMPLES and TUNELINE_RETRAIN_COOLDOWN_SECONDS when set."""

    min_new_examples: int = 50
    cooldown_seconds: float = 6 * 3600
    min_new_corrections: int = 10  # corrected replies from serving: fewer of them are reason enough

    @classmethod
    def from_env(cls) -> RetrainPolicy:
        return cls(int(os.environ.get("TUNELINE_RETRAIN_MIN_NEW_EXAMPLES", cls.min_new_examples)),
                   float(os.environ.get("TUNELINE_RETRAIN_COOLDOWN_SECONDS", cls.cooldown_seconds)))


def should_retrain(train_examples_now: int | None, trained_on: int | None, last_trained_at: float | None,
                   now: float, in_progress: bool, policy: RetrainPolicy, drift: str | None = None,
                   forgotten: int = 0, new_corrections: int = 0) -> tuple[bool, str]:
    """Pure decision with its reason, so the sensor's skips are explainable in the UI. Examples the adapter
    was trained on that a `tuneline forget` request removed retrain it at once: no cooldown holds that."""
    if train_examples_now is None:
        return False, "no curated splits yet"
    if in_progress:
        return False, "a training run is already queued or running"
    if trained_on is None:
        return True, "no adapter yet"
    if forgotten:
        return True, f"{forgotten} examples it was trained on were forgotten"
    if last_trained_at is not None and now - last_trained_at < policy.cooldown_seconds:
        return False, "in cooldown"
    new = train_examples_now - trained_on
    corrected = f" ({new_corrections} of them corrected replies from serving)" if new_corrections > 0 else ""
    if new >= policy.min_new_examples:
        return True, f"{new} new training examples{corrected}"
    if new_corrections >= policy.min_new_corrections:
        return True, f"{new_corrections} corrected replies from serving (>= {policy.min_new_corrections})"
    if drift:
        return True, f"input drift ({drift}) with {new} new training examples"
    return False, f"only {new} new training examples (< {policy.min_new_examples})"


def _metadata_int(record, key: str) -> int | None:
    if record is None:
        return None
    value = record.asset_materialization.metadata.get(key)
    return int(value.value) if value is not None else None


def _drift_since(instance: dg.DagsterInstance, product: str, adapter) -> str | None:
    """The reason of an input_drift materialization that found drift after the current adapter, if any."""
    drift = latest_materialization(instance, "input_drift", product)
    if drift is None or adapter is None or drift.timestamp < adapter.timestamp:
        return None
    metadata = drift.asset_materialization.metadata
    if not (metadata.get("drifted") and metadata["drifted"].value):
        return None
    return str(metadata["reason"].value) if "reason" in metadata else "drift"


def _forgotten_since(splits, adapter) -> int:
    """Examples removed by `tuneline forget` from the splits after the current adapter was trained."""
    if splits is None or adapter is None or splits.timestamp < adapter.timestamp:
        return 0
    return _metadata_int(splits, "forgotten_examples") or 0


def _in_progress(instance: dg.DagsterInstance, product: str) -> bool:
    active = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
              dg.DagsterRunStatus.STARTED]
    return bool(instance.get_run_records(dg.RunsFilter(statuses=active, tags={PRODUCT_TAG: product}), limit=1))


RETRAINING_DESCRIPTION = (
    "Every 5 minutes (stopped by default): launches retrain_product for a product whose training split grew by "
    "TUNELINE_RETRAIN_MIN_NEW_EXAMPLES (50) or by 10 corrected replies from serving since its adapter, whose "
    "input drifted, or whose trained-on examples "
    "were forgotten; never within the cooldown (6 h) or while a run for it is queued or running. The cursor "
    "holds each product's last decision and its reason.")


@dg.sensor(minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.STOPPED, job=retrain_job,
           description=RETRAINING_DESCRIPTION)
def retraining_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """What a declarative condition cannot say: counts of new examples against the adapter's, a cooldown, drift."""
    policy = RetrainPolicy.from_env()
    now = time.time()
    requests, decisions = [], {}
    for product in context.instance.get_dynamic_partitions(PRODUCTS_PARTITION_NAME):
        splits = latest_materialization(context.instance, "dataset_splits", product)
        adapter = latest_materialization(context.instance, "lora_adapter", product)
        retrain, reason = should_retrain(
            _metadata_int(splits, "train_examples"), _metadata_int(adapter, "train_examples"),
            adapter.timestamp if adapter else None, now, _in_progress(context.instance, product), policy,
            drift=_drift_since(context.instance, product, adapter), forgotten=_forgotten_since(splits, adapter),
            new_corrections=(_metadata_int(splits, "train_corrections") or 0)
            - (_metadata_int(adapter, "train_corrections") or 0))
        decisions[product] = reason
        if retrain:
            requests.append(dg.RunRequest(
                partition_key=product,
                run_key=f"{product}:{_metadata_int(splits, 'train_examples')}:{splits.storage_id}",
                tags={TRIGGER_TAG: "retraining_sensor", PRODUCT_TAG: product}))
    return dg.SensorResult(run_requests=requests, cursor=json.dumps(decisions, sort_keys=True))


@dg.schedule(cron_schedule="0 0 * * 1", job=retrain_job, default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Mondays 00:00 UTC (stopped by default): retrain_product for every product, whether or "
                         "not its data grew, for teams that prefer a fixed rhythm.")
def weekly_retraining(context: dg.ScheduleEvaluationContext):
    """Every Monday at 00:00: retrain every product (an option for teams that prefer a fixed rhythm)."""
    for product in context.instance.get_dynamic_partitions(PRODUCTS_PARTITION_NAME):
        yield dg.RunRequest(partition_key=product, run_key=f"weekly:{product}:{context.scheduled_execution_time}",
                            tags={PRODUCT_TAG: product, TRIGGER_TAG: "weekly_schedule"})
