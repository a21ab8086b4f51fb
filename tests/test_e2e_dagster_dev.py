"""End to end with the real Dagster webserver and daemon (`dagster dev` on loopback, temp DAGSTER_HOME):
a file drop materialized by the sensors, a backfill over products launched the way the UI launches it,
and the UI itself in Debian's Chromium driven by Playwright (screenshots under tests/artifacts/)."""

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

from ft_resources.io_manager import asset_partition_path
from tuneline.synthetic import write_landing_zone

DATA_ASSETS = ("raw_tickets", "cleaned_conversations", "scored_dataset", "dataset_splits")
PRODUCTS = ("billing", "shipping")
CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"

pytestmark = pytest.mark.slow


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(url: str, query: str, variables: dict | None = None) -> dict:
    request = urllib.request.Request(url, data=json.dumps({"query": query, "variables": variables or {}}).encode(),
                                     headers={"content-type": "application/json"})
    return json.loads(urllib.request.urlopen(request, timeout=30).read())["data"]


def _materializations(url: str, product: str) -> dict[str, str]:
    """{asset: latest run id} of the data assets for one product partition."""
    keys = ",".join(f'{{path: ["{a}"]}}' for a in DATA_ASSETS)
    data = _graphql(url, f"{{ assetNodes(assetKeys: [{keys}]) {{ assetKey {{ path }} "
                         f"assetMaterializations(partitions: [\"{product}\"], limit: 1) {{ runId }} }} }}")
    return {n["assetKey"]["path"][0]: n["assetMaterializations"][0]["runId"]
            for n in data["assetNodes"] if n["assetMaterializations"]}


def _wait_for_data_assets(url: str, products, deadline: float) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = {}
    while time.time() < deadline:
        try:
            found = {p: _materializations(url, p) for p in products}
        except Exception:  # the partitions do not exist until the sensor's first tick
            found = {}
        if found and all(set(found[p]) == set(DATA_ASSETS) for p in products):
            return found
        time.sleep(3)
    raise AssertionError(f"data assets not materialized in time: {found}")


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory, tiny_model_dir):
    """`dagster dev` with running sensors over a fresh storage root; yields (graphql url, home)."""
    project = Path(__file__).resolve().parent.parent
    base = tmp_path_factory.mktemp("e2e")
    home, dagster_home = base / "home", base / "dagster_home"
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
        yield url, home
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def test_file_drop_to_materialized_splits(dagster_dev):
    url, home = dagster_dev
    (home / "landing").mkdir(parents=True)
    write_landing_zone(home / "landing", list(PRODUCTS), 40)
    past = time.time() - 60
    for f in (home / "landing").rglob("*.*"):
        os.utime(f, (past, past))
    dropped = time.time()
    _wait_for_data_assets(url, PRODUCTS, dropped + 600)
    print(f"file drop -> dataset_splits materialized for {len(PRODUCTS)} products in {time.time() - dropped:.0f} s")
    for product in PRODUCTS:
        assert (home / "exports" / product / "train.jsonl").is_file()


LAUNCH_BACKFILL = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on InvalidSubsetError { message }
  }
}"""
BACKFILL_STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) { __typename ... on PartitionBackfill { status } }
}"""


def test_backfill_over_products_rewrites_each_partition(dagster_dev):
    url, home = dagster_dev
    before = _wait_for_data_assets(url, PRODUCTS, time.time() + 600)
    selection = [{"path": [a]} for a in (*DATA_ASSETS, "rejected_tickets")]
    launched = _graphql(url, LAUNCH_BACKFILL, {"params": {
        "partitionNames": list(PRODUCTS), "assetSelection": selection, "fromFailure": False}})
    result = launched["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    deadline, status = time.time() + 600, None
    while time.time() < deadline:
        status = _graphql(url, BACKFILL_STATUS, {"id": result["backfillId"]})["partitionBackfillOrError"]["status"]
        if status not in ("REQUESTED", "CANCELING", "FAILING"):
            break
        time.sleep(3)
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), status
    after = {p: _materializations(url, p) for p in PRODUCTS}
    for product in PRODUCTS:
        assert all(after[product][a] != before[product][a] for a in DATA_ASSETS), "every partition was rebuilt"
        folder = asset_partition_path(home, "raw_tickets", product, "parquet").parent
        assert sorted(p.name for p in folder.iterdir()) == [f"{p}.parquet" for p in PRODUCTS], "rewritten, not added"
