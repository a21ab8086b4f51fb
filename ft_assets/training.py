"""shared_adapter (every product's training split) and lora_adapter (per product, continued from the shared
one where it helps): TrainConfigs built from the run config, trained through the trainer resource."""

import hashlib
from pathlib import Path

import dagster as dg
import polars as pl

from ft_assets.catalog import counts_table, without_empty
from ft_assets.config import derived_config
from ft_assets.freshness import ADAPTER_FRESHNESS
from ft_assets.partitions import product_partitions
from ft_resources.io_manager import EVERY_PARTITION
from ft_resources.models import BaseModel
from ft_resources.storage import TunelineStorage
from ft_resources.tracking import MlflowTracking
from ft_resources.trainer import TrainerResource
from tuneline.reporting import png_file_markdown
from tuneline.splits import corrections_in_train, to_chat_records
from tuneline.storage import atomic_write_jsonl, atomic_write_parquet
from tuneline.training import STAGED_INPUTS, TrainConfig, portable

SHARED_ADAPTER = dg.AssetKey("shared_adapter")
START_FROM = ("auto", "base", "shared")


class _TrainingRunDefaults(dg.Config):
    """Training settings, defaults from tuneline.training.TrainConfig (LoRA r=64, alpha=128, lr 1e-3 cosine, every
    linear layer: searched on bitext's validation loss, BENCHMARKS.md section 6); max_steps or examples_seen
    override epochs. method: lora | qlora (4-bit base, needs CUDA) | full (every weight; use a lower rate)."""


TrainingRunConfig = derived_config(
    "TrainingRunConfig", TrainConfig, base=_TrainingRunDefaults,
    only=("method", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "learning_rate", "lr_scheduler_type",
          "warmup_ratio", "per_device_batch_size", "gradient_accumulation_steps", "num_epochs", "max_steps",
          "examples_seen", "max_length", "seed", "eval_steps", "early_stopping_patience", "save_steps", "keep",
          "candidate_every_examples", "mbr_samples", "beams"))


class ProductAdapterConfig(TrainingRunConfig):
    """A product's adapter: where it starts, and when the shared adapter serves the product as it is."""

    # auto: continue the shared adapter when one is materialized, else start from the base model
    start_from: str = "auto"
    # fewer training examples than this, and a shared adapter exists: the product is served by the shared one
    min_examples_for_own_adapter: int = 32
    # a product keeps, of the shared adapter, a snapshot every 160 examples seen and the last step, the one whose
    # replies score the highest ROUGE-L on its validation split ("last": the last step, chosen on validation loss)
    keep: str = "best_val_rougeL"
    candidate_every_examples: int = 160
    # the kept adapter's validation replies are also decoded by 4-beam search, and the product serves whichever
    # decoding scores higher (ties: greedy). On bitext validation chose beam for 7 of 11 products and the test
    # split agreed for 6 (BENCHMARKS.md section 6); a beam reply costs about twice a greedy one: 0 turns it off
    beams: int = 4


def _train(context: dg.AssetExecutionContext, config: TrainingRunConfig, records: list[dict], work: Path,
           output_root: Path, run_name: str, storage: TunelineStorage, base_model: BaseModel,
           trainer: TrainerResource, tracking: MlflowTracking, init_adapter: str | None = None) -> dict:
    """Write the train/val files, train (a version keyed by data, config and starting adapter), publish."""
    train = [r for r in records if r["split"] == "train"]
    train_file = atomic_write_jsonl(work / "train.jsonl", train)
    val_file = atomic_write_jsonl(work / "val.jsonl", [r for r in records if r["split"] == "val"])
    run_config = config.model_dump(exclude=set(ProductAdapterConfig.model_fields) - set(TrainingRunConfig.model_fields))
    signature = hashlib.sha256(train_file.read_bytes() + config.model_dump_json().encode()
                               + (init_adapter or "").encode()).hexdigest()[:12]
    train_config = TrainConfig(
        model=base_model.resolve(storage.model_cache), train_file=str(train_file), val_file=str(val_file),
        output_dir=str(output_root / f"v-{signature}"), checkpoint_dir=str(work / "checkpoints" / signature),
        mlflow_tracking_uri=tracking.tracking_uri, mlflow_experiment=tracking.experiment,
        run_name=f"{run_name}-{context.run_id[:8]}", init_adapter=init_adapter, **run_config)
    host_model = train_config.model
    if trainer.stages_through_storage:  # a worker that shares only the S3 mirror: inputs go there, keys go out
        if not storage.remote:
            raise dg.Failure(f"{type(trainer).__name__} runs where this machine's files are not: mirror the "
                             "storage root to S3 (TUNELINE_HOME=s3://bucket/prefix)", allow_retries=False)
        for name in STAGED_INPUTS:
            if getattr(train_config, name):
                storage.publish(Path(getattr(train_config, name)))
        train_config = portable(train_config, storage.root_path, storage.remote, storage.endpoint_url or "")
    summary = trainer.train(context, train_config)
    if summary.get("adapter_key") and train_config.storage_remote:  # the worker published it: fetch it here
        summary["adapter_dir"] = str(storage.localize(summary["adapter_key"]))
    if not summary.get("fine_tuned_model"):  # a managed fine-tune keeps its provider's base model id
        summary["base_model"] = host_model
    summary["train_file"] = str(train_file)
    summary["adapter_key"] = storage.relative(summary["adapter_dir"])
    summary["adapter_uri"] = storage.publish(Path(summary["adapter_dir"]))
    return summary


def _write_training_manifest(summary: dict, frames: list[pl.DataFrame], storage: TunelineStorage) -> None:
    """Which examples an adapter was trained on (input drift and `tuneline forget` read it)."""
    manifest = pl.concat([f.filter(pl.col("split") == "train").select(
        pl.col("content_hash").alias("example_id"), "ticket_id", "thread_id", "product", "source_file")
        for f in frames])
    path = atomic_write_parquet(Path(summary["adapter_dir"]) / "training_manifest.parquet", manifest)
    storage.publish_into_directory(path)


def _adapter_metadata(summary: dict) -> dict:
    curve = Path(summary["adapter_dir"]) / "loss_curve.png"
    return without_empty({
        "adapter_dir": dg.MetadataValue.path(summary["adapter_dir"]),
        "adapter_key": summary["adapter_key"],
        "loss_curve": dg.MetadataValue.md(png_file_markdown(curve, "loss curve")) if curve.exists() else None,
        "best_eval_loss": summary.get("best_eval_loss"),
        "kept_examples_seen": summary.get("kept_examples_seen"),  # keep best_val_rougeL: which snapshot was kept
        "val_rougeL_kept": summary.get("val_rougeL_after"),
        "resumed_from": summary.get("resumed_from"),
        "mlflow_run_id": summary.get("mlflow_run_id"),
        "global_steps": summary["global_steps"],
        "train_examples": summary["train_examples"],
        "train_loss": summary["train_loss"],
        "supervised_tokens_per_second": summary.get("supervised_tokens_per_second") or 0.0,
        "device": summary["device"],
        "method": summary.get("method", "lora"),
        "base_model": summary["base_model"],
    })


@dg.asset(
    group_name="training",
    kinds={"pytorch", "huggingface"},
    code_version="1",
    pool="training",
    ins={"dataset_splits": dg.AssetIn(partition_mapping=dg.AllPartitionMapping(),
                                      metadata={EVERY_PARTITION: True})},
)
def shared_adapter(context: dg.AssetExecutionContext, config: TrainingRunConfig,
                   dataset_splits: dict[str, pl.DataFrame], storage: TunelineStorage, base_model: BaseModel,
                   trainer: TrainerResource, tracking: MlflowTracking) -> dg.Output[dict]:
    """One adapter trained on every product's training split (each example's system prompt names its product):
    what products have in common, learned once. Each product's lora_adapter continues from it, or, for a
    product with little data of its own, is it."""
    products = sorted(dataset_splits)
    records = [r for p in products for r in to_chat_records(dataset_splits[p])]
    if not any(r["split"] == "train" for r in records):
        raise dg.Failure("no product has training examples yet: materialize dataset_splits first",
                         allow_retries=False)
    work = storage.shared_adapter_dir / "work"
    summary = _train(context, config, records, work, storage.shared_adapter_dir, "shared", storage, base_model,
                     trainer, tracking)
    _write_training_manifest(summary, [dataset_splits[p] for p in products], storage)
    summary["products"] = {p: int((dataset_splits[p]["split"] == "train").sum()) for p in products}
    return dg.Output(summary, metadata={**_adapter_metadata(summary),
                                        "products": counts_table(summary["products"], "product",
                                                                 "train examples")})


def latest_shared_adapter(instance: dg.DagsterInstance) -> dict | None:
    """The shared adapter's latest materialization as {adapter_key, base_model, run_id}, or None."""
    event = instance.get_latest_materialization_event(SHARED_ADAPTER)
    if event is None or event.asset_materialization is None:
        return None
    metadata = event.asset_materialization.metadata
    if "adapter_key" not in metadata:
        return None
    return {"adapter_key": metadata["adapter_key"].value, "base_model": metadata["base_model"].value,
            "run_id": event.run_id}


def choose_adapter(train_examples: int, min_examples: int, has_shared: bool, summary: dict | None) -> tuple[str, str]:
    """Pure: which adapter serves a product ("shared" or "product") and why. The product's training summary
    compares the shared adapter with the continued one on the product's validation split: by the ROUGE-L of
    their replies when training chose by it, else by validation loss."""
    if not has_shared:
        return "product", "no shared adapter: trained from the base model"
    if train_examples < min_examples:
        return "shared", f"{train_examples} training examples < {min_examples}: too few for an adapter of its own"
    summary = summary or {}
    if summary.get("val_rougeL_after") is not None and summary.get("val_rougeL_before") is not None:
        shared, continued = summary["val_rougeL_before"], summary["val_rougeL_after"]
        if continued > shared:
            return "product", (f"validation ROUGE-L {continued:.4f} continued ({summary['kept_examples_seen']} "
                               f"examples seen) > {shared:.4f} shared")
        return "shared", f"validation ROUGE-L {shared:.4f} shared >= {continued:.4f} continued"
    shared, continued = summary.get("val_loss_before"), summary.get("val_loss_after")
    if shared is None or continued is None:
        return "product", "no validation examples to compare on: continued from the shared adapter"
    if continued < shared:
        return "product", f"validation loss {continued:.4f} continued < {shared:.4f} shared"
    return "shared", f"validation loss {shared:.4f} shared <= {continued:.4f} continued"


@dg.asset(
    partitions_def=product_partitions,
    group_name="training",
    kinds={"pytorch", "huggingface"},
    code_version="5",
    pool="training",
    freshness_policy=ADAPTER_FRESHNESS,
)
def lora_adapter(context: dg.AssetExecutionContext, config: ProductAdapterConfig, dataset_splits: pl.DataFrame,
                 storage: TunelineStorage, base_model: BaseModel, trainer: TrainerResource,
                 tracking: MlflowTracking) -> dg.Output[dict]:
    """The adapter that serves a product: the shared adapter continued on the product's train split, or the
    shared adapter as it is, whichever scores better on the product's validation split (keep best_val_rougeL:
    the ROUGE-L of their replies, with the continued run's best snapshot; keep last: validation loss), the
    shared one outright when the product has too few examples; from the base model when no shared adapter
    is materialized. `source` in the metadata and the registry says which.

    Versioned: `adapters/<product>/v-<hash of data + run config + starting adapter>/`. A run killed
    mid-training and materialized again resumes from its last checkpoint, kept under the same key."""
    product = context.partition_key
    if config.start_from not in START_FROM:
        raise dg.Failure(f"start_from must be one of {START_FROM}, got {config.start_from!r}", allow_retries=False)
    records = to_chat_records(dataset_splits)
    train = [r for r in records if r["split"] == "train"]
    if not train:
        raise dg.Failure(f"product {product!r} has no training examples after curation", allow_retries=False)
    shared = latest_shared_adapter(context.instance) if config.start_from != "base" else None
    if config.start_from == "shared" and shared is None:
        raise dg.Failure("start_from is 'shared' but shared_adapter has not been materialized", allow_retries=False)
    if shared and len(train) < config.min_examples_for_own_adapter:
        summary = None
    else:
        init = str(storage.localize(shared["adapter_key"])) if shared else None
        summary = _train(context, config, records, storage.work_dir(product), storage.adapter_dir(product),
                         product, storage, base_model, trainer, tracking, init_adapter=init)
    trained = summary or {}
    source, reason = choose_adapter(len(train), config.min_examples_for_own_adapter, shared is not None, trained)
    if source == "shared":
        shared_dir = storage.localize(shared["adapter_key"])
        summary = {**_shared_summary(shared_dir), "adapter_dir": str(shared_dir), "adapter_key": shared["adapter_key"],
                   "base_model": shared["base_model"], "train_examples": len(train),
                   "val_loss_shared": trained.get("val_loss_before"),
                   "val_loss_continued": trained.get("val_loss_after"),
                   "val_rougeL_shared": trained.get("val_rougeL_before"),
                   "val_rougeL_continued": trained.get("val_rougeL_after")}
    else:
        _write_training_manifest(summary, [dataset_splits], storage)
    summary["source"], summary["choice_reason"] = source, reason
    summary["shared_adapter_run_id"] = shared["run_id"] if shared else None
    context.log.info(f"{product}: served by the {source} adapter ({reason})")
    lineage = {"shared_adapter": dg.MetadataValue.asset(SHARED_ADAPTER), "shared_adapter_run": shared["run_id"]} \
        if shared else {}
    return dg.Output(summary, metadata={**_adapter_metadata(summary), "source": source, "choice_reason": reason,
                                        "train_corrections": corrections_in_train(dataset_splits),
                                        **lineage})


def _shared_summary(adapter_dir: Path) -> dict:
    """The shared adapter's own training summary (from its metadata.json), for a product it serves as is."""
    import json

    metadata = json.loads((adapter_dir / "metadata.json").read_text())
    return dict(metadata["summary"])
