"""What bf16 mixed precision buys and costs: training speed and held-out reply loss against fp32.

Same embedded model, 64 training chats, 2 epochs of batch 4, same seed; then each adapter is put on the
fp32 base model and scored in fp32 on 32 held-out chats (mean cross-entropy over the reply tokens), so
only the training precision differs.

    python -m bench.precision
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from bench.common import embedded_model, machine, measure_in_subprocess, report, today


def _held_out_reply_loss(model: str, adapter_dir: str, val_file: str) -> float:
    import torch
    from peft import PeftModel
    from torch.utils.data import DataLoader
    from transformers import AutoModelForCausalLM

    from tuneline.training import TrainConfig, build_trainer, reply_token_loss

    with tempfile.TemporaryDirectory() as tmp:
        scorer, _, _ = build_trainer(TrainConfig(model=model, train_file=val_file, output_dir=f"{tmp}/unused",
                                                 precision="fp32", group_by_length=False), Path(tmp) / "t")
    rows = scorer.train_dataset.select_columns(["input_ids", "labels"])
    tuned = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32),
                                      adapter_dir).eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in DataLoader(rows, batch_size=4, collate_fn=scorer.data_collator):
            loss, labelled, _ = reply_token_loss(tuned, batch)
            total, count = total + float(loss) * int(labelled), count + int(labelled)
    return total / count


def train_and_score(model: str, train_file: str, val_file: str, precision: str, seed: int) -> dict:
    from tuneline.training import TrainConfig, main

    with tempfile.TemporaryDirectory() as tmp:
        summary = main(TrainConfig(model=model, train_file=train_file, output_dir=f"{tmp}/adapter", num_epochs=2,
                                   gradient_accumulation_steps=1, per_device_batch_size=4, precision=precision,
                                   seed=seed, logging_steps=4))
        loss = _held_out_reply_loss(model, f"{tmp}/adapter", val_file)
    return {"precision": precision, "seed": seed, "train_seconds": summary["train_seconds"],
            "held_out_reply_loss": round(loss, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1])
    parser.add_argument("--json")
    ns = parser.parse_args()
    from bench.training import _data

    model = embedded_model()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        rows = _data(Path(tmp) / "all.jsonl", 96).read_text().splitlines()
        if len(rows) < 96:
            raise SystemExit(f"expected 96 generated chats, got {len(rows)}")
        train, val = Path(tmp) / "train.jsonl", Path(tmp) / "val.jsonl"
        train.write_text("\n".join(rows[:64]) + "\n")
        val.write_text("\n".join(rows[64:]) + "\n")
        for seed in ns.seeds:
            for precision in ("fp32", "bf16"):
                runs.append(measure_in_subprocess(train_and_score, model, str(train), str(val), precision, seed))

    def mean(precision: str, key: str) -> float:
        values = [r[key] for r in runs if r["precision"] == precision]
        return sum(values) / len(values)

    speed = mean("fp32", "train_seconds") / mean("bf16", "train_seconds")
    loss_change = mean("bf16", "held_out_reply_loss") / mean("fp32", "held_out_reply_loss") - 1
    result = {"benchmark": "precision", "date": today(), "machine": machine(), "runs": runs,
              "bf16_speedup": round(speed, 2), "bf16_held_out_loss_change": round(loss_change, 4),
              "ratio": round(speed, 2)}
    report(result, ns.json, f"precision: bf16/fp32 training speed ratio = {speed:.2f}x, "
                            f"held-out reply loss {loss_change:+.1%}")


if __name__ == "__main__":
    main()
