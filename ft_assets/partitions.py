"""One partition per product; the landing-zone sensor and `tuneline demo` add them."""

import warnings
from contextlib import contextmanager

import dagster as dg

PRODUCTS_PARTITION_NAME = "products"
product_partitions = dg.DynamicPartitionsDefinition(name=PRODUCTS_PARTITION_NAME)


def product_check(name: str, asset: str, description: str, **kwargs) -> dg.AssetCheckSpec:
    """A check evaluated per product partition, so each result in the UI names its product. Partitioned checks
    are a Dagster preview (1.13): its warning is silenced here, the one place that opts in."""
    with partitioned_checks():
        return dg.AssetCheckSpec(name, asset=asset, description=description, partitions_def=product_partitions,
                                 **kwargs)


@contextmanager
def partitioned_checks():
    """Where tuneline defines checks per product partition (a Dagster 1.13 preview), without its warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=dg.PreviewWarning)
        yield


def latest_materialization(instance: dg.DagsterInstance, asset: str, product: str):
    """The newest materialization record of one product's partition of `asset`, or None."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[product]), limit=1).records
    return records[0] if records else None
