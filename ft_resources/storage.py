"""Where everything lives: one storage root, one directory per kind of output."""

from __future__ import annotations

from pathlib import Path

import dagster as dg


class TunelineStorage(dg.ConfigurableResource):
    """The storage root (default ./.tuneline). Exports, adapters, reports and caches hang off it."""

    root: str

    @property
    def root_path(self) -> Path:
        return Path(self.root).resolve()

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
