"""Is a product's curated data, and the adapter serving it, recent enough? Checked per product: the asset-level
freshness policies (shown on the asset pages) look at the newest partition only, so one busy product would hide
a forgotten one."""

import time
from datetime import timedelta

import dagster as dg

from ft_assets.partitions import latest_materialization, partitioned_checks, product_partitions

DATA_WINDOW = timedelta(days=7)  # tickets arrive daily: a week without curated data means ingestion stopped
ADAPTER_WINDOW = timedelta(days=30)  # the retraining sensor retrains on new data; a month without is worth a look
DATA_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=DATA_WINDOW, warn_window=timedelta(days=2))
ADAPTER_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=ADAPTER_WINDOW, warn_window=timedelta(days=14))


def staleness(last_materialized: float | None, now: float, window: timedelta) -> tuple[bool, str]:
    """Pure: (fresh, why) for a partition last materialized at `last_materialized` (None: never)."""
    if last_materialized is None:
        return False, "never materialized"
    age = timedelta(seconds=max(0.0, now - last_materialized))
    days = age.total_seconds() / 86400
    return age <= window, f"last materialized {days:.1f} days ago (window {window.days} days)"


def freshness_evaluation(instance: dg.DagsterInstance, asset: str, check_name: str, window: timedelta,
                         product: str, now: float) -> dg.AssetCheckEvaluation:
    """One product's freshness verdict for one asset, as the check evaluation the UI lists under the product."""
    record = latest_materialization(instance, asset, product)
    last = record.timestamp if record else None
    fresh, why = staleness(last, now, window)
    metadata = {"product": dg.MetadataValue.text(product), "window_days": dg.MetadataValue.int(window.days),
                **({"age_days": dg.MetadataValue.float(round((now - last) / 86400, 2))} if last else {})}
    return dg.AssetCheckEvaluation(asset_key=dg.AssetKey(asset), check_name=check_name, passed=fresh,
                                   severity=dg.AssetCheckSeverity.WARN, description=f"{product}: {why}",
                                   metadata=metadata, partition=product)


# (asset, check name, window): what the freshness sensor evaluates for every product
FRESHNESS = [("dataset_splits", "curated_data_fresh", DATA_WINDOW), ("lora_adapter", "adapter_fresh", ADAPTER_WINDOW)]


def _check(asset: str, name: str, window: timedelta, context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    """The same verdict when a user executes the check from the UI."""
    evaluation = freshness_evaluation(context.instance, asset, name, window,
                                      context.op_execution_context.partition_key, time.time())
    return dg.AssetCheckResult(passed=evaluation.passed, severity=evaluation.severity,
                               description=evaluation.description, metadata=evaluation.metadata)


with partitioned_checks():
    @dg.asset_check(asset="dataset_splits", partitions_def=product_partitions, name="curated_data_fresh",
                    description=f"Warns when a product's splits are older than {DATA_WINDOW.days} days "
                                "(evaluated hourly by freshness_sensor).")
    def curated_data_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        return _check("dataset_splits", "curated_data_fresh", DATA_WINDOW, context)


    @dg.asset_check(asset="lora_adapter", partitions_def=product_partitions, name="adapter_fresh",
                    description=f"Warns when a product's adapter is older than {ADAPTER_WINDOW.days} days "
                                "(evaluated hourly by freshness_sensor).")
    def adapter_fresh(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
        return _check("lora_adapter", "adapter_fresh", ADAPTER_WINDOW, context)


FRESHNESS_CHECKS = [curated_data_fresh, adapter_fresh]
