"""The production instance files in deploy/ are valid for the Dagster version we pin, launcher included."""

import importlib
import shutil
from pathlib import Path

import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"


@pytest.mark.parametrize("name", ["dagster.yaml", "dagster-k8s.yaml", "dagster-ecs.yaml"])
def test_instance_files_validate_with_their_run_launcher(name, tmp_path, monkeypatch):
    for var in ("DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD", "DAGSTER_PG_HOST", "DAGSTER_PG_DB"):
        monkeypatch.setenv(var, "x")
    shutil.copy(DEPLOY / name, tmp_path / "dagster.yaml")
    config, _ = dagster_instance_config(str(tmp_path))
    assert "postgres" in config["storage"] and config["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert config["run_monitoring"]["enabled"] and config["run_retries"]["enabled"]
    limits = config["concurrency"]["runs"]["tag_concurrency_limits"]
    assert {"key": "dagster/backfill", "limit": 4} in limits
    launcher = config.get("run_launcher")
    if launcher:  # the launcher's own schema, which the instance checks only when it starts one
        cls = getattr(importlib.import_module(launcher["module"]), launcher["class"])
        result = process_config(cls.config_type(), launcher["config"])
        assert result.success, result.errors


def test_the_workspace_loads_the_code_location_over_grpc():
    (entry,) = yaml.safe_load((DEPLOY / "workspace.yaml").read_text())["load_from"]
    assert set(entry) == {"grpc_server"} and entry["grpc_server"]["port"] == {"env": "TUNELINE_CODE_SERVER_PORT"}
