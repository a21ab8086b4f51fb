"""Serving throughput: the OpenAI-compatible endpoint on loopback at 1, 4 and 16 concurrent requests,
against calling `generate` in-process (no HTTP, no queue): what the serving path costs and what
concurrency does to latency. Embedded SmolLM2-135M-Instruct with a LoRA adapter per product.

    python -m bench.serving --requests 32 --max-tokens 32
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench.common import embedded_model, machine, report, today

QUESTIONS = ["Where is my refund for order 1182?", "How do I change my billing address?",
             "My package shows delivered but I never got it.", "Can I get an invoice for last month?",
             "Why was I charged twice?", "How do I cancel my subscription?"]


def _adapter(base: str, out: Path) -> str:
    """A LoRA adapter as tuneline trains it (r=16 on all linear layers), saved without training: serving
    cost does not depend on the weights' values."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneline.training import DEFAULT_TARGET_MODULES

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    peft = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=list(DEFAULT_TARGET_MODULES),
                                            task_type="CAUSAL_LM"))
    peft.save_pretrained(out)
    AutoTokenizer.from_pretrained(base).save_pretrained(out)
    return str(out)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=32, help="requests per concurrency level")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--json")
    ns = parser.parse_args()
    import httpx
    import uvicorn

    from tuneline.serving import AdapterServer, create_app

    base = embedded_model()
    with tempfile.TemporaryDirectory() as tmp:
        adapters = {p: _adapter(base, Path(tmp) / p) for p in ("billing", "shipping")}
        server = AdapterServer(base, adapters)
        messages = [[{"role": "user", "content": q}] for q in QUESTIONS]

        # in-process baseline: the same generate calls, one after the other
        started, tokens = time.perf_counter(), 0
        latencies = []
        for i in range(ns.requests):
            t0 = time.perf_counter()
            _, _, produced, _ = server.complete("billing" if i % 2 else "shipping", messages[i % len(messages)],
                                                ns.max_tokens)
            latencies.append(time.perf_counter() - t0)
            tokens += produced
        direct = {"tokens_per_second": tokens / (time.perf_counter() - started),
                  "p50_ms": 1000 * statistics.median(latencies), "p95_ms": 1000 * _percentile(latencies, 0.95)}

        app = create_app(server, api_key="bench-key", metrics_file=Path(tmp) / "metrics.json")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
        thread = threading.Thread(target=uv.run, daemon=True)
        thread.start()
        while not uv.started:
            time.sleep(0.05)
        levels = {}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}/v1", timeout=600,
                          headers={"Authorization": "Bearer bench-key"},
                          limits=httpx.Limits(max_connections=64)) as client:
            def one(i: int) -> tuple[float, int]:
                t0 = time.perf_counter()
                reply = client.post("/chat/completions", json={
                    "model": "billing" if i % 2 else "shipping", "messages": messages[i % len(messages)],
                    "max_tokens": ns.max_tokens})
                reply.raise_for_status()
                return time.perf_counter() - t0, reply.json()["usage"]["completion_tokens"]

            for concurrency in ns.concurrency:
                started = time.perf_counter()
                with ThreadPoolExecutor(concurrency) as pool:
                    done = list(pool.map(one, range(ns.requests)))
                wall = time.perf_counter() - started
                lat = [d[0] for d in done]
                levels[concurrency] = {"tokens_per_second": sum(d[1] for d in done) / wall,
                                       "requests_per_second": len(done) / wall,
                                       "p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * _percentile(lat, 0.95)}
        uv.should_exit = True
        thread.join(timeout=10)
    rounded = {k: {m: round(v, 1) for m, v in d.items()} for k, d in levels.items()}
    result = {"benchmark": "serving", "date": today(), "machine": machine(), "requests": ns.requests,
              "max_tokens": ns.max_tokens, "in_process": {m: round(v, 1) for m, v in direct.items()},
              "http": rounded}
    best = max(levels, key=lambda c: levels[c]["tokens_per_second"])
    ratio = levels[best]["tokens_per_second"] / direct["tokens_per_second"]
    report(result, ns.json, f"serving: {levels[best]['tokens_per_second']:.1f} tokens/s over HTTP at concurrency "
                            f"{best} vs {direct['tokens_per_second']:.1f} in-process: {ratio:.2f}x")


if __name__ == "__main__":
    main()
