"""One partition per product; the landing-zone sensor and `tuneline demo` add them."""

import dagster as dg

PRODUCTS_PARTITION_NAME = "products"
product_partitions = dg.DynamicPartitionsDefinition(name=PRODUCTS_PARTITION_NAME)
