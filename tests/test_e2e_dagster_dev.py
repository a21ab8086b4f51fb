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

DATA_ASSETS = ("raw_tickets", "cleaned_conversations", "near_duplicate_index", "scored_dataset", "dataset_splits")
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


def _materializations(url: str, product: str, assets=DATA_ASSETS) -> dict[str, str]:
    """{asset: latest run id} of the data assets for one product partition."""
    keys = ",".join(f'{{path: ["{a}"]}}' for a in assets)
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
           "TUNELINE_MODEL": str(tiny_model_dir),
           # a fixed key: splits are keyed hashes of thread ids, and with a random per-root key a 40-ticket product
           # drew an empty test split about once in 30 runs (eval_report then fails, as it must); with this key
           # billing has 4 test examples
           "TUNELINE_PSEUDONYM_KEY": "tuneline-e2e-k3"}
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
        assert sorted(p.name for p in folder.iterdir()) == sorted(
            f"{p}{suffix}" for p in PRODUCTS for suffix in (".parts", ".parts.json")), "rewritten, not added"


LAUNCH_RUN = """
mutation($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
RUN_STATUS = """query($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"""
STEP_FAILURES = """query($id: ID!) { logsForRun(runId: $id) { ... on EventConnection { events {
  __typename ... on ExecutionStepFailureEvent { stepKey error { message } } } } } }"""
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]


def _label_matches(label: str, name: str) -> bool:
    head, ellipsis, tail = label.partition("…")
    return label == name or bool(ellipsis and name.startswith(head) and name.endswith(tail))


def _wait_for_run(url: str, run_id: str, timeout: float = 600) -> str:
    deadline, status = time.time() + timeout, None
    while time.time() < deadline:
        status = _graphql(url, RUN_STATUS, {"id": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(2)
    return status


def _step_failures(url: str, run_id: str) -> dict[str, str]:
    """{step: error message} of a run's failed steps, so a failing test says why."""
    events = _graphql(url, STEP_FAILURES, {"id": run_id})["logsForRun"]["events"]
    return {e["stepKey"]: e["error"]["message"] for e in events if e["__typename"] == "ExecutionStepFailureEvent"}


def _train_and_evaluate(url: str, product: str) -> tuple[str, dict[str, str]]:
    """The retrain_product job (lora_adapter, eval_report, registered_model) for one product with a tiny config,
    launched as the UI's launchpad does."""
    params = {
        "selector": {"repositoryLocationName": "ft_assets.definitions:defs", "repositoryName": "__repository__",
                     "pipelineName": "retrain_product"},
        "runConfigData": {"ops": {
            "lora_adapter": {"config": {"max_steps": 2, "gradient_accumulation_steps": 1}},
            "eval_report": {"config": {"max_examples": 3, "max_new_tokens": 8}}}},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": product}]},
    }
    launched = _graphql(url, LAUNCH_RUN, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    return _wait_for_run(url, run_id), _step_failures(url, run_id)


def _write_served_log(home: Path, product: str) -> None:
    """What `tuneline serve --home` logs for a product: 60 answers (a fifth by the challenger) and feedback in
    which the challenger's answers resolve more often."""
    folder = home / "serving" / "responses" / product
    folder.mkdir(parents=True, exist_ok=True)
    responses, feedback = [], []
    for i in range(60):
        arm = "challenger" if i % 5 == 0 else "champion"
        responses.append({"response_id": f"r{i}", "arm": arm, "adapter_dir": f"/adapters/{arm}",
                          "conversation": f"c{i}", "created": 1_800_000_000.0 + i, "latency_seconds": 0.4 + i / 200,
                          "prompt_tokens": 40, "completion_tokens": 60 + i % 7, "finish_reason": "stop",
                          "error": False, "reply": "Open Settings, then Billing.",
                          "messages": [{"role": "user", "content": "Where is my invoice?"}]})
        feedback.append({"response_id": f"r{i}", "created": 1_800_000_100.0 + i,
                         "resolved": arm == "challenger" or i % 3 == 0, "escalated": i % 4 == 1, "csat": 3 + i % 3})
    (folder / "responses-2026-11-29.jsonl").write_text("".join(json.dumps(r) + "\n" for r in responses))
    (folder / "feedback-2026-11-29.jsonl").write_text("".join(json.dumps(f) + "\n" for f in feedback))


def _run_ab_rollout(url: str, product: str) -> tuple[str, dict[str, str]]:
    """The ab_rollout job (served_conversations, ab_test_report, serving_health) as rollout_sensor launches it."""
    params = {
        "selector": {"repositoryLocationName": "ft_assets.definitions:defs", "repositoryName": "__repository__",
                     "pipelineName": "ab_rollout"},
        "runConfigData": {},
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": product}]},
    }
    launched = _graphql(url, LAUNCH_RUN, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    return _wait_for_run(url, run_id), _step_failures(url, run_id)


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_ui_in_chromium(dagster_dev):
    from playwright.sync_api import expect, sync_playwright

    url, home = dagster_dev
    base = url.removesuffix("/graphql")
    _wait_for_data_assets(url, PRODUCTS, time.time() + 600)
    # the tiny model fails the blocking promotion gate, so the run ends FAILURE after eval_report was written
    status, failures = _train_and_evaluate(url, "billing")
    assert status in ("SUCCESS", "FAILURE"), status
    written = _materializations(url, "billing", ("lora_adapter", "eval_report"))
    assert set(written) == {"lora_adapter", "eval_report"}, (status, written, failures)
    _write_served_log(home, "billing")
    status, failures = _run_ab_rollout(url, "billing")
    assert status == "SUCCESS", failures
    ARTIFACTS.mkdir(exist_ok=True)
    runs_before = _graphql(url, "{ runsOrError { ... on Runs { results { runId } } } }")["runsOrError"]["results"]
    # the first-visit community dialog opens a second after the page, over whatever the test clicks next (on a busy
    # machine after any wait for it); marking it seen on the server, as its Skip button does, means it never opens
    _graphql(url, "mutation { setNuxSeen }")
    assert _graphql(url, "{ shouldShowNux }") == {"shouldShowNux": False}

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        try:
            # the asset graph: every group expanded (the canvas menu's "Expand all groups") shows every asset; a
            # tall viewport holds the whole graph (nodes outside it are not rendered)
            page.set_viewport_size({"width": 1600, "height": 1800})
            expected = ["raw_tickets", "rejected_tickets", "cleaned_conversations", "near_duplicate_index",
                        "scored_dataset", "dataset_splits",
                        "shared_adapter", "lora_adapter", "input_drift", "eval_report", "registered_model",
                        "preference_pairs", "preference_adapter", "serving_metrics", "stg_tickets",
                        "evaluation_leaderboard", "served_conversations", "ab_test_report", "serving_health",
                        "product_ticket_stats", "curation_funnel", "split_stats"]
            page.goto(f"{base}/asset-groups")
            # the canvas is a spinner until the graph is laid out (1-2 s idle, longer on a busy machine), and a
            # right-click on the spinner opens no menu: wait for the group nodes rather than for a fixed time
            page.locator("svg [class*=CollapsedGroupNode_collapsedGroupNodeBox]").first.wait_for(timeout=60000)
            page.mouse.click(900, 850, button="right")
            page.locator("text=Expand all groups >> visible=true").first.click()
            # one node per asset once every group is expanded; long labels are middle-truncated ("cle…_conversations")
            asset_names = page.locator("svg [class*=AssetNode_assetName]")
            expect(asset_names).to_have_count(len(expected), timeout=30000)
            page.screenshot(path=str(ARTIFACTS / "asset_graph.png"))
            shown = set(asset_names.all_text_contents())
            assert len(shown) == len(expected), shown
            assert all(any(_label_matches(s, a) for s in shown) for a in expected), shown
            page.set_viewport_size({"width": 1600, "height": 1000})

            # the product partitions are listed
            page.goto(f"{base}/assets/raw_tickets?view=partitions")
            page.get_by_text("Materialized (2)").wait_for(timeout=30000)
            text = page.inner_text("body")
            assert "billing" in text and "shipping" in text
            page.screenshot(path=str(ARTIFACTS / "partitions.png"))

            # the Overview timeline lists the runs by job name: the landing sensor's ingest_product, retrain_product
            page.goto(f"{base}/overview/timeline")
            page.get_by_text("retrain_product").first.wait_for(timeout=30000)
            assert "ingest_product" in page.inner_text("body")
            page.screenshot(path=str(ARTIFACTS / "overview_timeline.png"))

            # metadata people read renders as tables, without a click: the funnel and the evaluation report
            page.goto(f"{base}/assets/scored_dataset?view=events")
            page.get_by_text("after_dedup").first.wait_for(timeout=30000)
            body = page.inner_text("body")
            assert "share of raw" in body and "status_counts" in body and "[Show Markdown]" not in body
            page.screenshot(path=str(ARTIFACTS / "funnel_table.png"), full_page=True)
            page.goto(f"{base}/assets/eval_report?view=events")
            page.get_by_text("ended_with_eot").first.wait_for(timeout=30000)
            body = page.inner_text("body")
            assert "ci_low" in body and "per_topic" in body and "gate_passed" in body and "[Show Markdown]" not in body
            page.screenshot(path=str(ARTIFACTS / "eval_report_table.png"), full_page=True)

            # the A/B report: the per-arm table, and its numbers plotted per partition and over time
            page.goto(f"{base}/assets/ab_test_report?view=events")
            page.get_by_text("cost_per_request").first.wait_for(timeout=30000)
            body = page.inner_text("body")
            assert "challenger" in body and "resolved_ci_low" in body and "[Show Markdown]" not in body
            page.screenshot(path=str(ARTIFACTS / "ab_report_table.png"), full_page=True)
            page.goto(f"{base}/assets/ab_test_report")  # the overview's metadata: Table | Plots
            page.get_by_text("Plots", exact=True).first.click(timeout=30000)
            page.get_by_text("challenger_resolved_rate").first.wait_for(timeout=30000)
            page.screenshot(path=str(ARTIFACTS / "ab_report_plots.png"), full_page=True)

            # a check's execution names its product
            page.goto(f"{base}/assets/eval_report?view=checks&checkDetail=promotion_gate")
            page.get_by_text("billing: failed").first.wait_for(timeout=30000)
            assert "Partition\nbilling" in page.inner_text("body")
            page.screenshot(path=str(ARTIFACTS / "check_names_product.png"), full_page=True)

            # the catalog filtered by the pii tag lists exactly the assets holding pre-redaction text
            page.goto(f"{base}/assets?asset-selection=tag%3Apii%3Draw")
            page.get_by_text("stg_tickets").first.wait_for(timeout=30000)
            body = page.inner_text("body")
            pre_redaction = {"raw_tickets", "rejected_tickets", "stg_tickets", "product_ticket_stats"}
            assert all(a in body for a in pre_redaction), body
            assert not [a for a in expected if a not in pre_redaction and a in body], body
            page.screenshot(path=str(ARTIFACTS / "pii_raw_filter.png"))

            # launch one partition's materialization from the UI
            page.goto(f"{base}/assets/cleaned_conversations")
            page.get_by_role("button", name="Materialize").first.click()
            page.locator("[class*=TagSelector_tagSelectorContainer]").click()
            page.get_by_placeholder("Filter partitions").fill("billing")
            page.locator("[data-radix-popper-content-wrapper]").get_by_text("billing", exact=True).first.click()
            page.keyboard.press("Escape")
            page.screenshot(path=str(ARTIFACTS / "launch_dialog.png"))
            page.get_by_role("button", name="Launch 1 run").click()
            page.wait_for_timeout(2000)
        finally:
            page.screenshot(path=str(ARTIFACTS / "last_page.png"))
            browser.close()

    runs = _graphql(url, "{ runsOrError { ... on Runs { results { runId status tags { key value } "
                         "assetSelection { path } } } } }")["runsOrError"]["results"]
    new = [r for r in runs if r["runId"] not in {x["runId"] for x in runs_before}]
    launched = [r for r in new if {"key": "dagster/partition", "value": "billing"} in r["tags"]
                and [a["path"] for a in r["assetSelection"] or []] == [["cleaned_conversations"]]]
    assert launched, new
    assert _wait_for_run(url, launched[0]["runId"]) == "SUCCESS"
