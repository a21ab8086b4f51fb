"""scored_dataset: length and language filters, exact + near dedup, quality score."""


import dagster as dg
import polars as pl

from ft_assets.partitions import product_partitions
from tuneline.curation import KEPT, CurationRules, funnel, score_conversations


class CurationConfig(dg.Config):
    min_chars: int = 50
    languages: list[str] = ["en"]
    near_dup_threshold: float = 0.8
    shingle_words: int = 5
    min_quality: float = 0.3


@dg.asset(
    partitions_def=product_partitions,
    group_name="curation",
    kinds={"polars", "datasketch"},
    code_version="1",
    automation_condition=dg.AutomationCondition.eager(),
)
def scored_dataset(context: dg.AssetExecutionContext, config: CurationConfig,
                   cleaned_conversations: pl.DataFrame) -> dg.Output[pl.DataFrame]:
    """Every conversation with its score and `status` (kept, or why it was filtered)."""
    rules = CurationRules(min_chars=config.min_chars, languages=tuple(config.languages),
                          near_dup_threshold=config.near_dup_threshold, shingle_words=config.shingle_words,
                          min_quality=config.min_quality)
    scored = score_conversations(cleaned_conversations, rules)
    stages = funnel(scored)
    statuses = dict(scored.group_by("status").len().iter_rows())
    kept = scored.filter(pl.col("status") == KEPT)
    table = "\n".join(["| stage | rows | share |", "|---|---:|---:|"] + [
        f"| {stage} | {n} | {n / max(stages['raw'], 1):.0%} |" for stage, n in stages.items()])
    return dg.Output(scored, metadata={
        "dagster/row_count": scored.height,
        "kept": kept.height,
        "funnel": dg.MetadataValue.md(table),
        "status_counts": dg.MetadataValue.json(statuses),
        "mean_quality_kept": float(kept["quality_score"].mean()) if kept.height else 0.0,
    })
