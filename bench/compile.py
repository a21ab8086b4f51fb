"""Regional torch.compile of the decoder layers (`TrainConfig.compile_layers`) against eager training.

Same embedded model, 64 chats, batch 4, same seed; every optimizer step is timed. The compiled run pays its
compile time in the first step; the steady-state step time (median of the steps after the first four)
decides how many steps it takes to earn that back. The compiled run goes twice on one fresh inductor cache
directory: cold (what a new machine pays) and warm (a retrain on the same machine). The steady-state rate is
also given as useful (reply-token) training FLOPs, ~4 x parameters per token, against the fp32 matmul peak.

    python -m bench.compile --steps 32
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from statistics import median

from bench.common import embedded_model, machine, measure_in_subprocess, report, today


def timed_training(model: str, data: str, steps: int, compile_layers: bool, cache_dir: str | None = None) -> dict:
    import os

    if cache_dir:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache_dir
    from tuneline.training import TrainConfig, main

    stamps: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        started = time.perf_counter()
        summary = main(TrainConfig(model=model, train_file=data, output_dir=f"{tmp}/adapter", max_steps=steps,
                                   gradient_accumulation_steps=1, per_device_batch_size=4, logging_steps=1,
                                   compile_layers=compile_layers),
                       reporter=lambda event: stamps.append(time.perf_counter()) if "loss" in event else None)
    step_seconds = [b - a for a, b in zip([started, *stamps[:-1]], stamps, strict=True)]
    return {"compile_layers": compile_layers, "train_seconds": summary["train_seconds"],
            "useful_tokens_per_step": summary["supervised_tokens_seen"] / len(step_seconds),
            "first_step_seconds": round(step_seconds[0], 2),
            "steady_step_seconds": round(median(step_seconds[4:]), 3), "steps": len(step_seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--json")
    ns = parser.parse_args()
    if ns.steps < 6:
        raise SystemExit("--steps must be at least 6 (the steady state starts after step 4)")
    from bench.training import PARAMS, _data, matmul_peak_gflops

    model = embedded_model()
    with tempfile.TemporaryDirectory() as tmp:
        data = str(_data(Path(tmp) / "train.jsonl"))
        eager = measure_in_subprocess(timed_training, model, data, ns.steps, False)
        cold = measure_in_subprocess(timed_training, model, data, ns.steps, True, f"{tmp}/inductor")
        warm = measure_in_subprocess(timed_training, model, data, ns.steps, True, f"{tmp}/inductor")
    fp32_peak = matmul_peak_gflops("float32")
    for run in (eager, cold, warm):
        useful_gflops = 4 * PARAMS * run["useful_tokens_per_step"] / run["steady_step_seconds"] / 1e9
        run["steady_useful_share_of_fp32_peak"] = round(useful_gflops / fp32_peak, 3)
    steady = median([cold["steady_step_seconds"], warm["steady_step_seconds"]])
    speedup = eager["steady_step_seconds"] / steady
    saved_per_step = eager["steady_step_seconds"] - steady

    def break_even(run: dict) -> int | None:
        overhead = run["first_step_seconds"] - eager["first_step_seconds"]
        return round(overhead / saved_per_step) if saved_per_step > 0 else None

    result = {"benchmark": "compile", "date": today(), "machine": machine(), "fp32_peak_gflops": fp32_peak,
              "eager": eager, "compiled_cold": cold, "compiled_warm": warm,
              "break_even_steps_cold": break_even(cold), "break_even_steps_warm": break_even(warm),
              "ratio": round(speedup, 2)}
    report(result, ns.json, f"compile: steady-state step speed compiled/eager = {speedup:.2f}x; first step "
                            f"{cold['first_step_seconds']:.0f} s cold / {warm['first_step_seconds']:.0f} s warm "
                            f"vs {eager['first_step_seconds']:.0f} s; break-even after {break_even(cold)} steps cold, "
                            f"{break_even(warm)} warm")


if __name__ == "__main__":
    main()
