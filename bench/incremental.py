"""Incremental cost: with 10 products materialized end to end, new tickets arrive for one product. Rebuild
only what that makes stale (Dagster's data versions say which partitions; their downstream follows, as
the sensor + eager automation do) vs rebuilding every product. Same graph, same config, one process.

The model is a tiny chat model built from a config (training cost is not what this measures; the
training benchmark does that), so the graph's fixed overhead per partition shows in full.

    python -m bench.incremental --products 10 --tickets 40
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import machine, report, today

RUN_CONFIG = {"ops": {
    "lora_adapter": {"config": {"max_steps": 4, "gradient_accumulation_steps": 1}},
    "eval_report": {"config": {"max_examples": 4, "max_new_tokens": 8}},
    "preference_adapter": {"config": {"max_steps": 1}},
}}


def stale_partitions(instance, assets, products) -> dict[str, list[str]]:
    """{product: [stale or missing asset, ...]} as the UI computes it (CachingStaleStatusResolver)."""
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph
    from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
    from dagster._core.loader import LoadingContextForTest

    graph = AssetGraph.from_assets(assets)
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    stale: dict[str, list[str]] = {}
    for key in graph.materializable_asset_keys:
        if graph.get(key).partitions_def is None:
            continue
        for product in products:
            if resolver.get_status(key, product) != StaleStatus.FRESH:
                stale.setdefault(product, []).append(key.to_user_string())
    return stale


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--products", type=int, default=10)
    parser.add_argument("--tickets", type=int, default=40)
    parser.add_argument("--json")
    ns = parser.parse_args()
    import dagster as dg
    import polars as pl

    from ft_assets.definitions import Settings, build_resources, product_assets
    from ft_assets.partitions import PRODUCTS_PARTITION_NAME
    from tuneline.synthetic import PRODUCTS, PlantedTruth, generate_product_tickets
    from tuneline.tiny_model import build_tiny_chat_model

    kinds = list(PRODUCTS)
    products = [f"{kinds[i % len(kinds)]}-{i}" for i in range(ns.products)]

    def write_tickets(folder: Path, product: str, n: int, seed: int, name: str) -> None:
        rows = generate_product_tickets(product.rsplit("-", 1)[0], n, seed, PlantedTruth())
        folder.mkdir(parents=True, exist_ok=True)
        pl.DataFrame(rows).with_columns(pl.format(f"{product}-{seed}-{{}}", "ticket_id").alias("ticket_id"),
                                        pl.format(f"{product}-{seed}-{{}}", "thread_id").alias("thread_id"),
                                        pl.lit(product).alias("product")).write_csv(folder / name)

    with tempfile.TemporaryDirectory() as tmp, dg.instance_for_test(temp_dir=tmp) as instance:
        corpus = [t for r in generate_product_tickets("billing", 60, 3, PlantedTruth())
                  for t in (r["customer_message"], r["agent_response"]) if t]
        model = build_tiny_chat_model(Path(tmp) / "model", corpus)
        home = Path(tmp) / "home"
        for i, product in enumerate(products):
            write_tickets(home / "landing" / product, product, ns.tickets, i, "tickets-0001.csv")
        resources = build_resources(Settings(home=str(home), model_source="local", model=str(model),
                                             trainer="local"))
        assets = product_assets()
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, products)

        def materialize(product, selection=None, config=RUN_CONFIG):
            return dg.materialize(assets, instance=instance, resources=resources, partition_key=product,
                                  run_config=config, selection=selection, raise_on_error=False)

        for product in products:  # the initial build (also warms spaCy, presidio and torch up)
            materialize(product)
        started = time.perf_counter()
        for product in products:  # "rebuild everything", timed
            materialize(product)
        full = time.perf_counter() - started
        assert stale_partitions(instance, assets, products).keys() <= set(products)
        baseline_stale = stale_partitions(instance, assets, products)

        # new tickets for one product
        target = products[min(3, len(products) - 1)]
        write_tickets(home / "landing" / target, target, ns.tickets // 2, 99, "tickets-0002.csv")

        started = time.perf_counter()
        rebuilt = []
        for product in products:  # what the landing sensor does: ingest the product whose files changed
            if product == target:
                materialize(product, ["raw_tickets", "rejected_tickets"], config={})
        stale = {p: a for p, a in stale_partitions(instance, assets, products).items()
                 if set(a) - set(baseline_stale.get(p, []))}
        for product, roots in stale.items():  # then the stale assets and everything downstream of them
            selection = dg.AssetSelection.assets(*roots).downstream()
            materialize(product, selection)
            rebuilt.append(product)
        incremental = time.perf_counter() - started
    ratio = incremental / full
    result = {"benchmark": "incremental", "date": today(), "machine": machine(), "products": ns.products,
              "tickets_per_product": ns.tickets, "full_rebuild_seconds": round(full, 1),
              "incremental_seconds": round(incremental, 1), "rebuilt_products": rebuilt,
              "ratio": round(ratio, 3), "ideal_ratio": round(1 / ns.products, 3)}
    report(result, ns.json, f"incremental: {incremental:.1f} s vs full rebuild {full:.1f} s: {ratio:.3f} "
                            f"(ideal {1 / ns.products:.3f})")


if __name__ == "__main__":
    main()
