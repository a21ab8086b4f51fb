import dagster as dg

from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from ft_sensors.retraining import RetrainPolicy, retraining_sensor, should_retrain, weekly_retraining

POLICY = RetrainPolicy(min_new_examples=50, cooldown_seconds=3600)


def test_retrain_decisions():
    assert should_retrain(None, None, None, 0, False, POLICY) == (False, "no curated splits yet")
    assert should_retrain(100, None, None, 0, False, POLICY)[0]
    assert not should_retrain(100, None, None, 0, True, POLICY)[0]
    assert not should_retrain(200, 100, 10_000, 10_500, False, POLICY)[0]  # cooldown
    assert should_retrain(200, 100, 10_000, 20_000, False, POLICY) == (True, "100 new training examples")
    assert should_retrain(120, 100, 10_000, 20_000, False, POLICY)[1].startswith("only 20 new")


def test_corrected_replies_from_serving_count_apart():
    """Ten corrections are reason enough (direct evidence of wrong answers); they are named in the reason."""
    assert should_retrain(112, 100, 10_000, 20_000, False, POLICY, new_corrections=10) == (
        True, "10 corrected replies from serving (>= 10)")
    assert not should_retrain(112, 100, 10_000, 20_000, False, POLICY, new_corrections=9)[0]
    assert not should_retrain(112, 100, 10_000, 10_500, False, POLICY, new_corrections=40)[0]  # cooldown holds
    assert should_retrain(160, 100, 10_000, 20_000, False, POLICY, new_corrections=3) == (
        True, "60 new training examples (3 of them corrected replies from serving)")


def _materialize(instance, asset, product, train_examples, train_corrections=0):
    instance.report_runless_asset_event(dg.AssetMaterialization(
        asset_key=asset, partition=product,
        metadata={"train_examples": train_examples, "train_corrections": train_corrections}))


def test_sensor_retrains_a_product_whose_served_replies_were_corrected(monkeypatch):
    monkeypatch.setenv("TUNELINE_RETRAIN_COOLDOWN_SECONDS", "0")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing", "shipping"])
        _materialize(instance, "lora_adapter", "billing", 120, train_corrections=2)
        _materialize(instance, "lora_adapter", "shipping", 120, train_corrections=2)
        _materialize(instance, "dataset_splits", "billing", 132, train_corrections=14)  # 12 new corrections
        _materialize(instance, "dataset_splits", "shipping", 132, train_corrections=2)
        result = retraining_sensor(dg.build_sensor_context(instance=instance))
        assert [r.partition_key for r in result.run_requests] == ["billing"]
        assert "12 corrected replies from serving" in result.cursor


def test_sensor_requests_training_only_where_data_grew():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing", "shipping", "account"])
        _materialize(instance, "dataset_splits", "billing", 120)        # never trained: train
        _materialize(instance, "dataset_splits", "shipping", 130)       # trained on 120 just now: wait
        _materialize(instance, "lora_adapter", "shipping", 120)
        result = retraining_sensor(dg.build_sensor_context(instance=instance))
        assert [r.partition_key for r in result.run_requests] == ["billing"]
        # the retrain_product job: lora_adapter, eval_report, registered_model (the run reads as its name)
        assert result.run_requests[0].asset_selection is None and retraining_sensor.job_name == "retrain_product"
        assert "no curated splits yet" in result.cursor  # account: nothing to train on


def test_weekly_schedule_requests_every_product():
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing", "shipping"])
        import datetime

        context = dg.build_schedule_context(instance=instance,
                                            scheduled_execution_time=datetime.datetime(2026, 11, 23))
        requests = list(weekly_retraining(context))
        assert sorted(r.partition_key for r in requests) == ["billing", "shipping"]
