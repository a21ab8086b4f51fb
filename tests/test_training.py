import json
from pathlib import Path

import pytest

from tuneline.splits import assign_splits, to_chat_records
from tuneline.training import TrainConfig, TrainingConfigError, build_trainer, main, plan_device


@pytest.mark.parametrize(("requested", "quant", "cuda", "bf16", "expected"), [
    ("auto", "none", False, False, ("cpu", False, False)),
    ("cpu", "none", True, True, ("cpu", False, False)),
    ("auto", "none", True, True, ("cuda", True, False)),
    ("auto", "none", True, False, ("cuda", False, False)),
    ("cuda", "4bit", True, True, ("cuda", True, True)),
    ("auto", "4bit", True, False, ("cuda", False, True)),
])
def test_device_plan(requested, quant, cuda, bf16, expected):
    plan = plan_device(requested, quant, cuda_available=cuda, bf16_supported=bf16)
    assert (plan.device, plan.bf16, plan.load_in_4bit) == expected


@pytest.mark.parametrize(("requested", "quant", "cuda", "message"), [
    ("auto", "4bit", False, "needs a CUDA device"),
    ("cpu", "4bit", True, "needs a CUDA device"),
    ("cuda", "none", False, "no CUDA device"),
    ("tpu", "none", False, "device must be one of"),
    ("auto", "8bit", True, "quantization must be one of"),
])
def test_impossible_device_plans_are_clear_errors(requested, quant, cuda, message):
    with pytest.raises(TrainingConfigError, match=message):
        plan_device(requested, quant, cuda_available=cuda)


def test_local_trainer_refuses_4bit_on_this_cpu_before_touching_data(tmp_path):
    from ft_resources.trainer import LocalTrainer

    config = TrainConfig(model="unused", train_file=str(tmp_path / "missing.jsonl"), output_dir=str(tmp_path / "a"))
    with pytest.raises(TrainingConfigError, match="needs a CUDA device"):
        LocalTrainer(device="auto", quantization="4bit").train(None, config)
    assert not (tmp_path / "a").exists()


def _chat_file(path: Path, n: int = 24) -> Path:
    import polars as pl

    from tuneline.ingest import MESSAGE_DTYPE

    frame = pl.DataFrame({
        "ticket_id": [f"t{i}" for i in range(n)], "thread_id": [f"t{i}" for i in range(n)],
        "product": ["billing"] * n, "content_hash": [f"h{i}" for i in range(n)], "quality_score": [1.0] * n,
        "status": ["kept"] * n,
        "messages": pl.Series([[{"role": "user", "content": f"Where is my refund number {i}?"},
                                {"role": "assistant", "content": "Your refund was issued and arrives in 5 days."}]
                               for i in range(n)], dtype=MESSAGE_DTYPE),
    })
    records = to_chat_records(assign_splits(frame))
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_only_the_assistant_reply_and_its_end_token_are_supervised(tiny_model_dir, tmp_path):
    config = TrainConfig(model=str(tiny_model_dir), train_file=str(_chat_file(tmp_path / "train.jsonl")),
                         output_dir=str(tmp_path / "out"), max_steps=1)
    trainer, tokenizer, _ = build_trainer(config, tmp_path / "trainer")
    example = trainer.train_dataset[0]
    supervised = [t for t in example["labels"] if t != -100]
    text = tokenizer.decode(supervised)
    assert text.startswith("Your refund was issued and arrives in 5 days.")
    assert "<|im_end|>" in text
    assert "Where is my refund" not in text and "system" not in text and "user" not in text
    prompt_part = tokenizer.decode([t for t, label in zip(example["input_ids"], example["labels"], strict=True)
                                    if label == -100])
    assert "Where is my refund" in prompt_part and prompt_part.rstrip().endswith("assistant")


def test_training_writes_an_adapter_that_loads_and_changes_the_output(tiny_model_dir, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "adapter"
    summary = main(TrainConfig(model=str(tiny_model_dir), train_file=str(_chat_file(tmp_path / "train.jsonl")),
                               output_dir=str(out), max_steps=4, gradient_accumulation_steps=1,
                               learning_rate=5e-3, logging_steps=1))
    assert summary["global_steps"] == 4 and summary["device"] == "cpu"
    for name in ("adapter_config.json", "adapter_model.safetensors", "training_args.json", "metadata.json"):
        assert (out / name).is_file(), name
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["seed"] == 42 and metadata["versions"]["trl"] and len(metadata["data_version"]) == 64
    assert not list(tmp_path.glob(".adapter.staging-*")), "no staging directory is left behind"

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    ids = torch.tensor([[1, 5, 9, 12, 7]])
    with torch.no_grad():
        before = base(ids).logits.clone()
        tuned = PeftModel.from_pretrained(base, out)
        after = tuned(ids).logits
    assert not torch.allclose(before, after, atol=1e-6)


def test_failed_training_leaves_the_previous_adapter_in_place(tiny_model_dir, tmp_path):
    out = tmp_path / "adapter"
    out.mkdir()
    (out / "adapter_config.json").write_text("{\"previous\": true}")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"messages": [{"role": "user", "content": "no reply"}]}) + "\n")
    with pytest.raises(ValueError, match="does not end with an assistant turn"):
        main(TrainConfig(model=str(tiny_model_dir), train_file=str(bad), output_dir=str(out), max_steps=1))
    assert json.loads((out / "adapter_config.json").read_text()) == {"previous": True}


def test_padding_free_batches_train(tiny_model_dir, tmp_path):
    summary = main(TrainConfig(model=str(tiny_model_dir), train_file=str(_chat_file(tmp_path / "t.jsonl")),
                               output_dir=str(tmp_path / "pf"), max_steps=2, gradient_accumulation_steps=1,
                               padding_free=True))
    assert summary["global_steps"] == 2 and summary["train_loss"] > 0


@pytest.mark.parametrize(("device", "cuda", "cuda_bf16", "precision", "cpu_bf16", "expected_bf16"), [
    ("cpu", False, False, "auto", True, True),     # AVX512-BF16 / AMX CPU: mixed precision
    ("cpu", False, False, "auto", False, False),   # no native bf16: fp32 (bf16 would run at half speed)
    ("cpu", False, False, "fp32", True, False),
    ("cpu", False, False, "bf16", False, True),    # forced
    ("auto", True, True, "auto", False, True),
    ("auto", True, False, "auto", True, False),    # the CPU's flags do not matter on CUDA
    ("auto", True, True, "fp32", True, False),
])
def test_precision_follows_native_bf16(device, cuda, cuda_bf16, precision, cpu_bf16, expected_bf16):
    plan = plan_device(device, "none", cuda, cuda_bf16, precision, cpu_bf16)
    assert plan.bf16 is expected_bf16


def test_impossible_precisions_are_clear_errors():
    with pytest.raises(TrainingConfigError, match="precision must be one of"):
        plan_device("cpu", "none", False, precision="fp16")
    with pytest.raises(TrainingConfigError, match="does not support bf16"):
        plan_device("cuda", "none", True, bf16_supported=False, precision="bf16")


def test_native_bf16_is_read_from_cpu_flags(tmp_path):
    from tuneline.training import cpu_has_native_bf16

    with_bf16 = tmp_path / "a"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse avx512f avx512_bf16\n\nprocessor\t: 1\n")
    without = tmp_path / "b"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse avx2 fma\n")
    amx = tmp_path / "c"
    amx.write_text("flags\t: fpu amx_tile amx_bf16\n")
    assert cpu_has_native_bf16(with_bf16) and cpu_has_native_bf16(amx)
    assert not cpu_has_native_bf16(without)
    assert not cpu_has_native_bf16(tmp_path / "missing")


def test_attention_choice():
    from tuneline.training import attention_for

    assert attention_for("auto", "cpu") == "eager"
    assert attention_for("auto", "cuda") == "sdpa"
    assert attention_for("sdpa", "cpu") == "sdpa"
    with pytest.raises(TrainingConfigError, match="attn_implementation"):
        attention_for("flash", "cpu")


def test_reply_token_loss_matches_the_models_own_loss_on_reply_labels(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM

    from tuneline.training import reply_token_loss

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    input_ids = torch.randint(3, model.config.vocab_size, (3, 20))
    attention_mask = torch.ones_like(input_ids)
    attention_mask[2, 15:] = 0  # a padded row
    labels = input_ids.clone()
    labels[:, :12] = -100  # the prompt
    labels[attention_mask == 0] = -100
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
    ours, labelled, correct = reply_token_loss(model, inputs)
    reference = model(**inputs).loss
    assert int(labelled) == int((labels[:, 1:] != -100).sum())
    assert 0 <= int(correct) <= int(labelled)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    ours.backward()
    assert model.model.layers[0].self_attn.q_proj.weight.grad is not None


def test_bf16_runs_the_adapter_path_under_autocast_and_batches_by_length(tiny_model_dir, tmp_path):
    """reply_token_loss bypasses model.forward, where accelerate puts its autocast; the trainer must add it."""
    import torch
    from peft.tuners.lora import LoraLayer
    from transformers.trainer_pt_utils import LengthGroupedSampler

    config = TrainConfig(model=str(tiny_model_dir), train_file=str(_chat_file(tmp_path / "train.jsonl")),
                         output_dir=str(tmp_path / "out"), max_steps=1, precision="bf16")
    trainer, _, plan = build_trainer(config, tmp_path / "trainer")
    assert plan.bf16
    assert isinstance(trainer._get_train_sampler(), LengthGroupedSampler)
    layer = next(m for m in trainer.model.modules() if isinstance(m, LoraLayer))
    seen = []
    hook = layer.lora_A["default"].register_forward_hook(lambda module, args, out: seen.append(out.dtype))
    batch = next(iter(trainer.get_train_dataloader()))
    loss = trainer.compute_loss(trainer.model, batch)
    hook.remove()
    assert seen == [torch.bfloat16], "the adapter's matrix products run in bf16 under autocast"
    assert loss.dtype == torch.float32 and torch.isfinite(loss)

    unsorted = TrainConfig(model=str(tiny_model_dir), train_file=config.train_file, output_dir=config.output_dir,
                           max_steps=1, group_by_length=False)
    assert not isinstance(build_trainer(unsorted, tmp_path / "t2")[0]._get_train_sampler(), LengthGroupedSampler)


@pytest.mark.slow  # ~45 s of torch.compile; the fast suite keeps the eager path
def test_compiled_layers_match_eager_loss_and_gradients_and_save_the_same_adapter(tiny_model_dir, tmp_path):
    import torch

    train_file = str(_chat_file(tmp_path / "train.jsonl"))

    def loss_and_grads(compile_layers: bool, name: str):
        torch.manual_seed(0)
        config = TrainConfig(model=str(tiny_model_dir), train_file=train_file, output_dir=str(tmp_path / name),
                             max_steps=1, precision="fp32", group_by_length=False, compile_layers=compile_layers)
        trainer, _, _ = build_trainer(config, tmp_path / f"{name}-trainer")
        layers = trainer.model.get_base_model().get_decoder().layers
        assert all((layer._compiled_call_impl is not None) == compile_layers for layer in layers)
        batch = trainer.data_collator([trainer.train_dataset[i] for i in range(3)])
        loss = trainer.compute_loss(trainer.model, batch)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.requires_grad}
        trainer.model.save_pretrained(tmp_path / name)
        return loss.detach(), grads

    eager_loss, eager_grads = loss_and_grads(False, "eager")
    compiled_loss, compiled_grads = loss_and_grads(True, "compiled")
    assert torch.allclose(eager_loss, compiled_loss, rtol=1e-4)
    assert eager_grads.keys() == compiled_grads.keys() and eager_grads
    for name, grad in eager_grads.items():
        assert torch.allclose(grad, compiled_grads[name], rtol=1e-3, atol=1e-6), name
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "compiled" / "adapter_model.safetensors")
    assert saved.keys() == load_file(tmp_path / "eager" / "adapter_model.safetensors").keys()
    assert not any("_orig_mod" in key for key in saved)


def test_full_fine_tuning_trains_every_weight_and_evaluates_without_an_adapter(tiny_model_dir, tmp_path):
    from tuneline.evaluation import EvalSettings, evaluate_adapter
    from tuneline.training import read_chat_jsonl

    out = tmp_path / "full"
    data = _chat_file(tmp_path / "train.jsonl")
    summary = main(TrainConfig(model=str(tiny_model_dir), train_file=str(data), output_dir=str(out), method="full",
                               max_steps=3, gradient_accumulation_steps=1, learning_rate=1e-3))
    assert summary["method"] == "full" and summary["global_steps"] == 3
    assert (out / "config.json").is_file() and not (out / "adapter_config.json").exists()
    report = evaluate_adapter(str(tiny_model_dir), str(out), read_chat_jsonl(data),
                              EvalSettings(max_examples=2, max_new_tokens=4))
    assert report["tuned"]["perplexity"] != report["base"]["perplexity"]


@pytest.mark.parametrize("overrides, message", [
    ({"method": "full", "init_adapter": "/some/adapter"}, "every weight"),
    ({"method": "full", "quantization": "4bit"}, "every weight"),
    ({"method": "dora"}, "method must be one of"),
])
def test_contradictory_methods_are_clear_errors(overrides, message):
    from tuneline.training import resolved_quantization

    with pytest.raises(TrainingConfigError, match=message):
        resolved_quantization(TrainConfig(model="m", train_file="t", output_dir="o", **overrides))


def test_qlora_means_a_4bit_base():
    from tuneline.training import resolved_quantization

    assert resolved_quantization(TrainConfig(model="m", train_file="t", output_dir="o", method="qlora")) == "4bit"
    assert resolved_quantization(TrainConfig(model="m", train_file="t", output_dir="o")) == "none"


def test_training_length_in_examples_seen_gives_small_products_enough_steps():
    from tuneline.training import optimizer_steps

    def steps(**kw):
        return optimizer_steps(TrainConfig(model="m", train_file="t", output_dir="o", **kw))

    assert steps(examples_seen=640, per_device_batch_size=4, gradient_accumulation_steps=4) == 40
    assert steps(examples_seen=641, per_device_batch_size=4, gradient_accumulation_steps=4) == 41
    assert steps(examples_seen=1, per_device_batch_size=8) == 1
    assert steps(max_steps=7) == 7 and steps() == -1  # unset: epochs decide


def test_keep_best_val_rougeL_scores_every_snapshot_and_keeps_the_best(tiny_model_dir, tmp_path):
    from tuneline.evaluation import validation_rouge

    chats = _chat_file(tmp_path / "chats.jsonl")
    out = tmp_path / "adapter"
    summary = main(TrainConfig(model=str(tiny_model_dir), train_file=str(chats), val_file=str(chats),
                               output_dir=str(out), max_steps=3, gradient_accumulation_steps=1,
                               learning_rate=5e-2, keep="best_val_rougeL", candidate_every_examples=4))
    assert set(summary["val_rougeL"]) == {"4", "8", "12"}, "a snapshot after steps 1 and 2, and the last step"
    kept = summary["kept_examples_seen"]
    assert summary["val_rougeL"][str(kept)] == max(summary["val_rougeL"].values()) == summary["val_rougeL_after"]
    assert summary["val_rougeL_before"] is None, "no starting adapter to compare with"
    assert not (out / "_snapshots").exists(), "the snapshots are spent once one is kept"
    records = [json.loads(line) for line in chats.read_text().splitlines()]
    again, _ = validation_rouge(str(tiny_model_dir), {0: str(out)}, records, records)
    assert again[0] == summary["val_rougeL_after"], "the weights left in the output are the kept snapshot's"


@pytest.mark.parametrize(("scores", "kept", "weights"), [
    ({0: 0.2, 4: 0.5, 8: 0.5, 12: 0.4}, 4, "after step 1"),  # a tie goes to the one that saw fewer examples
    ({0: 0.6, 4: 0.5, 8: 0.5, 12: 0.4}, 0, "starting adapter"),
    ({0: 0.2, 4: 0.3, 8: 0.4, 12: 0.5}, 12, "last step"),
])
def test_the_kept_weights_are_the_best_candidates(tmp_path, monkeypatch, scores, kept, weights):
    import tuneline.evaluation
    from tuneline.training import keep_best_on_validation

    folders = {0: tmp_path / "shared", 4: tmp_path / "snapshots" / "step-1", 8: tmp_path / "snapshots" / "step-2",
               12: tmp_path / "staging"}
    names = {0: "starting adapter", 4: "after step 1", 8: "after step 2", 12: "last step"}
    for seen, folder in folders.items():
        folder.mkdir(parents=True)
        (folder / "adapter_model.safetensors").write_text(names[seen])
    seen_candidates = {}

    def fake_rouge(model, candidates, records, sizing):
        seen_candidates.update(candidates)
        return scores, 99

    monkeypatch.setattr(tuneline.evaluation, "validation_rouge", fake_rouge)
    chats = _chat_file(tmp_path / "chats.jsonl")
    config = TrainConfig(model="m", train_file=str(chats), val_file=str(chats), output_dir=str(folders[12]),
                         init_adapter=str(folders[0]))
    choice = keep_best_on_validation(config, folders[12], tmp_path / "snapshots", 4, 3)
    assert seen_candidates == {k: str(v) for k, v in folders.items()}
    assert choice["kept_examples_seen"] == kept and choice["val_rougeL_before"] == scores[0]
    assert (folders[12] / "adapter_model.safetensors").read_text() == weights


def test_an_unknown_keep_rule_is_a_clear_error(tiny_model_dir, tmp_path):
    chats = _chat_file(tmp_path / "chats.jsonl")
    with pytest.raises(TrainingConfigError, match="keep must be one of"):
        build_trainer(TrainConfig(model=str(tiny_model_dir), train_file=str(chats), output_dir=str(tmp_path / "o"),
                                  keep="best_loss"), tmp_path / "trainer")
