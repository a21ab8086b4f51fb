"""preference_pairs and preference_adapter: DPO, ORPO or GRPO on top of the product's SFT adapter."""

from pathlib import Path

import dagster as dg
import polars as pl

from ft_assets.catalog import counts_table, frame_metadata
from ft_assets.partitions import product_partitions
from ft_resources.models import BaseModel
from ft_resources.storage import TunelineStorage
from ft_resources.trainer import TrainerResource
from tuneline.parts import PartedFrame
from tuneline.preference import PreferenceConfig, build_preference_pairs, low_quality_replies
from tuneline.storage import atomic_write_jsonl


@dg.asset(partitions_def=product_partitions, group_name="alignment", kinds={"polars"}, code_version="1")
def preference_pairs(context: dg.AssetExecutionContext, dataset_splits: PartedFrame,
                     scored_dataset: PartedFrame) -> dg.Output[pl.DataFrame]:
    """chosen = the curated agent reply; rejected = a low-scored reply, else a reply for another topic. Read
    part by part: the train rows, and of the scored rows only the low-scored replies."""
    train = [f.filter(pl.col("split") == "train") for _, f in dataset_splits.frames()]
    low = [r for _, f in scored_dataset.frames(["status", "messages"]) for r in low_quality_replies(f)]
    pairs = build_preference_pairs(pl.concat(train, how="diagonal_relaxed") if train else
                                   pl.DataFrame(schema=dataset_splits.schema or {}), low)
    frame = pl.DataFrame(pairs) if pairs else pl.DataFrame()
    sources = dict(frame.group_by("rejected_source").len().iter_rows()) if frame.height else {}
    return dg.Output(frame, metadata={**frame_metadata(frame),
                                      "rejected_sources": counts_table(sources, "rejected from", "pairs")})


class PreferenceRunConfig(dg.Config):
    """dpo | orpo learn from the pairs; grpo samples `num_generations` replies per prompt and rewards the
    gate's checks (end-of-turn, intact placeholders, no made-up PII, length near the reference)."""

    method: str = "dpo"  # dpo | orpo | grpo
    beta: float = 0.1
    learning_rate: float = 5e-5
    max_steps: int = 20
    per_device_batch_size: int = 2
    max_length: int = 512
    seed: int = 42
    max_completion_length: int = PreferenceConfig.max_completion_length
    num_generations: int = PreferenceConfig.num_generations


@dg.asset(partitions_def=product_partitions, group_name="alignment", kinds={"pytorch", "huggingface"},
          code_version="1", pool="training")
def preference_adapter(context: dg.AssetExecutionContext, config: PreferenceRunConfig, preference_pairs: pl.DataFrame,
                       lora_adapter: dict, storage: TunelineStorage, base_model: BaseModel,
                       trainer: TrainerResource) -> dg.Output[dict]:
    """The SFT adapter's LoRA weights, further trained on preference pairs."""
    product = context.partition_key
    if preference_pairs.height == 0:
        raise dg.Failure(f"product {product!r} has no preference pairs", allow_retries=False)
    pairs_file = atomic_write_jsonl(storage.work_dir(product) / "preference_pairs.jsonl",
                                    preference_pairs.select("prompt", "chosen", "rejected").to_dicts())
    summary = trainer.train_preference(context, PreferenceConfig(
        model=base_model.resolve(storage.model_cache), sft_adapter=str(storage.localize_adapter(lora_adapter)),
        pairs_file=str(pairs_file), output_dir=str(storage.product_dir("preference_adapters", product)),
        **config.model_dump()))
    storage.publish(Path(summary["adapter_dir"]))
    return dg.Output(summary, metadata={"adapter_dir": dg.MetadataValue.path(summary["adapter_dir"]),
                                        "method": summary["method"], "pairs": summary["pairs"],
                                        "train_loss": summary["train_loss"]})
