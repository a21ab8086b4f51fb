import json
import os
import time

import dagster as dg

from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from ft_resources.landing import LocalLandingZone
from ft_sensors.landing import landing_zone_sensor, path_key, plan_landing_tick, scan_landing


def _age(path, seconds=60):
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_plan_is_pure_and_idempotent():
    found = {"billing": {"billing/a.csv": "10:1"}, "shipping": {}}
    new, runs, cursor = plan_landing_tick(found, seen={}, known_products={"shipping"})
    assert new == ["billing"]
    assert [r.partition_key for r in runs] == ["billing"]
    assert runs[0].run_key.startswith("billing|1 files|") and "a.csv" not in runs[0].run_key + json.dumps(cursor)
    again_new, again_runs, again_cursor = plan_landing_tick(found, cursor, {"billing", "shipping"})
    assert again_new == [] and again_runs == [] and again_cursor == cursor


def test_files_still_being_written_wait(tmp_path):
    (tmp_path / "billing").mkdir()
    fresh = tmp_path / "billing" / "t.csv"
    fresh.write_text("x")
    assert scan_landing(tmp_path, min_age_seconds=5, now=time.time()) == {"billing": {}}
    _age(fresh)
    assert list(scan_landing(tmp_path, min_age_seconds=5, now=time.time())["billing"]) == ["billing/t.csv"]


def test_sensor_adds_partitions_requests_runs_and_reacts_to_changed_files(tmp_path):
    landing = tmp_path / "landing"
    (landing / "billing").mkdir(parents=True)
    first = landing / "billing" / "tickets.csv"
    first.write_text("ticket_id,customer_message,agent_response\n1,q,a\n")
    (landing / "billing" / "notes.txt").write_text("ignored: not a ticket format")
    _age(first)
    storage = LocalLandingZone(path=str(landing))
    with dg.instance_for_test() as instance:
        context = dg.build_sensor_context(instance=instance, resources={"landing": storage})
        result = landing_zone_sensor(context)
        assert [r.partition_keys for r in result.dynamic_partitions_requests] == [["billing"]]
        assert [r.partition_key for r in result.run_requests] == ["billing"]
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])

        context = dg.build_sensor_context(instance=instance, cursor=result.cursor, resources={"landing": storage})
        quiet = landing_zone_sensor(context)
        assert quiet.run_requests == [] and quiet.dynamic_partitions_requests == []

        first.write_text("ticket_id,customer_message,agent_response\n1,q,a\n2,q2,a2\n")
        _age(first, 30)
        context = dg.build_sensor_context(instance=instance, cursor=quiet.cursor, resources={"landing": storage})
        changed = landing_zone_sensor(context)
        assert len(changed.run_requests) == 1
        assert changed.run_requests[0].run_key != result.run_requests[0].run_key
        key = path_key("billing/tickets.csv")
        assert json.loads(changed.cursor)[key] != json.loads(result.cursor)[key]
