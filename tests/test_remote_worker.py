"""Training on a worker that shares nothing with this machine but the storage root's S3 mirror (moto's
server): the configuration names storage keys, never host paths; the worker starts with an empty cache,
stages its inputs from S3, trains, and publishes the adapter there; this machine fetches it by key."""

import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, replace

import boto3
import pytest

from ft_resources.storage import TunelineStorage
from tests.test_training import _chat_file
from tuneline.training import TrainConfig, TrainingConfigError, portable

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_a_worker_with_only_s3_trains_from_keys(s3_endpoint, tmp_path, tiny_model_dir):
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket="ml-store")
    host = tmp_path / "host-root"
    storage = TunelineStorage(root=str(host), remote="s3://ml-store/tuneline", endpoint_url=s3_endpoint)
    model = shutil.copytree(tiny_model_dir, host / "models" / "tiny")
    (host / "work" / "billing").mkdir(parents=True)
    train = _chat_file(host / "work" / "billing" / "train.jsonl", 8)
    for path in (model, train):
        storage.publish(path)
    config = TrainConfig(model=str(model), train_file=str(train), output_dir=str(host / "adapters" / "billing" / "v-1"),
                         checkpoint_dir=str(host / "work" / "billing" / "checkpoints"), max_steps=1,
                         gradient_accumulation_steps=1, mlflow_tracking_uri=f"sqlite:///{host}/mlflow.db")
    remote = portable(config, host, storage.remote, s3_endpoint)
    sent = json.dumps(asdict(remote))
    assert str(tmp_path) not in sent and remote.model == "models/tiny" and remote.mlflow_tracking_uri is None
    with pytest.raises(TrainingConfigError, match="outside the storage root"):
        portable(replace(config, init_adapter=str(tmp_path / "elsewhere")), host, storage.remote)

    shutil.move(host, tmp_path / "host-root-unreachable")  # the worker could not read a host path if it tried
    worker = tmp_path / "worker"
    worker.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(worker), "AWS_ACCESS_KEY_ID": "testing",
           "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1", "PYTHONPATH": REPO,
           "TUNELINE_WORKER_CACHE": str(worker / "cache"), "HF_HUB_OFFLINE": "1", "TUNELINE_PRECISION": "fp32"}
    done = subprocess.run([sys.executable, "-m", "tuneline.training", "--config-json", sent], cwd=worker, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert (worker / "cache" / "models" / "tiny" / "config.json").is_file()  # staged from S3, not from the host

    elsewhere = TunelineStorage(root=str(tmp_path / "another-machine"), remote="s3://ml-store/tuneline",
                                endpoint_url=s3_endpoint)
    adapter = elsewhere.localize("adapters/billing/v-1")
    assert (adapter / "adapter_config.json").is_file() and (adapter / "adapter_model.safetensors").is_file()
