"""What an A/B test costs the server, measured side by side in one run: throughput with 4 LoRA adapters
loaded (requests spread over them, as champion and challenger of two products) against 1, and the
latency the redacted response log adds (logging on vs off, same server). Rounds alternate between the
set-ups so drift on the machine hits all of them alike. Embedded SmolLM2-135M-Instruct; untrained
adapters (serving cost does not depend on the weights' values, and every adapter then answers alike).

    python -m bench.serving_ab --rounds 5 --requests 16 --max-tokens 32
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from bench.common import embedded_model, machine, report, today
from bench.serving import QUESTIONS, _adapter


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=16, help="requests per set-up per round")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--json")
    ns = parser.parse_args()
    import httpx

    from ft_resources.pii import PiiEngine
    from tests.test_serving import served_on_loopback
    from tuneline.serving import AdapterServer, ResponseLog, create_app

    base = embedded_model()
    with tempfile.TemporaryDirectory() as tmp:
        dirs = {name: _adapter(base, Path(tmp) / name) for name in ("a", "b", "c", "d")}
        one = AdapterServer(base, {"billing": dirs["a"]})
        four = AdapterServer(base, {"billing": dirs["a"], "shipping": dirs["b"]},
                             {"billing": dirs["c"], "shipping": dirs["d"]})
        log = ResponseLog(Path(tmp) / "responses", PiiEngine().redactor())
        apps = {"1 adapter": create_app(one, api_key="k"),
                "4 adapters": create_app(four, api_key="k", challenger_share=0.5),
                "1 adapter + response log": create_app(one, api_key="k", response_log=log)}
        messages = [[{"role": "user", "content": q}] for q in QUESTIONS]
        results = {name: {"latencies": [], "tokens": 0, "seconds": 0.0} for name in apps}
        with served_on_loopback(apps["1 adapter"]) as url_one, served_on_loopback(apps["4 adapters"]) as url_four, \
                served_on_loopback(apps["1 adapter + response log"]) as url_logged:
            urls = {"1 adapter": url_one, "4 adapters": url_four, "1 adapter + response log": url_logged}
            for round_ in range(ns.rounds + 1):  # round 0 warms every set-up up and is not counted
                for name, url in urls.items():
                    with httpx.Client(base_url=url, headers={"authorization": "Bearer k"}, timeout=600) as client:
                        started = time.perf_counter()
                        for i in range(ns.requests):
                            t0 = time.perf_counter()
                            reply = client.post("/v1/chat/completions", json={
                                "model": "billing" if name != "4 adapters" or i % 2 else "shipping",
                                "user": f"conversation-{round_}-{i}", "max_tokens": ns.max_tokens,
                                "messages": messages[i % len(messages)]})
                            reply.raise_for_status()
                            if round_:
                                results[name]["latencies"].append(time.perf_counter() - t0)
                                results[name]["tokens"] += reply.json()["usage"]["completion_tokens"]
                        if round_:
                            results[name]["seconds"] += time.perf_counter() - started
                log.flush()
    summary = {name: {"tokens_per_second": round(r["tokens"] / r["seconds"], 1),
                      "p50_ms": round(1000 * statistics.median(r["latencies"]), 1),
                      "requests": len(r["latencies"])} for name, r in results.items()}
    throughput_ratio = summary["4 adapters"]["tokens_per_second"] / summary["1 adapter"]["tokens_per_second"]
    logging_overhead = summary["1 adapter + response log"]["p50_ms"] / summary["1 adapter"]["p50_ms"] - 1
    result = {"benchmark": "serving_ab", "date": today(), "machine": machine(), "rounds": ns.rounds,
              "requests_per_round": ns.requests, "max_tokens": ns.max_tokens, "setups": summary,
              "throughput_4_vs_1": round(throughput_ratio, 3), "logging_p50_overhead": round(logging_overhead, 4)}
    report(result, ns.json, f"serving_ab: 4 adapters {throughput_ratio:.2f}x the throughput of 1 (target >= 0.9); "
                            f"response log adds {logging_overhead:+.1%} at P50 (target <= 5%)")


if __name__ == "__main__":
    main()
