"""eval_report (base vs tuned, with a blocking promotion gate) and registered_model (MLflow registry)."""

from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import polars as pl

from ft_assets.catalog import frame_metadata, problems_table, table, without_empty
from ft_assets.config import derived_config, settings_from
from ft_assets.partitions import product_check, product_partitions
from ft_resources.llm import JudgeResource
from ft_resources.models import BaseModel
from ft_resources.storage import TunelineStorage
from ft_resources.tracking import MlflowTracking
from ft_resources.trainer import TrainerResource
from tuneline.evaluation import EvalSettings, evaluate_adapter, evaluate_remote, human_eval_sample
from tuneline.registry import GatePolicy, champion_version, promotion_gate, register_adapter
from tuneline.reporting import write_people_csv
from tuneline.splits import to_chat_records
from tuneline.storage import atomic_write_json

REPORT_METRICS = ("perplexity", "rougeL", "token_f1", "semantic_similarity", "exact_match", "ragas_bleu",
                  "ended_with_eot", "distinct_2", "length_ratio", "leak_rate", "placeholder_echo_rate",
                  "broken_placeholders")


class _EvalOptions(dg.Config):
    """Evaluation and promotion-gate settings: every field of EvalSettings and GatePolicy, defaults from them.
    max_new_tokens 0: headroom x the references' 95th percentile length."""

    human_eval_rows: int = 100


EvalConfig = derived_config("EvalConfig", EvalSettings, GatePolicy, base=_EvalOptions)


def registry_name(product: str) -> str:
    return f"tuneline-{product}"


def report_rows(report: dict) -> list[dict]:
    """One row per metric: base, tuned, the paired difference and its 95% bootstrap interval."""
    rows = []
    for metric in REPORT_METRICS:
        if metric not in report["base"]:
            continue
        ci = report.get("bootstrap", {}).get(metric) or {}
        rows.append({"metric": metric, "base": report["base"][metric], "tuned": report["tuned"][metric],
                     "delta": report["delta"].get(metric), "ci_low": ci.get("ci_low"), "ci_high": ci.get("ci_high")})
    return rows


def per_topic_rows(samples: list[dict]) -> list[dict]:
    from tuneline.evaluation import token_f1

    by_topic: dict[str, list[tuple[float, float]]] = {}
    for s in samples:
        by_topic.setdefault(str(s.get("topic")), []).append((token_f1(s["base"], s["reference"]),
                                                             token_f1(s["tuned"], s["reference"])))
    return [{"topic": t, "examples": len(v), "base token F1": sum(b for b, _ in v) / len(v),
             "tuned token F1": sum(x for _, x in v) / len(v)} for t, v in sorted(by_topic.items())]


def gate_rows(gate: dict) -> list[dict]:
    """The promotion gate's checks, each with whether it passed."""
    return [{"check": name, "passed": bool(passed)} for name, passed in gate["checks"].items()]


@dg.asset(
    partitions_def=product_partitions,
    group_name="evaluation",
    kinds={"pytorch"},
    code_version="2",
    check_specs=[product_check(
        "promotion_gate", asset="eval_report", blocking=True,
        description="Tuned beats base on the primary metric (CI above 0), no regression vs the champion beyond "
                    "the margin, replies end with the end-of-turn token, no PII in generations.")],
)
def eval_report(context: dg.AssetExecutionContext, config: EvalConfig, dataset_splits: pl.DataFrame,
                lora_adapter: dict, storage: TunelineStorage, judge: JudgeResource, tracking: MlflowTracking,
                base_model: BaseModel, trainer: TrainerResource):
    """Base model vs base + adapter on the test split: quality, hygiene, leaks, bootstrap CIs, optional judge."""
    product = context.partition_key
    records = to_chat_records(dataset_splits)
    test = [r for r in records if r["split"] == "test"]
    if not test:
        raise dg.Failure(f"product {product!r} has an empty test split; add tickets or change ratios",
                         allow_retries=False)
    settings = settings_from(EvalSettings, config)
    adapter_dir = str(storage.localize_adapter(lora_adapter))
    if lora_adapter.get("fine_tuned_model"):  # a managed fine-tune: both models answer through the provider's API
        client = trainer.inference_client()
        if client is None:
            raise dg.Failure(f"{product}: the adapter is the managed model {lora_adapter['fine_tuned_model']!r} "
                             "but the trainer resource has no API to evaluate it through", allow_retries=False)
        report = evaluate_remote(client, lora_adapter["base_model"], lora_adapter["fine_tuned_model"], test,
                                 settings, judge=judge.judge())
    else:
        base = lora_adapter["base_model"]
        if not Path(base).exists():  # trained on another machine: the same base model, from this machine's cache
            base = base_model.resolve(storage.model_cache)
        report = evaluate_adapter(base, adapter_dir, test, settings, judge=judge.judge(),
                                  sizing_records=records)  # every split's reply lengths size the budget
    champion = champion_version(tracking.tracking_uri, registry_name(product))
    policy = settings_from(GatePolicy, config)
    report["gate"] = promotion_gate(report, champion, policy)
    report["champion_at_eval"] = champion
    report["product"] = product
    report["adapter_dir"] = adapter_dir
    samples = report.pop("all_samples")
    reports_dir = storage.reports_dir(product)
    write_people_csv(reports_dir / "human_eval_sample.csv", human_eval_sample(samples, config.human_eval_rows))
    atomic_write_json(reports_dir / "generations.json", samples)
    path = atomic_write_json(Path(adapter_dir) / "evaluation_results.json", report)
    atomic_write_json(reports_dir / "evaluation_results.json", report)
    storage.publish(reports_dir)
    storage.publish_into_directory(path)  # listed in the adapter's manifest: the registry reads it with the adapter
    yield dg.Output(report, metadata=without_empty({
        "report": table(report_rows(report), ["metric", "base", "tuned", "delta", "ci_low", "ci_high"]),
        "per_topic": table(per_topic_rows(samples), ["topic", "examples", "base token F1", "tuned token F1"]),
        "adapter_key": lora_adapter.get("adapter_key") or "",
        "adapter_source": lora_adapter.get("source", "product"),
        "test_examples": report["examples"],
        "test_examples_available": report["examples_available"],
        "max_new_tokens": report["generation"]["max_new_tokens"],
        "reference_tokens_p95": report["generation"]["reference_tokens_p95"],
        "tuned_ended_with_eot": report["tuned"]["ended_with_eot"],
        f"{config.primary_metric}_ci_width": report["bootstrap"].get(config.primary_metric, {}).get(
            "ci_width", float("nan")),
        "base_rougeL": report["base"]["rougeL"], "tuned_rougeL": report["tuned"]["rougeL"],
        "rougeL_delta_ci_low": report["bootstrap"].get("rougeL", {}).get("ci_low"),
        "rougeL_delta_ci_high": report["bootstrap"].get("rougeL", {}).get("ci_high"),
        "base_perplexity": report["base"]["perplexity"], "tuned_perplexity": report["tuned"]["perplexity"],
        "gate_passed": report["gate"]["passed"],
        "results_file": dg.MetadataValue.path(str(path)),
        "human_eval_csv": dg.MetadataValue.path(str(reports_dir / "human_eval_sample.csv")),
        **({"judge": dg.MetadataValue.json(report["judge"])} if "judge" in report else {}),
    }))
    if not report["gate"]["passed"]:  # in the log too, so the user sees why where they ran the command
        context.log.error(f"{product}: promotion gate failed: " + "; ".join(report["gate"]["reasons"]))
    verdict = "passed" if report["gate"]["passed"] else "failed: " + "; ".join(report["gate"]["reasons"])
    yield dg.AssetCheckResult(passed=report["gate"]["passed"], description=f"{product}: {verdict}", metadata={
        "product": product,
        f"tuned_{config.primary_metric}": report["tuned"][config.primary_metric],
        "reasons": problems_table(report["gate"]["reasons"]),
        "checks": table(gate_rows(report["gate"]), ["check", "passed"])})


class RegistrationConfig(dg.Config):
    """`challenger_share` 0: a version that passed the gate becomes `champion` at once. Above 0 (and with a
    champion serving): it becomes the `challenger` of an A/B test that starts at this share of conversations;
    ab_test_report's rollout decisions then advance, promote or roll it back."""

    challenger_share: float = 0.0


@dg.asset(partitions_def=product_partitions, group_name="evaluation", kinds={"mlflow"}, code_version="1")
def registered_model(context: dg.AssetExecutionContext, config: RegistrationConfig, eval_report: dict,
                     lora_adapter: dict, tracking: MlflowTracking, storage: TunelineStorage) -> dg.Output[dict]:
    """Registers the adapter version in the MLflow Model Registry and points `champion` (or, in an A/B test,
    `challenger`) at it. Runs only when eval_report's blocking promotion gate passed. Roll back with
    `tuneline registry rollback`."""
    product = context.partition_key
    metrics = {k: v for k, v in eval_report["tuned"].items() if isinstance(v, (int, float))}
    adapter_dir = str(storage.localize_adapter(lora_adapter))
    result = register_adapter(tracking.tracking_uri, registry_name(product), adapter_dir, metrics,
                              promote=eval_report["gate"]["passed"],
                              tags={"product": product, "dagster_run_id": context.run_id,
                                    # which adapter serves the product: its own, or the one shared by all
                                    "adapter_source": lora_adapter.get("source", "product"),
                                    "shared_adapter_run_id": lora_adapter.get("shared_adapter_run_id") or ""},
                              challenger_share=config.challenger_share)
    return dg.Output(result, metadata={"registered_model": result["name"], "version": result["version"],
                                       "champion": result["champion"], "challenger": result["challenger"],
                                       "adapter_source": lora_adapter.get("source", "product")})


LEADERBOARD_COLUMNS = ["product", "version", "evaluated_at", "adapter_source", "test_examples", "base_rougeL",
                       "tuned_rougeL", "rougeL_delta_ci_low", "rougeL_delta_ci_high", "tuned_ended_with_eot",
                       "gate_passed", "adapter_key", "run_id"]


def leaderboard_rows(evaluations: list[dict]) -> list[dict]:
    """Pure: every evaluation as a row, versions numbered per product in time order, newest first."""
    numbered: dict[str, int] = {}
    rows = []
    for e in sorted(evaluations, key=lambda e: e["timestamp"]):
        numbered[e["product"]] = numbered.get(e["product"], 0) + 1
        rows.append({"product": e["product"], "version": numbered[e["product"]],
                     "evaluated_at": datetime.fromtimestamp(e["timestamp"], UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
                     "run_id": e["run_id"],
                     **{c: e["metadata"].get(c) for c in LEADERBOARD_COLUMNS
                        if c not in ("product", "version", "evaluated_at", "run_id")}})
    return sorted(rows, key=lambda r: (r["product"], -r["version"]))


@dg.asset(
    group_name="evaluation",
    kinds={"polars"},
    code_version="1",
    deps=[dg.AssetDep("eval_report", partition_mapping=dg.AllPartitionMapping())],
    automation_condition=dg.AutomationCondition.any_deps_updated().since_last_handled()
    & ~dg.AutomationCondition.any_deps_in_progress() & ~dg.AutomationCondition.in_progress(),
)
def evaluation_leaderboard(context: dg.AssetExecutionContext) -> dg.Output[pl.DataFrame]:
    """Every eval_report of every product in one table (from the materializations' metadata), so products
    and their successive adapters can be compared side by side."""
    records = context.instance.fetch_materializations(dg.AssetKey("eval_report"), limit=10_000).records
    evaluations = [{"product": r.partition_key, "timestamp": r.timestamp, "run_id": r.run_id,
                    "metadata": {k: v.value for k, v in r.asset_materialization.metadata.items()}}
                   for r in records if r.asset_materialization is not None]
    rows = leaderboard_rows(evaluations)
    frame = pl.DataFrame(rows, infer_schema_length=None) if rows else \
        pl.DataFrame(schema=dict.fromkeys(LEADERBOARD_COLUMNS, pl.String))
    latest = [r for r in rows if r["version"] == max(x["version"] for x in rows if x["product"] == r["product"])]
    return dg.Output(frame, metadata={
        **frame_metadata(frame),
        "latest_per_product": table(latest, LEADERBOARD_COLUMNS[:-2]),
        "products": len(latest),
    })
