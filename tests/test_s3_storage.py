"""S3 as the storage root for every asset, and S3 errors, against moto's server on loopback.

A flaky proxy in front of moto answers the first requests with 503 SlowDown (retried by botocore)
or every request with 403 AccessDenied (a permanent error: the run fails and says which key)."""

import http.client
import json
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

import boto3
import dagster as dg
import polars as pl
import pytest
from dagster_aws.s3 import S3Resource

from ft_assets.definitions import Settings, build_resources, product_assets
from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from ft_resources.io_manager import S3PartitionedIOManager
from tests.conftest import age_files
from tuneline.synthetic import write_landing_zone

PARTED_ASSETS = {"raw_tickets", "rejected_tickets", "cleaned_conversations", "near_duplicate_index", "scored_dataset",
                 "dataset_splits"}
DATA_ASSETS = {"raw_tickets", "rejected_tickets", "cleaned_conversations", "near_duplicate_index",
               "scored_dataset", "dataset_splits",
               "stg_tickets", "product_ticket_stats", "curation_funnel", "split_stats"}
# the objects were uploaded a moment ago and are complete: read them now rather than after min_age_seconds
TRAIN_CONFIG = {"ops": {"lora_adapter": {"config": {"max_steps": 2, "gradient_accumulation_steps": 1}},
                        "ingest_tickets": {"config": {"min_file_age_seconds": 0}}}}
EVAL_CONFIG = {"ops": {"eval_report": {"config": {"max_examples": 3, "max_new_tokens": 4}}}}


def _keys(client, bucket, prefix=""):
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {item["Key"] for page in pages for item in page.get("Contents", [])}


def test_s3_home_holds_every_asset_and_another_machine_continues_from_it(s3_endpoint, tmp_path, tiny_model_dir,
                                                                         monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    # fixed splits: with a random installation key, 1 run in ~40 drew no test ticket for this small product
    monkeypatch.setenv("TUNELINE_PSEUDONYM_KEY", "tuneline-s3-test")
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="ml-store")
    write_landing_zone(tmp_path / "drop", ["billing"], 40)
    age_files(tmp_path / "drop")
    for path in (tmp_path / "drop" / "billing").iterdir():
        client.upload_file(str(path), "ml-store", f"tuneline/landing/billing/{path.name}")

    def settings(cache):
        return Settings(home="s3://ml-store/tuneline", model_source="local", model=str(tiny_model_dir),
                        trainer="local", extra={"cache": str(cache)}, pseudonym_key_configured=True)

    assets = product_assets()
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])
        first = dg.materialize(assets, instance=instance, resources=build_resources(settings(tmp_path / "machine-a")),
                               partition_key="billing", run_config=TRAIN_CONFIG,
                               selection=[*DATA_ASSETS, "lora_adapter"])
        assert first.success
        stored = _keys(client, "ml-store", "tuneline/")
        for asset in DATA_ASSETS:  # the first stages are stored in parts (a manifest and its parts)
            name = "billing.parts.json" if asset in PARTED_ASSETS else "billing.parquet"
            assert f"tuneline/assets/{asset}/{name}" in stored, asset
        assert "tuneline/assets/lora_adapter/billing.json" in stored
        for name in ("train.jsonl", "val.jsonl", "test.jsonl", "alpaca.json", ".tuneline-manifest.json"):
            assert f"tuneline/exports/billing/{name}" in stored
        adapter_objects = {k for k in stored if k.startswith("tuneline/adapters/billing/")}
        assert any(k.endswith("adapter_model.safetensors") for k in adapter_objects)

        # machine B has an empty cache: it evaluates the adapter that machine A trained, from S3 alone
        shutil.rmtree(tmp_path / "machine-a")
        second = dg.materialize(assets, instance=instance, resources=build_resources(settings(tmp_path / "machine-b")),
                                partition_key="billing", run_config=EVAL_CONFIG, selection=["eval_report"],
                                raise_on_error=False)
        # a 2-step adapter on a random tiny model fails the promotion gate (blocking), but the report is written
        assert {e.materialization.asset_key.to_user_string() for e in second.get_asset_materialization_events()} == {
            "eval_report"}
        report = client.get_object(Bucket="ml-store", Key="tuneline/assets/eval_report/billing.json")["Body"].read()
        assert b'"gate"' in report
        assert any(k.startswith("tuneline/reports/billing/") for k in _keys(client, "ml-store", "tuneline/"))
        # a third machine fetching the adapter by its manifest gets the evaluation next to the weights
        summary = json.loads(client.get_object(Bucket="ml-store", Key="tuneline/assets/lora_adapter/billing.json")
                             ["Body"].read())
        adapter = build_resources(settings(tmp_path / "machine-c"))["storage"].localize_adapter(summary)
        assert (adapter / "adapter_model.safetensors").exists()
        assert json.loads((adapter / "evaluation_results.json").read_text())["gate"] == json.loads(report)["gate"]


class _FlakyProxy(BaseHTTPRequestHandler):
    """Forwards to moto; `failures` answers are replaced by an S3 error first (`status`, `code`)."""

    protocol_version = "HTTP/1.1"

    def _handle(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server = self.server
        with server.lock:
            inject = server.failures > 0 and self.command in ("PUT", "GET")
            if inject:
                server.failures -= 1
                server.injected += 1
        if inject:
            payload = (f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{server.code}</Code>"
                       f"<Message>injected</Message></Error>").encode()
            self.send_response(server.status)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        upstream = http.client.HTTPConnection(server.upstream.hostname, server.upstream.port, timeout=30)
        upstream.request(self.command, self.path, body=body or None, headers=dict(self.headers.items()))
        response = upstream.getresponse()
        data = response.read()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        upstream.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

    def log_message(self, *args):
        pass


@pytest.fixture
def flaky_s3(s3_endpoint):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _FlakyProxy)
    server.upstream = urlparse(s3_endpoint)
    server.lock = threading.Lock()
    server.failures, server.injected, server.status, server.code = 0, 0, 503, "SlowDown"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket="flaky")
    yield server, f"http://127.0.0.1:{server.server_address[1]}", s3_endpoint
    server.shutdown()


@dg.asset
def ticket_counts() -> pl.DataFrame:
    return pl.DataFrame({"product": ["billing", "shipping"], "tickets": [3, 5]})


@dg.asset
def doubled(ticket_counts: pl.DataFrame) -> pl.DataFrame:
    return ticket_counts.with_columns(pl.col("tickets") * 2)


def _materialize(endpoint, max_attempts=5):
    io_manager = S3PartitionedIOManager(bucket="flaky", prefix="p",
                                        s3=S3Resource(endpoint_url=endpoint, region_name="us-east-1",
                                                      max_attempts=max_attempts))
    with dg.instance_for_test() as instance:
        return dg.materialize([ticket_counts, doubled], instance=instance, resources={"io_manager": io_manager},
                              raise_on_error=False)


def test_transient_s3_errors_are_retried(flaky_s3):
    server, proxy, moto = flaky_s3
    server.failures = 3  # the first PUT is refused twice, then the first GET once
    result = _materialize(proxy)
    assert result.success
    assert server.injected == 3
    body = boto3.client("s3", endpoint_url=moto, region_name="us-east-1").get_object(
        Bucket="flaky", Key="p/assets/doubled/__all__.parquet")["Body"].read()
    import io

    assert pl.read_parquet(io.BytesIO(body))["tickets"].to_list() == [6, 10]


def test_permanent_s3_errors_fail_the_run_with_the_key_and_code(flaky_s3):
    server, proxy, _ = flaky_s3
    server.failures, server.status, server.code = 1000, 403, "AccessDenied"
    result = _materialize(proxy)
    assert not result.success
    assert server.injected == 1  # 403 is not retried
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.step_failure_data.error.message
    assert "AccessDenied" in message and "s3://flaky/p/assets/ticket_counts/__all__.parquet" in message


def test_s3_errors_that_outlast_the_retries_fail_clearly(flaky_s3):
    server, proxy, _ = flaky_s3
    server.failures = 1000
    result = _materialize(proxy, max_attempts=2)
    assert not result.success
    assert server.injected == 3  # S3Resource's max_attempts is botocore's retry count: 1 try + 2 retries
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "SlowDown" in failure.step_failure_data.error.message
