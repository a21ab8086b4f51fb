"""The production loop end to end: a real MLflow server holds champion and challenger, `tuneline serve`'s app
answers over HTTP with both adapters of one product (tiny model), a seeded load generator sends traffic and
feedback in which the challenger is truly better, and the A/B assets decide: the rollout advances, the
registry alias moves and the running server follows; a challenger that errors is rolled back."""

import random

import dagster as dg
import httpx
import pytest

from tests.test_serving import served_on_loopback
from tests.test_training import _chat_file
from tests.test_training_runs import mlflow_server  # noqa: F401 - the real MLflow server fixture
from tuneline.registry import register_adapter, rollout_state
from tuneline.serving import served_share
from tuneline.training import TrainConfig, main

PRODUCT = "billing"
NAME = f"tuneline-{PRODUCT}"
RESOLVES = {"champion": 0.3, "challenger": 0.9}  # the challenger is truly better
POLICY = {"min_feedback": 30, "min_guard_requests": 20}


def test_served_share_follows_the_registry():
    state = {"champion": {"adapter_dir": "/a/v1"}, "challenger": {"adapter_dir": "/a/v2"}, "share": 0.5}
    assert served_share(state, "/a/v2") == 0.5
    assert served_share({**state, "champion": {"adapter_dir": "/a/v2"}, "challenger": None}, "/a/v2") == 1.0
    assert served_share({**state, "challenger": None, "share": 0.0}, "/a/v2") == 0.0  # rolled back
    assert served_share({**state, "challenger": {"adapter_dir": "/a/v3"}}, "/a/v2") == 0.0  # replaced
    assert served_share(state, None) == 0.0


@pytest.fixture(scope="module")
def adapters(tiny_model_dir, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("versions")
    return {v: main(TrainConfig(model=str(tiny_model_dir), train_file=str(_chat_file(tmp / f"{v}.jsonl", 8)),
                                output_dir=str(tmp / v), max_steps=1, learning_rate=lr,
                                gradient_accumulation_steps=1))["adapter_dir"]
            for v, lr in (("v1", 0.05), ("v2", 0.2), ("v3", 0.1))}


def _drive(url: str, conversations: range, rng: random.Random, key: dict) -> dict[str, int]:
    """The load generator: one question per conversation, feedback that resolves as RESOLVES says per arm."""
    arms = {"champion": 0, "challenger": 0}
    with httpx.Client(base_url=url, headers=key, timeout=60) as client:
        for i in conversations:
            answer = client.post("/v1/chat/completions", json={
                "model": PRODUCT, "user": f"conversation-{i}", "max_tokens": 2,
                "messages": [{"role": "user", "content": f"My invoice {i} is wrong, I am Dana Whitfield"}]})
            if answer.status_code != 200:
                arms.setdefault("errors", 0)
                arms["errors"] += 1
                continue
            arm = answer.json()["tuneline"]["arm"]
            arms[arm] += 1
            resolved = rng.random() < RESOLVES[arm]
            feedback = client.post("/v1/feedback", json={"response_id": answer.json()["id"], "resolved": resolved,
                                                         "csat": 5 if resolved else 2})
            assert feedback.status_code == 200, feedback.text
    return arms


def _report(root, tracking_uri) -> dict:
    from ft_assets.production import ab_test_report, served_conversations
    from ft_resources.storage import TunelineStorage
    from ft_resources.tracking import MlflowTracking

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("products", [PRODUCT])
        result = dg.materialize([served_conversations, ab_test_report], instance=instance, partition_key=PRODUCT,
                                resources={"storage": TunelineStorage(root=str(root)),
                                           "tracking": MlflowTracking(tracking_uri=tracking_uri)},
                                run_config={"ops": {"ab_test_report": {"config": POLICY}}})
        assert result.success
        served = result.output_for_node("served_conversations")
        assert "Whitfield" not in "".join(served["prompt"].drop_nulls())  # logged redacted
        return result.output_for_node("ab_test_report")


def _summary(title: str, report: dict) -> str:
    """The report as the resolution note shows it (`pytest -s`)."""
    lines = [f"{title}: {report['decision']['action']} -> share {report['decision']['share']} "
             f"({report['decision']['reason']})"]
    for arm, numbers in report["arms"].items():
        resolved = numbers["resolved"]
        lines.append(f"  {arm}: {numbers['requests']} requests, errors {numbers['error_rate']}, resolved "
                     f"{resolved['rate']} [{resolved['ci_low']}, {resolved['ci_high']}] of {resolved['n']}, "
                     f"p95 {numbers['p95_seconds']} s")
    return "\n".join(lines)


def _serve(tiny_model_dir, root, champion: str, challenger: str, tracking_uri: str, failing: bool = False):
    from ft_resources.pii import PiiEngine
    from tuneline.serving import AdapterServer, RegistryRollout, ResponseLog, create_app

    server = AdapterServer(str(tiny_model_dir), {PRODUCT: champion}, {PRODUCT: challenger})
    if failing:  # the challenger's generation breaks on every request
        complete = server.complete

        def broken(product, messages, max_new_tokens, max_seconds=60.0, arm="champion"):
            if arm == "challenger":
                raise RuntimeError("adapter weights unreadable")
            return complete(product, messages, max_new_tokens, max_seconds, arm)

        server.complete = broken
    rollout = RegistryRollout(tracking_uri, {PRODUCT: challenger}, poll_seconds=3600)  # refreshed by hand below
    log = ResponseLog(root / "serving" / "responses", PiiEngine().redactor())
    return create_app(server, api_key="ab", challenger_share=rollout, response_log=log), rollout, log


def test_a_better_challenger_is_rolled_out_and_a_failing_one_rolled_back(tiny_model_dir, adapters, tmp_path,
                                                                         mlflow_server):  # noqa: F811
    key = {"authorization": "Bearer ab"}
    rng = random.Random(7)
    register_adapter(mlflow_server, NAME, adapters["v1"], {"rougeL": 0.3}, promote=True)
    registered = register_adapter(mlflow_server, NAME, adapters["v2"], {"rougeL": 0.35}, promote=True,
                                  challenger_share=0.1)
    assert registered["challenger"] and not registered["champion"]
    assert rollout_state(mlflow_server, NAME)["share"] == 0.1

    app, rollout, log = _serve(tiny_model_dir, tmp_path, adapters["v1"], adapters["v2"], mlflow_server)
    assert rollout(PRODUCT) == 0.1
    with served_on_loopback(app) as url:
        first = _drive(url, range(0, 360), rng, key)
        assert 20 <= first["challenger"] <= 60, first  # ~10% of conversations
        log.flush()
        report = _report(tmp_path, mlflow_server)
        assert report["decision"]["action"] == "advance" and report["decision"]["share"] == 0.5, report["decision"]
        assert report["resolution"]["diff"] > 0 and report["resolution"]["significant"]  # the expected sign
        assert report["resolution"]["ci_low"] > 0
        print(_summary("first report", report))
        rollout.refresh()  # what the server's poll thread does every --rollout-poll-seconds
        assert rollout(PRODUCT) == 0.5

        second = _drive(url, range(360, 440), rng, key)
        assert second["challenger"] > second["champion"] / 3, second  # half of the new conversations
        log.flush()
        report = _report(tmp_path, mlflow_server)
        assert report["decision"]["action"] == "promote", report["decision"]
        print(_summary("second report", report))
        state = rollout_state(mlflow_server, NAME)
        assert state["champion"]["version"] == registered["version"] and state["challenger"] is None
        rollout.refresh()
        assert rollout(PRODUCT) == 1.0  # the running server answers with the promoted adapter from now on
        assert _drive(url, range(440, 450), rng, key)["champion"] == 0

    # a new challenger whose generation fails: the guard rail rolls it back, the champion stays
    third = register_adapter(mlflow_server, NAME, adapters["v3"], {"rougeL": 0.4}, promote=True, challenger_share=0.1)
    app, rollout, log = _serve(tiny_model_dir, tmp_path, adapters["v2"], adapters["v3"], mlflow_server, failing=True)
    with served_on_loopback(app) as url:
        arms = _drive(url, range(1000, 1300), rng, key)
        assert arms["errors"] >= 20 and arms["challenger"] == 0, arms
        log.flush()
        report = _report(tmp_path, mlflow_server)
        assert report["decision"]["action"] == "rollback" and "error rate" in report["decision"]["reason"]
        assert report["arms"]["challenger"]["error_rate"] == 1.0
        print(_summary("failing challenger", report))
        state = rollout_state(mlflow_server, NAME)
        assert state["challenger"] is None and state["share"] == 0.0
        assert state["champion"]["version"] == registered["version"] != third["version"]
        rollout.refresh()
        assert rollout(PRODUCT) == 0.0


def test_rollout_sensor_runs_the_report_when_a_product_log_grows(tmp_path):
    from ft_resources.storage import TunelineStorage
    from ft_sensors.rollout import rollout_sensor

    storage = TunelineStorage(root=str(tmp_path))
    folder = storage.response_log_dir(PRODUCT)
    folder.mkdir(parents=True)
    (folder / "responses-2026-11-29.jsonl").write_text("x" * 70_000)
    (folder / "notes.txt").write_text("y" * 500_000)  # not a log file: never counted
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("products", [PRODUCT, "shipping"])

        def evaluate(cursor):
            context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"storage": storage})
            results = list(rollout_sensor(context))
            return [r.partition_key for r in results if isinstance(r, dg.RunRequest)], context.cursor

        requested, cursor = evaluate(None)
        assert requested == [PRODUCT]
        assert evaluate(cursor)[0] == []  # nothing new
        with (folder / "feedback-2026-11-29.jsonl").open("w") as fh:
            fh.write("z" * 10_000)
        assert evaluate(cursor)[0] == []  # below 64 KiB of growth
        with (folder / "feedback-2026-11-29.jsonl").open("a") as fh:
            fh.write("z" * 60_000)
        assert evaluate(cursor)[0] == [PRODUCT]


def _served_frame(n: int, errors: int, question: str, repeats: int = 1):
    from tuneline.ab_testing import served_frame

    responses = [{"response_id": f"r{i}", "arm": "champion", "created": float(i), "latency_seconds": 0.5 + i / 100,
                  "error": i < errors, "reply": "Open Settings, then Billing.",
                  "messages": [{"role": "user", "content": question * (1 + i % repeats)}]} for i in range(n)]
    return served_frame(responses, [])


def test_serving_health_alerts_on_errors_drift_and_a_low_judge_score(tmp_path):
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    import polars as pl

    from ft_assets.production import ServingHealthConfig, serving_health
    from ft_resources.alerts import AlertWebhook
    from ft_resources.llm import JudgeResource
    from tests.openai_stub import OpenAIStub

    posted = []

    class Hook(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):  # noqa: N802 - http.server's name
            posted.append(json.loads(self.rfile.read(int(self.headers["content-length"]))))
            self.send_response(200)
            self.end_headers()

    from ft_resources.io_manager import asset_partition_path
    from ft_resources.storage import TunelineStorage

    train = pl.DataFrame({"split": ["train"] * 40, "topic": ["billing"] * 40,
                          "messages": [[{"role": "user", "content": "Where is my invoice for March?"},
                                        {"role": "assistant", "content": "In Billing."}]] * 40})
    storage = TunelineStorage(root=str(tmp_path))  # dataset_splits as the data run wrote it
    splits_file = asset_partition_path(tmp_path, "dataset_splits", PRODUCT, "parquet")
    splits_file.parent.mkdir(parents=True)
    train.write_parquet(splits_file)
    hook = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    bad = json.dumps({"helpfulness": 1, "accuracy": 1, "tone": 2, "completeness": 1, "justification": "wrong"})
    try:
        with OpenAIStub() as stub:
            stub.chat_replies = [bad] * 5
            judge = JudgeResource(enabled=True, base_url=stub.base_url, model="judge", api_key="")
            alerts = AlertWebhook(url=f"http://127.0.0.1:{hook.server_port}/hook")
            config = ServingHealthConfig(judge_sample=5)
            with dg.build_asset_context(partition_key=PRODUCT) as context:
                unhealthy = serving_health(context, config, served_conversations=_served_frame(
                    60, 6, "My parcel never arrived and the courier says it was delivered to someone else. ", 3),
                    storage=storage, judge=judge, alerts=alerts).value
            with dg.build_asset_context(partition_key=PRODUCT) as context:
                healthy = serving_health(context, ServingHealthConfig(), served_conversations=_served_frame(
                    60, 0, "Where is my invoice for March?"), storage=storage, judge=JudgeResource(),
                    alerts=alerts).value
    finally:
        hook.shutdown()
    assert unhealthy["judged"] == 5 and unhealthy["judge_score"] < 0.5
    assert [a.split(" ")[0] for a in unhealthy["alerts"]] == ["error", "live", "judge"], unhealthy["alerts"]
    assert unhealthy["alert_sent"] and len(posted) == 1 and PRODUCT in posted[0]["text"]
    assert healthy["alerts"] == [] and not healthy["drift"]["drifted"] and len(posted) == 1
