"""Training behaviour that needs real processes and servers: resume after SIGKILL, early stopping,
MLflow tracking against a real `mlflow server`, and the trainer resources' wiring."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.test_training import _chat_file
from tuneline.training import TrainConfig, main


def _config(tiny_model_dir, tmp_path, **overrides) -> TrainConfig:
    fields = {
        "model": str(tiny_model_dir),
        "train_file": str(_chat_file(tmp_path / "train.jsonl", 40)),
        "output_dir": str(tmp_path / "adapter"),
        "gradient_accumulation_steps": 1,
        "logging_steps": 1,
        "learning_rate": 5e-3,
    }
    return TrainConfig(**{**fields, **overrides})


def test_killed_run_resumes_from_its_checkpoint_and_ends_at_the_same_step(tiny_model_dir, tmp_path):
    config = _config(
        tiny_model_dir, tmp_path, max_steps=200, save_steps=5, checkpoint_dir=str(tmp_path / "checkpoints")
    )
    config_file = tmp_path / "train.json"
    config_file.write_text(json.dumps(config.__dict__))
    command = [sys.executable, "-m", "tuneline.training", "--config", str(config_file)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list((tmp_path / "checkpoints").glob("checkpoint-*/trainer_state.json")):
        assert process.poll() is None, "training ended before its first checkpoint"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert not (tmp_path / "adapter").exists(), "a killed run leaves no adapter behind"
    leftovers = list(tmp_path.glob(".adapter.staging-*"))
    assert all(p.name.startswith(".") for p in tmp_path.iterdir() if p.name != "checkpoints" and p.is_dir()
               and p.name != "train.jsonl"), "whatever a killed run leaves is hidden staging, never an adapter"
    for leftover in leftovers:  # an hour later the next writer of the adapter sweeps them
        past = time.time() - 7200
        os.utime(leftover, (past, past))

    events = []
    summary = main(config, reporter=events.append)
    assert summary["resumed_from"] is not None and summary["resumed_from"].startswith("checkpoint-")
    resumed_at = int(summary["resumed_from"].split("-")[1])
    assert resumed_at >= 5
    assert summary["global_steps"] == 200 == summary["max_steps"]
    trained_steps = sorted({e["step"] for e in events if "loss" in e})
    assert trained_steps[0] == resumed_at + 1, "the resumed run must continue after its checkpoint"
    assert trained_steps[-1] == 200
    assert not (tmp_path / "checkpoints").exists(), "checkpoints of a finished run are removed"
    assert not [p for p in leftovers if p.exists()], "the killed run's staging was swept by the resumed run"


def test_early_stopping_follows_the_validation_losses(tiny_model_dir, tmp_path, monkeypatch):
    """The validation losses are scripted, so the outcome depends on the early-stopping logic alone, not on
    how a tiny model's loss moves on this CPU's precision (it kept improving by 0.001 in fp32)."""
    from trl import SFTTrainer

    scripted = iter([3.0, 2.0, 2.5, 2.4, 1.0, 0.5])
    evaluated_at = []

    def scripted_evaluate(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        metrics = {"eval_loss": next(scripted), "epoch": self.state.epoch}
        evaluated_at.append(self.state.global_step)
        self.log(metrics)
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    monkeypatch.setattr(SFTTrainer, "evaluate", scripted_evaluate)
    config = _config(tiny_model_dir, tmp_path, max_steps=200, val_file=str(_chat_file(tmp_path / "val.jsonl", 8)),
                     eval_steps=2, save_steps=2, checkpoint_dir=str(tmp_path / "ck"), early_stopping_patience=2)
    summary = main(config)
    # best at step 4 (2.0); 2.5 and 2.4 do not beat it: patience 2 is spent at step 8
    assert evaluated_at == [2, 4, 6, 8]
    assert summary["stopped_early"] and summary["global_steps"] == 8 and summary["best_eval_loss"] == 2.0
    log = json.loads((tmp_path / "adapter" / "trainer_log.json").read_text())
    assert [e["eval_loss"] for e in log if "eval_loss" in e] == [3.0, 2.0, 2.5, 2.4]
    assert (tmp_path / "adapter" / "loss_curve.png").stat().st_size > 1000


def test_without_patience_training_runs_to_max_steps(tiny_model_dir, tmp_path, monkeypatch):
    from trl import SFTTrainer

    def worse_every_time(self, eval_dataset=None, ignore_keys=None, metric_key_prefix="eval"):
        metrics = {"eval_loss": 1.0 + self.state.global_step}
        self.control = self.callback_handler.on_evaluate(self.args, self.state, self.control, metrics)
        return metrics

    monkeypatch.setattr(SFTTrainer, "evaluate", worse_every_time)
    config = _config(tiny_model_dir, tmp_path, max_steps=6, val_file=str(_chat_file(tmp_path / "val.jsonl", 8)),
                     eval_steps=2)
    summary = main(config)
    assert not summary["stopped_early"] and summary["global_steps"] == 6


def test_early_stopping_without_validation_is_a_config_error(tiny_model_dir, tmp_path):
    from tuneline.training import TrainingConfigError

    with pytest.raises(TrainingConfigError, match="early stopping needs"):
        main(_config(tiny_model_dir, tmp_path, max_steps=2, early_stopping_patience=1))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def mlflow_server(tmp_path):
    port = _free_port()
    mlflow = Path(sys.executable).with_name("mlflow")
    process = subprocess.Popen(
        [
            str(mlflow),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--backend-store-uri",
            f"sqlite:///{tmp_path}/mlflow.db",
            "--artifacts-destination",
            str(tmp_path / "art"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    import urllib.request

    deadline = time.time() + 90
    while True:
        try:
            urllib.request.urlopen(f"{url}/health", timeout=2)
            break
        except OSError:
            if time.time() > deadline or process.poll() is not None:
                os.killpg(process.pid, signal.SIGKILL)
                raise RuntimeError("mlflow server did not start") from None
            time.sleep(0.5)
    yield url
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)


def test_training_run_lands_on_a_real_mlflow_server(tiny_model_dir, tmp_path, mlflow_server):
    from mlflow.tracking import MlflowClient

    summary = main(
        _config(
            tiny_model_dir,
            tmp_path,
            max_steps=4,
            mlflow_tracking_uri=mlflow_server,
            mlflow_experiment="tuneline-test",
            run_name="tiny",
        )
    )
    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(summary["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.params["lora_r"] == str(TrainConfig.lora_r)
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [m.step for m in history] == [1, 2, 3, 4]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "adapter")}
    assert {"adapter/adapter_config.json", "adapter/adapter_model.safetensors", "adapter/metadata.json"} <= artifacts


def test_trainer_is_chosen_by_configuration():
    from dagster_aws.pipes import PipesECSClient

    from ft_assets.definitions import Settings, build_trainer
    from ft_resources.trainer import EcsTrainer, LocalTrainer, SubprocessTrainer

    assert isinstance(build_trainer(Settings()), SubprocessTrainer)
    assert isinstance(build_trainer(Settings(trainer="local")), LocalTrainer)
    ecs = build_trainer(
        Settings(
            trainer="ecs",
            device="cuda",
            quantization="4bit",
            extra={"ecs_cluster": "gpu", "ecs_task_definition": "tuneline:3", "ecs_subnets": "a,b"},
        )
    )
    assert isinstance(ecs, EcsTrainer)
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    assert isinstance(ecs.build_client(), PipesECSClient)
    request = ecs.run_task_request(
        TrainConfig(model="m", train_file="t", output_dir="o", device="cuda", quantization="4bit")
    )
    command = request["overrides"]["containerOverrides"][0]["command"]
    assert command[:4] == ["python", "-m", "tuneline.training", "--config-json"]
    assert json.loads(command[4])["quantization"] == "4bit"
    assert request["cluster"] == "gpu" and request["networkConfiguration"]["awsvpcConfiguration"]["subnets"] == [
        "a",
        "b",
    ]
    # the GPU plan on a CUDA host, proven without one
    plan = ecs.plan(cuda_available=True, bf16_supported=True)
    assert (plan.device, plan.bf16, plan.load_in_4bit) == ("cuda", True, True)
    from dagster_k8s import PipesK8sClient

    from ft_resources.trainer import K8sTrainer, OpenAIFineTuneTrainer

    k8s = build_trainer(Settings(trainer="k8s", device="cuda", extra={"k8s_image": "registry/tuneline:1",
                                                                      "k8s_namespace": "ml"}))
    assert isinstance(k8s, K8sTrainer) and k8s.stages_through_storage and isinstance(k8s.build_client(), PipesK8sClient)
    arguments = k8s.run_arguments(TrainConfig(model="models/m", train_file="work/t", output_dir="adapters/o",
                                              storage_remote="s3://b/p"))
    assert arguments["image"] == "registry/tuneline:1" and arguments["namespace"] == "ml"
    assert arguments["base_pod_spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert json.loads(arguments["command"][4])["storage_remote"] == "s3://b/p"
    assert isinstance(build_trainer(Settings(trainer="openai")), OpenAIFineTuneTrainer)
    with pytest.raises(ValueError, match="TUNELINE_TRAINER"):
        build_trainer(Settings(trainer="slurm"))


def test_precision_and_pii_processes_come_from_the_environment():
    from ft_assets.definitions import Settings, build_resources, build_trainer

    settings = Settings.from_env({"TUNELINE_PRECISION": "fp32", "TUNELINE_PII_PROCESSES": "2",
                                  "TUNELINE_TRAINER": "local"})
    trainer = build_trainer(settings)
    assert trainer.precision == "fp32"
    assert trainer.configured(TrainConfig(model="m", train_file="t", output_dir="o")).precision == "fp32"
    assert not trainer.plan(cuda_available=False, cpu_native_bf16=True).bf16  # fp32 forced on a bf16 CPU
    from ft_resources.trainer import LocalTrainer

    assert LocalTrainer().plan(cuda_available=False, cpu_native_bf16=True).bf16  # auto picks bf16 there
    assert build_resources(settings)["pii"].n_process == 2
    assert not trainer.configured(TrainConfig(model="m", train_file="t", output_dir="o")).compile_layers


def test_compiling_the_layers_is_switched_on_from_the_environment():
    from ft_assets.definitions import Settings, build_trainer

    for value, expected in (("1", True), ("true", True), ("0", False), ("", False)):
        trainer = build_trainer(Settings.from_env({"TUNELINE_COMPILE": value}))
        assert trainer.compile_layers is expected
        assert trainer.configured(TrainConfig(model="m", train_file="t", output_dir="o")).compile_layers is expected
    with pytest.raises(ValueError, match="TUNELINE_COMPILE"):
        Settings.from_env({"TUNELINE_COMPILE": "fast"})
