"""Shared helpers: run a function in a fresh process to measure its own peak memory, and machine facts."""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import resource
import time


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


def measure_in_subprocess(fn, *args) -> dict:
    """fn(*args) -> dict runs in a spawned process; adds wall seconds (inside fn) and that process's peak RSS."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    process = ctx.Process(target=_child, args=(queue, fn, args))
    process.start()
    result = queue.get()
    process.join()
    return result


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
