"""The S3 landing zone against a real S3 API: moto's server on loopback, boto3 and dagster-aws pointed at it."""

import boto3
import dagster as dg

from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from ft_resources.landing import S3LandingZone
from ft_resources.pii import PiiEngine
from tests.conftest import age_files
from tuneline.ingest import ingest_product
from tuneline.synthetic import write_landing_zone


def _zone(endpoint, min_age=0.0):
    from dagster_aws.s3 import S3Resource

    return S3LandingZone(bucket="tickets", prefix="exports", min_age_seconds=min_age,
                         s3=S3Resource(endpoint_url=endpoint, region_name="us-east-1"))


def _upload(endpoint, tmp_path):
    write_landing_zone(tmp_path / "local", ["billing", "shipping"], 30)
    age_files(tmp_path / "local")
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="tickets")
    for path in (tmp_path / "local").rglob("*.*"):
        client.upload_file(str(path), "tickets", f"exports/{path.parent.name}/{path.name}")
    client.put_object(Bucket="tickets", Key="exports/billing/.partial-upload.csv", Body=b"ignored")
    return client


def _tick(instance, cursor, zone):
    from ft_sensors.landing import landing_zone_sensor

    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"landing": zone}) as context:
        return landing_zone_sensor(context)


def test_sensor_over_s3_adds_partitions_and_reacts_to_changed_objects(s3_endpoint, tmp_path):
    client = _upload(s3_endpoint, tmp_path)
    with dg.instance_for_test() as instance:
        first = _tick(instance, None, _zone(s3_endpoint))
        assert first.run_requests == [], "an object is requested once it was seen unchanged on two ticks"
        result = _tick(instance, first.cursor, _zone(s3_endpoint))
        assert result.dynamic_partitions_requests[0].partition_keys == ["billing", "shipping"]
        assert sorted(r.partition_key for r in result.run_requests) == ["billing", "shipping"]
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing", "shipping"])
        quiet = _tick(instance, result.cursor, _zone(s3_endpoint))
        assert quiet.run_requests == []
        client.put_object(Bucket="tickets", Key="exports/shipping/tickets-0002.jsonl",
                          Body=b'{"ticket_id": "n1", "customer_message": "late parcel?", "agent_response": "Today."}\n')
        seen = _tick(instance, quiet.cursor, _zone(s3_endpoint))
        changed = _tick(instance, seen.cursor, _zone(s3_endpoint))
        assert [r.partition_key for r in changed.run_requests] == ["shipping"]
        waiting = _tick(instance, seen.cursor, _zone(s3_endpoint, 600))
        assert waiting.run_requests == [], "objects younger than min_age_seconds wait for a later tick"


def test_ingest_reads_the_same_rows_from_s3_as_from_disk(s3_endpoint, tmp_path):
    from ft_assets.ingest import ingest_tickets
    from ft_resources.io_manager import PartitionedFileIOManager
    from ft_resources.storage import TunelineStorage

    _upload(s3_endpoint, tmp_path)
    home = tmp_path / "home"
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["shipping"])
        result = dg.materialize([ingest_tickets], instance=instance, partition_key="shipping", resources={
            "landing": _zone(s3_endpoint), "storage": TunelineStorage(root=str(home)),
            "io_manager": PartitionedFileIOManager(root=str(home)), "pii": PiiEngine()})
    metadata = result.asset_materializations_for_node("ingest_tickets")[0].metadata
    local = ingest_product(tmp_path / "local" / "shipping", "shipping")
    assert metadata["kept"].value == local.kept.height and metadata["rejected"].value == local.rejected.height
