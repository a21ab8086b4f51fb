"""Base-vs-tuned evaluation on held-out chats: perplexity on the reply, ROUGE on greedy generations."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from tuneline.training import read_chat_jsonl


@dataclass(frozen=True)
class EvalSettings:
    max_examples: int = 32
    max_new_tokens: int = 64
    batch_size: int = 8
    max_length: int = 512


def _prompt_and_reference(record: dict) -> tuple[list[dict], str]:
    messages = record["messages"]
    return messages[:-1], messages[-1]["content"]


def reply_perplexity(model, tokenizer, records: list[dict], max_length: int = 512) -> float:
    """exp(mean NLL) over the reference reply tokens only (prompt tokens masked), as in training."""
    import torch

    total_nll, total_tokens = 0.0, 0
    model.eval()
    for record in records:
        prompt, _ = _prompt_and_reference(record)
        prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                   return_dict=True)["input_ids"]
        full_ids = tokenizer.apply_chat_template(record["messages"], tokenize=True,
                                                 return_dict=True)["input_ids"][:max_length]
        labels = list(full_ids)
        cut = min(len(prompt_ids), len(labels))
        labels[:cut] = [-100] * cut
        supervised = sum(1 for t in labels if t != -100)
        if supervised == 0:
            continue
        with torch.no_grad():
            out = model(input_ids=torch.tensor([full_ids]), labels=torch.tensor([labels]))
        # HF shifts labels internally: the loss averages over supervised positions after the shift.
        n = sum(1 for t in labels[1:] if t != -100)
        total_nll += float(out.loss) * n
        total_tokens += n
    return math.exp(total_nll / total_tokens) if total_tokens else float("nan")


def generate_replies(model, tokenizer, records: list[dict], max_new_tokens: int, batch_size: int) -> list[str]:
    """Batched greedy generation with left padding."""
    import torch

    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    prompts = [tokenizer.apply_chat_template(_prompt_and_reference(r)[0], add_generation_prompt=True, tokenize=False)
               for r in records]
    replies: list[str] = []
    model.eval()
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
        for row in out[:, batch["input_ids"].shape[1]:]:
            replies.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return replies


def rouge_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    totals = {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    for pred, ref in zip(predictions, references, strict=True):
        scores = scorer.score(ref, pred)
        for key in totals:
            totals[key] += scores[key].fmeasure
    n = max(len(predictions), 1)
    return {key: round(value / n, 4) for key, value in totals.items()}


def _measure(model, tokenizer, records, settings: EvalSettings) -> tuple[dict, list[str]]:
    started = time.perf_counter()
    ppl = reply_perplexity(model, tokenizer, records, settings.max_length)
    replies = generate_replies(model, tokenizer, records, settings.max_new_tokens, settings.batch_size)
    references = [_prompt_and_reference(r)[1] for r in records]
    metrics = {"perplexity": round(ppl, 4), **rouge_scores(replies, references),
               "seconds": round(time.perf_counter() - started, 2)}
    return metrics, replies


def evaluate_adapter(base_model: str, adapter_dir: str | None, records: list[dict],
                     settings: EvalSettings = EvalSettings()) -> dict:
    """Metrics for the base model and (when adapter_dir is given) base + adapter on the same records."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not records:
        raise ValueError("no evaluation examples: the test split is empty")
    records = records[: settings.max_examples]
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir or base_model)
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    base_metrics, base_replies = _measure(model, tokenizer, records, settings)
    report: dict = {"examples": len(records), "settings": settings.__dict__, "base": base_metrics}
    samples = [{"prompt": _prompt_and_reference(r)[0][-1]["content"], "reference": _prompt_and_reference(r)[1],
                "base": b} for r, b in zip(records, base_replies, strict=True)]
    if adapter_dir:
        from peft import PeftModel

        tuned = PeftModel.from_pretrained(model, adapter_dir)
        tuned_metrics, tuned_replies = _measure(tuned, tokenizer, records, settings)
        report["tuned"] = tuned_metrics
        report["delta"] = {k: round(tuned_metrics[k] - base_metrics[k], 4)
                           for k in ("perplexity", "rouge1", "rouge2", "rougeL")}
        for sample, reply in zip(samples, tuned_replies, strict=True):
            sample["tuned"] = reply
    report["samples"] = samples[:5]
    return report


def evaluate_file(base_model: str, adapter_dir: str | None, data_file: str,
                  settings: EvalSettings = EvalSettings()) -> dict:
    return evaluate_adapter(base_model, adapter_dir, read_chat_jsonl(data_file), settings)
