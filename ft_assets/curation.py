"""scored_dataset: filters, exact + near dedup (also across products), quality score, diversity sampling."""

import dataclasses

import dagster as dg
import polars as pl

from ft_assets.catalog import counts_table, parts_metadata, table
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
    dedup_state_of,
    distribution,
    funnel,
    index_settings,
    kb_articles_of,
    reusable_signatures,
    reusable_text_features,
    score_conversations,
    signature_frame,
    text_features_digest,
)
from tuneline.parts import Part, PartedFrame, Spill, part_key


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
                         cleaned_conversations: PartedFrame, storage: TunelineStorage) -> dg.Output:
    """MinHash signatures of a product's conversations (parquet, one partition per product, one part per
    cleaned part, with the settings that made them). scored_dataset reads every product's partition to find
    conversations another product already has. Incremental: a part hashed before under the same settings is
    carried over unread; in a new one, a text an earlier part of the same source held keeps its signature."""
    rules = settings_from(CurationRules, config)
    settings = {name: getattr(rules, name) for name in INDEX_SETTINGS}
    previous = storage.previous_parts("near_duplicate_index", context.partition_key) or PartedFrame([])
    spill = Spill(storage.work_dir(context.partition_key))
    parts = []
    for cleaned_part in cleaned_conversations.parts:
        part_id = part_key(cleaned_part.key, settings)
        if carried := previous.carried_part(part_id):
            parts.append(carried)
            continue
        source = cleaned_part.facts.get("source")
        known: dict[str, list[int]] = {}
        for old in previous.of_source(source):
            known.update(reusable_signatures(previous.frame_of(old), rules))
        signatures = signature_frame(cleaned_conversations.frame_of(cleaned_part), rules, known)
        parts.append(spill.made(part_id, signatures, source=source, **settings))
    value = PartedFrame(parts).carried_from(previous, spill)
    return dg.Output(value, metadata={**parts_metadata(value), "parts": len(parts),
                                      "parts_hashed_now": sum(1 for p in parts if p.is_new),
                                      "near_dup_threshold": rules.near_dup_threshold,
                                      "num_perm": rules.num_perm, "shingle_words": rules.shingle_words})


class _CurationOptions(dg.Config):
    """Filters, quality and sampling (CurationRules, defaults from it); near-duplicate settings belong to
    near_duplicate_index."""


CurationConfig = derived_config("CurationConfig", CurationRules, base=_CurationOptions, exclude=INDEX_SETTINGS)


def own_signatures(index: PartedFrame, cleaned_key: str, rules: CurationRules) -> dict[str, list[int]]:
    """Signatures of one cleaned part from the product's index part made from it (same key rule as
    near_duplicate_index); none when the index was built otherwise (then they are hashed again)."""
    wanted = part_key(cleaned_key, {name: getattr(rules, name) for name in INDEX_SETTINGS})
    part = index.carried_part(wanted)
    return reusable_signatures(index.frame_of(part), rules) if part is not None else {}


def curation_code_digest() -> str:
    """The scoring code: a change of it scores every part again."""
    import hashlib
    from pathlib import Path

    from tuneline import curation, judge

    return hashlib.sha256(Path(curation.__file__).read_bytes() + Path(judge.__file__).read_bytes()).hexdigest()


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
def scored_dataset(context: dg.AssetExecutionContext, config: CurationConfig, cleaned_conversations: PartedFrame,
                   near_duplicate_index: dict[str, PartedFrame], judge: JudgeResource,
                   storage: TunelineStorage) -> dg.Output[PartedFrame]:
    """Every conversation with its score, strata and `status` (kept, or why it was filtered), one part per
    cleaned part. Incremental: a part whose input, and every input before it, is unchanged under the same
    rules, KB articles, judge and cross-product index is carried over unread; a new part is deduplicated
    against every earlier row (their hashes and MinHash bands loaded in one pass from the stored parts and
    the index), so the result equals a full rebuild. Diversity sampling (`target_size`) sees every row, so
    with it set the product is scored whole, as one part."""
    product = context.partition_key
    if product not in near_duplicate_index:
        raise dg.Failure(f"near_duplicate_index has no partition for {product!r}: materialize it first")
    try:
        dedup = index_settings({p: v.collect(list(INDEX_SETTINGS)) for p, v in near_duplicate_index.items()})
    except IndexSettingsMismatch as exc:
        raise dg.Failure(str(exc)) from exc
    rules = rules_from(config, dedup)
    own_index = near_duplicate_index[product]
    others = {p: v for p, v in near_duplicate_index.items() if p != product}
    llm_judge = judge.judge()
    judge_identity = None
    if llm_judge is not None:
        from tuneline.judge import prompt_hash

        judge_identity = [llm_judge.model, prompt_hash()]
    kb_parts = [p for p in cleaned_conversations.parts if p.facts.get("kb", 1)]
    kb_articles = [a for part in kb_parts for a in kb_articles_of(cleaned_conversations.frame_of(
        part, ["messages", "source_kind"]))]
    # what decides every part besides its input: rules, dedup settings, the KB, the judge, the products that
    # own a shared conversation (those sorting first), the scoring code
    chain = part_key(dataclasses.asdict(rules), kb_articles, judge_identity, text_features_digest(),
                     {p: v.version() for p, v in others.items() if p < product}, curation_code_digest())
    previous = storage.previous_parts("scored_dataset", product) or PartedFrame([])
    spill = Spill(storage.work_dir(product))
    index: CrossProductIndex | None = None
    state = None
    parts = []
    whole = rules.target_size is not None
    inputs = [PartedFrame([Part.made(chain, cleaned_conversations.collect())])] if whole else [cleaned_conversations]
    for cleaned_part in inputs[0].parts:
        chain = part_key(chain, cleaned_part.key)
        if carried := previous.carried_part(chain):
            parts.append(carried)
            continue
        if state is None:  # the first new part: the dedup state of every part before it, loaded once
            earlier = [previous.frame_of(p, ["content_hash", "status"]) for p in parts]
            state = dedup_state_of(earlier, (f for _, f in own_index.frames(["content_hash", "signature"])), rules)
            # only products sorting first can own a conversation this product has too
            index = CrossProductIndex({p: (f for _, f in v.frames(["content_hash", "signature"]))
                                       for p, v in others.items() if p < product}, rules)
        frame = inputs[0].frame_of(cleaned_part)
        source = cleaned_part.facts.get("source")
        features = {}
        for old in previous.of_source(source):
            features.update(reusable_text_features(previous.frame_of(old)))
        scored = score_conversations(frame, rules, index=index, product=product, judge=llm_judge, dedup=state,
                                     signatures=reusable_signatures(own_index.collect(), rules) if whole else
                                     own_signatures(own_index, cleaned_part.key, rules),
                                     features=features, kb_articles=kb_articles)
        parts.append(spill.made(chain, scored, source=source))
    value = PartedFrame(parts).carried_from(previous, spill)
    columns = ["status", "topic", "difficulty", "sentiment", "quality_score"]
    scored = value.collect(columns)  # the funnel and the strata: a few columns of every row
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
    return dg.Output(value, metadata={
        **parts_metadata(value), "parts": len(parts), "parts_scored_now": sum(1 for p in parts if p.is_new),
        "kept": kept.height,
        "funnel": table(funnel_rows, ["stage", "rows", "share of raw"]),
        "status_counts": counts_table(distribution(scored, "status"), "status"),
        "distributions": table(strata, ["column", "value", "before sampling", "kept"]),
        "mean_quality_kept": float(kept["quality_score"].mean()) if kept.height else 0.0,
        # conversations of the products sorting first (they own what this product shares with them)
        "examples_in_cross_product_index": len(index) if index is not None else "(not built: nothing new)",
        **{f"dedup_{k}": v for k, v in (dedup or {}).items()},
        **judge_metadata,
    })
