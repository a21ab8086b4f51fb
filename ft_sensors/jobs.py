"""The jobs people launch, by name: runs, the Overview timeline and backfills read in words, not as
`__ASSET_JOB`. The sensors, the schedules and `tuneline demo` launch these."""

import dagster as dg

from ft_assets.partitions import product_partitions

INGEST_ASSETS = [dg.AssetKey("raw_tickets"), dg.AssetKey("rejected_tickets")]
MODEL_ASSETS = [dg.AssetKey("lora_adapter"), dg.AssetKey("eval_report"), dg.AssetKey("registered_model")]
# assets that are not per product: they read every product, so no product's run materializes them
ACROSS_PRODUCTS = dg.AssetSelection.assets("shared_adapter", "evaluation_leaderboard", "serving_metrics")
PRODUCTION_ASSETS = [dg.AssetKey("served_conversations"), dg.AssetKey("ab_test_report")]
TRIGGER_TAG = "tuneline/trigger"

# live-traffic assets (group "production") run on their own: a product's data or training run never waits on them
_everything_per_product = dg.AssetSelection.assets(*INGEST_ASSETS).downstream() - ACROSS_PRODUCTS \
    - dg.AssetSelection.groups("production")
_model_and_after = dg.AssetSelection.assets("lora_adapter").downstream() - ACROSS_PRODUCTS \
    - dg.AssetSelection.groups("production")

ingest_job = dg.define_asset_job(
    "ingest_product", selection=dg.AssetSelection.assets(*INGEST_ASSETS), partitions_def=product_partitions,
    description="Read a product's landing files into raw_tickets, quarantining what cannot be used "
                "(launched by landing_zone_sensor when files arrive).")
data_job = dg.define_asset_job(
    "prepare_product_data", selection=_everything_per_product - _model_and_after, partitions_def=product_partitions,
    description="A product's data, from its landing files to the train/val/test exports: ingest, PII redaction, "
                "curation, splits and the SQL models. No training.")
product_pipeline_job = dg.define_asset_job(
    "product_pipeline", selection=_everything_per_product, partitions_def=product_partitions,
    description="Everything for one product: its data, its adapter (continued from the shared adapter when one "
                "exists), evaluation, registration, drift and preference tuning. Backfill it after a rule changes.")
retrain_job = dg.define_asset_job(
    "retrain_product", selection=dg.AssetSelection.assets(*MODEL_ASSETS), partitions_def=product_partitions,
    description="Train a product's adapter again on its current splits, evaluate it against the base model and "
                "register it when the promotion gate passes (launched by retraining_sensor and weekly_retraining).")
train_job = dg.define_asset_job(
    "train_product", selection=_model_and_after, partitions_def=product_partitions,
    description="A product's adapter and everything that follows from it: evaluation against the base model, "
                "registration when the gate passes, input drift and preference tuning.")
shared_adapter_job = dg.define_asset_job(
    "train_shared_adapter", selection=dg.AssetSelection.assets("shared_adapter"),
    description="One adapter over every product's training split; each product's next lora_adapter continues it "
                "(or is served by it when the product has too few examples).")
leaderboard_job = dg.define_asset_job(
    "compare_evaluations", selection=dg.AssetSelection.assets("evaluation_leaderboard"),
    description="One table of every evaluation: products side by side, versions over time.")
ab_rollout_job = dg.define_asset_job(
    "ab_rollout", selection=dg.AssetSelection.assets(*PRODUCTION_ASSETS), partitions_def=product_partitions,
    description="A product's served answers and feedback, its A/B report and the rollout decision that moves "
                "the challenger's share in the registry (launched by rollout_sensor).")

NAMED_JOBS = [ingest_job, data_job, product_pipeline_job, train_job, retrain_job, shared_adapter_job,
              leaderboard_job, ab_rollout_job]
