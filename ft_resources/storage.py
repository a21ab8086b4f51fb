"""Where everything lives: one storage root, one directory per kind of output."""

from __future__ import annotations

from pathlib import Path

import dagster as dg


class TunelineStorage(dg.ConfigurableResource):
    """The storage root (default ./.tuneline). Landing zone, exports, adapters and caches hang off it."""

    root: str
    landing: str | None = None  # defaults to <root>/landing

    @property
    def root_path(self) -> Path:
        return Path(self.root).resolve()

    @property
    def landing_path(self) -> Path:
        return Path(self.landing).resolve() if self.landing else self.root_path / "landing"

    def product_landing(self, product: str) -> Path:
        return self.landing_path / product

    def exports_dir(self, product: str) -> Path:
        return self.root_path / "exports" / product

    def adapter_dir(self, product: str) -> Path:
        return self.root_path / "adapters" / product

    def reports_dir(self, product: str) -> Path:
        return self.root_path / "reports" / product

    def work_dir(self, product: str) -> Path:
        return self.root_path / "work" / product

    @property
    def near_duplicate_index(self) -> Path:
        return self.root_path / "indexes" / "near_duplicates.pkl"

    @property
    def model_cache(self) -> Path:
        return self.root_path / "models"
