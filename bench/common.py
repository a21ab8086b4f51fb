"""Shared helpers: run a function in a fresh process to measure its own peak memory, and machine facts."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import platform
import resource
import threading
import time
from collections.abc import Iterator


def _child(queue, fn, args):
    started = time.perf_counter()
    result = fn(*args)
    seconds = time.perf_counter() - started
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # the largest process it forked and waited for (PII workers share the parent's pages copy-on-write, so the
    # two peaks overlap; their sum is an upper bound)
    child_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    queue.put({"seconds": seconds, "peak_rss_mib": round(peak_mib, 1), "worker_peak_rss_mib": round(child_mib, 1),
               **result})


def tree_pss_mib(pid: int) -> float:
    """Proportional set size of a process and its descendants (Linux): shared pages split between the
    processes sharing them, so forked workers are not counted twice as their RSS would be."""
    total_kib, pending = 0, [pid]
    while pending:
        current = pending.pop()
        try:
            with open(f"/proc/{current}/smaps_rollup") as fh:
                total_kib += next(int(line.split()[1]) for line in fh if line.startswith("Pss:"))
            with open(f"/proc/{current}/task/{current}/children") as fh:
                pending += [int(c) for c in fh.read().split()]
        except (OSError, StopIteration):
            continue
    return total_kib / 1024


@contextlib.contextmanager
def peak_tree_pss(pid: int) -> Iterator[dict]:
    """Samples `tree_pss_mib(pid)` twice a second while the block runs; the yielded dict's "mib" holds the peak."""
    peak, done = {"mib": 0.0}, threading.Event()

    def sample() -> None:
        while not done.wait(0.5):
            peak["mib"] = max(peak["mib"], tree_pss_mib(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield peak
    finally:
        done.set()
        sampler.join()


def measure_in_subprocess(fn, *args) -> dict:
    """fn(*args) -> dict runs in a spawned process; adds wall seconds (inside fn), that process's peak RSS, and
    the peak total PSS of it and its workers (sampled twice a second)."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(queue, fn, args))
    process.start()
    with peak_tree_pss(process.pid) as peak:
        result = queue.get()
    process.join()
    return {**result, "peak_tree_pss_mib": round(peak["mib"], 1)}


def embedded_model() -> str:
    """The embedded default model's directory (built from its PyPI wheel into .tuneline/models on first use)."""
    from pathlib import Path

    from tuneline.models import resolve_model

    return resolve_model("embedded", None, Path(".tuneline/models"))


def machine() -> str:
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores, {mem_gib:.0f} GiB, {platform.machine()}, Python {platform.python_version()}"


def today() -> str:
    return time.strftime("%Y-%m-%d")


def report(result: dict, json_path: str | None, last_line: str) -> None:
    """Print the result as JSON, append it to `json_path`, and end with the human-readable ratio line."""
    import json

    print(json.dumps(result))
    if json_path:
        with open(json_path, "a") as fh:
            fh.write(json.dumps(result) + "\n")
    print(last_line)
