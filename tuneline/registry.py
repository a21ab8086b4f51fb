"""Promotion gate and the MLflow Model Registry: register adapter versions, move `champion`, roll back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "training_args.json", "metadata.json",
                 "evaluation_results.json")
CHAMPION = "champion"


@dataclass(frozen=True)
class GatePolicy:
    primary_metric: str = "rougeL"
    champion_margin: float = 0.02  # how far below the current champion a new version may land
    min_ended_with_eot: float = 0.9  # measured at the 95th percentile of the references' length
    max_leak_rate: float = 0.05
    min_judge_win_rate: float = 0.5  # of the judge's decided pairwise comparisons, when a judge is configured
    max_broken_placeholders: float = 0.02  # replies that mangle a template placeholder ({{Order Number}})


def promotion_gate(report: dict, champion: dict | None, policy: GatePolicy = GatePolicy()) -> dict:
    """Pure: does this evaluation report earn promotion? Returns {passed, reasons, checks}."""
    metric = policy.primary_metric
    tuned = report["tuned"]
    interval = report["bootstrap"].get(metric, {})
    win_rate = (report.get("judge") or {}).get("tuned_win_rate")
    checks = {
        "beats_base": interval.get("ci_low", float("-inf")) > 0,
        "no_regression_vs_champion": champion is None or champion.get(metric) is None
        or tuned[metric] >= float(champion[metric]) - policy.champion_margin,
        "hygiene": tuned["ended_with_eot"] >= policy.min_ended_with_eot,
        "no_leaks": tuned["leak_rate"] <= policy.max_leak_rate,
        # a reply cut off by a short generation limit cannot show that it ends; the gate measures at full length
        "placeholders_intact": tuned.get("broken_placeholders", 0.0) <= policy.max_broken_placeholders,
        "full_length_generation": report.get("generation", {}).get("covers_p95", True),
        "judge_prefers_tuned": win_rate is None or win_rate >= policy.min_judge_win_rate,
    }
    reasons = []
    if not checks["beats_base"]:
        reasons.append(f"{metric}: tuned - base CI [{interval.get('ci_low')}, {interval.get('ci_high')}] "
                       "does not lie above 0")
    if not checks["no_regression_vs_champion"]:
        reasons.append(f"{metric} {tuned[metric]} is more than {policy.champion_margin} below the champion's "
                       f"{champion[metric]}")
    if not checks["hygiene"]:
        reasons.append(f"only {tuned['ended_with_eot']:.0%} of replies ended with the end-of-turn token")
    if not checks["no_leaks"]:
        reasons.append(f"leak rate {tuned['leak_rate']:.0%} above {policy.max_leak_rate:.0%}")
    if not checks["placeholders_intact"]:
        reasons.append(f"{tuned['broken_placeholders']:.0%} of replies mangle a template placeholder")
    if not checks["full_length_generation"]:
        generation = report["generation"]
        reasons.append(f"generated at most {generation['max_new_tokens']} tokens, below the references' 95th "
                       f"percentile ({generation['reference_tokens_p95']}): replies could not finish")
    if not checks["judge_prefers_tuned"]:
        reasons.append(f"the judge preferred the tuned reply in {win_rate:.0%} of decided pairs "
                       f"(< {policy.min_judge_win_rate:.0%})")
    return {"passed": all(checks.values()), "checks": checks, "reasons": reasons, "policy": policy.__dict__}


def _pyfunc_class():
    import mlflow.pyfunc

    class LoraAdapterModel(mlflow.pyfunc.PythonModel):
        """Serves base model + this LoRA adapter: input rows carry a `messages` list, output is the reply."""

        def load_context(self, context):
            import json

            import torch
            from peft import PeftModel
            from transformers import AutoModelForCausalLM, AutoTokenizer

            adapter = context.artifacts["adapter_dir"]
            self.tokenizer = AutoTokenizer.from_pretrained(adapter)
            config = Path(adapter) / "adapter_config.json"
            if not config.exists():  # method full: the directory is the whole fine-tuned model
                self.model = AutoModelForCausalLM.from_pretrained(adapter, dtype=torch.float32).eval()
                return
            base = json.loads(config.read_text())["base_model_name_or_path"]
            model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
            self.model = PeftModel.from_pretrained(model, adapter).eval()

        def predict(self, context, model_input, params=None):
            from tuneline.evaluation import generate_replies

            rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
            records = [{"messages": list(r["messages"]) + [{"role": "assistant", "content": ""}]} for r in rows]
            return generate_replies(self.model, self.tokenizer, records, (params or {}).get("max_new_tokens", 64), 4)

    return LoraAdapterModel


def register_adapter(tracking_uri: str, name: str, adapter_dir: str, metrics: dict, promote: bool,
                     tags: dict | None = None) -> dict:
    """Log the adapter as a pyfunc model with its files, register a new version, move `champion` if promoted."""
    import mlflow
    from mlflow.tracking import MlflowClient

    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_experiment("tuneline-registry")
    adapter = Path(adapter_dir)
    with mlflow.start_run(run_name=f"register-{name}") as run:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if isinstance(v, (int, float))})
        for file in ADAPTER_FILES:
            if (adapter / file).exists():
                mlflow.log_artifact(str(adapter / file), artifact_path="adapter_files")
        mlflow.pyfunc.log_model(name="adapter", python_model=_pyfunc_class()(),
                                artifacts={"adapter_dir": str(adapter)})
    version = mlflow.register_model(f"runs:/{run.info.run_id}/adapter", name)
    client = MlflowClient(tracking_uri=tracking_uri)
    for key, value in {**(tags or {}), **{f"metric.{k}": v for k, v in metrics.items()},
                       "adapter_dir": str(adapter)}.items():
        client.set_model_version_tag(name, version.version, key, str(value))
    if promote:
        client.set_registered_model_alias(name, CHAMPION, version.version)
    return {"name": name, "version": int(version.version), "run_id": run.info.run_id, "champion": promote}


def champion_version(tracking_uri: str, name: str) -> dict | None:
    """The champion's version number, tags and metrics, or None when there is none yet."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    metrics = {k.removeprefix("metric."): float(v) for k, v in version.tags.items() if k.startswith("metric.")}
    return {"version": int(version.version), "tags": dict(version.tags), **metrics}


def rollback(tracking_uri: str, name: str, version: int) -> None:
    """Point `champion` back at an earlier version."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    client.get_model_version(name, str(version))  # raises with MLflow's message if it does not exist
    client.set_registered_model_alias(name, CHAMPION, str(version))
