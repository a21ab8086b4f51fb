"""The asset graph on a temp root with the tiny model: every stage, its checks, and its files."""

import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ft_assets.definitions import Settings, all_assets, build_resources, defs, product_assets
from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from ft_resources.io_manager import asset_partition_path, read_asset_frame, remove_asset_value
from ft_resources.pii import PiiEngine
from tests.conftest import age_files
from tuneline.synthetic import write_landing_zone

MODEL_ASSETS = {"lora_adapter", "input_drift", "eval_report", "preference_adapter", "registered_model"}
RUN_CONFIG = {"ops": {
    "lora_adapter": {"config": {"max_steps": 3, "gradient_accumulation_steps": 1, "learning_rate": 5e-3}},
    "eval_report": {"config": {"max_examples": 4, "max_new_tokens": 8}},
    "preference_adapter": {"config": {"max_steps": 2}},
}}


@pytest.fixture
def graph_env(home, tiny_model_dir):
    truth = write_landing_zone(home / "landing", ["billing", "shipping"], 60)
    age_files(home / "landing")
    resources = build_resources(Settings(home=str(home), model_source="local", model=str(tiny_model_dir)))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing", "shipping"])
        yield instance, resources, truth


def _meta(result, asset):
    events = [e for e in result.get_asset_materialization_events()
              if e.materialization.asset_key.to_user_string() == asset]
    return {k: v.value for k, v in events[-1].materialization.metadata.items()}


def test_definitions_wire_the_graph_in_order():
    graph = defs.resolve_asset_graph()
    parents = {k.to_user_string(): sorted(p.to_user_string() for p in graph.get(k).parent_keys)
               for k in graph.get_all_asset_keys()}
    assert parents["cleaned_conversations"] == ["raw_tickets"]
    assert parents["near_duplicate_index"] == ["cleaned_conversations"]
    assert parents["scored_dataset"] == ["cleaned_conversations", "near_duplicate_index"]
    assert parents["dataset_splits"] == ["scored_dataset"]
    # no graph edge from shared_adapter: a product's `raw_tickets*` run or backfill must not retrain the adapter
    # shared by all products; which one a product continued is in lora_adapter's metadata and the registry
    assert parents["lora_adapter"] == ["dataset_splits"]
    assert parents["shared_adapter"] == ["dataset_splits"]
    assert parents["eval_report"] == ["dataset_splits", "lora_adapter"]
    assert parents["rejected_tickets"] == []
    assert parents["preference_adapter"] == ["lora_adapter", "preference_pairs"]
    for key in graph.get_all_asset_keys():
        # the global assets: the serving process's counters, the adapter trained on every product, and the table
        # comparing every product's evaluations
        if key.to_user_string() not in ("serving_metrics", "shared_adapter", "evaluation_leaderboard"):
            assert graph.get(key).partitions_def.name == PRODUCTS_PARTITION_NAME
    checks = {key.name for key in graph.asset_check_keys}
    assert {"records_in_equal_kept_plus_rejected", "no_high_confidence_pii", "chat_format", "no_pii_in_exports",
            "no_leakage_across_splits", "promotion_gate"} <= checks


def test_whole_graph_for_one_partition(graph_env, home):
    instance, resources, truth = graph_env
    result = dg.materialize(product_assets(), instance=instance, resources=resources, partition_key="shipping",
                            run_config=RUN_CONFIG, raise_on_error=False)
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    # every check result names its product (partitioned checks): the UI's check history has a product column
    assert {c.partition for c in result.get_asset_check_evaluations()} == {"shipping"}
    # a 3-step adapter on a random tiny model does not beat its base: the gate must say so and block registration
    assert checks == {"records_in_equal_kept_plus_rejected": True, "no_high_confidence_pii": True,
                      "chat_format": True, "no_leakage_across_splits": True, "split_ratios_per_topic": True,
                      "no_pii_in_exports": True,
                      "promotion_gate": False}
    materialized = {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "eval_report" in materialized and "registered_model" not in materialized
    assert len(materialized) == len(product_assets())  # ingest has two keys; registered_model is blocked
    # every frame asset says what it holds: its columns and its row count, read by the UI's overview
    frames = {"raw_tickets", "rejected_tickets", "cleaned_conversations", "near_duplicate_index",
              "scored_dataset", "dataset_splits",
              "preference_pairs", "stg_tickets", "product_ticket_stats", "curation_funnel", "split_stats"}
    for asset in frames:
        meta = _meta(result, asset)
        assert meta["dagster/column_schema"].columns and meta["dagster/row_count"] >= 0, asset
    # what people read renders as tables, not JSON: the funnel and the base-vs-tuned report
    funnel = [r.data for r in _meta(result, "scored_dataset")["funnel"].records]
    assert funnel[0]["stage"] == "raw" and funnel[0]["share of raw"] == 1.0
    report = {r.data["metric"]: r.data for r in _meta(result, "eval_report")["report"].records}
    assert {"rougeL", "perplexity", "ended_with_eot"} <= set(report) and report["rougeL"]["ci_low"] is not None

    ingest = _meta(result, "raw_tickets")
    assert ingest["records_in"] == ingest["kept"] + ingest["rejected"]
    rejected = read_asset_frame(home, "rejected_tickets", "shipping")
    assert set(rejected["reason"]) == {"malformed_json", "missing_assistant_text"}  # shipping is the JSONL product

    cleaned = read_asset_frame(home, "cleaned_conversations", "shipping")
    text = "\n".join(t["content"] for conv in cleaned["messages"].to_list() for t in conv)
    assert "@" not in text and "[EMAIL]" in text
    raw = read_asset_frame(home, "raw_tickets", "shipping")
    assert not set(raw["ticket_id"]) & set(cleaned["ticket_id"]), "ids are pseudonymized after raw_tickets"
    assert cleaned["ticket_id"].str.contains(r"^[0-9a-f]{20}$").all()

    # owner-only at rest: nothing under the root is readable by group or others
    exposed = [p for p in home.rglob("*") if p.stat().st_mode & 0o077 and not p.is_symlink()]
    assert exposed == [], exposed[:5]

    exports = home / "exports" / "shipping"
    sizes = {s: len((exports / f"{s}.jsonl").read_text().splitlines()) for s in ("train", "val", "test")}
    assert sizes["train"] > sizes["test"] > 0
    first = json.loads((exports / "train.jsonl").read_text().splitlines()[0])
    assert first["messages"][0]["role"] == "system" and first["split"] == "train"
    alpaca = json.loads((exports / "alpaca.json").read_text())
    assert len(alpaca) == sum(sizes.values()) and {"instruction", "input", "output"} <= set(alpaca[0])
    from datasets import load_from_disk

    hf = load_from_disk(str(exports / "hf_dataset"))
    assert {name: hf[name].num_rows for name in hf} == sizes

    versions = list((home / "adapters" / "shipping").glob("v-*"))
    assert len(versions) == 1
    adapter = versions[0]
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
    manifest = pl.read_parquet(adapter / "training_manifest.parquet")
    assert manifest.height == sizes["train"] and manifest["ticket_id"].is_unique().all()
    report = json.loads((adapter / "evaluation_results.json").read_text())
    expected = {"perplexity", "rougeL", "token_f1", "semantic_similarity", "ended_with_eot", "leak_rate",
                "ragas_bleu", "distinct_2"}
    assert expected <= set(report["base"]) and expected <= set(report["tuned"])
    assert report["examples"] == min(4, sizes["test"])
    assert report["gate"]["passed"] is False and report["gate"]["reasons"]
    assert {"ci_low", "ci_high", "delta"} <= set(report["bootstrap"]["rougeL"])
    human = (home / "reports" / "shipping" / "human_eval_sample.csv").read_text().splitlines()
    assert human[0].startswith("row,topic,customer,reference,reply_a,reply_b,a_is") and len(human) > 1

    assert (home / "preference_adapters" / "shipping" / "adapter_model.safetensors").is_file()
    # PII never leaves the cleaning stage: no planted email, phone or card in any text artifact downstream
    planted = [v for kind in ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD") for v in truth.pii_values[kind]]
    downstream = [p for folder in ("exports", "reports", "adapters", "work", "preference_adapters")
                  for p in (home / folder).rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl", ".csv")]
    downstream += [p for a in ("scored_dataset", "dataset_splits") for p in (home / "assets" / a).rglob("shipping*")
                   if p.is_file()]
    assert len(downstream) > 10
    for path in downstream:
        text = path.read_bytes().decode("utf-8", errors="ignore")
        leaked = [v for v in planted if v in text]
        assert not leaked, f"{path} contains {leaked[:2]}"
    stats = pl.read_parquet(asset_partition_path(home, "product_ticket_stats", "shipping", "parquet"))
    assert stats["tickets"][0] == ingest["kept"]


def test_rematerializing_a_partition_rewrites_it(graph_env, home):
    instance, resources, _ = graph_env
    data_assets = [a for a in product_assets() if not MODEL_ASSETS & {k.to_user_string() for k in a.keys}]
    for _ in range(2):
        assert dg.materialize(data_assets, instance=instance, resources=resources, partition_key="billing").success
    raw = read_asset_frame(home, "raw_tickets", "billing")
    assert raw["ticket_id"].is_unique().all()
    folder = asset_partition_path(home, "raw_tickets", "billing", "parquet").parent
    assert sorted(p.name for p in folder.iterdir()) == ["billing.parts", "billing.parts.json"], "no temp files"
    listed = {p["key"] for p in json.loads((folder / "billing.parts.json").read_text())["parts"]}
    assert {p.stem for p in (folder / "billing.parts").iterdir()} == listed, "no appended copies: the same parts"


def test_blocking_pii_check_stops_downstream(graph_env):
    instance, resources, _ = graph_env
    leaky = {**resources, "pii": PiiEngine(entities=["PERSON"])}  # emails and phones are not replaced
    data_assets = [a for a in product_assets() if not MODEL_ASSETS & {k.to_user_string() for k in a.keys}]
    result = dg.materialize(data_assets, instance=instance, resources=leaky, partition_key="billing",
                            raise_on_error=False)
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["no_high_confidence_pii"] is False
    materialized = {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "cleaned_conversations" in materialized
    assert "scored_dataset" not in materialized and "dataset_splits" not in materialized


def test_missing_landing_folder_is_a_clear_failure(graph_env):
    instance, resources, _ = graph_env
    instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["ghost"])
    ingest = [a for a in all_assets() if "raw_tickets" in {k.to_user_string() for k in a.keys}]
    result = dg.materialize(ingest, instance=instance, resources=resources, partition_key="ghost",
                            raise_on_error=False)
    assert not result.success
    failure = result.get_step_failure_events()[0]
    assert "no landing folder for product 'ghost'" in failure.event_specific_data.error.message


def test_pii_in_the_exports_blocks_training(graph_env, home):
    instance, resources, _ = graph_env
    data_assets = [a for a in product_assets() if not MODEL_ASSETS & {k.to_user_string() for k in a.keys}]
    assert dg.materialize(data_assets, instance=instance, resources=resources, partition_key="billing").success
    exports = home / "exports" / "billing"
    before = {p.relative_to(exports): p.read_bytes() for p in exports.rglob("*") if p.is_file()}
    # PII that slipped past cleaning (say, a cleaning rule was switched off and the parquet edited by hand)
    scored = read_asset_frame(home, "scored_dataset", "billing")
    messages = scored["messages"].to_list()
    messages[0][1]["content"] += " You can also write to maria.gonzalez@example.com."
    remove_asset_value(home, "scored_dataset", "billing")  # stored whole, as a hand edit would
    edited = scored.with_columns(pl.Series("messages", messages, dtype=scored.schema["messages"]),
                                 pl.lit("kept").alias("status"))
    edited.write_parquet(asset_partition_path(home, "scored_dataset", "billing", "parquet"))
    result = dg.materialize(product_assets(), instance=instance, resources=resources, partition_key="billing",
                            selection=["dataset_splits", "lora_adapter"], raise_on_error=False,
                            run_config={"ops": {"lora_adapter": RUN_CONFIG["ops"]["lora_adapter"]}})
    checks = {c.check_name: c for c in result.get_asset_check_evaluations()}
    assert checks["no_pii_in_exports"].passed is False
    assert checks["no_pii_in_exports"].metadata["found"].records[0].data == {"type": "EMAIL_ADDRESS", "findings": 1}
    assert "maria.gonzalez" not in str(checks["no_pii_in_exports"].metadata)  # the finding is not logged
    splits = result.output_for_node("dataset_splits").collect(["split"])["split"]
    counted = next(e for e in result.get_asset_materialization_events()
                   if e.materialization.asset_key.to_user_string() == "dataset_splits").materialization.metadata
    assert {n: counted[f"{n}_examples"].value for n in ("train", "val", "test")} == \
        {n: int((splits == n).sum()) for n in ("train", "val", "test")}, "unpublished splits are still counted"
    materialized = {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "lora_adapter" not in materialized
    after = {p.relative_to(exports): p.read_bytes() for p in exports.rglob("*") if p.is_file()}
    assert after == before, "exports that failed the PII check were never swapped in: the previous ones stay"
    assert not any(b"maria.gonzalez" in p.read_bytes() for p in home.rglob("*") if p.is_file()
                   and not p.is_relative_to(home / "assets"))


def test_a_ticket_too_long_for_training_is_left_out_not_fatal(graph_env, home):
    """One long ticket used to fail the blocking chat_format check and stop the whole product."""
    instance, resources, _ = graph_env
    data = ["raw_tickets", "rejected_tickets", "cleaned_conversations", "near_duplicate_index",
            "scored_dataset", "dataset_splits"]
    result = dg.materialize(product_assets(), instance=instance, resources=resources, partition_key="billing",
                            selection=data, run_config={"ops": {"dataset_splits": {"config": {"max_tokens": 260}}}})
    assert result.success
    checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
    assert checks["chat_format"] is True
    meta = _meta(result, "dataset_splits")
    too_long = [record.data for record in meta["too_long"].records]
    left_out = {item["example_id"] for item in too_long}
    assert meta["too_long_examples"] >= 1 and all(item["tokens"] > 260 for item in too_long)
    export_dir = Path(meta["export_dir"])
    exported = [json.loads(line)["metadata"]["example_id"] for name in ("train", "val", "test")
                for line in (export_dir / f"{name}.jsonl").read_text().splitlines()]
    assert exported and not left_out & set(exported)
    assert meta["train_examples"] + meta["val_examples"] + meta["test_examples"] == len(exported)


@pytest.mark.parametrize(("summary", "source", "reason"), [
    ({"val_rougeL_before": 0.30, "val_rougeL_after": 0.35, "kept_examples_seen": 160,
      "val_loss_before": 0.9, "val_loss_after": 1.0}, "product", "ROUGE-L 0.3500 continued (160 examples seen)"),
    ({"val_rougeL_before": 0.35, "val_rougeL_after": 0.35, "kept_examples_seen": 0}, "shared", "ROUGE-L 0.3500 shared"),
    ({"val_loss_before": 0.9, "val_loss_after": 0.8}, "product", "loss 0.8000 continued < 0.9000"),
    ({"val_loss_before": 0.8, "val_loss_after": 0.8}, "shared", "loss 0.8000 shared <= 0.8000"),
    ({}, "product", "no validation examples"),
])
def test_a_product_is_served_by_what_scores_better_on_its_validation_split(summary, source, reason):
    from ft_assets.training import choose_adapter

    chosen, why = choose_adapter(100, 32, True, summary)
    assert chosen == source and reason in why
    assert choose_adapter(10, 32, True, summary)[0] == "shared", "too few examples: the shared adapter as is"
    assert choose_adapter(100, 32, False, summary)[0] == "product", "no shared adapter: the product's own"


def test_shared_adapter_serves_a_small_product_and_a_larger_one_continues_it(graph_env, home):
    """One adapter over both products; billing (below the threshold) is served by it as is; shipping continues it
    and keeps whichever of the two replies better (ROUGE-L) on shipping's validation split."""
    instance, resources, _ = graph_env
    data_assets = [a for a in product_assets() if not MODEL_ASSETS & {k.to_user_string() for k in a.keys}]
    for product in ("billing", "shipping"):
        assert dg.materialize(data_assets, instance=instance, resources=resources, partition_key=product).success
    train_config = {"max_steps": 3, "gradient_accumulation_steps": 1, "learning_rate": 5e-3}
    shared = dg.materialize(all_assets(), selection=["shared_adapter"], instance=instance, resources=resources,
                            run_config={"ops": {"shared_adapter": {"config": train_config}}})
    assert shared.success
    shared_meta = _meta(shared, "shared_adapter")
    assert {r.data["product"] for r in shared_meta["products"].records} == {"billing", "shipping"}
    shared_dir = Path(shared_meta["adapter_dir"])
    assert shared_dir.parent == home / "shared_adapter"
    manifest = pl.read_parquet(shared_dir / "training_manifest.parquet")
    assert set(manifest["product"]) == {"billing", "shipping"}

    def product_adapter(product: str, min_examples: int) -> dict:
        result = dg.materialize(all_assets(), selection=["lora_adapter"], instance=instance, resources=resources,
                                partition_key=product, run_config={"ops": {"lora_adapter": {"config": {
                                    **train_config, "min_examples_for_own_adapter": min_examples}}}})
        assert result.success
        return json.loads(asset_partition_path(home, "lora_adapter", product, "json").read_text())

    small = product_adapter("billing", 10_000)
    assert small["source"] == "shared" and Path(small["adapter_dir"]) == shared_dir
    assert "too few" in small["choice_reason"] and not (home / "adapters" / "billing").exists()

    continued = product_adapter("shipping", 1)
    before, after = continued.get("val_rougeL_shared", continued.get("val_rougeL_before")), \
        continued.get("val_rougeL_continued", continued.get("val_rougeL_after"))
    assert before is not None and after is not None, "by default a product chooses on its replies' ROUGE-L"
    assert continued.get("val_rougeL_beam") is not None, "by default a product also tries beam search"
    assert continued["source"] == ("product" if after > before else "shared")
    trained = next((home / "adapters" / "shipping").glob("v-*"))
    assert json.loads((trained / "training_args.json").read_text())["init_adapter"] == str(shared_dir)
