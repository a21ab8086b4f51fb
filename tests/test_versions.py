"""Code and data versions (what the UI shows as stale), and two runs racing on one partition."""

import multiprocessing
import threading

import dagster as dg
import polars as pl
from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest

from ft_assets.definitions import Settings, build_resources, product_assets
from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from ft_resources.io_manager import read_asset_frame
from tests.conftest import age_files
from tuneline.synthetic import write_landing_zone

DATA = ["raw_tickets", "rejected_tickets", "cleaned_conversations", "near_duplicate_index",
        "scored_dataset", "dataset_splits"]


def _status(instance, assets, key, partition):
    graph = AssetGraph.from_assets(assets)
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    return resolver.get_status(dg.AssetKey(key), partition)


def _with_code_version(assets, name, version):
    """The same graph with one asset's code version bumped, as after a rule change in its code."""
    return [a if name not in {k.to_user_string() for k in a.keys}
            else a.map_asset_specs(lambda spec: spec.replace_attributes(code_version=version)) for a in assets]


def test_unchanged_input_stays_fresh_new_tickets_and_rule_changes_make_partitions_stale(home, tiny_model_dir):
    write_landing_zone(home / "landing", ["billing", "shipping"], 40)
    age_files(home / "landing")
    resources = build_resources(Settings(home=str(home), model_source="local", model=str(tiny_model_dir)))
    assets = product_assets()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing", "shipping"])
        for product in ("billing", "shipping"):
            assert dg.materialize(assets, instance=instance, resources=resources, partition_key=product,
                                  selection=DATA).success
        assert _status(instance, assets, "dataset_splits", "billing") == StaleStatus.FRESH

        # the same files ingested again: same content version, nothing downstream is stale
        dg.materialize(assets, instance=instance, resources=resources, partition_key="billing",
                       selection=["raw_tickets", "rejected_tickets"])
        assert _status(instance, assets, "cleaned_conversations", "billing") == StaleStatus.FRESH

        # new tickets for billing: billing's downstream is stale, shipping's is not
        write_landing_zone(home / "more", ["billing"], 10, seed=99)
        age_files(home / "more")
        more = pl.read_csv(home / "more" / "billing" / "tickets-0001.csv", infer_schema=False)
        more.with_columns(pl.format("new-{}", "ticket_id").alias("ticket_id"),
                          pl.format("new-{}", "thread_id").alias("thread_id")).write_csv(
            home / "landing" / "billing" / "tickets-0099.csv")
        age_files(home / "landing")
        dg.materialize(assets, instance=instance, resources=resources, partition_key="billing",
                       selection=["raw_tickets", "rejected_tickets"])
        assert _status(instance, assets, "cleaned_conversations", "billing") == StaleStatus.STALE
        assert _status(instance, assets, "cleaned_conversations", "shipping") == StaleStatus.FRESH

        # a curation rule changed (code version bump): every product's scored_dataset and splits are stale
        changed = _with_code_version(assets, "scored_dataset", "rules-v3")
        assert _status(instance, changed, "scored_dataset", "shipping") == StaleStatus.STALE
        assert _status(instance, assets, "scored_dataset", "shipping") == StaleStatus.FRESH
        assert _status(instance, changed, "cleaned_conversations", "shipping") == StaleStatus.FRESH


def _materialize_in_process(home, model, barrier, errors):
    try:
        resources = build_resources(Settings(home=home, model_source="local", model=model))
        with dg.instance_for_test() as instance:
            instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])
            barrier.wait(timeout=120)
            result = dg.materialize(product_assets(), instance=instance, resources=resources, partition_key="billing",
                                    selection=DATA, raise_on_error=False)
            if not result.success:
                errors.put([e.event_specific_data.error.message for e in result.get_step_failure_events()])
    except Exception as exc:  # noqa: BLE001 - reported to the parent test
        errors.put(repr(exc))


def test_two_runs_on_one_partition_leave_one_complete_version(home, tiny_model_dir):
    write_landing_zone(home / "landing", ["billing"], 60)
    age_files(home / "landing")
    ctx = multiprocessing.get_context("spawn")
    barrier, errors = ctx.Barrier(2), ctx.Queue()
    splits_file = home / "assets" / "dataset_splits" / "billing.parts.json"  # the manifest, written last
    exports = home / "exports" / "billing"
    reads, stop = {"ok": 0, "bad": []}, threading.Event()

    def reader():  # a consumer polling the outputs while both runs write them
        while not stop.is_set():
            if splits_file.exists():
                try:
                    read_asset_frame(home, "dataset_splits", "billing")
                    reads["ok"] += 1
                except Exception as exc:  # noqa: BLE001
                    reads["bad"].append(repr(exc))

    watcher = threading.Thread(target=reader)
    watcher.start()
    runs = [ctx.Process(target=_materialize_in_process, args=(str(home), str(tiny_model_dir), barrier, errors))
            for _ in range(2)]
    for run in runs:
        run.start()
    for run in runs:
        run.join(timeout=600)
    stop.set()
    watcher.join()
    assert all(run.exitcode == 0 for run in runs)
    assert errors.empty(), errors.get()
    assert reads["bad"] == [] and reads["ok"] > 0
    splits = read_asset_frame(home, "dataset_splits", "billing")
    exported = sum(1 for name in ("train", "val", "test") for _ in (exports / f"{name}.jsonl").open())
    assert exported == splits.height
    parts = splits_file.parent / "billing.parts"
    leftovers = [p.name for folder in (splits_file.parent, parts, exports.parent) for p in folder.iterdir()
                 if ".tmp-" in p.name or ".staging-" in p.name or ".old-" in p.name]
    assert leftovers == []
    assert sorted(p.name for p in exports.iterdir()) == ["alpaca.json", "hf_dataset", "test.jsonl", "train.jsonl",
                                                         "val.jsonl"]
