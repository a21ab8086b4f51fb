"""Training throughput: tuneline's trainer vs the quick-start recipe, same model, data and optimizer steps.

Baseline (tutorial recipe): transformers Trainer, full fine-tuning, bf16=True, every example padded to
max_length=128, DataCollatorForLanguageModeling, loss on the whole sequence. tuneline: trl SFTTrainer + LoRA,
its default precision for this machine (bf16 mixed precision on a CPU with native bf16, else fp32), loss on
the reply only (only reply positions through the LM head), dynamic padding. Only tokens that carry a useful
label count in both: the assistant reply's tokens (within the 128-token window for the baseline).

    python -m bench.training --steps 16
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.common import embedded_model, machine, measure_in_subprocess, report, today

PARAMS = 134.5e6


def _data(path: Path, n: int = 64) -> Path:
    from tuneline.synthetic import PlantedTruth, generate_product_tickets

    rows = [r for r in generate_product_tickets("billing", n, seed=5, truth=PlantedTruth())
            if r["agent_response"] and len(r["customer_message"]) > 40][:n]
    with path.open("w") as fh:
        for r in rows:
            fh.write(json.dumps({"messages": [
                {"role": "system", "content": "You are a helpful customer-support agent."},
                {"role": "user", "content": r["customer_message"]},
                {"role": "assistant", "content": r["agent_response"]}]}) + "\n")
    return path


def matmul_peak_gflops(dtype: str = "float32") -> float:
    import torch

    a, b = torch.randn(2048, 2048, dtype=getattr(torch, dtype)), torch.randn(2048, 2048, dtype=getattr(torch, dtype))
    for _ in range(3):
        a @ b
    started, reps = time.perf_counter(), 20
    for _ in range(reps):
        a @ b
    return round(2 * 2048**3 * reps / (time.perf_counter() - started) / 1e9, 1)


def run_tuneline(model: str, data: str, steps: int) -> dict:
    from tuneline.training import TrainConfig, main

    with tempfile.TemporaryDirectory() as tmp:
        summary = main(TrainConfig(model=model, train_file=data, output_dir=f"{tmp}/adapter", max_steps=steps,
                                   gradient_accumulation_steps=1, per_device_batch_size=4, logging_steps=1))
        log = json.loads(Path(f"{tmp}/adapter/trainer_log.json").read_text())
    processed = max(float(e.get("num_tokens", 0)) for e in log)
    return {"useful_tokens": summary["supervised_tokens_seen"], "processed_tokens": processed,
            "train_seconds": summary["train_seconds"], "precision": "bf16" if summary["bf16"] else "fp32"}


def run_baseline(model_dir: str, data: str, steps: int) -> dict:
    import torch
    from datasets import Dataset
    from transformers import (
        AutoModelForCausalLM,
        AutoTokenizer,
        DataCollatorForLanguageModeling,
        Trainer,
        TrainingArguments,
    )

    from tuneline.training import read_chat_jsonl

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    records = read_chat_jsonl(data)
    texts = [tokenizer.apply_chat_template(r["messages"], tokenize=False) for r in records]
    prompts = [tokenizer.apply_chat_template(r["messages"][:-1], tokenize=False, add_generation_prompt=True)
               for r in records]
    encoded = tokenizer(texts, padding="max_length", truncation=True, max_length=128)
    useful_per_example = [max(0, min(128, len(tokenizer(t)["input_ids"])) - len(tokenizer(p)["input_ids"]))
                          for t, p in zip(texts, prompts, strict=True)]
    dataset = Dataset.from_dict({"input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"]})
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, per_device_train_batch_size=4, max_steps=steps, bf16=True,
                                 use_cpu=True, learning_rate=2e-5, report_to=[], save_strategy="no",
                                 logging_steps=1, disable_tqdm=True, dataloader_num_workers=0)
        trainer = Trainer(model=model, args=args, train_dataset=dataset,
                          data_collator=DataCollatorForLanguageModeling(tokenizer, mlm=False))
        started = time.perf_counter()
        trainer.train()
        seconds = time.perf_counter() - started
    examples = steps * 4
    mean_useful = sum(useful_per_example) / len(useful_per_example)
    return {"useful_tokens": mean_useful * examples, "processed_tokens": 128 * examples, "train_seconds": seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=16,
                        help="optimizer steps of 4 examples; 16 = one epoch of the 64 chats, so both see the same ones")
    parser.add_argument("--json")
    ns = parser.parse_args()

    model = embedded_model()
    with tempfile.TemporaryDirectory() as tmp:
        data = str(_data(Path(tmp) / "train.jsonl"))
        base = measure_in_subprocess(run_baseline, model, data, ns.steps)
        ours = measure_in_subprocess(run_tuneline, model, data, ns.steps)
    peak = matmul_peak_gflops()
    peak_bf16 = matmul_peak_gflops("bfloat16")
    b_rate = base["useful_tokens"] / base["train_seconds"]
    o_rate = ours["useful_tokens"] / ours["train_seconds"]
    processed_rate = ours["processed_tokens"] / ours["train_seconds"]
    result = {"benchmark": "training", "date": today(), "machine": machine(), "steps": ns.steps,
              "baseline_useful_tokens_per_s": round(b_rate, 1), "tuneline_useful_tokens_per_s": round(o_rate, 1),
              "tuneline_processed_tokens_per_s": round(processed_rate, 1),
              "baseline_peak_rss_mib": base["peak_rss_mib"], "tuneline_peak_rss_mib": ours["peak_rss_mib"],
              "matmul_peak_gflops": peak, "matmul_peak_gflops_bf16": peak_bf16,
              "tuneline_precision": ours["precision"],
              "tuneline_processed_flop_share_of_bf16_peak": round(4 * PARAMS * processed_rate / (peak_bf16 * 1e9), 3),
              "tuneline_useful_flop_share_of_peak": round(4 * PARAMS * o_rate / (peak * 1e9), 3),
              "tuneline_processed_flop_share_of_peak": round(4 * PARAMS * processed_rate / (peak * 1e9), 3),
              "ratio": round(o_rate / b_rate, 2)}
    report(result, ns.json, f"training: tuneline/baseline useful tokens/s ratio = {result['ratio']}x")


if __name__ == "__main__":
    main()
