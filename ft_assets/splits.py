"""dataset_splits: stable train/val/test by thread, and chat JSONL exports."""


import dagster as dg
import polars as pl

from ft_assets.partitions import product_partitions
from ft_resources.storage import TunelineStorage
from tuneline.splits import DEFAULT_SYSTEM_PROMPT, SplitRatios, assign_splits, to_chat_records
from tuneline.storage import atomic_write_jsonl
from tuneline.validators import chat_format_problems, split_leakage


class SplitConfig(dg.Config):
    train_ratio: float = 0.8
    val_ratio: float = 0.1
    test_ratio: float = 0.1
    system_prompt: str = DEFAULT_SYSTEM_PROMPT


@dg.asset(
    partitions_def=product_partitions,
    group_name="curation",
    kinds={"polars"},
    code_version="1",
    automation_condition=dg.AutomationCondition.eager(),
    check_specs=[
        dg.AssetCheckSpec("chat_format", asset="dataset_splits", blocking=True,
                          description="System turn first, user/assistant turns, non-empty, ends on assistant."),
        dg.AssetCheckSpec("no_leakage_across_splits", asset="dataset_splits", blocking=True,
                          description="No conversation or thread appears in two splits."),
    ],
)
def dataset_splits(context: dg.AssetExecutionContext, config: SplitConfig, scored_dataset: pl.DataFrame,
                   storage: TunelineStorage):
    """Kept conversations with a `split` column; exports `<root>/exports/<product>/{train,val,test}.jsonl`."""
    ratios = SplitRatios(config.train_ratio, config.val_ratio, config.test_ratio)
    splits = assign_splits(scored_dataset, ratios, config.system_prompt)
    records = to_chat_records(splits)
    export_dir = storage.exports_dir(context.partition_key)
    sizes = {}
    for name in ("train", "val", "test"):
        chosen = [r for r in records if r["split"] == name]
        atomic_write_jsonl(export_dir / f"{name}.jsonl", chosen)
        sizes[name] = len(chosen)
    yield dg.Output(splits, metadata={
        "dagster/row_count": splits.height, **{f"{k}_examples": v for k, v in sizes.items()},
        "export_dir": dg.MetadataValue.path(str(export_dir)),
        "system_prompt": config.system_prompt,
    })
    problems = chat_format_problems(records)
    yield dg.AssetCheckResult(check_name="chat_format", passed=not problems,
                              metadata={"problems": dg.MetadataValue.json(problems)})
    leaks = split_leakage(splits)
    yield dg.AssetCheckResult(check_name="no_leakage_across_splits", passed=not leaks,
                              metadata={"problems": dg.MetadataValue.json(leaks)})
