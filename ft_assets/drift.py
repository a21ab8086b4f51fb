"""input_drift: new curated tickets vs the ones the current adapter was trained on."""

import dagster as dg
import polars as pl

from ft_assets.partitions import product_partitions
from ft_resources.storage import TunelineStorage
from tuneline.drift import DriftThresholds, drift_report


class DriftConfig(dg.Config):
    """Thresholds for each view; `use_embeddings` adds the MiniLM centroid distance."""

    topic_tvd: float = 0.25
    length_ks: float = 0.3
    centroid_cosine: float = 0.1
    min_new_examples: int = 20
    use_embeddings: bool = True


@dg.asset(
    partitions_def=product_partitions,
    group_name="training",
    kinds={"polars"},
    code_version="1",
    automation_condition=dg.AutomationCondition.eager(),
)
def input_drift(context: dg.AssetExecutionContext, config: DriftConfig, dataset_splits: pl.DataFrame,
                lora_adapter: dict, storage: TunelineStorage) -> dg.Output[dict]:
    """Training examples that arrived since the adapter, compared with its training manifest (topic mix,
    message length, embedding centroid). The retraining sensor retrains a product whose input drifted."""
    manifest = pl.read_parquet(storage.localize_adapter(lora_adapter) / "training_manifest.parquet")
    train = dataset_splits.filter(pl.col("split") == "train")
    is_known = pl.col("content_hash").is_in(manifest["example_id"].implode())
    embed = None
    if config.use_embeddings:
        from tuneline.evaluation import embed_texts

        def embed(texts):
            vectors = embed_texts(texts)
            return None if vectors is None else vectors.numpy()

    thresholds = DriftThresholds(config.topic_tvd, config.length_ks, config.centroid_cosine, config.min_new_examples)
    report = drift_report(train.filter(is_known), train.filter(~is_known), thresholds, embed)
    report["adapter_key"] = lora_adapter.get("adapter_key") or lora_adapter["adapter_dir"]
    return dg.Output(report, metadata={
        "drifted": report["drifted"], "reason": report["reason"], "new_examples": report["new_examples"],
        **{k: float(v) for k, v in report["metrics"].items()},
    })
