"""What the Dagster UI shows about the graph: owners, the `pii` tag, descriptions, named jobs, product checks,
typed metadata tables and the evaluation leaderboard."""

import dagster as dg

from ft_assets.catalog import table
from ft_assets.definitions import defs
from ft_assets.evaluation import leaderboard_rows

PRE_REDACTION = {"raw_tickets", "rejected_tickets", "stg_tickets", "product_ticket_stats"}


def _graph():
    return defs.resolve_asset_graph()


def test_every_asset_has_owners_and_exactly_the_pre_redaction_assets_are_tagged_raw():
    graph = _graph()
    nodes = {k.to_user_string(): graph.get(k) for k in graph.get_all_asset_keys()}
    assert all(node.owners for node in nodes.values())
    assert {name for name, node in nodes.items() if node.tags.get("pii") == "raw"} == PRE_REDACTION
    assert all(node.tags.get("pii") == "redacted" for name, node in nodes.items() if name not in PRE_REDACTION)


def test_every_asset_sensor_schedule_job_and_check_says_what_it_is():
    graph = _graph()
    assert all(graph.get(k).description for k in graph.get_all_asset_keys())
    assert all(s.description for s in defs.sensors)
    assert all(s.description for s in defs.schedules)
    assert all(j.description for j in defs.jobs)
    specs = [spec for a in defs.assets for spec in a.check_specs]
    assert specs and all(spec.description for spec in specs)


def test_checks_on_product_assets_are_evaluated_per_product():
    graph = _graph()
    for assets_def in defs.assets:
        for spec in assets_def.check_specs:
            assert spec.partitions_def == graph.get(spec.asset_key).partitions_def, spec.name


def test_named_jobs_cover_what_users_launch_and_stay_within_one_product():
    graph = _graph()
    partitioned = {k for k in graph.get_all_asset_keys() if graph.get(k).partitions_def is not None}
    selected = {name: defs.resolve_job_def(name).asset_layer.selected_asset_keys
                for name in ("ingest_product", "prepare_product_data", "product_pipeline", "retrain_product",
                             "ab_rollout")}
    assert all(keys <= partitioned for keys in selected.values())
    live = {k for k in partitioned if graph.get(k).group_name == "production"}  # live traffic, run on its own
    assert {k.to_user_string() for k in live} == {"served_conversations", "ab_test_report", "serving_health"}
    assert selected["product_pipeline"] == partitioned - live
    assert {k.to_user_string() for k in selected["ab_rollout"]} == {"served_conversations", "ab_test_report"}
    assert not selected["prepare_product_data"] & selected["retrain_product"]
    sensors = {s.name: s for s in defs.sensors}
    assert sensors["landing_zone_sensor"].job_name == "ingest_product"
    assert sensors["retraining_sensor"].job_name == "retrain_product"
    assert sensors["rollout_sensor"].job_name == "ab_rollout"


def test_tables_type_their_columns_and_show_missing_values():
    value = table([{"metric": "rougeL", "base": 0.1, "n": 3, "ok": True}, {"metric": "ppl", "base": None, "n": 4,
                                                                         "ok": False}])
    kinds = {c.name: c.type for c in value.schema.columns}
    # a column with a missing value is text: the cell says "—" rather than showing blank
    assert kinds == {"metric": "string", "base": "string", "n": "int", "ok": "bool"}
    assert [r.data["base"] for r in value.records] == ["0.1", "—"]
    assert {c.type for c in table([{"x": 0.5}, {"x": 2}]).schema.columns} == {"float"}


def test_leaderboard_numbers_versions_per_product_in_time_order():
    def evaluation(product, timestamp, rouge):
        return {"product": product, "timestamp": timestamp, "run_id": f"r{timestamp}",
                "metadata": {"tuned_rougeL": rouge, "gate_passed": rouge > 0.3}}

    rows = leaderboard_rows([evaluation("b", 30, 0.4), evaluation("a", 10, 0.2), evaluation("b", 20, 0.1)])
    assert [(r["product"], r["version"], r["tuned_rougeL"]) for r in rows] == [("a", 1, 0.2), ("b", 2, 0.4),
                                                                                 ("b", 1, 0.1)]
    assert rows[1]["gate_passed"] is True and rows[1]["adapter_key"] is None


def test_the_leaderboard_materializes_from_the_instance_history():
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("products", ["billing"])
    instance.report_runless_asset_event(dg.AssetMaterialization(
        "eval_report", partition="billing", metadata={"tuned_rougeL": 0.5, "gate_passed": True}))
    from ft_assets.evaluation import evaluation_leaderboard

    result = dg.materialize([evaluation_leaderboard], instance=instance)
    frame = result.output_for_node("evaluation_leaderboard")
    assert frame["product"].to_list() == ["billing"] and frame["tuned_rougeL"].to_list() == [0.5]


def test_staleness_is_judged_against_the_window():
    from datetime import timedelta

    from ft_assets.freshness import staleness

    day = 86400.0
    assert staleness(None, 10 * day, timedelta(days=7)) == (False, "never materialized")
    assert staleness(9 * day, 10 * day, timedelta(days=7))[0] is True
    fresh, why = staleness(1 * day, 10 * day, timedelta(days=7))
    assert not fresh and "9.0 days ago" in why


def test_the_freshness_sensor_reports_a_check_result_per_product():
    from ft_sensors.landing import freshness_sensor

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions("products", ["billing", "shipping"])
    instance.report_runless_asset_event(dg.AssetMaterialization("dataset_splits", partition="billing"))
    skip = freshness_sensor(dg.build_sensor_context(instance=instance))
    assert "stale: billing/lora_adapter, shipping/dataset_splits, shipping/lora_adapter" in skip.skip_message
    key = dg.AssetCheckKey(dg.AssetKey("dataset_splits"), "curated_data_fresh")
    history = instance.event_log_storage.get_asset_check_execution_history(key, limit=10)
    verdicts = {r.event.dagster_event.event_specific_data.partition: r.event.dagster_event.event_specific_data.passed
                for r in history}
    assert verdicts == {"billing": True, "shipping": False}


def test_every_job_forks_its_steps_from_a_process_that_imported_the_definitions_once():
    """Spawned steps re-import presidio, transformers and torch each (~13-18 s a step on this machine kind)."""
    jobs = [defs.resolve_implicit_global_asset_job_def(),
            *(defs.resolve_job_def(name) for name in ("ingest_product", "product_pipeline", "retrain_product"))]
    for job in jobs:
        executor = job.executor_def
        assert executor.name == "forkserver_executor", job.name
        assert executor.config_schema.resolve_config({}).value["config"]["start_method"] == {
            "forkserver": {"preload_modules": ["ft_assets.definitions"]}}, job.name
