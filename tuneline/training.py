"""LoRA supervised fine-tuning with trl + peft, runnable without Dagster.

    python -m tuneline.training --config train.yaml

Loss falls on the assistant reply only (prompt/completion dataset: the prompt is the
system prompt plus earlier turns, the completion the last agent reply and its end token).
Device and quantization are resolved up front so a bad combination fails with a clear
message, not deep inside bitsandbytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from tuneline.paths import relative_under
from tuneline.storage import atomic_directory

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
DEVICES = ("auto", "cpu", "cuda")
QUANTIZATIONS = ("none", "4bit")
# lora: a new LoRA adapter on the frozen base; qlora: the same on a 4-bit base (CUDA); full: every weight trained
METHODS = ("lora", "qlora", "full")
PRECISIONS = ("auto", "fp32", "bf16")
# which weights a run keeps: the last step's, or of the starting adapter, a snapshot every
# `candidate_every_examples` and the last step, the one whose greedy replies score the highest ROUGE-L on the
# validation split (on bitext, validation loss did not follow ROUGE-L: BENCHMARKS.md section 6)
KEEP = ("last", "best_val_rougeL")
# the files that are a run's weights (a LoRA adapter's, or a fully fine-tuned model's)
ADAPTER_WEIGHT_FILES = ("adapter_config.json", "adapter_model.safetensors", "config.json", "model.safetensors",
                        "generation_config.json")
ATTENTIONS = ("auto", "eager", "sdpa")


class TrainingConfigError(ValueError):
    """The training configuration cannot run on this machine; the message says why."""


@dataclass
class TrainConfig:
    model: str
    train_file: str
    output_dir: str
    val_file: str | None = None
    device: str = "auto"
    method: str = "lora"
    quantization: str = "none"  # "4bit" is what method qlora means; kept for configs written before `method`
    init_adapter: str | None = None  # continue training this LoRA adapter (the shared one) instead of a new one
    precision: str = "auto"  # auto: bf16 where the hardware has it natively (CUDA, or a CPU with AVX512-BF16/AMX)
    attn_implementation: str = "auto"  # auto: eager on CPU (faster than sdpa at support-ticket lengths), sdpa on CUDA
    # rank 64 over 16: validation loss 1.111 vs 1.180 on bitext for 22% longer steps (BENCHMARKS.md section 6)
    lora_r: int = 64
    lora_alpha: int = 128
    lora_dropout: float = 0.0  # dropout masks cost ~12% of a CPU step (torch.profiler); set 0.05 for small noisy data
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGET_MODULES))
    learning_rate: float = 1e-3  # searched on validation loss over bitext (BENCHMARKS.md section 6); was 2e-4
    lr_scheduler_type: str = "cosine"
    warmup_ratio: float = 0.03
    per_device_batch_size: int = 4
    gradient_accumulation_steps: int = 4
    num_epochs: float = 3.0
    max_steps: int = -1
    # training length in examples seen (> 0 overrides epochs and max_steps): a product with 80 examples gets as
    # many optimizer steps as one with 2,000, so small products are not left with a handful of steps
    examples_seen: int = 0
    max_length: int = 512
    seed: int = 42
    gradient_checkpointing: bool = False
    padding_free: bool = False  # flatten each batch without padding (FlashAttention-style position ids)
    group_by_length: bool = True  # batches of similar length (transformers' LengthGroupedSampler): less padding
    # torch.compile each decoder layer (one graph shared by all layers): fuses the elementwise work around the
    # matmuls. On this CPU 15-36% faster steps after a ~30 s first compile (bench.compile), so it pays off on
    # runs of a few hundred steps, or sooner on a machine whose inductor cache is warm.
    compile_layers: bool = False
    logging_steps: int = 5
    eval_steps: int = 0  # validation loss every N steps (needs val_file); 0 = off
    early_stopping_patience: int = 0  # stop after N evaluations without improvement; 0 = off
    keep: str = "last"  # or "best_val_rougeL" (needs val_file): see KEEP
    candidate_every_examples: int = 0  # with keep best_val_rougeL: a snapshot every N examples seen; 0 = none
    # with keep best_val_rougeL: also score the kept adapter's replies decoded by MBR over this many samples,
    # and by beam search with this many beams (tuneline.decoding), and record whichever decoding replies best on
    # validation (ties: greedy); 0 = not tried
    mbr_samples: int = 0
    beams: int = 0
    save_steps: int = 0  # checkpoint every N steps into checkpoint_dir; 0 = no checkpoints
    checkpoint_dir: str | None = None  # stable across retries, so a killed run resumes
    mlflow_tracking_uri: str | None = None  # e.g. sqlite:///.../mlflow.db or http://host:5000
    mlflow_experiment: str = "tuneline"
    run_name: str | None = None
    # set by a launcher for a worker that shares nothing with the host but the storage root's S3 mirror: the
    # path fields are then keys under the root (see `portable`), staged in and published by the worker
    storage_remote: str = ""
    storage_endpoint_url: str = ""


STAGED_INPUTS = ("model", "train_file", "val_file", "init_adapter")
STAGED_OUTPUTS = ("output_dir", "checkpoint_dir")


def portable(config: TrainConfig, root: Path, remote: str, endpoint_url: str = "") -> TrainConfig:
    """`config` for a remote worker: every path field as its key under the storage `root` (whose mirror is
    `remote`), so no host path leaves this machine. A path outside the root cannot be staged and is refused;
    a sqlite MLflow store (a host file) is dropped: give the worker an MLflow server instead."""
    root = Path(root).resolve()
    keys = {}
    for name in (*STAGED_INPUTS, *STAGED_OUTPUTS):
        value = getattr(config, name)
        if value in (None, ""):
            continue
        path = Path(value).resolve()
        if not path.is_relative_to(root):
            raise TrainingConfigError(f"{name} {value!r} is outside the storage root {root}: a remote worker "
                                      "cannot stage it")
        keys[name] = path.relative_to(root).as_posix()
    tracking = config.mlflow_tracking_uri
    if tracking and tracking.startswith("sqlite:"):
        tracking = None
    return replace(config, **keys, mlflow_tracking_uri=tracking, storage_remote=remote,
                   storage_endpoint_url=endpoint_url)


def _worker_storage(config: TrainConfig, cache: Path):
    from ft_resources.storage import TunelineStorage

    return TunelineStorage(root=str(cache), remote=config.storage_remote,
                           endpoint_url=config.storage_endpoint_url or None)


def staged(config: TrainConfig, cache: Path) -> TrainConfig:
    """On the worker: the inputs a portable config names, fetched from the mirror into `cache`; outputs
    written under `cache` at their keys (published by `publish_outputs`). Keys pass the same root check as
    every path: none leaves the cache."""
    if not config.storage_remote:
        return config
    storage = _worker_storage(config, cache)
    local = {name: str(storage.localize(getattr(config, name))) for name in STAGED_INPUTS if getattr(config, name)}
    local |= {name: str(relative_under(storage.root_path, getattr(config, name))) for name in STAGED_OUTPUTS
              if getattr(config, name)}
    return replace(config, **local)


def publish_outputs(config: TrainConfig, summary: dict, cache: Path) -> dict:
    """On the worker: the adapter uploaded to the mirror; the summary names it by key (the host localizes it)."""
    if not config.storage_remote:
        return summary
    storage = _worker_storage(config, cache)
    storage.publish(Path(summary["adapter_dir"]))
    return {**summary, "adapter_key": storage.relative(summary["adapter_dir"])}


@dataclass(frozen=True)
class DevicePlan:
    device: str
    bf16: bool
    load_in_4bit: bool


def plan_device(requested: str, quantization: str, cuda_available: bool, bf16_supported: bool = False,
                precision: str = "auto", cpu_native_bf16: bool = False) -> DevicePlan:
    """Pure selection logic: which device, precision and quantization a run gets.

    bf16 mixed precision is chosen where the hardware computes it natively: a CUDA device that supports it,
    or a CPU with AVX512-BF16 or AMX (measured here: bf16 matmul 4.4x the fp32 rate; without those
    instructions bf16 ran at half the fp32 speed on another machine). `precision` forces one or the other.
    """
    if requested not in DEVICES:
        raise TrainingConfigError(f"device must be one of {DEVICES}, got {requested!r}")
    if quantization not in QUANTIZATIONS:
        raise TrainingConfigError(f"quantization must be one of {QUANTIZATIONS}, got {quantization!r}")
    if precision not in PRECISIONS:
        raise TrainingConfigError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if requested == "cuda" and not cuda_available:
        raise TrainingConfigError("device 'cuda' was requested but no CUDA device is available; use 'auto' or 'cpu'")
    device = "cuda" if requested == "cuda" or (requested == "auto" and cuda_available) else "cpu"
    if quantization == "4bit" and device != "cuda":
        raise TrainingConfigError("quantization '4bit' (QLoRA) needs a CUDA device; this run resolved to CPU. "
                                  "Set quantization: none for CPU training.")
    native = bf16_supported if device == "cuda" else cpu_native_bf16
    if precision == "bf16" and device == "cuda" and not bf16_supported:
        raise TrainingConfigError("precision 'bf16' was requested but this CUDA device does not support bf16; "
                                  "use 'auto' or 'fp32'")
    bf16 = precision == "bf16" or (precision == "auto" and native)
    return DevicePlan(device=device, bf16=bf16, load_in_4bit=quantization == "4bit")


def native_bf16_in_cpu_flags(flags: set[str]) -> bool:
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """From the kernel's CPU flags (Linux); False where they cannot be read."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return native_bf16_in_cpu_flags(set(flags))


def attention_for(requested: str, device: str) -> str:
    """eager on CPU: at support-ticket lengths it ran 10% faster than sdpa per training step here."""
    if requested not in ATTENTIONS:
        raise TrainingConfigError(f"attn_implementation must be one of {ATTENTIONS}, got {requested!r}")
    if requested != "auto":
        return requested
    return "eager" if device == "cpu" else "sdpa"


def read_chat_jsonl(path: str | Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def to_prompt_completion(records: list[dict]) -> list[dict]:
    """Split each chat into prompt (all but the last turn) and completion (the last, an assistant turn)."""
    rows = []
    for i, record in enumerate(records):
        messages = record["messages"]
        if not messages or messages[-1]["role"] != "assistant":
            raise ValueError(f"example {i} does not end with an assistant turn")
        rows.append({"prompt": messages[:-1], "completion": messages[-1:]})
    return rows


def file_sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def library_versions() -> dict[str, str]:
    from importlib.metadata import version

    return {name: version(name) for name in ("torch", "transformers", "peft", "trl", "datasets", "accelerate")}


def _load_model(config: TrainConfig, plan: DevicePlan):
    import torch
    from transformers import AutoModelForCausalLM

    # full fine-tuning keeps fp32 master weights (bf16 autocast still applies); LoRA freezes the base in bf16
    kwargs: dict = {"dtype": torch.bfloat16 if plan.bf16 and config.method != "full" else torch.float32}
    if plan.load_in_4bit:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if plan.bf16 else torch.float32)
        kwargs["device_map"] = {"": 0}
    kwargs["attn_implementation"] = attention_for(config.attn_implementation, plan.device)
    model = AutoModelForCausalLM.from_pretrained(config.model, **kwargs)
    if plan.load_in_4bit:
        from peft import prepare_model_for_kbit_training

        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    return model


def without_peft_wrapper(model):
    """The transformers model under a PeftModel (its LoRA layers stay in place), or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def reply_token_loss(model, inputs: dict, num_items_in_batch=None):
    """Mean cross-entropy over the labelled (reply) tokens, projecting only those positions through the LM head.

    The decoder runs once over the whole batch; the vocabulary projection and softmax run on the few
    hundred reply positions alone, as one matrix product. trl's fused head does the same in small tiles
    built for GPU memory; on this CPU those tiles took ~45% of each step (measured with torch.profiler).
    Returns (loss, labelled token count, correctly predicted token count).
    """
    import torch
    import torch.nn.functional as F

    base = without_peft_wrapper(model)
    decoder_inputs = {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids") if k in inputs}
    hidden = base.get_decoder()(**decoder_inputs, use_cache=False).last_hidden_state
    targets = inputs["labels"][:, 1:]
    keep = targets != -100
    logits = base.get_output_embeddings()(hidden[:, :-1][keep]).float()
    labelled = keep.sum()
    loss = F.cross_entropy(logits, targets[keep], reduction="sum")
    loss = loss / (num_items_in_batch if num_items_in_batch is not None else labelled.clamp(min=1))
    with torch.no_grad():
        correct = (logits.argmax(-1) == targets[keep]).sum()
    return loss, labelled, correct


def _reply_only_trainer_class():
    from trl import SFTTrainer

    class ReplyOnlySFTTrainer(SFTTrainer):
        """trl's SFTTrainer with `reply_token_loss`; logs the same token count and accuracy metrics."""

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if return_outputs:  # logits wanted (compute_metrics): trl's own path builds them
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            mode = "train" if self.model.training else "eval"
            # reply_token_loss calls the decoder directly, bypassing the autocast accelerate wraps around
            # model.forward; without it the fp32 LoRA path ran in fp32 beside a bf16 base model.
            with self.accelerator.autocast():
                loss, labelled, correct = reply_token_loss(model, inputs, num_items_in_batch)
            if labelled > 0:
                self._metrics[mode]["mean_token_accuracy"].append((correct / labelled).item())
            if mode == "train":
                self._total_train_tokens += int(inputs["attention_mask"].sum()) if "attention_mask" in inputs \
                    else int(inputs["position_ids"].size(1))
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return loss

    return ReplyOnlySFTTrainer


def resolved_quantization(config: TrainConfig) -> str:
    """The base model's quantization the method implies; a contradiction fails before anything loads."""
    if config.method not in METHODS:
        raise TrainingConfigError(f"method must be one of {METHODS}, got {config.method!r}")
    if config.method == "full" and (config.quantization != "none" or config.init_adapter):
        raise TrainingConfigError("method 'full' trains every weight of an unquantized model: set quantization "
                                  "none and no init_adapter")
    return "4bit" if config.method == "qlora" else config.quantization


def optimizer_steps(config: TrainConfig) -> int:
    """max_steps for the trainer: from examples_seen when set (at least one step), else as configured."""
    if config.examples_seen > 0:
        per_step = config.per_device_batch_size * config.gradient_accumulation_steps
        return max(1, -(-config.examples_seen // per_step))
    return config.max_steps


def build_trainer(config: TrainConfig, output_dir: Path):
    """The configured SFTTrainer (data tokenized, labels masked), plus the tokenizer and device plan."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, PeftModel
    from transformers import AutoTokenizer
    from trl import SFTConfig

    plan = plan_device(config.device, resolved_quantization(config), torch.cuda.is_available(),
                       torch.cuda.is_available() and torch.cuda.is_bf16_supported(), config.precision,
                       cpu_has_native_bf16())
    train_rows = to_prompt_completion(read_chat_jsonl(config.train_file))
    if not train_rows:
        raise ValueError(f"{config.train_file} has no training examples")
    val_rows = to_prompt_completion(read_chat_jsonl(config.val_file)) if config.val_file else []
    evaluate = bool(config.eval_steps and val_rows)
    if config.early_stopping_patience and not evaluate:
        raise TrainingConfigError("early stopping needs eval_steps > 0 and a non-empty val_file")
    if config.keep not in KEEP:
        raise TrainingConfigError(f"keep must be one of {KEEP}, got {config.keep!r}")
    try:  # a decoding to try that Decoding refuses is refused before training, not after it
        decodings_to_try(config)
    except ValueError as error:
        raise TrainingConfigError(f"beams {config.beams}, mbr_samples {config.mbr_samples}: {error}") from error
    tokenizer = AutoTokenizer.from_pretrained(config.model)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = _load_model(config, plan)
    lora = None
    if config.init_adapter:  # the adapter's own rank and targets; the configured ones do not apply
        model = PeftModel.from_pretrained(model, config.init_adapter, is_trainable=True)
    elif config.method != "full":
        lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                          target_modules=list(config.target_modules), task_type="CAUSAL_LM")
    args = SFTConfig(
        output_dir=str(output_dir), per_device_train_batch_size=config.per_device_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps, learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type, warmup_steps=config.warmup_ratio,
        num_train_epochs=config.num_epochs, max_steps=optimizer_steps(config),
        max_length=None if config.padding_free else config.max_length, padding_free=config.padding_free,
        seed=config.seed, data_seed=config.seed, logging_steps=config.logging_steps,
        eval_strategy="steps" if evaluate else "no", eval_steps=config.eval_steps or None,
        save_strategy="steps" if config.save_steps else "no", save_steps=config.save_steps or 500,
        save_total_limit=2 if config.save_steps else None,
        load_best_model_at_end=bool(config.early_stopping_patience),
        metric_for_best_model="eval_loss" if config.early_stopping_patience else None, greater_is_better=False,
        report_to=[], use_cpu=plan.device == "cpu", bf16=plan.bf16, fp16=False,
        gradient_checkpointing=config.gradient_checkpointing, completion_only_loss=True,
        dataloader_num_workers=0, disable_tqdm=True,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
    )
    callbacks = []
    if config.early_stopping_patience:
        from transformers import EarlyStoppingCallback

        callbacks.append(EarlyStoppingCallback(early_stopping_patience=config.early_stopping_patience))
    trainer = _reply_only_trainer_class()(model=model, args=args, train_dataset=Dataset.from_list(train_rows),
                         eval_dataset=Dataset.from_list(val_rows) if val_rows else None,
                         processing_class=tokenizer, peft_config=lora, callbacks=callbacks)
    if config.compile_layers:
        compile_decoder_layers(trainer.model)
    return trainer, tokenizer, plan


def compile_decoder_layers(model) -> None:
    """Regional compilation: `Module.compile` on each decoder layer, in place, so parameter names (and the
    saved adapter) are unchanged; identical layers reuse one compiled graph, and dynamic shapes keep varying
    batch lengths from recompiling."""
    for layer in without_peft_wrapper(model).get_decoder().layers:
        layer.compile(dynamic=True)


def last_checkpoint(checkpoint_dir: Path) -> Path | None:
    """The newest complete `checkpoint-N` (trainer_state.json written last), if any."""
    if not checkpoint_dir.is_dir():
        return None
    done = [p for p in checkpoint_dir.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return max(done, key=lambda p: int(p.name.split("-")[1]), default=None)


def main(config: TrainConfig, reporter=None) -> dict:
    """Train one LoRA adapter; write it atomically to config.output_dir; return a summary.

    With save_steps and a stable checkpoint_dir, a run that died resumes from its last checkpoint
    and ends at the same total step count. `reporter(event: dict)` receives progress (Dagster
    Pipes passes one); MLflow gets params, per-step metrics and the adapter when a URI is set.
    """
    from peft.helpers import disable_input_dtype_casting

    output_dir = Path(config.output_dir)
    checkpoint_dir = Path(config.checkpoint_dir) if config.checkpoint_dir else None
    with atomic_directory(output_dir) as staging:
        trainer_dir = checkpoint_dir or staging / "_trainer"
        trainer, tokenizer, plan = build_trainer(config, trainer_dir)
        tracker = MlflowTracker(config) if config.mlflow_tracking_uri else None
        trainer.add_callback(progress_callback(reporter, tracker))
        choosing = config.keep == "best_val_rougeL" and trainer.eval_dataset is not None
        per_step = config.per_device_batch_size * config.gradient_accumulation_steps
        snapshots = staging / "_snapshots"
        if choosing and config.candidate_every_examples > 0:
            trainer.add_callback(snapshot_callback(max(1, config.candidate_every_examples // per_step), snapshots))
        supervised_tokens = sum(sum(1 for t in labels if t != -100) for labels in trainer.train_dataset["labels"])
        resume_from = last_checkpoint(checkpoint_dir) if checkpoint_dir else None
        # continuing an adapter: its validation loss before this product's data, to choose between the two
        val_loss_before = _val_loss(trainer) if config.init_adapter and not resume_from else None
        started = time.perf_counter()
        # Under bf16 autocast, peft's cast of every adapter input to the fp32 adapter dtype is undone by autocast
        # at once; skipping it saves two activation copies per adapted layer.
        with disable_input_dtype_casting(trainer.model, active=plan.bf16):
            output = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
        seconds = time.perf_counter() - started
        val_loss_after = _val_loss(trainer) if config.init_adapter else None
        trainer.model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        choice = keep_best_on_validation(config, staging, snapshots, per_step, trainer.state.global_step) \
            if choosing else {}
        shutil.rmtree(snapshots, ignore_errors=True)
        epochs_done = float(trainer.state.epoch or 0.0)
        steps_this_session = trainer.state.global_step - (int(resume_from.name.split("-")[1]) if resume_from else 0)
        tokens_seen = supervised_tokens * epochs_done
        session_tokens = tokens_seen * steps_this_session / max(trainer.state.global_step, 1)
        history = trainer.state.log_history
        losses = [e["loss"] for e in history if "loss" in e]
        eval_losses = [e["eval_loss"] for e in history if "eval_loss" in e]
        summary = {
            "adapter_dir": str(output_dir),
            "global_steps": trainer.state.global_step,
            "max_steps": trainer.state.max_steps,
            "epochs": round(epochs_done, 4),
            "train_loss": float(output.training_loss),
            "first_logged_loss": losses[0] if losses else None,
            "last_logged_loss": losses[-1] if losses else None,
            "best_eval_loss": min(eval_losses) if eval_losses else None,
            "method": config.method,
            "init_adapter": config.init_adapter,
            "val_loss_before": val_loss_before,
            "val_loss_after": val_loss_after,
            **choice,
            "stopped_early": bool(config.early_stopping_patience)
            and trainer.state.global_step < trainer.state.max_steps,
            "resumed_from": resume_from.name if resume_from else None,
            "train_examples": len(trainer.train_dataset),
            "supervised_tokens_seen": int(tokens_seen),
            "train_seconds": round(seconds, 2),
            "supervised_tokens_per_second": round(session_tokens / seconds, 1) if seconds else None,
            "device": plan.device,
            "bf16": plan.bf16,
            "load_in_4bit": plan.load_in_4bit,
        }
        metadata = {
            "base_model": config.model, "seed": config.seed, "versions": library_versions(),
            "python": platform.python_version(), "git_commit": git_commit(),
            "data_version": file_sha256(config.train_file),
            "chat_template_sha256": hashlib.sha256((tokenizer.chat_template or "").encode()).hexdigest(),
            "system_prompts": system_prompts(read_chat_jsonl(config.train_file)),
            "decoding": choice.get("decoding"),  # chosen on validation; evaluation and serving decode so
            "summary": summary,
        }
        (staging / "training_args.json").write_text(json.dumps(asdict(config), indent=2))
        (staging / "metadata.json").write_text(json.dumps(metadata, indent=2, default=str))
        (staging / "trainer_log.json").write_text(json.dumps(history, indent=2))
        write_loss_curve(history, staging / "loss_curve.png")
        if checkpoint_dir is None:
            shutil.rmtree(staging / "_trainer", ignore_errors=True)
        if tracker:
            summary["mlflow_run_id"] = tracker.finish(summary, staging)
    if checkpoint_dir is not None:
        shutil.rmtree(checkpoint_dir, ignore_errors=True)  # the run finished: its checkpoints are spent
    return summary


def snapshot_callback(every_steps: int, folder: Path):
    """A TrainerCallback saving the weights every `every_steps` optimizer steps (not the last, which the run
    saves itself) into `folder/step-N`: the candidates keep_best_on_validation chooses among."""
    from transformers import TrainerCallback

    class SnapshotCallback(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % every_steps == 0 and state.global_step < state.max_steps:
                model.save_pretrained(folder / f"step-{state.global_step}")

    return SnapshotCallback()


def keep_best_on_validation(config: TrainConfig, staging: Path, snapshots: Path, per_step: int,
                            last_step: int) -> dict:
    """Score the starting adapter (when continuing one), every snapshot and the last step by the ROUGE-L of their
    greedy replies on the validation split, and leave the best one's weights in `staging` (ties: the one that
    saw fewer examples). Evaluation generates the same way, so the kept weights are chosen on the measure the
    promotion gate reads, on data the test split never sees."""
    from tuneline.evaluation import validation_rouge

    candidates: dict[int, Path] = {0: Path(config.init_adapter)} if config.init_adapter else {}
    for folder in snapshots.glob("step-*"):
        candidates[int(folder.name.split("-")[1]) * per_step] = folder
    candidates[last_step * per_step] = staging
    if len(candidates) == 1 and not decodings_to_try(config):  # nothing to choose: no starting adapter, no
        return {"kept_examples_seen": last_step * per_step}  # snapshot (with decodings to try, one is chosen)
    started = time.perf_counter()
    scores, budget = validation_rouge(config.model, {k: str(v) for k, v in sorted(candidates.items())},
                                      read_chat_jsonl(config.val_file), read_chat_jsonl(config.train_file))
    kept = max(scores, key=lambda seen: (scores[seen], -seen))
    if candidates[kept] != staging:
        for name in ADAPTER_WEIGHT_FILES:
            source = candidates[kept] / name
            if source.exists():
                shutil.copy2(source, staging / name)
    choice = {"val_rougeL": {str(seen): score for seen, score in scores.items()}, "kept_examples_seen": kept,
              "val_rougeL_before": scores.get(0) if config.init_adapter else None,
              "val_rougeL_after": scores[kept], "val_max_new_tokens": budget,
              "val_choice_seconds": round(time.perf_counter() - started, 1)}
    if decodings_to_try(config):
        choice.update(choose_decoding(config, staging, scores[kept]))
    return choice


def decodings_to_try(config: TrainConfig) -> list:
    """The decodings besides greedy that the kept adapter is scored with on validation (none by default)."""
    from tuneline.decoding import Decoding

    tried = [Decoding(method="beam", beams=config.beams)] if config.beams else []  # Decoding checks the count
    return tried + ([Decoding(method="mbr", samples=config.mbr_samples, seed=config.seed)]
                    if config.mbr_samples else [])


def choose_decoding(config: TrainConfig, adapter: Path, greedy_score: float) -> dict:
    """Of greedy and the decodings to try, the one whose replies of the kept adapter score the highest ROUGE-L
    on the validation split (ties: greedy, the cheapest, then the one tried first); recorded in its
    metadata.json, which evaluation, serving and the registered model read."""
    from tuneline.decoding import GREEDY
    from tuneline.evaluation import validation_rouge

    started = time.perf_counter()
    chosen, best, found = GREEDY, greedy_score, {"val_rougeL_greedy": greedy_score}
    for decoding in decodings_to_try(config):
        scores, _ = validation_rouge(config.model, {decoding.method: str(adapter)}, read_chat_jsonl(config.val_file),
                                     read_chat_jsonl(config.train_file), decoding=decoding)
        found[f"val_rougeL_{decoding.method}"] = scores[decoding.method]
        if scores[decoding.method] > best:
            chosen, best = decoding, scores[decoding.method]
    return {"decoding": chosen.to_dict(), **found, "val_decoding_seconds": round(time.perf_counter() - started, 1)}


def _val_loss(trainer) -> float | None:
    """Reply-token loss on the validation split, or None without one."""
    if trainer.eval_dataset is None:
        return None
    # its own metric prefix: these two measurements stay out of the training curve and best_eval_loss
    return round(float(trainer.evaluate(metric_key_prefix="choice")["choice_loss"]), 5)


def write_loss_curve(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3))
    train = [(e["step"], e["loss"]) for e in history if "loss" in e]
    val = [(e["step"], e["eval_loss"]) for e in history if "eval_loss" in e]
    if train:
        axis.plot(*zip(*train, strict=True), label="train loss")
    if val:
        axis.plot(*zip(*val, strict=True), marker="o", label="validation loss")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.legend()
    figure.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(figure)


class MlflowTracker:
    """Params at start, metrics per logged step, the adapter directory as artifacts at the end."""

    def __init__(self, config: TrainConfig):
        import mlflow

        self.mlflow = mlflow
        mlflow.set_tracking_uri(config.mlflow_tracking_uri)
        mlflow.set_experiment(config.mlflow_experiment)
        self.run = mlflow.start_run(run_name=config.run_name)
        params = {k: v for k, v in asdict(config).items() if k not in ("mlflow_tracking_uri",)}
        mlflow.log_params({k: str(v)[:250] for k, v in params.items()})

    def log(self, metrics: dict, step: int) -> None:
        numeric = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if numeric:
            self.mlflow.log_metrics(numeric, step=step)

    def finish(self, summary: dict, adapter_dir: Path) -> str:
        self.log({f"final_{k}": v for k, v in summary.items()}, step=summary["global_steps"])
        for name in ("adapter_config.json", "adapter_model.safetensors", "training_args.json", "metadata.json",
                     "loss_curve.png"):
            if (adapter_dir / name).exists():
                self.mlflow.log_artifact(str(adapter_dir / name), artifact_path="adapter")
        run_id = self.run.info.run_id
        self.mlflow.end_run()
        return run_id


def system_prompts(records: list[dict]) -> dict[str, str]:
    """The system prompt the adapter was trained with, per product (records' metadata.product; "" when the
    records name none): what the server puts first when a request brings no system message, so training and
    serving cannot drift apart. The most frequent one wins where a product's records disagree."""
    from collections import Counter

    counts: dict[str, Counter] = {}
    for record in records:
        first = (record.get("messages") or [{}])[0]
        if first.get("role") == "system":
            product = (record.get("metadata") or {}).get("product") or ""
            counts.setdefault(product, Counter())[first["content"]] += 1
    return {product: counter.most_common(1)[0][0] for product, counter in sorted(counts.items())}


def progress_callback(reporter, tracker):
    """A TrainerCallback forwarding every log line (loss, eval_loss, lr) to the reporter and to MLflow."""
    from transformers import TrainerCallback

    class ProgressCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = dict(logs or {})
            if tracker:
                tracker.log(logs, step=state.global_step)
            if reporter:
                reporter({"step": state.global_step, "max_steps": state.max_steps, **logs})

    return ProgressCallback()


def _cli() -> None:
    import yaml

    parser = argparse.ArgumentParser(description="Train a LoRA adapter from a chat JSONL file (no Dagster needed).")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="YAML or JSON file with TrainConfig fields")
    source.add_argument("--config-json", help="TrainConfig fields as a JSON string (remote launchers)")
    ns = parser.parse_args()
    fields = json.loads(ns.config_json) if ns.config_json else yaml.safe_load(Path(ns.config).read_text())
    config = TrainConfig(**fields)
    cache = Path(os.environ.get("TUNELINE_WORKER_CACHE", "/tmp/tuneline-worker")).resolve()
    local = staged(config, cache)  # a portable config: inputs from the storage mirror, nothing from the host
    report_over_pipes(lambda reporter: publish_outputs(config, main(local, reporter=reporter), cache))


def report_over_pipes(run) -> dict:
    """`run(reporter)` and print its summary; when a Dagster Pipes client launched this process (the trainer
    resources do), progress events go to its log and the summary back as a custom message."""
    from dagster_pipes import DAGSTER_PIPES_CONTEXT_ENV_VAR

    if os.environ.get(DAGSTER_PIPES_CONTEXT_ENV_VAR):
        from dagster_pipes import open_dagster_pipes

        with open_dagster_pipes() as pipes:
            summary = run(lambda event: pipes.log.info(json.dumps(event, default=str)))
            pipes.report_custom_message({"summary": summary})
    else:
        summary = run(None)
    print(json.dumps(summary, indent=2))
    return summary


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    _cli()
