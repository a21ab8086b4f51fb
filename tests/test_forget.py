"""`tuneline forget`: one customer's tickets leave every stage, stay out of later ingests, the adapters trained
on them are retrained by the sensor, and the audit record holds no PII."""

import json

import dagster as dg
import polars as pl

from ft_assets.definitions import Settings, build_resources, product_assets
from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from ft_resources.io_manager import read_asset_frame
from ft_sensors.retraining import retraining_sensor
from tests.conftest import age_files
from tuneline.cli import forget_customer
from tuneline.synthetic import write_landing_zone

EMAIL = "jane.forgetme@example.org"
DATA = ["raw_tickets", "rejected_tickets", "cleaned_conversations", "near_duplicate_index",
        "scored_dataset", "dataset_splits"]


def _landing(home):
    write_landing_zone(home / "landing", ["billing"], 40)
    rows = [{"ticket_id": f"jane-{i}", "customer_message": f"Hi, this is Jane ({EMAIL}). Invoice {900 + i} "
             f"charged me twice for the annual plan, please refund one of the payments.",
             "agent_response": f"Sorry Jane, I refunded the duplicate payment on invoice {900 + i}; "
             "it reaches your card in 3-5 business days."} for i in range(4)]
    pl.DataFrame(rows).write_csv(home / "landing" / "billing" / "jane.csv")
    age_files(home / "landing")


def _everything(home) -> bytes:
    return b"".join(p.read_bytes() for p in home.rglob("*") if p.is_file() and "landing" not in p.parts)


def test_forget_removes_a_customer_everywhere_and_retrains(tmp_path, tiny_model_dir, monkeypatch):
    home = tmp_path / "home"
    _landing(home)
    resources = build_resources(Settings(home=str(home), model_source="local", model=str(tiny_model_dir),
                                         trainer="local"))
    run_config = {"ops": {"lora_adapter": {"config": {"max_steps": 2, "gradient_accumulation_steps": 1}}}}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])
        assets = product_assets()
        assert dg.materialize(assets, instance=instance, resources=resources, partition_key="billing",
                              selection=[*DATA, "lora_adapter"], run_config=run_config).success
        raw = read_asset_frame(home, "raw_tickets", "billing")
        assert raw["ticket_id"].str.starts_with("jane-").sum() == 4

        report = forget_customer(instance, resources, email=EMAIL.upper())
        assert report.removed["billing"]["raw_tickets"] == 4
        assert report.removed["billing"]["cleaned_conversations"] == 4
        assert EMAIL.encode() not in _everything(home) and b"jane-" not in _everything(home)
        audit = list((home / "audit").glob("forget-*.json"))
        assert len(audit) == 1 and "jane" not in audit[0].read_text().lower()
        for asset in DATA:
            frame = read_asset_frame(home, asset, "billing")
            assert frame.height > 0, asset  # everyone else is still there
        exports = "".join((home / "exports" / "billing" / f"{s}.jsonl").read_text() for s in ("train", "val", "test"))
        assert "Jane" not in exports and "duplicate payment on invoice 90" not in exports

        # the adapter was trained on forgotten examples: the sensor retrains it now, cooldown or not
        monkeypatch.setenv("TUNELINE_RETRAIN_COOLDOWN_SECONDS", "999999")
        with dg.build_sensor_context(instance=instance) as context:
            tick = retraining_sensor(context)
        assert [r.partition_key for r in tick.run_requests] == ["billing"]
        assert "forgotten" in json.loads(tick.cursor)["billing"]

        # the landing files still hold them: a re-ingest keeps them out, without their text
        assert dg.materialize(assets, instance=instance, resources=resources, partition_key="billing",
                              selection=["raw_tickets", "rejected_tickets"]).success
    raw = read_asset_frame(home, "raw_tickets", "billing")
    rejected = read_asset_frame(home, "rejected_tickets", "billing")
    assert not raw["ticket_id"].str.starts_with("jane-").any()
    assert (rejected["reason"] == "forgotten").sum() == 4
    assert EMAIL not in rejected.write_csv() and "Invoice 90" not in rejected.write_csv()


def test_retention_deletes_old_landing_files_at_ingest_and_the_schedule_covers_every_product(tmp_path):
    import os
    import time
    from datetime import datetime

    from ft_assets.ingest import ingest_tickets
    from ft_resources.io_manager import PartitionedFileIOManager
    from ft_resources.landing import LocalLandingZone
    from ft_resources.pii import PiiEngine
    from ft_resources.storage import TunelineStorage
    from ft_sensors.landing import raw_data_retention

    home = tmp_path / "home"
    folder = home / "landing" / "billing"
    folder.mkdir(parents=True)
    row = "ticket_id,customer_message,agent_response\n{id},Where is my parcel number {id}?,It left today.\n"
    for name, days in (("old.csv", 40), ("new.csv", 2)):
        (folder / name).write_text(row.format(id=name))
        past = time.time() - days * 86400
        os.utime(folder / name, (past, past))
    outside = tmp_path / "keep.csv"
    outside.write_text(row.format(id="outside"))
    os.utime(outside, (0, 0))
    (folder / "link.csv").symlink_to(outside)
    resources = {"landing": LocalLandingZone(path=str(home / "landing"), retention_days=30),
                 "storage": TunelineStorage(root=str(home)), "io_manager": PartitionedFileIOManager(root=str(home)),
                 "pii": PiiEngine()}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing", "shipping"])
        result = dg.materialize([ingest_tickets], instance=instance, partition_key="billing", resources=resources)
        when = datetime(2026, 11, 28)
        with dg.build_schedule_context(instance=instance, scheduled_execution_time=when) as context:
            requests = list(raw_data_retention(context))
    assert result.asset_materializations_for_node("ingest_tickets")[0].metadata["files_expired"].value == 1
    assert sorted(p.name for p in folder.iterdir()) == ["link.csv", "new.csv"] and outside.exists()
    assert read_asset_frame(home, "raw_tickets", "billing")["ticket_id"].to_list() == ["new.csv"]
    assert sorted(r.partition_key for r in requests) == ["billing", "shipping"]
