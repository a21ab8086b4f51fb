"""The one composition root: assets, checks, sensors and resources, configured from the environment.

Environment (all optional):
  TUNELINE_HOME           storage root (default ./.tuneline), or s3://bucket/prefix: asset values go to S3 and
                          exports/adapters/reports are mirrored there from a local cache (TUNELINE_CACHE)
  TUNELINE_CACHE          the local working directory when TUNELINE_HOME is on S3 (default ./.tuneline-cache)
  TUNELINE_LANDING        landing zone: a directory or s3://bucket/prefix (default $TUNELINE_HOME/landing);
                          AWS credentials come from the usual AWS environment (AWS_ENDPOINT_URL for S3-compatibles)
  TUNELINE_MODEL_SOURCE   embedded | local | hub (default embedded)
  TUNELINE_MODEL          directory (local) or model id (hub)
  TUNELINE_DEVICE         auto | cpu | cuda (default auto)
  TUNELINE_QUANTIZATION   none | 4bit (4bit = QLoRA, CUDA only)
  TUNELINE_PRECISION      auto | fp32 | bf16 (auto: bf16 where CUDA or the CPU computes it natively)
  TUNELINE_COMPILE        1 = torch.compile each decoder layer (faster steps after a one-off compile; long runs)
  TUNELINE_PII_PROCESSES  processes analysing text for PII (default 1; 2 on a 2-core box when one step runs)
  TUNELINE_TRAINER        subprocess (Dagster Pipes, default) | local (in-process) | openai (managed, needs
                          OPENAI_API_KEY) | ecs (GPU task; needs TUNELINE_ECS_CLUSTER,
                          TUNELINE_ECS_TASK_DEFINITION, TUNELINE_ECS_SUBNETS) | k8s (GPU pod; needs
                          TUNELINE_K8S_IMAGE, optional TUNELINE_K8S_NAMESPACE); ecs and k8s need an s3:// home
  TUNELINE_MLFLOW_URI     MLflow tracking URI (default sqlite:///$TUNELINE_HOME/mlflow.db)
  TUNELINE_JUDGE_BASE_URL an OpenAI-compatible /v1 endpoint: turns the LLM judge on (OPENAI_API_KEY if needed)
  TUNELINE_JUDGE_MODEL    the judge's model name
  TUNELINE_PSEUDONYM_KEY  key of the keyed hash replacing ticket/thread ids (default: a random per-root key)
  TUNELINE_RETENTION_DAYS landing files older than N days are deleted at ingest (default 0: kept); the
                          raw_data_retention schedule (stopped by default) re-ingests every product daily
  TUNELINE_UMASK          octal umask for everything written (default 077: owner-only)
  TUNELINE_PRODUCT_ALIASES JSON {"landing folder name": "product-key"} for folders whose names are no valid key
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
from dagster_aws.s3 import S3Resource

from ft_assets import alignment, cleaning, curation, drift, evaluation, ingest, production, serving, splits, training
from ft_assets.catalog import with_catalog_conventions
from ft_assets.freshness import FRESHNESS_CHECKS
from ft_assets.production import PRODUCTION_GROUP
from ft_assets.sql_models import load_sql_assets
from ft_resources.alerts import AlertWebhook
from ft_resources.io_manager import PartitionedFileIOManager, S3PartitionedIOManager
from ft_resources.landing import landing_zone_from
from ft_resources.llm import JudgeResource
from ft_resources.models import BaseModel
from ft_resources.pii import PiiEngine
from ft_resources.storage import TunelineStorage, split_s3_url
from ft_resources.tracking import MlflowTracking
from ft_resources.trainer import (
    EcsTrainer,
    K8sTrainer,
    LocalTrainer,
    OpenAIFineTuneTrainer,
    SubprocessTrainer,
    TrainerResource,
)
from ft_sensors.failures import run_failure_sensor
from ft_sensors.jobs import NAMED_JOBS
from ft_sensors.landing import (
    automation_sensor,
    freshness_sensor,
    landing_zone_sensor,
    raw_data_retention,
    retention_job,
)
from ft_sensors.retraining import retraining_sensor, weekly_retraining
from ft_sensors.rollout import rollout_sensor

DEFAULT_HOME = ".tuneline"
DEFAULT_CACHE = ".tuneline-cache"


@dataclass(frozen=True)
class Settings:
    home: str = DEFAULT_HOME
    landing: str | None = None
    model_source: str = "embedded"
    model: str | None = None
    device: str = "auto"
    quantization: str = "none"
    precision: str = "auto"
    compile_layers: bool = False
    pii_processes: int = 1
    trainer: str = "subprocess"
    mlflow_uri: str | None = None
    judge_base_url: str | None = None
    judge_model: str | None = None
    product_aliases: dict = field(default_factory=dict)
    pseudonym_key_configured: bool = False  # TUNELINE_PSEUDONYM_KEY is set: read through dg.EnvVar, never copied
    retention_days: float = 0  # TUNELINE_RETENTION_DAYS: landing files older than this are deleted at ingest
    umask: int = 0o077  # files and folders under the storage root are owner-only unless TUNELINE_UMASK says else
    extra: dict = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        env = dict(os.environ if env is None else env)
        return cls(
            home=env.get("TUNELINE_HOME", DEFAULT_HOME),
            landing=env.get("TUNELINE_LANDING"),
            model_source=env.get("TUNELINE_MODEL_SOURCE", "embedded"),
            model=env.get("TUNELINE_MODEL"),
            device=env.get("TUNELINE_DEVICE", "auto"),
            quantization=env.get("TUNELINE_QUANTIZATION", "none"),
            precision=env.get("TUNELINE_PRECISION", "auto"),
            compile_layers=env_flag(env.get("TUNELINE_COMPILE", "0"), "TUNELINE_COMPILE"),
            pii_processes=int(env.get("TUNELINE_PII_PROCESSES", "1")),
            trainer=env.get("TUNELINE_TRAINER", "subprocess"),
            mlflow_uri=env.get("TUNELINE_MLFLOW_URI"),
            judge_base_url=env.get("TUNELINE_JUDGE_BASE_URL"),
            judge_model=env.get("TUNELINE_JUDGE_MODEL"),
            product_aliases=product_aliases(env.get("TUNELINE_PRODUCT_ALIASES", "")),
            pseudonym_key_configured=bool(env.get("TUNELINE_PSEUDONYM_KEY")),
            umask=int(env.get("TUNELINE_UMASK", "077"), 8),
            retention_days=float(env.get("TUNELINE_RETENTION_DAYS", "0")),
            extra={
                k: env[v]
                for k, v in (
                    ("ecs_cluster", "TUNELINE_ECS_CLUSTER"),
                    ("cache", "TUNELINE_CACHE"),
                    ("openai_base_url", "OPENAI_BASE_URL"),
                    ("ecs_task_definition", "TUNELINE_ECS_TASK_DEFINITION"),
                    ("ecs_subnets", "TUNELINE_ECS_SUBNETS"),
                    ("k8s_image", "TUNELINE_K8S_IMAGE"),
                    ("k8s_namespace", "TUNELINE_K8S_NAMESPACE"),
                )
                if v in env
            },
        )


def product_aliases(value: str) -> dict[str, str]:
    """TUNELINE_PRODUCT_ALIASES: a JSON object {"landing folder name": "product-key"}; each key checked now."""
    from tuneline.names import product_key

    if not value.strip():
        return {}
    aliases = json.loads(value)
    if not isinstance(aliases, dict):
        raise ValueError("TUNELINE_PRODUCT_ALIASES must be a JSON object of folder name -> product key")
    return {str(name): product_key(str(key)) for name, key in aliases.items()}


def env_flag(value: str, name: str) -> bool:
    normalized = value.strip().lower()
    if normalized in {"1", "true", "yes", "on"}:
        return True
    if normalized in {"", "0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be 1 or 0 (true/false), got {value!r}")


def build_resources(settings: Settings) -> dict:
    os.umask(settings.umask)  # every file this process creates (assets, exports, adapters, mlflow.db) inherits it
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if settings.home.startswith("s3://"):
        bucket, prefix = split_s3_url(settings.home)
        root = str(Path(settings.extra.get("cache", DEFAULT_CACHE)).resolve())
        io_manager = S3PartitionedIOManager(bucket=bucket, prefix=prefix, s3=S3Resource(endpoint_url=endpoint))
        storage = TunelineStorage(root=root, remote=settings.home.rstrip("/"), endpoint_url=endpoint)
        landing = settings.landing or f"{settings.home.rstrip('/')}/landing"
    else:
        root = str(Path(settings.home).resolve())
        io_manager = PartitionedFileIOManager(root=root)
        storage = TunelineStorage(root=root)
        landing = settings.landing or f"{root}/landing"
    return {
        "io_manager": io_manager,
        "storage": storage,
        "landing": landing_zone_from(landing, endpoint, product_aliases=settings.product_aliases,
                                     retention_days=settings.retention_days),
        "pii": PiiEngine(n_process=settings.pii_processes, **(
            {"pseudonym_key": dg.EnvVar("TUNELINE_PSEUDONYM_KEY")} if settings.pseudonym_key_configured else {})),
        "base_model": BaseModel(source=settings.model_source, location=settings.model),
        "trainer": build_trainer(settings),
        "tracking": MlflowTracking(tracking_uri=settings.mlflow_uri or f"sqlite:///{root}/mlflow.db"),
        "judge": judge_from_env(settings.judge_base_url, settings.judge_model),
        "alerts": AlertWebhook(url=dg.EnvVar("TUNELINE_FAILURE_WEBHOOK")) if os.environ.get("TUNELINE_FAILURE_WEBHOOK")
        else AlertWebhook(),
    }


def build_trainer(settings: Settings) -> TrainerResource:
    """Where training runs: `subprocess` (default, Dagster Pipes), `local` (in-process), `ecs` (GPU task),
    `openai` (managed fine-tuning; OPENAI_API_KEY read through dg.EnvVar at run time)."""
    hardware = {"device": settings.device, "quantization": settings.quantization, "precision": settings.precision,
                "compile_layers": settings.compile_layers}
    if settings.trainer == "local":
        return LocalTrainer(**hardware)
    if settings.trainer == "ecs":
        return EcsTrainer(
            cluster=settings.extra["ecs_cluster"],
            task_definition=settings.extra["ecs_task_definition"],
            subnets=[s for s in settings.extra.get("ecs_subnets", "").split(",") if s],
            **hardware,
        )
    if settings.trainer == "k8s":
        return K8sTrainer(image=settings.extra["k8s_image"], namespace=settings.extra.get("k8s_namespace", "default"),
                          **hardware)
    if settings.trainer == "subprocess":
        return SubprocessTrainer(**hardware)
    if settings.trainer == "openai":
        return OpenAIFineTuneTrainer(
            api_key=dg.EnvVar("OPENAI_API_KEY"), base_url=settings.extra.get("openai_base_url")
        )
    raise ValueError(f"TUNELINE_TRAINER must be subprocess, local, openai, ecs or k8s, got {settings.trainer!r}")


def judge_from_env(base_url: str | None, model: str | None) -> JudgeResource:
    """Enabled only when TUNELINE_JUDGE_BASE_URL is set; the key is read through dg.EnvVar, never stored."""
    if not base_url:
        return JudgeResource(enabled=False)
    key = dg.EnvVar("OPENAI_API_KEY") if os.environ.get("OPENAI_API_KEY") else ""
    return JudgeResource(enabled=True, base_url=base_url, model=model or "judge", api_key=key)


def all_assets() -> list:
    """Every asset, owned by the team (catalog.OWNERS) and tagged as catalog describes."""
    return with_catalog_conventions([
        *dg.load_assets_from_modules([ingest, cleaning, curation, splits, training, drift, evaluation,
                                      alignment, serving, production]),
        *load_sql_assets(),
    ])


def product_assets() -> list:
    """Every asset partitioned by product that its data and training make: what one product's end-to-end
    materialization runs (not the production group, which reads live traffic)."""
    return [a for a in all_assets() if a.partitions_def is not None
            and PRODUCTION_GROUP not in a.group_names_by_key.values()]


# Dagster's default starts each step in a fresh interpreter (spawn), and every step then re-imports this module:
# presidio pulls in transformers and torch, ~13-18 s on this machine kind, more than most steps compute. Forked
# from one process per run that imported it once, a step starts in a fraction of a second. The module is named:
# Dagster preloads only its own executor when the job was loaded by the CLI's `-m`.
STEP_EXECUTOR = dg.multiprocess_executor.configured(
    {"start_method": {"forkserver": {"preload_modules": [__name__]}}}, name="forkserver_executor")


def build_definitions(settings: Settings) -> dg.Definitions:
    sensors = [landing_zone_sensor, automation_sensor, retraining_sensor, run_failure_sensor, freshness_sensor,
               rollout_sensor]
    return dg.Definitions(assets=all_assets(), asset_checks=FRESHNESS_CHECKS, sensors=sensors,
                          schedules=[weekly_retraining, raw_data_retention],
                          jobs=[*NAMED_JOBS, retention_job], resources=build_resources(settings),
                          executor=STEP_EXECUTOR)


defs = build_definitions(Settings.from_env())
