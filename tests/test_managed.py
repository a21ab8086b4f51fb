import json

import pytest

from tests.openai_stub import OpenAIStub
from tuneline.managed import ManagedFineTuneError, ManagedJobSettings, run_managed_fine_tune


def _files(tmp_path):
    train = tmp_path / "train.jsonl"
    record = {
        "messages": [
            {"role": "system", "content": "s"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": "a"},
        ],
        "split": "train",
        "metadata": {"x": 1},
    }
    train.write_text(json.dumps(record) + "\n")
    val = tmp_path / "val.jsonl"
    val.write_text(json.dumps({**record, "split": "val"}) + "\n")
    return train, val


def _client(stub):
    from openai import OpenAI

    return OpenAI(api_key="sk-test", base_url=stub.base_url, max_retries=0)


def test_successful_job_uploads_polls_with_backoff_and_returns_the_model(tmp_path):
    train, val = _files(tmp_path)
    sleeps = []
    with OpenAIStub() as stub:
        stub.job_statuses = ["queued", "running", "running", "succeeded"]
        result = run_managed_fine_tune(
            _client(stub),
            train,
            val,
            ManagedJobSettings(poll_seconds=1, max_poll_seconds=3),
            log=lambda m: None,
            sleep=sleeps.append,
        )
        uploaded = stub.uploads[0].decode()
        create = next(r for r in stub.requests if r["path"].endswith("/fine_tuning/jobs"))
    assert result["fine_tuned_model"] == "ft:base:tuneline:1" and result["trained_tokens"] == 1234
    assert sleeps == [1, 2, 3, 3]
    assert '"messages"' in uploaded and '"metadata"' not in uploaded and '"split"' not in uploaded
    assert create["body"]["training_file"] == "file-1" and create["body"]["validation_file"] == "file-2"


def test_failed_job_raises_with_the_providers_message(tmp_path):
    train, val = _files(tmp_path)
    with OpenAIStub() as stub:
        stub.job_statuses = ["running", "failed"]
        stub.job_error = "Training file has 3 examples; at least 10 are required"
        with pytest.raises(ManagedFineTuneError, match="at least 10 are required"):
            run_managed_fine_tune(
                _client(stub), train, val, ManagedJobSettings(poll_seconds=0), log=lambda m: None, sleep=lambda s: None
            )


def test_cancelled_and_timed_out_jobs_raise(tmp_path):
    train, _ = _files(tmp_path)
    with OpenAIStub() as stub:
        stub.job_statuses = ["cancelled"]
        with pytest.raises(ManagedFineTuneError, match="cancelled"):
            run_managed_fine_tune(
                _client(stub), train, None, ManagedJobSettings(poll_seconds=0), log=lambda m: None, sleep=lambda s: None
            )
    with OpenAIStub() as stub:
        stub.job_statuses = ["running"]
        with pytest.raises(ManagedFineTuneError, match="still running"):
            run_managed_fine_tune(
                _client(stub),
                train,
                None,
                ManagedJobSettings(poll_seconds=10, max_wait_seconds=30),
                log=lambda m: None,
                sleep=lambda s: None,
            )


def test_trainer_resource_records_the_remote_model(tmp_path):
    from ft_resources.trainer import OpenAIFineTuneTrainer
    from tuneline.training import TrainConfig

    train, val = _files(tmp_path)
    with OpenAIStub() as stub:
        stub.job_statuses = ["succeeded"]
        trainer = OpenAIFineTuneTrainer(api_key="sk-test", base_url=stub.base_url, poll_seconds=0.01)
        summary = trainer.train(
            None,
            TrainConfig(model="unused", train_file=str(train), val_file=str(val), output_dir=str(tmp_path / "adapter")),
        )
    assert summary["fine_tuned_model"] == "ft:base:tuneline:1" and summary["provider"] == "openai"
    assert json.loads((tmp_path / "adapter" / "managed_model.json").read_text())["job_id"] == "ftjob-1"


def test_a_managed_fine_tune_is_evaluated_through_the_providers_api(tmp_path):
    """eval_report on a managed model: base and fine-tuned model answer through the OpenAI-compatible API (the
    test's local server), with the same metrics and intervals as a local adapter; no made-up summary."""
    import dagster as dg
    import polars as pl

    from ft_assets.evaluation import EvalConfig, eval_report
    from ft_resources.llm import JudgeResource
    from ft_resources.models import BaseModel
    from ft_resources.storage import TunelineStorage
    from ft_resources.tracking import MlflowTracking
    from ft_resources.trainer import OpenAIFineTuneTrainer

    reference = "Open Billing, then Invoices, and choose Download PDF next to the month you need."
    rows = [{"messages": [{"role": "system", "content": "You are a support agent."},
                          {"role": "user", "content": f"Where do I find invoice {i}?"},
                          {"role": "assistant", "content": reference}],
             "split": "test", "content_hash": f"h{i}", "ticket_id": f"t{i}", "thread_id": f"t{i}",
             "product": "billing", "quality_score": 1.0, "topic": "invoices"} for i in range(6)]
    adapter = tmp_path / "adapters" / "billing" / "v-1"
    adapter.mkdir(parents=True)
    summary = {"fine_tuned_model": "ft:base:tuneline:1", "base_model": "gpt-base", "provider": "openai",
               "adapter_dir": str(adapter), "adapter_key": "adapters/billing/v-1"}
    with OpenAIStub() as stub:
        stub.reply_for = lambda body: reference if body["model"].startswith("ft:") else "I am not sure, sorry."
        resources = {"storage": TunelineStorage(root=str(tmp_path)), "judge": JudgeResource(),
                     "tracking": MlflowTracking(tracking_uri=f"sqlite:///{tmp_path}/mlflow.db"),
                     "base_model": BaseModel(source="local", location=str(tmp_path)),
                     "trainer": OpenAIFineTuneTrainer(api_key="sk-test", base_url=stub.base_url)}
        with dg.build_asset_context(partition_key="billing", resources=resources) as context:
            outputs = list(eval_report(context, EvalConfig(max_examples=6), pl.DataFrame(rows), summary))
        asked = {r["body"]["model"] for r in stub.requests if r["path"].endswith("/chat/completions")}
    report = outputs[0].value
    assert asked == {"gpt-base", "ft:base:tuneline:1"}
    assert report["remote_models"] == {"base": "gpt-base", "tuned": "ft:base:tuneline:1"}
    assert report["tuned"]["rougeL"] == 1.0 > report["base"]["rougeL"] and report["tuned"]["ended_with_eot"] == 1.0
    assert report["bootstrap"]["rougeL"]["ci_low"] > 0 and report["gate"]["passed"]
