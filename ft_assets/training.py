"""lora_adapter: builds a TrainConfig from the partition and run config, trains through the trainer resource."""

import hashlib
from pathlib import Path

import dagster as dg
import polars as pl

from ft_assets.partitions import product_partitions
from ft_resources.models import BaseModel
from ft_resources.storage import TunelineStorage
from ft_resources.tracking import MlflowTracking
from ft_resources.trainer import TrainerResource
from tuneline.reporting import png_file_markdown
from tuneline.splits import to_chat_records
from tuneline.storage import atomic_write_jsonl, atomic_write_parquet
from tuneline.training import DEFAULT_TARGET_MODULES, TrainConfig


class TrainingRunConfig(dg.Config):
    """Recipe defaults (r=16, alpha=32, lr 2e-4, cosine, 3 epochs); max_steps > 0 overrides epochs."""

    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0  # dropout masks cost ~12% of a CPU step (torch.profiler); set 0.05 for small noisy data
    target_modules: list[str] = list(DEFAULT_TARGET_MODULES)
    learning_rate: float = 2e-4
    warmup_ratio: float = 0.03
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 4
    num_epochs: float = 3.0
    max_steps: int = -1
    max_length: int = 512
    seed: int = 42
    eval_steps: int = 0
    early_stopping_patience: int = 0
    save_steps: int = 0


@dg.asset(
    partitions_def=product_partitions,
    group_name="training",
    kinds={"pytorch", "huggingface"},
    code_version="3",
    pool="training",
)
def lora_adapter(context: dg.AssetExecutionContext, config: TrainingRunConfig, dataset_splits: pl.DataFrame,
                 storage: TunelineStorage, base_model: BaseModel, trainer: TrainerResource,
                 tracking: MlflowTracking) -> dg.Output[dict]:
    """A PEFT LoRA adapter per product, trained on the train split only (validation split for eval loss).

    Versioned: `adapters/<product>/v-<hash of data + run config>/`, so the same inputs rewrite the same
    version and new data makes a new one. A run killed mid-training and materialized again resumes from
    its last checkpoint, kept under the same key."""
    product = context.partition_key
    records = to_chat_records(dataset_splits)
    train = [r for r in records if r["split"] == "train"]
    if not train:
        raise dg.Failure(f"product {product!r} has no training examples after curation", allow_retries=False)
    work = storage.work_dir(product)
    train_file = atomic_write_jsonl(work / "train.jsonl", train)
    val_file = atomic_write_jsonl(work / "val.jsonl", [r for r in records if r["split"] == "val"])
    signature = hashlib.sha256(train_file.read_bytes() + config.model_dump_json().encode()).hexdigest()[:12]
    train_config = TrainConfig(
        model=base_model.resolve(storage.model_cache), train_file=str(train_file), val_file=str(val_file),
        output_dir=str(storage.adapter_dir(product) / f"v-{signature}"),
        checkpoint_dir=str(work / "checkpoints" / signature),
        mlflow_tracking_uri=tracking.tracking_uri, mlflow_experiment=tracking.experiment,
        run_name=f"{product}-{context.run_id[:8]}", **config.model_dump())
    summary = trainer.train(context, train_config)
    manifest = dataset_splits.filter(pl.col("split") == "train").select(
        pl.col("content_hash").alias("example_id"), "ticket_id", "thread_id", "product", "source_file")
    atomic_write_parquet(Path(summary["adapter_dir"]) / "training_manifest.parquet", manifest)
    summary["base_model"] = train_config.model
    summary["train_file"] = str(train_file)
    summary["adapter_key"] = storage.relative(summary["adapter_dir"])
    summary["adapter_uri"] = storage.publish(Path(summary["adapter_dir"]))
    curve = Path(summary["adapter_dir"]) / "loss_curve.png"
    return dg.Output(summary, metadata={
        "adapter_dir": dg.MetadataValue.path(summary["adapter_dir"]),
        "loss_curve": dg.MetadataValue.md(png_file_markdown(curve, "loss curve") if curve.exists() else "(none)"),
        "best_eval_loss": summary["best_eval_loss"] if summary["best_eval_loss"] is not None else float("nan"),
        "resumed_from": summary["resumed_from"] or "",
        "mlflow_run_id": summary.get("mlflow_run_id") or "",
        "global_steps": summary["global_steps"],
        "train_examples": summary["train_examples"],
        "train_loss": summary["train_loss"],
        "supervised_tokens_per_second": summary["supervised_tokens_per_second"] or 0.0,
        "device": summary["device"],
        "base_model": train_config.model,
    })
