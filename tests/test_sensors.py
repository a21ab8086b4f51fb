import json
import os
import time

import dagster as dg

from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from ft_resources.landing import LocalLandingZone, scan_landing
from ft_sensors.landing import landing_zone_sensor, plan_landing_tick
from tuneline.landing import entry_key


def _age(path, seconds=60):
    past = time.time() - seconds
    os.utime(path, (past, past))


def _scan(*files, products=None):
    from tuneline.landing import LandingFile, LandingScan

    entries = [LandingFile(p, n, fp, modified) for p, n, fp, modified in files]
    return LandingScan(entries, set(products or {f.product for f in entries}), {})


def test_plan_is_pure_and_idempotent():
    now = time.time()
    scan = _scan(("billing", "a.csv", "10:1", now - 60), products={"billing", "shipping"})
    new, runs, first = plan_landing_tick(scan, None, known_products={"shipping"}, now=now, min_age_seconds=5)
    assert new == ["billing"] and runs == [], "a file seen once waits for a second observation"
    new, runs, cursor = plan_landing_tick(scan, first, known_products={"shipping"}, now=now, min_age_seconds=5)
    assert [r.partition_key for r in runs] == ["billing"]
    assert runs[0].run_key.startswith("billing|1 files|") and "a.csv" not in runs[0].run_key + cursor
    again_new, again_runs, again_cursor = plan_landing_tick(scan, cursor, {"billing", "shipping"}, now, 5)
    assert again_new == [] and again_runs == [] and again_cursor == cursor


def test_a_file_still_growing_or_too_young_waits():
    now = time.time()
    _, _, cursor = plan_landing_tick(_scan(("billing", "a.csv", "10:1", now - 60)), None, set(), now, 5)
    _, runs, cursor = plan_landing_tick(_scan(("billing", "a.csv", "20:2", now - 60)), cursor, set(), now, 5)
    assert runs == [], "a file whose size moved between two ticks is still being written"
    _, runs, cursor = plan_landing_tick(_scan(("billing", "a.csv", "20:2", now - 1)), cursor, set(), now, 5)
    assert runs == [], "a stable file younger than min_age_seconds waits"
    _, runs, _ = plan_landing_tick(_scan(("billing", "a.csv", "20:2", now - 60)), cursor, set(), now, 5)
    assert [r.partition_key for r in runs] == ["billing"]


def test_files_still_being_written_are_not_read(tmp_path):
    from tuneline.ingest import list_landing_files

    (tmp_path / "billing").mkdir()
    fresh = tmp_path / "billing" / "t.csv"
    fresh.write_text("x")
    assert list_landing_files(tmp_path / "billing", min_age_seconds=5).skipped == {"t.csv": "not_ready"}
    _age(fresh)
    assert [p.name for p in list_landing_files(tmp_path / "billing", min_age_seconds=5).readable] == ["t.csv"]
    assert [f.name for f in scan_landing(tmp_path).files] == ["t.csv"]


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
        seen = landing_zone_sensor(context)
        assert seen.run_requests == []
        context = dg.build_sensor_context(instance=instance, cursor=seen.cursor, resources={"landing": storage})
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
        assert changed.run_requests == [], "a changed file is observed once more before it is ingested"
        context = dg.build_sensor_context(instance=instance, cursor=changed.cursor, resources={"landing": storage})
        changed = landing_zone_sensor(context)
        assert len(changed.run_requests) == 1
        assert changed.run_requests[0].run_key != result.run_requests[0].run_key
        key = entry_key("billing/tickets.csv")
        assert json.loads(changed.cursor)["ingested"][key] != json.loads(result.cursor)["ingested"][key]
        assert json.loads(changed.cursor)["skipped"] == {entry_key("billing/notes.txt"): "unsupported_type"}
