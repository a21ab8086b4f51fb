"""The data stages over real text: bitext's 11 categories as products, real presidio, no training."""

import dagster as dg
import pytest

from ft_assets.definitions import Settings, all_assets, build_resources
from ft_assets.partitions import PRODUCTS_PARTITION_NAME
from ft_resources.io_manager import read_asset_frame
from tests.conftest import age_files
from tuneline.ingest import split_by_product

DATA_ASSETS = {"raw_tickets", "rejected_tickets", "cleaned_conversations", "near_duplicate_index",
               "scored_dataset", "dataset_splits",
               "curation_funnel", "product_ticket_stats", "stg_tickets", "split_stats"}
BITEXT_MAPPING = {"id_column": "none", "thread_column": "none", "user_column": "instruction",
                  "assistant_column": "response"}


@pytest.mark.slow  # the whole data graph over 11 real categories (~80 s); test_assets keeps one whole-graph run
def test_bitext_categories_materialize_as_products(tmp_path, shared_data, tiny_model_dir):
    home = tmp_path / "home"
    counts = split_by_product(shared_data / "bitext" / "tickets.csv", home / "landing", "category")
    age_files(home / "landing")
    resources = build_resources(Settings(home=str(home), model_source="local", model=str(tiny_model_dir)))
    assets = [a for a in all_assets() if {k.to_user_string() for k in a.keys} <= DATA_ASSETS]
    totals = {"in": 0, "kept": 0, "rejected": 0, "final": 0, "dedup": 0}
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, sorted(counts))
        for product in sorted(counts):
            result = dg.materialize(assets, instance=instance, resources=resources, partition_key=product,
                                    run_config={"ops": {"ingest_tickets": {"config": BITEXT_MAPPING},
                                                        # the tiny test tokenizer needs ~3x the real one's tokens
                                                        "dataset_splits": {"config": {"max_tokens": 2048}}}})
            assert result.success, product
            assert all(c.passed for c in result.get_asset_check_evaluations()
                       if c.check_name != "split_ratios_per_topic"), product
            raw = read_asset_frame(home, "raw_tickets", product)
            rejected = read_asset_frame(home, "rejected_tickets", product)
            scored = read_asset_frame(home, "scored_dataset", product)
            totals["in"] += counts[product]
            totals["kept"] += raw.height
            totals["rejected"] += rejected.height
            totals["final"] += int((scored["status"] == "kept").sum())
            totals["dedup"] += int(scored["status"].str.contains("duplicate").sum())
            assert raw["metadata"].str.contains('"intent"').all()
    print("bitext totals", totals)
    assert totals["in"] == 1801 == totals["kept"] + totals["rejected"]
    assert 0.5 * totals["kept"] < totals["final"] <= totals["kept"]
