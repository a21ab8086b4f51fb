"""After deployment: what `tuneline serve` answered and what users said about it (served_conversations), and
the per-product A/B report whose rollout decision moves the challenger's share in the registry
(ab_test_report), and the product's health in production (serving_health). The rollout_sensor runs the
first two when a product's response log grows."""

import json

import dagster as dg
import polars as pl

from ft_assets.catalog import frame_metadata, table
from ft_assets.config import derived_config, settings_from
from ft_assets.partitions import product_partitions
from ft_resources.alerts import AlertWebhook
from ft_resources.llm import JudgeResource
from ft_resources.storage import TunelineStorage
from ft_resources.tracking import MlflowTracking
from tuneline.ab_testing import (
    ARMS,
    RolloutPolicy,
    ab_report,
    nearest_rank,
    outcomes_from_rows,
    read_response_log,
    rollout_decision,
    served_frame,
)
from tuneline.drift import DriftThresholds, drift_report
from tuneline.judge import mean_rubric
from tuneline.registry import apply_rollout, rollout_state

PRODUCTION_GROUP = "production"


class _RolloutOptions(dg.Config):
    """The rollout policy (every field of tuneline.ab_testing.RolloutPolicy, defaults from it). `apply` False
    reports the decision without moving the registry."""

    apply: bool = True

    def policy(self) -> RolloutPolicy:
        return settings_from(RolloutPolicy, self)


RolloutConfig = derived_config("RolloutConfig", RolloutPolicy, base=_RolloutOptions)


@dg.asset(partitions_def=product_partitions, group_name=PRODUCTION_GROUP, kinds={"polars"}, code_version="1")
def served_conversations(context: dg.AssetExecutionContext, storage: TunelineStorage) -> dg.Output[pl.DataFrame]:
    """Every answer the server gave for this product, with the arm and adapter that gave it, its latency and
    tokens, and the latest feedback on it (resolved, escalated, CSAT, thumbs, a corrected reply). Texts were
    redacted by the server before they were written."""
    responses, feedback, unreadable = read_response_log(storage.response_log_dir(context.partition_key))
    frame = served_frame(responses, feedback)
    with_feedback = frame.filter(pl.col("resolved").is_not_null() | pl.col("csat").is_not_null())
    return dg.Output(frame, metadata={
        **frame_metadata(frame), "responses": frame.height, "with_feedback": with_feedback.height,
        "corrected_replies": frame.filter(pl.col("corrected_reply").is_not_null()).height,
        "unreadable_log_lines": unreadable,
        **{f"{arm}_responses": frame.filter(pl.col("arm") == arm).height for arm in ARMS}})


def plotted(value: float | None) -> float:
    """A number for the asset's plots: NaN where there is none yet, so the series keeps its gaps."""
    return float("nan") if value is None else float(value)


ARM_COLUMNS = ["arm", "requests", "error_rate", "feedback", "resolved_rate", "resolved_ci_low", "resolved_ci_high",
               "escalated_rate", "csat_mean", "p50_seconds", "p95_seconds", "p99_seconds", "tokens_per_request",
               "cost_per_request"]


def arm_rows(report: dict) -> list[dict]:
    """The report's per-arm numbers as table rows (None where an arm has no data yet)."""
    rows = []
    for arm, numbers in report["arms"].items():
        rows.append({"arm": arm, "requests": numbers["requests"], "error_rate": numbers["error_rate"],
                     "resolved_rate": numbers["resolved"]["rate"], "resolved_ci_low": numbers["resolved"]["ci_low"],
                     "resolved_ci_high": numbers["resolved"]["ci_high"], "feedback": numbers["resolved"]["n"],
                     "escalated_rate": numbers["escalated"]["rate"], "csat_mean": numbers["csat_mean"],
                     "p50_seconds": numbers["p50_seconds"], "p95_seconds": numbers["p95_seconds"],
                     "p99_seconds": numbers["p99_seconds"], "tokens_per_request": numbers["tokens_per_request"],
                     "cost_per_request": numbers["cost_per_request"]})
    return rows


@dg.asset(partitions_def=product_partitions, group_name=PRODUCTION_GROUP, kinds={"mlflow"}, code_version="1")
def ab_test_report(context: dg.AssetExecutionContext, config: RolloutConfig, served_conversations: pl.DataFrame,
                   tracking: MlflowTracking) -> dg.Output[dict]:
    """Champion vs challenger on live traffic: per arm resolution, escalation, CSAT (with intervals and
    significance tests), errors, latency percentiles, tokens and cost; then the rollout decision (advance
    10% -> 50% -> 100% and promote, hold, or roll back to 0%), carried out in the registry where the server
    reads it. Each materialization is the record of one decision and its numbers; the per-arm figures plot
    per product and over time under the asset overview's Metadata > Plots."""
    product = context.partition_key
    name = f"tuneline-{product}"
    policy = config.policy()
    before = rollout_state(tracking.tracking_uri, name)
    current = served_conversations
    if before["challenger"]:  # only this challenger's test: earlier challengers' answers are another test
        current = served_conversations.filter(
            (pl.col("arm") == "champion") | (pl.col("adapter_dir") == before["challenger"]["adapter_dir"]))
    report = ab_report(outcomes_from_rows(current.to_dicts()), policy)
    if before["challenger"] is None:
        decision = {"action": "none", "share": 0.0, "reason": "no challenger in the registry", "numbers": {}}
    else:
        decision = rollout_decision(report, before["share"], policy)
    after = apply_rollout(tracking.tracking_uri, name, decision) if config.apply else before
    report.update({"product": product, "decision": decision, "registry_before": before, "registry_after": after,
                   "applied": config.apply})
    context.log.info(f"{product}: {decision['action']} -> share {decision['share']}: {decision['reason']}")
    arms = report["arms"]
    return dg.Output(report, metadata={
        "decision": decision["action"], "reason": decision["reason"],
        "challenger_share": float(after["share"]) if after["challenger"] else float(decision["share"]),
        "challenger_version": (before["challenger"] or {}).get("version") or 0,
        "champion_version": (after["champion"] or {}).get("version") or 0,
        "arms": table(arm_rows(report), ARM_COLUMNS),
        "resolution_diff": plotted(report["resolution"]["diff"]),
        "resolution_p_value": plotted(report["resolution"]["p_value"]),
        **{f"{arm}_resolved_rate": plotted(arms[arm]["resolved"]["rate"]) for arm in ARMS},
        **{f"{arm}_p95_seconds": plotted(arms[arm]["p95_seconds"]) for arm in ARMS},
        **{f"{arm}_error_rate": plotted(arms[arm]["error_rate"]) for arm in ARMS}})


class ServingHealthConfig(dg.Config):
    """Thresholds that raise an alert. Drift compares live questions with the training split (length
    distribution; with `use_embeddings`, the MiniLM centroid); the judge scores the `judge_sample` latest
    answers (rubric mean, 0..1) when a judge is configured."""

    max_error_rate: float = 0.02
    max_p95_seconds: float = 10.0
    length_ks: float = 0.3
    centroid_cosine: float = 0.1
    min_new_examples: int = 20
    use_embeddings: bool = False
    judge_sample: int = 20
    min_judge_score: float = 0.5


def health_alerts(numbers: dict, config: ServingHealthConfig) -> list[str]:
    """Pure: which thresholds the live numbers crossed, in words."""
    alerts = []
    if numbers["error_rate"] is not None and numbers["error_rate"] > config.max_error_rate:
        alerts.append(f"error rate {numbers['error_rate']:.1%} above {config.max_error_rate:.1%}")
    if numbers["p95_seconds"] is not None and numbers["p95_seconds"] > config.max_p95_seconds:
        alerts.append(f"P95 latency {numbers['p95_seconds']:.2f} s above {config.max_p95_seconds} s")
    if numbers["drift"]["drifted"]:
        alerts.append(f"live questions drifted from the training data ({numbers['drift']['reason']})")
    if numbers["judge_score"] is not None and numbers["judge_score"] < config.min_judge_score:
        alerts.append(f"judge score {numbers['judge_score']:.2f} below {config.min_judge_score}")
    return alerts


@dg.asset(partitions_def=product_partitions, group_name=PRODUCTION_GROUP, kinds={"polars"}, code_version="1")
def serving_health(context: dg.AssetExecutionContext, config: ServingHealthConfig, served_conversations: pl.DataFrame,
                   storage: TunelineStorage, judge: JudgeResource, alerts: AlertWebhook) -> dg.Output[dict]:
    """Is the product healthy in production: errors and latency of live answers, drift of live questions
    from what the adapter was trained on, and the judge's score of a sample of live answers (quality
    drift). A crossed threshold is an alert, posted to the alert webhook when one is configured. The
    training split is read as dataset_splits last wrote it, not as a graph input: a product's data run
    (`raw_tickets*`) must not pull live-traffic assets in."""
    product = context.partition_key
    served = served_conversations.filter(~pl.col("error"))
    latencies = sorted(served["latency_seconds"].drop_nulls().to_list())
    splits = storage.previous_asset_frame("dataset_splits", product)
    if splits is None:
        raise dg.Failure(f"{product}: no dataset_splits to compare live questions with; materialize the "
                         "product's data first", allow_retries=False)
    train = splits.filter(pl.col("split") == "train").select("topic", "messages")
    live = pl.DataFrame({"messages": [json.loads(m) for m in served["messages_json"].to_list()]},
                        schema={"messages": train.schema["messages"]})
    embed = None
    if config.use_embeddings:
        from tuneline.evaluation import embed_texts

        def embed(texts):
            vectors = embed_texts(texts)
            return None if vectors is None else vectors.numpy()

    drift = drift_report(train, live, DriftThresholds(centroid_cosine=config.centroid_cosine,
                                                      length_ks=config.length_ks,
                                                      min_new_examples=config.min_new_examples), embed)
    scores = []
    scorer = judge.judge()
    if scorer is not None:
        for row in served.sort("created", descending=True).head(config.judge_sample).iter_rows(named=True):
            score = mean_rubric(scorer.score(row["prompt"] or "", row["reply"] or ""))
            if score is not None:
                scores.append(score)
    numbers = {"requests": served_conversations.height,
               "error_rate": round(served_conversations["error"].mean(), 4) if served_conversations.height else None,
               "p50_seconds": nearest_rank(latencies, 50), "p95_seconds": nearest_rank(latencies, 95),
               "drift": drift, "judge_score": round(sum(scores) / len(scores), 4) if scores else None,
               "judged": len(scores)}
    raised = health_alerts(numbers, config)
    sent = None
    if raised:
        context.log.warning(f"{product}: " + "; ".join(raised))
        try:
            sent = alerts.send(f"tuneline {product}: " + "; ".join(raised), {"product": product, **numbers})
        except OSError as exc:  # an unreachable webhook must not hide the alert in the metadata
            context.log.warning(f"alert webhook did not answer: {exc}")
    report = {**numbers, "product": product, "alerts": raised, "alert_sent": sent is not None}
    return dg.Output(report, metadata={
        "healthy": not raised, "alerts": table([{"alert": a} for a in raised], ["alert"]),
        "requests": numbers["requests"], "judged": len(scores),
        **{k: plotted(numbers[k]) for k in ("error_rate", "p50_seconds", "p95_seconds", "judge_score")},
        **{f"drift_{k}": float(v) for k, v in drift["metrics"].items()}})
