"""Secrets are read from the environment only and never written anywhere: run the graph with sentinel
values and search the event log, metadata, MLflow store and every output for them."""

import json
import os

import dagster as dg

from ft_assets.definitions import Settings, build_resources, product_assets
from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from ft_resources.io_manager import read_asset_frame
from tests.openai_stub import OpenAIStub
from tuneline.cleaning import pseudonym
from tuneline.synthetic import write_landing_zone

SENTINELS = {"OPENAI_API_KEY": "sk-sentinel-7f3a9c", "AWS_SECRET_ACCESS_KEY": "aws-sentinel-51d2e8",
             "TUNELINE_SERVE_KEY": "serve-sentinel-c0ffee", "TUNELINE_PSEUDONYM_KEY": "pseudonym-sentinel-9b1e"}


def _serve_one_request(metrics_file):
    """The serving app with its key from the environment, one authorised request, metrics written."""
    import asyncio
    import os

    import httpx

    from tuneline.serving import create_app

    class Echo:
        products = ["billing"]

        def has_challenger(self, product):
            return False

        def system_prompt(self, product, arm="champion"):
            return None

        def complete(self, product, messages, max_new_tokens, max_seconds, arm="champion"):
            return "ok", 3, 1, "stop"

    app = create_app(Echo(), api_key=os.environ["TUNELINE_SERVE_KEY"], metrics_file=metrics_file)

    async def call():
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
            return await client.post("/v1/chat/completions", headers={
                "authorization": f"Bearer {os.environ['TUNELINE_SERVE_KEY']}"},
                json={"model": "billing", "messages": [{"role": "user", "content": "hi"}]})

    assert asyncio.run(call()).status_code == 200


def test_sentinel_secrets_appear_nowhere(tmp_path, monkeypatch, tiny_model_dir, s3_endpoint):
    import boto3

    for name, value in SENTINELS.items():  # after s3_endpoint: the AWS secret is the sentinel, moto takes any
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    home = tmp_path / "home"
    write_landing_zone(tmp_path / "drop", ["billing"], 40)
    client = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket="tickets")
    for path in (tmp_path / "drop" / "billing").iterdir():
        client.upload_file(str(path), "tickets", f"landing/billing/{path.name}")
    rubric = json.dumps({"helpfulness": 4, "accuracy": 4, "tone": 4, "completeness": 4})
    (tmp_path / "dagster_home").mkdir()
    with OpenAIStub() as stub, dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        stub.chat_replies = [rubric] * 500
        settings = Settings.from_env({**os.environ, "TUNELINE_HOME": str(home), "TUNELINE_MODEL_SOURCE": "local",
                                      "TUNELINE_MODEL": str(tiny_model_dir), "TUNELINE_TRAINER": "local",
                                      "TUNELINE_LANDING": "s3://tickets/landing",
                                      "TUNELINE_JUDGE_BASE_URL": stub.base_url, "TUNELINE_JUDGE_MODEL": "judge"})
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])
        result = dg.materialize(product_assets(), instance=instance, resources=build_resources(settings),
                       partition_key="billing", raise_on_error=False, run_config={"ops": {
                           "ingest_tickets": {"config": {"min_file_age_seconds": 0}},
                           "lora_adapter": {"config": {"max_steps": 2, "gradient_accumulation_steps": 1}},
                           "eval_report": {"config": {"max_examples": 2, "max_new_tokens": 4}},
                           "preference_adapter": {"config": {"max_steps": 1}}}})
        used = [r for r in stub.requests if r.get("auth")]
    materialized = {e.materialization.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    # every secret reached its code path: S3 (landing), the judge (eval), pseudonyms (cleaning), serving (below)
    assert {"raw_tickets", "cleaned_conversations", "lora_adapter", "eval_report"} <= materialized
    cleaned = read_asset_frame(home, "cleaned_conversations", "billing")
    assert cleaned["ticket_id"][0] == pseudonym(
        read_asset_frame(home, "raw_tickets", "billing")["ticket_id"][0],
        SENTINELS["TUNELINE_PSEUDONYM_KEY"].encode()), "the configured key was the one used"
    _serve_one_request(home / "serving" / "metrics.json")
    assert used and all(r["auth"] == f"Bearer {SENTINELS['OPENAI_API_KEY']}" for r in used), \
        "the judge must have been called with the key from the environment"
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".db") for p in files)  # the event log and MLflow store were searched too
    for path in files:
        data = path.read_bytes()
        for name, value in SENTINELS.items():
            assert value.encode() not in data, f"{name} leaked into {path}"
