"""Experiment tracking: MLflow, a local sqlite store under the storage root unless a server URI is given."""

from __future__ import annotations

import dagster as dg


class MlflowTracking(dg.ConfigurableResource):
    """`tracking_uri`: sqlite:///<root>/mlflow.db by default, or http://your-mlflow:5000."""

    tracking_uri: str
    experiment: str = "tuneline"
