"""Which base model the graph fine-tunes: embedded SmolLM2 (default), a local directory, or a hub id."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from tuneline.models import resolve_model


class BaseModel(dg.ConfigurableResource):
    """`source`: embedded | local | hub. `location`: the directory (local) or model id (hub)."""

    source: str = "embedded"
    location: str | None = None

    def resolve(self, cache_dir: Path) -> str:
        return resolve_model(self.source, self.location, cache_dir)
