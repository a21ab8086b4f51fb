"""scored_dataset: filters, exact + near dedup (also across products), quality score, diversity sampling."""

import dagster as dg
import polars as pl

from ft_assets.catalog import counts_table, frame_metadata, table
from ft_assets.config import derived_config, settings_from
from ft_assets.partitions import product_partitions
from ft_resources.io_manager import EVERY_PARTITION
from ft_resources.llm import JudgeResource
from ft_resources.storage import TunelineStorage
from tuneline.curation import (
    INDEX_SETTINGS,
    KEPT,
    CrossProductIndex,
    CurationRules,
    IndexSettingsMismatch,
    distribution,
    funnel,
    index_settings,
    reusable_signatures,
    reusable_text_features,
    score_conversations,
    signature_frame,
)


class _IndexOptions(dg.Config):
    """The one dedup configuration (CurationRules' near-duplicate fields): within a product and across
    products. Changing it makes scoring fail until near_duplicate_index is rebuilt over every product (a
    backfill), never a silent mix."""


NearDuplicateIndexConfig = derived_config("NearDuplicateIndexConfig", CurationRules, base=_IndexOptions,
                                          only=INDEX_SETTINGS)


@dg.asset(
    partitions_def=product_partitions,
    group_name="curation",
    kinds={"polars", "datasketch"},
    code_version="1",
    automation_condition=dg.AutomationCondition.eager(),
)
def near_duplicate_index(context: dg.AssetExecutionContext, config: NearDuplicateIndexConfig,
                         cleaned_conversations: pl.DataFrame, storage: TunelineStorage) -> dg.Output:
    """MinHash signatures of a product's conversations (parquet, one partition per product, with the settings
    that made them). scored_dataset reads every product's partition to find conversations another product
    already has. Incremental: a conversation whose text the previous index holds under the same settings
    keeps its signature."""
    rules = settings_from(CurationRules, config)
    known = reusable_signatures(storage.previous_asset_frame("near_duplicate_index", context.partition_key), rules)
    signatures = signature_frame(cleaned_conversations, rules, known)
    return dg.Output(signatures, metadata={**frame_metadata(signatures), "near_dup_threshold": rules.near_dup_threshold,
                                           "num_perm": rules.num_perm, "shingle_words": rules.shingle_words})


class _CurationOptions(dg.Config):
    """Filters, quality and sampling (CurationRules, defaults from it); near-duplicate settings belong to
    near_duplicate_index."""


CurationConfig = derived_config("CurationConfig", CurationRules, base=_CurationOptions, exclude=INDEX_SETTINGS)


def rules_from(config: dg.Config, dedup: dict | None = None) -> CurationRules:
    """The curation rules, near-duplicate settings from the index (`index_settings`), defaults without one."""
    return settings_from(CurationRules, config, **(dedup or {}))


@dg.asset(
    partitions_def=product_partitions,
    group_name="curation",
    kinds={"polars", "datasketch"},
    code_version="2",
    # a product's scoring waits for its own index partition (same run), not for every other product's
    automation_condition=dg.AutomationCondition.eager().ignore(dg.AssetSelection.assets("near_duplicate_index")),
    ins={"near_duplicate_index": dg.AssetIn(partition_mapping=dg.AllPartitionMapping(),
                                            metadata={EVERY_PARTITION: True})},
)
def scored_dataset(context: dg.AssetExecutionContext, config: CurationConfig, cleaned_conversations: pl.DataFrame,
                   near_duplicate_index: dict[str, pl.DataFrame], judge: JudgeResource,
                   storage: TunelineStorage) -> dg.Output[pl.DataFrame]:
    """Every conversation with its score, strata and `status` (kept, or why it was filtered). Incremental:
    MinHash signatures come from the index, and language and sentiment of a conversation scored before (same
    turns, same feature code) from the previous value; dedup and sampling always see every row."""
    product = context.partition_key
    if product not in near_duplicate_index:
        raise dg.Failure(f"near_duplicate_index has no partition for {product!r}: materialize it first")
    try:
        dedup = index_settings(near_duplicate_index)
    except IndexSettingsMismatch as exc:
        raise dg.Failure(str(exc)) from exc
    rules = rules_from(config, dedup)
    index = CrossProductIndex({p: f for p, f in near_duplicate_index.items() if p != product}, rules)
    llm_judge = judge.judge()
    scored = score_conversations(cleaned_conversations, rules, index=index, product=product, judge=llm_judge,
                                 signatures=reusable_signatures(near_duplicate_index[product], rules),
                                 features=reusable_text_features(storage.previous_asset_frame("scored_dataset",
                                                                                              product)))
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
        **{f"dedup_{k}": v for k, v in (dedup or {}).items()},
        **judge_metadata,
    })
