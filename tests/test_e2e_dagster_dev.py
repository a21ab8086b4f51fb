"""End to end with the real Dagster webserver and daemon: drop a file, watch the data assets appear."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tuneline.synthetic import write_landing_zone

DATA_ASSETS = ("raw_tickets", "cleaned_conversations", "scored_dataset", "dataset_splits")


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(url, data=json.dumps({"query": query}).encode(),
                                     headers={"content-type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=10).read())["data"]


def _materialized(url: str, product: str) -> set[str]:
    keys = ",".join(f'{{path: ["{a}"]}}' for a in DATA_ASSETS)
    data = _graphql(url, f"{{ assetNodes(assetKeys: [{keys}]) {{ assetKey {{ path }} "
                         f"assetMaterializations(partitions: [\"{product}\"], limit: 1) {{ runId }} }} }}")
    return {n["assetKey"]["path"][0] for n in data["assetNodes"] if n["assetMaterializations"]}


@pytest.mark.slow
def test_file_drop_to_materialized_splits(tmp_path, tiny_model_dir):
    project = Path(__file__).resolve().parent.parent
    home = tmp_path / "home"
    dagster_home = tmp_path / "dagster_home"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = _free_port()
    env = {**os.environ, "TUNELINE_HOME": str(home), "DAGSTER_HOME": str(dagster_home),
           "TUNELINE_SENSORS": "running", "TUNELINE_SENSOR_INTERVAL": "5", "TUNELINE_MODEL_SOURCE": "local",
           "TUNELINE_MODEL": str(tiny_model_dir)}
    dagster = Path(sys.executable).with_name("dagster")
    process = subprocess.Popen([str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                               cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}/graphql"
    try:
        deadline = time.time() + 120
        while True:
            try:
                _graphql(url, "{ version }")
                break
            except OSError:
                assert time.time() < deadline and process.poll() is None, "dagster dev did not come up"
                time.sleep(1)
        (home / "landing").mkdir(parents=True)
        write_landing_zone(home / "landing", ["billing"], 40)
        past = time.time() - 60
        for f in (home / "landing").rglob("*.*"):
            os.utime(f, (past, past))
        dropped = time.time()
        deadline = dropped + 480
        done: set[str] = set()
        while time.time() < deadline:
            try:
                done = _materialized(url, "billing")
            except Exception:  # the partition does not exist until the sensor's first tick
                done = set()
            if done == set(DATA_ASSETS):
                break
            time.sleep(3)
        print(f"file drop -> dataset_splits materialized in {time.time() - dropped:.0f} s")
        assert done == set(DATA_ASSETS)
        assert (home / "exports" / "billing" / "train.jsonl").is_file()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
