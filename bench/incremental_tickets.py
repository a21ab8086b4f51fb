"""New tickets for one large product: what the data stages (ingest -> cleaned -> near-duplicate index ->
scored -> splits) cost when 1% new tickets arrive, against rebuilding the product from scratch. Same data,
one run; every build is a fresh process (as every Dagster run is), so no in-memory cache of an earlier build
helps a later one: the full rebuild starts from an empty storage root, the incremental build follows the
first build on its root (cleaned_conversations and near_duplicate_index reuse what they already hold).

    python -m bench.incremental_tickets --tickets 20000 --new-share 0.01
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import embedded_model, machine, report, today

DATA_ASSETS = ["raw_tickets", "rejected_tickets", "cleaned_conversations", "near_duplicate_index", "scored_dataset",
               "dataset_splits"]


def write_tickets(folder: Path, n: int, seed: int, name: str) -> None:
    import polars as pl

    from tuneline.synthetic import PlantedTruth, generate_product_tickets

    rows = generate_product_tickets("billing", n, seed, PlantedTruth())
    folder.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(rows).with_columns(pl.format(f"{seed}-{{}}", "ticket_id").alias("ticket_id"),
                                    pl.format(f"{seed}-{{}}", "thread_id").alias("thread_id")).write_csv(folder / name)
    old = time.time() - 3600  # older than the landing zone's readiness age
    os.utime(folder / name, (old, old))


def build(home: Path) -> dict:
    """One materialization of the data stages for `billing` on `home` (run in its own process)."""
    import resource

    import dagster as dg

    from ft_assets.definitions import Settings, all_assets, build_resources
    from ft_assets.partitions import PRODUCTS_PARTITION_NAME

    resources = build_resources(Settings(home=str(home), model_source="local", model=embedded_model()))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])
        started = time.perf_counter()
        result = dg.materialize(all_assets(), selection=DATA_ASSETS, instance=instance, resources=resources,
                                partition_key="billing")
        assert result.success
        seconds = time.perf_counter() - started
        steps = {e.step_key: round(e.event_specific_data.duration_ms / 1000, 1)
                 for e in result.get_step_success_events()}
    return {"seconds": round(seconds, 1), "steps": steps,
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 2)}


def _build_in_process(home: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "bench.incremental_tickets", "--build", str(home)],
                          capture_output=True, text=True)
    if done.returncode != 0:  # the build's own error, not only its exit status
        raise RuntimeError(f"build on {home} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--new-share", type=float, default=0.01)
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)  # one build, in this process
    parser.add_argument("--json")
    ns = parser.parse_args()
    if ns.build:
        print(json.dumps(build(ns.build)))
        return
    new = max(1, int(ns.tickets * ns.new_share))
    with tempfile.TemporaryDirectory() as tmp:
        incremental_home, full_home = Path(tmp) / "incremental", Path(tmp) / "full"
        for home in (incremental_home, full_home):
            write_tickets(home / "landing" / "billing", ns.tickets, 1, "tickets-0001.csv")
        first = _build_in_process(incremental_home)
        for home in (incremental_home, full_home):  # 1% new tickets in a new file, on both roots
            write_tickets(home / "landing" / "billing", new, 2, "tickets-0002.csv")
        incremental = _build_in_process(incremental_home)
        full = _build_in_process(full_home)
    ratio = incremental["seconds"] / full["seconds"]
    result = {"benchmark": "incremental_tickets", "date": today(), "machine": machine(), "tickets": ns.tickets,
              "new_tickets": new, "first_build": first, "incremental": incremental, "full_rebuild": full,
              "ratio": round(ratio, 3)}
    report(result, ns.json, f"incremental_tickets: {new} new on {ns.tickets}: {incremental['seconds']:.1f} s vs a full "
                            f"rebuild {full['seconds']:.1f} s = {ratio:.1%} (target <= 5%); peak RSS of the full "
                            f"rebuild {full['peak_rss_gib']:.2f} GiB")


if __name__ == "__main__":
    main()
