"""Run every benchmark side by side and append results to bench/results/<date>.jsonl.

    python -m bench.run_all            # the full set (several minutes on 2 cores)
    python -m bench.run_all --quick    # a smoke run with tiny sizes
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from bench.common import today


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    ns = parser.parse_args()
    out = Path(__file__).parent / "results" / f"{today()}.jsonl"
    out.parent.mkdir(exist_ok=True)
    runs = [
        ["bench.sensor_tick", "--files", "1000" if ns.quick else "10000"],
        ["bench.data_prep", "--tickets", *(["200"] if ns.quick else ["1000", "3000", "10000"])],
        ["bench.training", "--steps", "2" if ns.quick else "16"],
        *([] if ns.quick else [["bench.precision", "--seeds", "1", "2"], ["bench.compile", "--steps", "32"]]),
        ["bench.serving", *(["--requests", "4", "--max-tokens", "8"] if ns.quick else ["--requests", "32"])],
        ["bench.incremental", *(["--products", "2", "--tickets", "20"] if ns.quick else ["--products", "10"])],
    ]
    for module, *args in runs:
        print(f"== {module} {' '.join(args)}", flush=True)
        subprocess.run([sys.executable, "-m", module, *args, "--json", str(out)], check=True)
    print(f"results appended to {out}")


if __name__ == "__main__":
    main()
