"""Names and paths from outside, tried against the one gate each (tuneline.names, tuneline.paths) with
generated hostile input, then through the landing zone (local and S3 via moto's server) end to end."""

import json
import os
import string
import time
from pathlib import Path

import boto3
import dagster as dg
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ft_resources.io_manager import read_asset_frame
from tuneline.names import MAX_PRODUCT_KEY_LENGTH, InvalidName, file_name, product_key, product_key_problem
from tuneline.paths import PathEscapesRoot, remove_tree, under

HOSTILE_PIECES = ["..", ".", "/", "\\", "*", "?", "[", "]", "{", "}", "~", "$", "%2e%2e", "\x00", "\n", " ", "A",
                  "é", "ß", "\u202e", "\ufeff", "billing", "-", "_", "0"]
hostile_names = st.one_of(st.text(max_size=80), st.lists(st.sampled_from(HOSTILE_PIECES), max_size=12).map("".join))
ROW = {"ticket_id": "t1", "customer_message": "my parcel is late, where is it?",
       "agent_response": "It ships today; here is the tracking link."}


@settings(max_examples=3000, deadline=None)
@given(hostile_names)
def test_a_product_key_is_one_safe_path_component_and_nothing_else(name):
    try:
        key = product_key(name)
    except InvalidName as err:
        assert err.reason in {"empty", "too_long", "invalid_characters", "not_utf8"}
        return
    assert key == name and 1 <= len(key) <= MAX_PRODUCT_KEY_LENGTH
    assert set(key) <= set(string.ascii_lowercase + string.digits + "-_") and key[0] not in "-_"
    assert Path(key).name == key and key not in (".", "..")


def test_known_bad_product_names_with_their_reasons():
    cases = {"..": "invalid_characters", ".": "invalid_characters", "": "empty", "a/b": "invalid_characters",
             "bill[ing]": "invalid_characters", "*": "invalid_characters", "Billing": "invalid_characters",
             "x" * (MAX_PRODUCT_KEY_LENGTH + 1): "too_long", b"caf\xe9": "not_utf8", "_hidden": "invalid_characters",
             "bílling": "invalid_characters"}
    for name, reason in cases.items():
        assert product_key_problem(name) == reason, name
    assert product_key("Billing Team", {"Billing Team": "billing"}) == "billing"
    with pytest.raises(InvalidName):
        product_key("x", {"x": "../evil"})  # an alias target passes the same gate


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(hostile_names, min_size=1, max_size=4))
def test_under_never_leaves_its_root(tmp_path, parts):
    root = tmp_path / "root"
    root.mkdir(exist_ok=True)
    try:
        path = under(root, *parts)
    except PathEscapesRoot:
        return
    assert path.resolve().is_relative_to(root.resolve()) and path != root.resolve()


def test_under_refuses_a_symlink_out_and_remove_tree_never_follows_one(tmp_path):
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "a").mkdir(parents=True)
    outside.mkdir()
    (outside / "precious.txt").write_text("keep me")
    (root / "a" / "link").symlink_to(outside)
    with pytest.raises(PathEscapesRoot):
        under(root, "a", "link", "precious.txt")
    assert remove_tree(root, root / "a" / "link") is True
    assert (outside / "precious.txt").read_text() == "keep me", "the link went, its target stayed"
    for victim in (root, root / "..", tmp_path, root / "a" / ".."):
        with pytest.raises(PathEscapesRoot):
            remove_tree(root, victim)
    assert root.exists()


@settings(max_examples=500, deadline=None)
@given(hostile_names)
def test_file_names_are_single_components(name):
    try:
        text = file_name(name)
    except InvalidName:
        return
    assert "/" not in text and "\x00" not in text and text not in ("", ".", "..")


# --- through the landing zone -----------------------------------------------------------------------------


def _age(path: Path, seconds: float = 120) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past), follow_symlinks=False)


def _write(path: Path, rows=(ROW,)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    _age(path)
    return path


def test_hostile_local_landing_zone(tmp_path):
    """Symlinks (to secrets, outside files, another product), pattern names, non-UTF-8, dot and odd files."""
    from ft_resources.landing import LocalLandingZone
    from tuneline.ingest import ingest_product

    landing, outside = tmp_path / "landing", tmp_path / "outside"
    _write(landing / "billing" / "tickets.jsonl")
    _write(landing / "billing" / "tickets[1].jsonl", [{**ROW, "ticket_id": "bracket"}])
    _write(landing / "billing" / "*.jsonl", [{**ROW, "ticket_id": "star"}])
    _write(landing / "billing" / "UPPER.JSONL", [{**ROW, "ticket_id": "upper"}])
    _write(landing / "billing" / ".hidden.jsonl", [{**ROW, "ticket_id": "hidden"}])
    _write(landing / "billing" / "notes.txt")
    _write(landing / "shipping" / "ship.jsonl", [{**ROW, "ticket_id": "shipping-only"}])
    _write(outside / "secret.jsonl", [{**ROW, "ticket_id": "outside"}])
    (outside / "environ").write_text("OPENAI_API_KEY=sk-sentinel-123\n")
    (landing / "billing" / "env.jsonl").symlink_to(outside / "environ")
    (landing / "billing" / "outside.jsonl").symlink_to(outside / "secret.jsonl")
    (landing / "billing" / "other.jsonl").symlink_to(landing / "shipping" / "ship.jsonl")
    (landing / "linked-product").symlink_to(outside)
    os.mkdir(os.fsencode(landing) + b"/caf\xe9")  # not UTF-8
    for bad in ("..bad", "Has Space", "a*", "[x]", "x" * 60):
        _write(landing / bad / "t.jsonl")
    os.mkfifo(landing / "billing" / "pipe.jsonl")
    bad_name = os.fsencode(landing / "billing") + b"/t\xff\xfe.jsonl"  # a file name that is not UTF-8
    with open(bad_name, "wb") as fh:
        fh.write(json.dumps({**ROW, "ticket_id": "bad-name"}).encode())
    os.utime(bad_name, (time.time() - 120, time.time() - 120))

    zone = LocalLandingZone(path=str(landing))
    scan = zone.scan()
    assert scan.products == {"billing", "shipping"}
    reasons = sorted(scan.skipped.values())
    assert reasons.count("symlink") == 4 and reasons.count("invalid_product_name:invalid_characters") == 3
    assert reasons.count("hidden_folder") == 1  # ..bad
    assert "invalid_product_name:not_utf8" in reasons and "invalid_product_name:too_long" in reasons
    assert "not_a_regular_file" in reasons and "unsupported_type" in reasons and "invalid_file_name" in reasons
    json.dumps(scan.skipped)  # a cursor can always hold it (ids, not names)
    from ft_sensors.landing import landing_zone_sensor

    with dg.instance_for_test() as instance:  # every tick runs to the end, whatever the names
        cursor = None
        for _ in range(2):
            with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"landing": zone}) as context:
                tick = landing_zone_sensor(context)
            cursor = tick.cursor
        assert sorted(r.partition_key for r in tick.run_requests) == ["billing", "shipping"]

    result = ingest_product(zone.product_files("billing", tmp_path / "work"), "billing")
    kept = sorted(result.kept["ticket_id"].to_list())
    assert kept == ["bracket", "star", "t1", "upper"], "each file read by its own name, never as a pattern"
    everything = result.rejected.write_csv() + result.kept.write_json()
    assert "sk-sentinel" not in everything and "outside" not in kept and "shipping-only" not in kept
    skipped = result.files.skipped
    assert skipped["env.jsonl"] == skipped["outside.jsonl"] == skipped["other.jsonl"] == "symlink"
    assert skipped[".hidden.jsonl"] == "hidden_file" and skipped["pipe.jsonl"] == "not_a_regular_file"
    assert skipped[os.fsdecode(b"t\xff\xfe.jsonl")] == "invalid_file_name"
    rejected_names = result.rejected["source_file"].to_list()
    assert all(isinstance(n, str) and n.encode("utf-8") for n in rejected_names), "stored names are valid UTF-8"
    files_in = len(os.listdir(landing / "billing"))
    assert files_in == len(result.files.readable) + len(skipped), "files in = read + skipped"
    assert result.records_in == result.kept.height + result.rejected.height


def test_hostile_s3_keys_never_reach_a_path_or_a_partition(s3_endpoint, tmp_path):
    """`drop/../t.csv` once made a product `..` whose second ingest deleted the storage root."""
    from dagster_aws.s3 import S3Resource

    from ft_assets.ingest import ingest_tickets
    from ft_assets.partitions import PRODUCTS_PARTITION_NAME
    from ft_resources.io_manager import PartitionedFileIOManager
    from ft_resources.landing import S3LandingZone
    from ft_resources.pii import PiiEngine
    from ft_resources.storage import TunelineStorage
    from ft_sensors.landing import landing_zone_sensor

    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="tickets")
    body = (json.dumps(ROW) + "\n").encode()
    keys = ["drop/../t.jsonl", "drop/./t.jsonl", "drop/billing/../../x.jsonl", "drop//t.jsonl", "drop/a/b/c.jsonl",
            "drop/bill*/t.jsonl", "drop/Billing/t.jsonl", "drop/%2e%2e/t.jsonl", "drop/billing/..",
            "drop/billing/.", "drop/billing/sub/t.jsonl", "drop/billing/tickets[1].jsonl", "drop/billing/ok.jsonl",
            "drop/" + "p" * 80 + "/t.jsonl", "drop/billing/\u202egnp.jsonl"]
    for key in keys:
        client.put_object(Bucket="tickets", Key=key, Body=body)
    zone = S3LandingZone(bucket="tickets", prefix="drop", min_age_seconds=0,
                         s3=S3Resource(endpoint_url=s3_endpoint, region_name="us-east-1"))
    scan = zone.scan()
    assert scan.products == {"billing"}
    assert sorted(f.name for f in scan.files) == ["ok.jsonl", "tickets[1].jsonl", "\u202egnp.jsonl"]
    assert len(scan.skipped) == len(keys) - 3

    home = tmp_path / "home"
    (home / "adapters").mkdir(parents=True)
    (home / "mlflow.db").write_text("precious")
    with dg.instance_for_test() as instance:
        cursor = None
        for _ in range(2):
            with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"landing": zone}) as context:
                tick = landing_zone_sensor(context)
            cursor = tick.cursor
        assert [r.partition_keys for r in tick.dynamic_partitions_requests] == [["billing"]]
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing", ".."])  # as if someone forced one
        resources = {"landing": zone, "storage": TunelineStorage(root=str(home)),
                     "io_manager": PartitionedFileIOManager(root=str(home)), "pii": PiiEngine()}
        for _ in range(2):
            ok = dg.materialize([ingest_tickets], instance=instance, partition_key="billing", resources=resources)
            bad = dg.materialize([ingest_tickets], instance=instance, partition_key="..", resources=resources,
                                 raise_on_error=False)
            assert ok.success and not bad.success
    assert (home / "mlflow.db").read_text() == "precious" and (home / "adapters").is_dir()
    kept = read_asset_frame(home, "raw_tickets", "billing")
    assert kept.height == 1, "three files share one ticket id: one kept, two rejected as duplicates"


def test_gzip_blank_lines_deep_nesting_and_too_long(tmp_path):
    import gzip

    from tuneline.ingest import ingest_file, ingest_product

    folder = tmp_path / "p"
    folder.mkdir()
    csv_text = "ticket_id,customer_message,agent_response\n1,where is it?,on its way\n"
    (folder / "renamed.csv").write_bytes(gzip.compress(csv_text.encode()))
    (folder / "real.CSV.GZ").write_bytes(gzip.compress(csv_text.replace("1,", "2,").encode()))
    (folder / "broken.csv").write_bytes(gzip.compress(csv_text.encode())[:20])
    (folder / "blank.csv").write_text("ticket_id,customer_message,agent_response\n" + "\n" * 100_000 + ",,\n")
    deep = "[" * 100_000 + "]" * 100_000
    (folder / "deep.jsonl").write_text(deep + "\n" + json.dumps({**ROW, "ticket_id": "ok-after-deep"}) + "\n")
    (folder / "long.jsonl").write_text(json.dumps({**ROW, "ticket_id": "long", "customer_message": "x" * 200_000}))
    result = ingest_product(folder, "p")
    assert sorted(result.kept["ticket_id"].to_list()) == ["1", "2", "ok-after-deep"]
    reasons = dict(zip(result.rejected["source_file"], result.rejected["reason"], strict=True))
    assert reasons == {"broken.csv": "unreadable_file", "deep.jsonl": "malformed_json", "long.jsonl": "too_long"}
    assert "rows are unknown" in result.rejected.filter(pl.col("source_file") == "broken.csv")["raw"][0]
    blank = ingest_file(folder / "blank.csv", "p")
    assert blank.records_in == 0, "blank lines are not tickets"
    assert result.records_in == result.kept.height + result.rejected.height
