"""scored_dataset: filters, exact + near dedup (also across products), quality score, diversity sampling."""

import dagster as dg
import polars as pl

from ft_assets.catalog import counts_table, frame_metadata, table
from ft_assets.partitions import product_partitions
from ft_resources.llm import JudgeResource
from ft_resources.storage import TunelineStorage
from tuneline.curation import KEPT, CurationRules, NearDuplicateIndex, distribution, funnel, score_conversations


class CurationConfig(dg.Config):
    min_chars: int = 50
    languages: list[str] = ["en"]
    near_dup_threshold: float = 0.8
    shingle_words: int = 5
    min_quality: float = 0.3
    target_size: int | None = None
    seed: int = 0
    kb_agreement: bool = True
    kb_match: float = 0.3


def rules_from(config: CurationConfig) -> CurationRules:
    return CurationRules(min_chars=config.min_chars, languages=tuple(config.languages),
                         near_dup_threshold=config.near_dup_threshold, shingle_words=config.shingle_words,
                         min_quality=config.min_quality, target_size=config.target_size, seed=config.seed,
                         kb_agreement=config.kb_agreement, kb_match=config.kb_match)


@dg.asset(
    partitions_def=product_partitions,
    group_name="curation",
    kinds={"polars", "datasketch"},
    code_version="2",
    automation_condition=dg.AutomationCondition.eager(),
)
def scored_dataset(context: dg.AssetExecutionContext, config: CurationConfig, cleaned_conversations: pl.DataFrame,
                   storage: TunelineStorage, judge: JudgeResource) -> dg.Output[pl.DataFrame]:
    """Every conversation with its score, strata and `status` (kept, or why it was filtered)."""
    rules = rules_from(config)
    index = NearDuplicateIndex(storage.localize(storage.near_duplicate_index), rules)
    llm_judge = judge.judge()
    scored = score_conversations(cleaned_conversations, rules, index=index, product=context.partition_key,
                                 judge=llm_judge)
    judge_metadata = {}
    if llm_judge is not None:
        from tuneline.judge import prompt_hash

        judge_metadata = {"judge_model": llm_judge.model, "judge_prompt_sha256": prompt_hash(),
                          "judge_requests": llm_judge.stats.requested, "judge_malformed": llm_judge.stats.malformed,
                          "judge_failed": llm_judge.stats.failed}
    stages = funnel(scored)
    kept = scored.filter(pl.col("status") == KEPT)
    before = scored.filter(pl.col("status").is_in([KEPT, "not_sampled"]))  # the pool diversity sampling saw
    funnel_rows = [{"stage": s, "rows": n, "share of raw": round(n / max(stages["raw"], 1), 3)}
                   for s, n in stages.items()]
    strata = []
    for column in ("topic", "difficulty", "sentiment"):
        pool, after = distribution(before, column), distribution(kept, column)
        strata += [{"column": column, "value": value, "before sampling": pool.get(value, 0),
                    "kept": after.get(value, 0)} for value in sorted(set(pool) | set(after), key=str)]
    return dg.Output(scored, metadata={
        **frame_metadata(scored),
        "kept": kept.height,
        "funnel": table(funnel_rows, ["stage", "rows", "share of raw"]),
        "status_counts": counts_table(distribution(scored, "status"), "status"),
        "distributions": table(strata, ["column", "value", "before sampling", "kept"]),
        "mean_quality_kept": float(kept["quality_score"].mean()) if kept.height else 0.0,
        "examples_in_cross_product_index": len(index),
        **judge_metadata,
    })
