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
