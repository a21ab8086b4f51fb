"""Secrets are read from the environment only and never written anywhere: run the graph with sentinel
values and search the event log, metadata, MLflow store and every output for them."""

import json

import dagster as dg

from ft_assets.definitions import Settings, build_resources, product_assets
from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from tests.conftest import age_files
from tests.openai_stub import OpenAIStub
from tuneline.synthetic import write_landing_zone

SENTINELS = {"OPENAI_API_KEY": "sk-sentinel-7f3a9c", "AWS_SECRET_ACCESS_KEY": "aws-sentinel-51d2e8",
             "TUNELINE_SERVE_KEY": "serve-sentinel-c0ffee"}


def test_sentinel_secrets_appear_nowhere(tmp_path, monkeypatch, tiny_model_dir):
    for name, value in SENTINELS.items():
        monkeypatch.setenv(name, value)
    home = tmp_path / "home"
    write_landing_zone(home / "landing", ["billing"], 40)
    age_files(home / "landing")
    rubric = json.dumps({"helpfulness": 4, "accuracy": 4, "tone": 4, "completeness": 4})
    (tmp_path / "dagster_home").mkdir()
    with OpenAIStub() as stub, dg.instance_for_test(temp_dir=str(tmp_path / "dagster_home")) as instance:
        stub.chat_replies = [rubric] * 500
        settings = Settings(home=str(home), model_source="local", model=str(tiny_model_dir), trainer="local",
                            judge_base_url=stub.base_url, judge_model="judge")
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])
        dg.materialize(product_assets(), instance=instance, resources=build_resources(settings),
                       partition_key="billing", raise_on_error=False, run_config={"ops": {
                           "lora_adapter": {"config": {"max_steps": 2, "gradient_accumulation_steps": 1}},
                           "eval_report": {"config": {"max_examples": 2, "max_new_tokens": 4}},
                           "preference_adapter": {"config": {"max_steps": 1}}}})
        used = [r for r in stub.requests if r.get("auth")]
    assert used and all(r["auth"] == f"Bearer {SENTINELS['OPENAI_API_KEY']}" for r in used), \
        "the judge must have been called with the key from the environment"
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert any(p.name.endswith(".db") for p in files)  # the event log and MLflow store were searched too
    for path in files:
        data = path.read_bytes()
        for name, value in SENTINELS.items():
            assert value.encode() not in data, f"{name} leaked into {path}"
