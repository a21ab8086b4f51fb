"""Trainer resources: the same asset trains in-process, in a Pipes subprocess, or on an ECS GPU task.

Every variant runs `tuneline.training.main(config)`; they differ only in where. The device and
quantization are validated here first, so an impossible combination fails before any work.
"""

from __future__ import annotations

import json
import os
import sys
from abc import ABC, abstractmethod
from dataclasses import asdict, replace
from pathlib import Path
from typing import ClassVar

import dagster as dg

from tuneline.preference import PreferenceConfig
from tuneline.preference import main as preference_main
from tuneline.storage import atomic_write_text
from tuneline.training import DevicePlan, TrainConfig, cpu_has_native_bf16, main, plan_device


def reported_summary(invocation: dg.PipesClientCompletedInvocation, who: str) -> dict:
    """The last training summary a Pipes process reported (`report_custom_message({"summary": ...})`)."""
    summaries = [m["summary"] for m in invocation.get_custom_messages() if isinstance(m, dict) and "summary" in m]
    if not summaries:
        raise dg.Failure(f"{who} ended without reporting a summary")
    return summaries[-1]


class TrainerResource(dg.ConfigurableResource, ABC):
    """device: auto | cpu | cuda; quantization: none | 4bit (QLoRA, CUDA only); precision: auto | fp32 | bf16;
    compile_layers: torch.compile each decoder layer (see TrainConfig.compile_layers)."""

    device: str = "auto"
    quantization: str = "none"
    precision: str = "auto"
    compile_layers: bool = False
    # True where training runs on a worker that shares nothing with this machine but the storage root's S3
    # mirror: lora_adapter publishes the inputs and sends storage keys (tuneline.training.portable)
    stages_through_storage: ClassVar[bool] = False

    def plan(self, cuda_available: bool | None = None, bf16_supported: bool | None = None,
             cpu_native_bf16: bool | None = None) -> DevicePlan:
        if cuda_available is None:
            import torch

            cuda_available = torch.cuda.is_available()
            bf16_supported = cuda_available and torch.cuda.is_bf16_supported()
        if cpu_native_bf16 is None:
            cpu_native_bf16 = cpu_has_native_bf16()
        return plan_device(self.device, self.quantization, cuda_available, bool(bf16_supported), self.precision,
                           cpu_native_bf16)

    def configured(self, config: TrainConfig) -> TrainConfig:
        return replace(config, device=self.device, quantization=self.quantization, precision=self.precision,
                       compile_layers=self.compile_layers)

    def inference_client(self):
        """An OpenAI-compatible client for models this trainer leaves behind an API (managed fine-tunes);
        None when its models are local files."""
        return None

    @abstractmethod
    def train(self, context: dg.AssetExecutionContext | None, config: TrainConfig) -> dict: ...

    def train_preference(self, context: dg.AssetExecutionContext | None, config: PreferenceConfig) -> dict:
        """DPO/ORPO on top of an SFT adapter; in the step's process unless the trainer runs elsewhere."""
        self.plan()
        return preference_main(replace(config, device=self.device))


class LocalTrainer(TrainerResource):
    """In the Dagster step's own process: simplest, used by tests and notebooks."""

    def train(self, context, config: TrainConfig) -> dict:
        self.plan()
        reporter = (lambda event: context.log.info(json.dumps(event))) if context is not None else None
        return main(self.configured(config), reporter=reporter)


class SubprocessTrainer(TrainerResource):
    """`python -m tuneline.training` in a child process through Dagster Pipes: progress and the summary
    come back as Pipes messages; a crash or OOM in training cannot take the run worker down with it."""

    python: str = sys.executable

    def _run(self, context, module: str, config) -> dict:
        """`python -m <module> --config <json>` through Dagster Pipes; the summary comes back as a message."""
        config_path = Path(config.output_dir).parent / f".{Path(config.output_dir).name}.train-config.json"
        atomic_write_text(config_path, json.dumps(asdict(config)))
        env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
        command = [self.python, "-m", module, "--config", str(config_path)]
        invocation = dg.PipesSubprocessClient(env=env).run(context=context, command=command)
        return reported_summary(invocation, f"the {module} subprocess")

    def train(self, context, config: TrainConfig) -> dict:
        self.plan()
        return self._run(context, "tuneline.training", self.configured(config))

    def train_preference(self, context, config: PreferenceConfig) -> dict:
        self.plan()
        return self._run(context, "tuneline.preference", replace(config, device=self.device))


class EcsTrainer(TrainerResource):
    """The same script as an ECS task on a GPU instance (dagster-aws PipesECSClient). The task's image must
    contain this project; `cluster`, `task_definition` and the subnets come from your AWS account."""

    stages_through_storage: ClassVar[bool] = True

    cluster: str
    task_definition: str
    container_name: str = "tuneline"
    subnets: list[str] = []
    region_name: str | None = None

    def build_client(self):
        import boto3
        from dagster_aws.pipes import PipesECSClient

        return PipesECSClient(client=boto3.client("ecs", region_name=self.region_name))

    def run_task_request(self, config: TrainConfig) -> dict:
        return {
            "cluster": self.cluster,
            "taskDefinition": self.task_definition,
            "launchType": "EC2",
            "overrides": {
                "containerOverrides": [
                    {
                        "name": self.container_name,
                        "command": ["python", "-m", "tuneline.training", "--config-json", json.dumps(asdict(config))],
                    }
                ]
            },
            **({"networkConfiguration": {"awsvpcConfiguration": {"subnets": self.subnets}}} if self.subnets else {}),
        }

    def train(self, context, config: TrainConfig) -> dict:
        config = self.configured(config)  # the device is checked on the GPU host, where CUDA is visible
        invocation = self.build_client().run(context=context, run_task_request=self.run_task_request(config))
        return reported_summary(invocation, "the ECS training task")


class K8sTrainer(TrainerResource):
    """The same script as a Kubernetes pod (dagster-k8s PipesK8sClient) on a GPU node: `image` contains this
    project; the pod reads and writes only the storage root's S3 mirror (a portable configuration of keys)."""

    stages_through_storage: ClassVar[bool] = True

    image: str
    namespace: str = "default"
    gpu_limit: int = 1
    node_selector: dict[str, str] = {}
    service_account: str | None = None

    def build_client(self):
        from dagster_k8s import PipesK8sClient

        return PipesK8sClient()

    def run_arguments(self, config: TrainConfig) -> dict:
        """What PipesK8sClient.run gets: the image, the command, and a pod spec asking for the GPUs."""
        resources = {"limits": {"nvidia.com/gpu": str(self.gpu_limit)}} if self.gpu_limit else {}
        spec: dict = {"containers": [{"resources": resources}]} if resources else {}
        if self.node_selector:
            spec["node_selector"] = dict(self.node_selector)
        if self.service_account:
            spec["service_account_name"] = self.service_account
        return {"image": self.image, "namespace": self.namespace, "base_pod_spec": spec or None,
                "command": ["python", "-m", "tuneline.training", "--config-json", json.dumps(asdict(config))]}

    def train(self, context, config: TrainConfig) -> dict:
        config = self.configured(config)
        invocation = self.build_client().run(context=context, **self.run_arguments(config))
        return reported_summary(invocation, "the Kubernetes training pod")


class OpenAIFineTuneTrainer(TrainerResource):
    """Managed fine-tuning through the OpenAI API (base_url for compatible providers). The key comes from the
    environment only: `api_key: {env: OPENAI_API_KEY}`. The "adapter" directory records the remote model id."""

    api_key: str
    base_url: str | None = None
    base_model: str = "gpt-4o-mini-2024-07-18"
    n_epochs: int | None = None
    poll_seconds: float = 10.0
    max_wait_seconds: float = 6 * 3600

    def inference_client(self):
        from openai import OpenAI

        return OpenAI(api_key=self.api_key, base_url=self.base_url, max_retries=3)

    def train(self, context, config: TrainConfig) -> dict:
        from openai import OpenAI

        from tuneline.managed import ManagedFineTuneError, ManagedJobSettings, run_managed_fine_tune
        from tuneline.storage import atomic_write_json

        client = OpenAI(api_key=self.api_key, base_url=self.base_url, max_retries=3)
        settings = ManagedJobSettings(
            base_model=self.base_model,
            n_epochs=self.n_epochs,
            seed=config.seed,
            poll_seconds=self.poll_seconds,
            max_wait_seconds=self.max_wait_seconds,
            suffix=config.run_name,
        )
        log = context.log.info if context is not None else print
        try:
            job = run_managed_fine_tune(
                client, Path(config.train_file), Path(config.val_file) if config.val_file else None, settings, log=log
            )
        except ManagedFineTuneError as exc:
            raise dg.Failure(str(exc), allow_retries=False) from exc
        atomic_write_json(Path(config.output_dir) / "managed_model.json", job)
        return {
            "adapter_dir": config.output_dir,
            "provider": "openai",
            **job,
            "global_steps": 0,
            "train_examples": sum(1 for line in open(config.train_file) if line.strip()),
            "train_loss": float("nan"),
            "best_eval_loss": None,
            "resumed_from": None,
            "supervised_tokens_per_second": None,
            "device": "remote",
        }
