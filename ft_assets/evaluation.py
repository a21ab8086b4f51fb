"""eval_report: base vs tuned on the product's test split."""


from pathlib import Path

import dagster as dg
import polars as pl

from ft_assets.partitions import product_partitions
from ft_resources.storage import TunelineStorage
from tuneline.evaluation import EvalSettings, evaluate_adapter
from tuneline.splits import to_chat_records
from tuneline.storage import atomic_write_json


class EvalConfig(dg.Config):
    max_examples: int = 32
    max_new_tokens: int = 64
    batch_size: int = 8


def report_markdown(report: dict) -> str:
    rows = ["| metric | base | tuned | delta |", "|---|---:|---:|---:|"]
    for metric in ("perplexity", "rouge1", "rouge2", "rougeL"):
        rows.append(f"| {metric} | {report['base'][metric]} | {report['tuned'][metric]} | "
                    f"{report['delta'][metric]:+} |")
    return "\n".join(rows)


@dg.asset(
    partitions_def=product_partitions,
    group_name="evaluation",
    kinds={"pytorch"},
    code_version="1",
)
def eval_report(context: dg.AssetExecutionContext, config: EvalConfig, dataset_splits: pl.DataFrame,
                lora_adapter: dict, storage: TunelineStorage) -> dg.Output[dict]:
    """Perplexity on the reference reply and ROUGE of greedy replies, base model vs base + adapter."""
    test = [r for r in to_chat_records(dataset_splits) if r["split"] == "test"]
    if not test:
        raise dg.Failure(f"product {context.partition_key!r} has an empty test split; add tickets or change ratios")
    settings = EvalSettings(max_examples=config.max_examples, max_new_tokens=config.max_new_tokens,
                            batch_size=config.batch_size)
    report = evaluate_adapter(lora_adapter["base_model"], lora_adapter["adapter_dir"], test, settings)
    report["product"] = context.partition_key
    report["adapter_dir"] = lora_adapter["adapter_dir"]
    path = atomic_write_json(Path(lora_adapter["adapter_dir"]) / "evaluation_results.json", report)
    atomic_write_json(storage.reports_dir(context.partition_key) / "evaluation_results.json", report)
    return dg.Output(report, metadata={
        "report": dg.MetadataValue.md(report_markdown(report)),
        "test_examples": report["examples"],
        "base_rougeL": report["base"]["rougeL"], "tuned_rougeL": report["tuned"]["rougeL"],
        "base_perplexity": report["base"]["perplexity"], "tuned_perplexity": report["tuned"]["perplexity"],
        "results_file": dg.MetadataValue.path(str(path)),
    })
