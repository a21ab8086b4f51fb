"""New tickets for one large product: what the data stages (ingest -> cleaned -> near-duplicate index ->
scored -> splits) cost when 1% new tickets arrive, against rebuilding the product from scratch. Same data,
one run; every build is a fresh process (as every Dagster run is), so no in-memory cache of an earlier build
helps a later one: the full rebuild starts from an empty storage root, the incremental build follows the
first build on its root (cleaned_conversations and near_duplicate_index reuse what they already hold).

    python -m bench.incremental_tickets --tickets 20000 --new-share 0.01

With --memory-only: one full build of --tickets landed in --files files (what a product accumulates over many
arrivals), reporting the build's peak RSS and the peak proportional set size of its process tree.

    python -m bench.incremental_tickets --tickets 1000000 --files 20 --memory-only

With --home ROOT --downstream: the assets after the data stages (SQL models, preference pairs) on a root the
data stages were built on, with the same measures.
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


DOWNSTREAM_ASSETS = ["stg_tickets", "product_ticket_stats", "curation_funnel", "split_stats", "preference_pairs"]


def build(home: Path, assets: list[str] = DATA_ASSETS) -> dict:
    """One materialization of `assets` (the data stages) for `billing` on `home` (run in its own process);
    their inputs from assets not selected are read from `home`."""
    import resource

    import dagster as dg

    from ft_assets.definitions import Settings, all_assets, build_resources
    from ft_assets.partitions import PRODUCTS_PARTITION_NAME

    resources = build_resources(Settings(home=str(home), model_source="local", model=embedded_model()))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])
        started = time.perf_counter()
        result = dg.materialize(all_assets(), selection=assets, instance=instance, resources=resources,
                                partition_key="billing")
        assert result.success
        seconds = time.perf_counter() - started
        steps = {e.step_key: round(e.event_specific_data.duration_ms / 1000, 1)
                 for e in result.get_step_success_events()}
    return {"seconds": round(seconds, 1), "steps": steps,
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024, 2)}


def _build_in_process(home: Path, downstream: bool = False) -> dict:
    """One build in a fresh process; adds the peak PSS of that process and any workers it forks (sampled twice a
    second: forked PII workers share the model's pages, which their RSS would count twice)."""
    from bench.common import peak_tree_pss

    process = subprocess.Popen([sys.executable, "-m", "bench.incremental_tickets", "--build", str(home),
                                *(["--downstream"] if downstream else [])],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    with peak_tree_pss(process.pid) as peak:
        stdout, stderr = process.communicate()
    if process.returncode != 0:  # the build's own error, not only its exit status
        raise RuntimeError(f"build on {home} failed:\n{stderr[-4000:]}")
    return {**json.loads(stdout.strip().splitlines()[-1]), "peak_tree_pss_gib": round(peak["mib"] / 1024, 2)}


def memory_only(tickets: int, files: int, json_path: str | None) -> None:
    """One full build of `tickets` in `files` landing files: the asset path's memory at a product's size."""
    per_file = -(-tickets // files)
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "full"
        for index in range(files):
            write_tickets(home / "landing" / "billing", min(per_file, tickets - index * per_file), index + 1,
                          f"tickets-{index + 1:04d}.csv")
        full = _build_in_process(home)
    result = {"benchmark": "incremental_tickets_memory", "date": today(), "machine": machine(), "tickets": tickets,
              "files": files, "full_build": full}
    report(result, json_path, f"incremental_tickets --memory-only: {tickets} tickets in {files} files: "
                              f"{full['seconds']:.1f} s, peak RSS {full['peak_rss_gib']:.2f} GiB, peak tree PSS "
                              f"{full['peak_tree_pss_gib']:.2f} GiB (target <= 4 GiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=20_000)
    parser.add_argument("--new-share", type=float, default=0.01)
    parser.add_argument("--files", type=int, default=1, help="landing files the tickets arrive in (--memory-only)")
    parser.add_argument("--memory-only", action="store_true", help="one full build; report its memory")
    parser.add_argument("--downstream", action="store_true",
                        help="with --build (or --home): the SQL models and preference pairs, on built data stages")
    parser.add_argument("--home", type=Path, help="a storage root the data stages were built on (--downstream)")
    parser.add_argument("--build", type=Path, help=argparse.SUPPRESS)  # one build, in this process
    parser.add_argument("--json")
    ns = parser.parse_args()
    if ns.build:
        print(json.dumps(build(ns.build, DOWNSTREAM_ASSETS if ns.downstream else DATA_ASSETS)))
        return
    if ns.home:  # the assets downstream of the data stages, on a root they were built on
        downstream = _build_in_process(ns.home, downstream=True)
        report({"benchmark": "incremental_tickets_downstream", "date": today(), "machine": machine(),
                "home": str(ns.home), "build": downstream}, ns.json,
               f"downstream of the data stages on {ns.home}: {downstream['seconds']:.1f} s, peak RSS "
               f"{downstream['peak_rss_gib']:.2f} GiB, peak tree PSS {downstream['peak_tree_pss_gib']:.2f} GiB")
        return
    if ns.memory_only:
        memory_only(ns.tickets, ns.files, ns.json)
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
