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
