"""Preference alignment on top of the SFT adapter: pairs from curated data, then DPO or ORPO with trl.

chosen = the agent reply that survived curation; rejected = the served answer a user corrected (for
corrections from `POST /v1/feedback`), else a reply curation scored low, or else a reply written for a
different topic (fluent but wrong for this customer: the failure mode to unlearn).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from tuneline.storage import atomic_directory
from tuneline.training import TrainingConfigError, plan_device, read_chat_jsonl, report_over_pipes

METHODS = ("dpo", "orpo", "grpo")


def build_preference_pairs(train: pl.DataFrame, low_replies: list[str]) -> list[dict]:
    """One pair per training conversation (`train`: the train split's rows), deterministic: the rejected reply
    is the served reply a user corrected, else a low-scored reply, else another topic's reply, picked by
    hash. Linear in the rows, so a large product's pairs cost what its rows cost."""
    pool = [(topic, _last_assistant(m)) for topic, m in zip(train["topic"].to_list(), train["messages"].to_list(),
                                                            strict=True)]
    replies = [reply for _, reply in pool]
    other_topics = {t: [reply for topic, reply in pool if topic != t] for t in {topic for topic, _ in pool}}
    pairs = []
    for row in train.iter_rows(named=True):
        messages = list(row["messages"])
        chosen = messages[-1]["content"]
        key = int(hashlib.sha256(row["content_hash"].encode()).hexdigest()[:8], 16)
        served = _served_reply(row)
        if served and served != chosen:
            rejected, source = served, "served_reply"
        elif low_replies:
            rejected, source = low_replies[key % len(low_replies)], "low_quality_reply"
        else:
            rejected, source = _pick(other_topics[row["topic"]], key, chosen), "other_topic_reply"
            rejected = rejected if rejected is not None else _pick(replies, key, chosen)
            if rejected is None:
                continue
        pairs.append({"prompt": messages[:-1], "chosen": [{"role": "assistant", "content": chosen}],
                      "rejected": [{"role": "assistant", "content": rejected}], "rejected_source": source,
                      "example_id": row["content_hash"]})
    return pairs


def low_quality_replies(scored: pl.DataFrame) -> list[str]:
    """The last agent reply of each conversation curation scored low (`status`, `messages` columns)."""
    return [_last_assistant(m) for m in scored.filter(pl.col("status") == "low_quality")["messages"].to_list()]


def _pick(replies: list[str], key: int, chosen: str) -> str | None:
    """The reply at `key` (mod the count), or the next one that differs from `chosen`; None when all equal it."""
    for step in range(len(replies)):
        reply = replies[(key + step) % len(replies)]
        if reply != chosen:
            return reply
    return None


def _served_reply(row: dict) -> str | None:
    """The answer the server gave before a user corrected it (a correction's metadata, redacted in cleaning)."""
    if row.get("source_kind") != "correction":
        return None
    try:
        return json.loads(row.get("metadata") or "{}").get("served_reply") or None
    except json.JSONDecodeError:
        return None


def _last_assistant(messages) -> str:
    messages = messages if isinstance(messages, list) else messages.to_list()
    return [m for m in messages if m["role"] == "assistant"][-1]["content"]


@dataclass
class PreferenceConfig:
    model: str
    sft_adapter: str
    pairs_file: str
    output_dir: str
    method: str = "dpo"
    beta: float = 0.1
    learning_rate: float = 5e-5
    per_device_batch_size: int = 2
    gradient_accumulation_steps: int = 1
    max_steps: int = 20
    max_length: int = 512
    seed: int = 42
    device: str = "auto"
    max_completion_length: int = 192  # grpo: the longest reply sampled per prompt
    num_generations: int = 4  # grpo: replies sampled per prompt, compared with each other


def support_reply_reward(eos_token_id: int):
    """GRPO's rule-based reward for a support reply, in [0, 1]: the mean of four checks, each what the
    promotion gate measures: it ends with the end-of-turn token, keeps template placeholders intact, makes up
    no PII or redaction placeholder the prompt did not carry, and is about as long as the reference."""
    from tuneline.evaluation import broken_placeholder, leaks

    def reward(prompts, completions, completion_ids, reference, **kwargs) -> list[float]:
        scores = []
        for prompt, completion, ids, ref in zip(prompts, completions, completion_ids, reference, strict=True):
            text = completion[-1]["content"] if isinstance(completion, list) else completion
            prompt_text = "\n".join(m["content"] for m in prompt) if isinstance(prompt, list) else prompt
            ended = eos_token_id in list(ids)
            length = 1.0 - min(1.0, abs(len(text) - len(ref)) / max(len(ref), 1))
            scores.append((ended + (not broken_placeholder(text)) + (not leaks(text, prompt_text)) + length) / 4)
        return scores

    reward.__name__ = "support_reply"
    return reward


def main(config: PreferenceConfig) -> dict:
    """Continue the SFT adapter's LoRA weights with DPO (reference = the base with the adapter disabled)
    or ORPO (no reference model)."""
    import torch
    from datasets import Dataset
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if config.method not in METHODS:
        raise TrainingConfigError(f"method must be one of {METHODS}, got {config.method!r}")
    if config.method == "grpo":
        return _grpo(config)
    plan = plan_device(config.device, "none", torch.cuda.is_available())
    rows = [{k: r[k] for k in ("prompt", "chosen", "rejected")} for r in read_chat_jsonl(config.pairs_file)]
    if not rows:
        raise ValueError(f"{config.pairs_file} has no preference pairs")
    tokenizer = AutoTokenizer.from_pretrained(config.sft_adapter)
    base = AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, config.sft_adapter, is_trainable=True)
    common = dict(per_device_train_batch_size=config.per_device_batch_size,
                  gradient_accumulation_steps=config.gradient_accumulation_steps, learning_rate=config.learning_rate,
                  max_steps=config.max_steps, max_length=config.max_length, beta=config.beta, seed=config.seed,
                  logging_steps=1, save_strategy="no", report_to=[], use_cpu=plan.device == "cpu", bf16=False,
                  disable_tqdm=True, gradient_checkpointing=False)
    with atomic_directory(Path(config.output_dir)) as staging:
        if config.method == "dpo":
            from trl import DPOConfig, DPOTrainer

            trainer = DPOTrainer(model=model, ref_model=None, args=DPOConfig(output_dir=str(staging / "_t"), **common),
                                 train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
        else:
            from trl.experimental.orpo import ORPOConfig, ORPOTrainer

            trainer = ORPOTrainer(model=model, args=ORPOConfig(output_dir=str(staging / "_t"), **common),
                                  train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
        output = trainer.train()
        trainer.model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        history = trainer.state.log_history
        summary = {"adapter_dir": config.output_dir, "method": config.method, "pairs": len(rows),
                   "global_steps": trainer.state.global_step, "train_loss": float(output.training_loss),
                   "reward_accuracy_last": next((e.get("rewards/accuracies") for e in reversed(history)
                                                 if "rewards/accuracies" in e), None)}
        (staging / "preference_args.json").write_text(json.dumps(asdict(config), indent=2))
        (staging / "trainer_log.json").write_text(json.dumps(history, indent=2))
        import shutil

        shutil.rmtree(staging / "_t", ignore_errors=True)
    return summary


def _grpo(config: PreferenceConfig) -> dict:
    """The SFT adapter's LoRA weights continued with GRPO (trl GRPOTrainer): `num_generations` sampled replies
    per prompt, scored by `support_reply_reward`, pushed toward the better ones. The pairs' prompts and chosen
    replies (as references for the length check) are the data; no KL term (beta 0), as trl's default."""
    import shutil

    import torch
    from datasets import Dataset
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    plan = plan_device(config.device, "none", torch.cuda.is_available())
    rows = [{"prompt": r["prompt"], "reference": r["chosen"][-1]["content"]}
            for r in read_chat_jsonl(config.pairs_file)]
    if not rows:
        raise ValueError(f"{config.pairs_file} has no prompts")
    tokenizer = AutoTokenizer.from_pretrained(config.sft_adapter)
    base = AutoModelForCausalLM.from_pretrained(config.model, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, config.sft_adapter, is_trainable=True)
    generations = max(2, config.num_generations)
    with atomic_directory(Path(config.output_dir)) as staging:
        args = GRPOConfig(output_dir=str(staging / "_t"), per_device_train_batch_size=generations,
                          num_generations=generations, max_completion_length=config.max_completion_length,
                          gradient_accumulation_steps=config.gradient_accumulation_steps,
                          learning_rate=config.learning_rate, max_steps=config.max_steps, seed=config.seed,
                          logging_steps=1, save_strategy="no", report_to=[], use_cpu=plan.device == "cpu",
                          bf16=False, disable_tqdm=True, gradient_checkpointing=False)
        trainer = GRPOTrainer(model=model, reward_funcs=support_reply_reward(tokenizer.eos_token_id), args=args,
                              train_dataset=Dataset.from_list(rows), processing_class=tokenizer)
        output = trainer.train()
        trainer.model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        history = trainer.state.log_history
        rewards = [e["reward"] for e in history if "reward" in e]
        summary = {"adapter_dir": config.output_dir, "method": "grpo", "pairs": len(rows),
                   "global_steps": trainer.state.global_step, "train_loss": float(output.training_loss),
                   "reward_first": rewards[0] if rewards else None, "reward_last": rewards[-1] if rewards else None,
                   "reward_accuracy_last": None}
        (staging / "preference_args.json").write_text(json.dumps(asdict(config), indent=2))
        (staging / "trainer_log.json").write_text(json.dumps(history, indent=2))
        shutil.rmtree(staging / "_t", ignore_errors=True)
    return summary


def _cli() -> None:
    """`python -m tuneline.preference --config file.json`: the same run as `main`, reporting its summary over
    Dagster Pipes when a Pipes client launched it (the trainer resources do)."""
    import argparse

    parser = argparse.ArgumentParser(description="Preference-train a LoRA adapter (DPO/ORPO/GRPO), no Dagster needed.")
    parser.add_argument("--config", required=True, help="JSON file with PreferenceConfig fields")
    config = PreferenceConfig(**json.loads(Path(parser.parse_args().config).read_text()))
    report_over_pipes(lambda _reporter: main(config))


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _cli()
