"""Promotion gate and the MLflow Model Registry: register adapter versions, move `champion`, roll back; and
the A/B rollout's state, kept in the registry where the server reads it: the `challenger` alias and the
registered model's `tuneline.challenger_share` tag."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", "training_args.json", "metadata.json",
                 "evaluation_results.json", "managed_model.json")
CHAMPION = "champion"
CHALLENGER = "challenger"
SHARE_TAG = "tuneline.challenger_share"


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

            from tuneline.decoding import recorded_decoding

            adapter = context.artifacts["adapter_dir"]
            self.decoding = recorded_decoding(adapter)  # as evaluation measured it and the server serves it
            self.tokenizer = AutoTokenizer.from_pretrained(adapter)
            config = Path(adapter) / "adapter_config.json"
            if not config.exists():  # method full: the directory is the whole fine-tuned model
                self.model = AutoModelForCausalLM.from_pretrained(adapter, dtype=torch.float32).eval()
                return
            base = json.loads(config.read_text())["base_model_name_or_path"]
            model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
            self.model = PeftModel.from_pretrained(model, adapter).eval()

        def predict(self, context, model_input, params=None):
            from tuneline.evaluation import decode_replies

            rows = model_input.to_dict("records") if hasattr(model_input, "to_dict") else list(model_input)
            records = [{"messages": list(r["messages"]) + [{"role": "assistant", "content": ""}]} for r in rows]
            return decode_replies(self.model, self.tokenizer, records, (params or {}).get("max_new_tokens", 64), 4,
                                  self.decoding)

    return LoraAdapterModel


def register_adapter(tracking_uri: str, name: str, adapter_dir: str, metrics: dict, promote: bool,
                     tags: dict | None = None, challenger_share: float = 0.0) -> dict:
    """Log the adapter as a pyfunc model with its files and register a new version. A promoted version becomes
    `champion`, or, with a `challenger_share` and a champion already serving, the `challenger` that an A/B
    test gives that share of conversations until `apply_rollout` promotes or rolls it back."""
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
    ab_test = promote and challenger_share > 0 and champion_version(tracking_uri, name) is not None
    if ab_test:
        client.set_registered_model_alias(name, CHALLENGER, version.version)
        client.set_registered_model_tag(name, SHARE_TAG, str(challenger_share))
    elif promote:
        client.set_registered_model_alias(name, CHAMPION, version.version)
    return {"name": name, "version": int(version.version), "run_id": run.info.run_id,
            "champion": promote and not ab_test, "challenger": ab_test}


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


def rollout_state(tracking_uri: str, name: str) -> dict:
    """Which versions serve a product and the challenger's share of its conversations (0 without one)."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)

    def alias(which: str) -> dict | None:
        try:
            version = client.get_model_version_by_alias(name, which)
        except MlflowException:
            return None
        return {"version": int(version.version), "adapter_dir": version.tags.get("adapter_dir")}

    champion, challenger = alias(CHAMPION), alias(CHALLENGER)
    try:
        share = float(client.get_registered_model(name).tags.get(SHARE_TAG, 0.0))
    except MlflowException:
        share = 0.0
    return {"champion": champion, "challenger": challenger, "share": share if challenger else 0.0}


def apply_rollout(tracking_uri: str, name: str, decision: dict) -> dict:
    """Carry out a rollout decision in the registry: advance sets the share; promote moves `champion` to the
    challenger's version and removes the `challenger` alias (a running server that has it loaded as its
    challenger answers every conversation with it from then on); rollback removes the alias and sets the
    share to 0. Returns the new state."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    state = rollout_state(tracking_uri, name)
    challenger = state["challenger"]
    if challenger is None or decision["action"] == "hold":
        return state
    if decision["action"] == "advance":
        client.set_registered_model_tag(name, SHARE_TAG, str(decision["share"]))
    elif decision["action"] == "promote":
        client.set_registered_model_alias(name, CHAMPION, str(challenger["version"]))
        client.delete_registered_model_alias(name, CHALLENGER)
        client.set_registered_model_tag(name, SHARE_TAG, "0.0")
    elif decision["action"] == "rollback":
        client.delete_registered_model_alias(name, CHALLENGER)
        client.set_registered_model_tag(name, SHARE_TAG, "0.0")
    else:
        raise ValueError(f"unknown rollout action {decision['action']!r}")
    client.set_model_version_tag(name, str(challenger["version"]), "rollout.last_decision",
                                 f"{decision['action']} to {decision['share']}: {decision['reason']}"[:4000])
    return {**rollout_state(tracking_uri, name), "acted_on_version": challenger["version"]}


def rollback(tracking_uri: str, name: str, version: int) -> None:
    """Point `champion` back at an earlier version."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    client.get_model_version(name, str(version))  # raises with MLflow's message if it does not exist
    client.set_registered_model_alias(name, CHAMPION, str(version))
