"""Merged-model export for GPU serving stacks that want plain weights, with a parity check."""

from __future__ import annotations

import json
from pathlib import Path

from tuneline.storage import atomic_directory

PROBES = ("Where is my refund?", "How do I reset my password?", "My parcel arrived damaged, what now?")


def export_merged(adapter_dir: str, output_dir: str, probes: tuple[str, ...] = PROBES,
                  max_new_tokens: int = 24) -> dict:
    """Merge the LoRA weights into the base model, save it, and check greedy parity on probe prompts."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneline.evaluation import generate_replies

    base_name = json.loads((Path(adapter_dir) / "adapter_config.json").read_text())["base_model_name_or_path"]
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir)
    records = [{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": ""}]} for p in probes]
    peft_model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_name, dtype=torch.float32),
                                           adapter_dir)
    with_adapter = generate_replies(peft_model, tokenizer, records, max_new_tokens, batch_size=1)
    merged = peft_model.merge_and_unload()
    with atomic_directory(Path(output_dir)) as staging:
        merged.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        reloaded = AutoModelForCausalLM.from_pretrained(staging, dtype=torch.float32)
        merged_replies = generate_replies(reloaded, tokenizer, records, max_new_tokens, batch_size=1)
        parity = [a == b for a, b in zip(with_adapter, merged_replies, strict=True)]
        result = {"output_dir": output_dir, "base_model": base_name, "probes": len(probes),
                  "parity": all(parity), "mismatches": [p for p, ok in zip(probes, parity, strict=True) if not ok]}
        (staging / "tuneline_export.json").write_text(json.dumps(result, indent=2))
        if not result["parity"]:
            raise RuntimeError(f"merged model disagrees with base + adapter on {result['mismatches']}")
    return result
