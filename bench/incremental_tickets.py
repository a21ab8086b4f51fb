"""New tickets for one large product: what the data stages (ingest -> cleaned -> near-duplicate index ->
scored -> splits) cost when 1% new tickets arrive, against rebuilding the product from scratch. Both in one
run, same data: the full rebuild starts from an empty storage root; the incremental run follows the first
build on the same root (cleaned_conversations reuses every ticket it cleaned under the same rules).

    python -m bench.incremental_tickets --tickets 20000 --new-share 0.01
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

from bench.common import machine, report, today

DATA_ASSETS = ["raw_tickets", "rejected_tickets", "cleaned_conversations", "near_duplicate_index", "scored_dataset",
               "dataset_splits"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--new-share", type=float, default=0.01)
    parser.add_argument("--json")
    ns = parser.parse_args()
    import dagster as dg
    import polars as pl

    from ft_assets.definitions import Settings, all_assets, build_resources
    from ft_assets.partitions import PRODUCTS_PARTITION_NAME
    from tuneline.synthetic import PlantedTruth, generate_product_tickets

    def write(folder: Path, n: int, seed: int, name: str) -> None:
        rows = generate_product_tickets("billing", n, seed, PlantedTruth())
        folder.mkdir(parents=True, exist_ok=True)
        pl.DataFrame(rows).with_columns(pl.format(f"{seed}-{{}}", "ticket_id").alias("ticket_id"),
                                        pl.format(f"{seed}-{{}}", "thread_id").alias("thread_id")
                                        ).write_csv(folder / name)

    new = max(1, int(ns.tickets * ns.new_share))
    timings = {}
    with tempfile.TemporaryDirectory() as tmp:
        def build(home: Path, label: str) -> float:
            resources = build_resources(Settings(home=str(home), model_source="local", model=str(home)))
            with dg.instance_for_test() as instance:
                instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])
                started = time.perf_counter()
                result = dg.materialize(all_assets(), selection=DATA_ASSETS, instance=instance, resources=resources,
                                        partition_key="billing")
                assert result.success
                timings[label] = round(time.perf_counter() - started, 1)
                return timings[label]

        incremental_home, full_home = Path(tmp) / "incremental", Path(tmp) / "full"
        for home in (incremental_home, full_home):
            write(home / "landing" / "billing", ns.tickets, 1, "tickets-0001.csv")
        _age(Path(tmp))
        build(incremental_home, "first_build")
        for home in (incremental_home, full_home):  # 1% new tickets in a new file, both roots
            write(home / "landing" / "billing", new, 2, "tickets-0002.csv")
        _age(Path(tmp))
        incremental = build(incremental_home, "incremental")
        full = build(full_home, "full_rebuild")
    ratio = incremental / full
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    result = {"benchmark": "incremental_tickets", "date": today(), "machine": machine(), "tickets": ns.tickets,
              "new_tickets": new, "seconds": timings, "ratio": round(ratio, 3), "peak_rss_gib": round(peak, 2)}
    report(result, ns.json, f"incremental_tickets: {new} new on {ns.tickets}: {incremental:.1f} s vs a full rebuild "
                            f"{full:.1f} s = {ratio:.1%} (target <= 5%); peak RSS {peak:.2f} GiB")


def _age(root: Path) -> None:
    """Landing files older than the landing zone's readiness age (a file still being written waits)."""
    import os

    old = time.time() - 3600
    for path in root.rglob("landing/**/*"):
        if path.is_file():
            os.utime(path, (old, old))


if __name__ == "__main__":
    main()
