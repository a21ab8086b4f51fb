"""Landing-sensor tick time with 10k files: scanning the landing zone and planning runs (local disk).

    python -m bench.sensor_tick --files 10000
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import machine, report, today


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--products", type=int, default=10)
    parser.add_argument("--json")
    ns = parser.parse_args()
    from ft_sensors.landing import plan_landing_tick, scan_landing

    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp)
        for i in range(ns.files):
            folder = landing / f"product{i % ns.products}"
            folder.mkdir(exist_ok=True)
            (folder / f"tickets-{i:05d}.jsonl").write_text("{}\n")
        now = time.time() + 60
        started = time.perf_counter()
        found = scan_landing(landing, 5, now)
        _, runs, cursor = plan_landing_tick(found, {}, set())
        first = time.perf_counter() - started
        started = time.perf_counter()
        _, again, _ = plan_landing_tick(scan_landing(landing, 5, now), cursor, set(found))
        steady = time.perf_counter() - started
    result = {"benchmark": "sensor_tick", "date": today(), "machine": machine(), "files": ns.files,
              "first_tick_seconds": round(first, 3), "steady_tick_seconds": round(steady, 3),
              "runs_first_tick": len(runs), "runs_steady_tick": len(again)}
    report(result, ns.json, f"sensor tick with {ns.files} files: steady {steady:.3f} s")


if __name__ == "__main__":
    main()
