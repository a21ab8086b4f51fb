"""lora_adapter: builds a TrainConfig from the partition and run config, trains through the trainer resource."""

from pathlib import Path

import dagster as dg
import polars as pl

from ft_assets.partitions import product_partitions
from ft_resources.models import BaseModel
from ft_resources.storage import TunelineStorage
from ft_resources.trainer import TrainerResource
from tuneline.splits import to_chat_records
from tuneline.storage import atomic_write_jsonl, atomic_write_parquet
from tuneline.training import DEFAULT_TARGET_MODULES, TrainConfig


class TrainingRunConfig(dg.Config):
    """Recipe defaults (r=16, alpha=32, lr 2e-4, cosine, 3 epochs); max_steps > 0 overrides epochs."""

    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = list(DEFAULT_TARGET_MODULES)
    learning_rate: float = 2e-4
    warmup_ratio: float = 0.03
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 4
    num_epochs: float = 3.0
    max_steps: int = -1
    max_length: int = 512
    seed: int = 42


@dg.asset(
    partitions_def=product_partitions,
    group_name="training",
    kinds={"pytorch", "huggingface"},
    code_version="1",
    pool="training",
)
def lora_adapter(context: dg.AssetExecutionContext, config: TrainingRunConfig, dataset_splits: pl.DataFrame,
                 storage: TunelineStorage, base_model: BaseModel, trainer: TrainerResource) -> dg.Output[dict]:
    """A PEFT LoRA adapter per product, trained on the train split only."""
    product = context.partition_key
    records = [r for r in to_chat_records(dataset_splits) if r["split"] == "train"]
    if not records:
        raise dg.Failure(f"product {product!r} has no training examples after curation")
    work = storage.work_dir(product)
    train_file = atomic_write_jsonl(work / "train.jsonl", records)
    train_config = TrainConfig(
        model=base_model.resolve(storage.model_cache), train_file=str(train_file),
        output_dir=str(storage.adapter_dir(product)), **config.model_dump())
    summary = trainer.train(train_config)
    manifest = dataset_splits.filter(pl.col("split") == "train").select(
        pl.col("content_hash").alias("example_id"), "ticket_id", "thread_id", "product", "source_file")
    atomic_write_parquet(Path(summary["adapter_dir"]) / "training_manifest.parquet", manifest)
    summary["base_model"] = train_config.model
    summary["train_file"] = str(train_file)
    return dg.Output(summary, metadata={
        "adapter_dir": dg.MetadataValue.path(summary["adapter_dir"]),
        "global_steps": summary["global_steps"],
        "train_examples": summary["train_examples"],
        "train_loss": summary["train_loss"],
        "supervised_tokens_per_second": summary["supervised_tokens_per_second"] or 0.0,
        "device": summary["device"],
        "base_model": train_config.model,
    })
