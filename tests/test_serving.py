"""The serving endpoint over real HTTP on loopback, spoken to with the `openai` client."""

import contextlib
import socket
import threading
import time

import httpx
import pytest

from tests.test_training import _chat_file
from tuneline.training import TrainConfig, main


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tiny_model_dir, tmp_path_factory):
    from tuneline.serving import AdapterServer, create_app

    tmp = tmp_path_factory.mktemp("serve")
    adapters = {}
    for product in ("billing", "shipping"):
        train_file = str(_chat_file(tmp / f"{product}.jsonl", 8))
        adapters[product] = main(TrainConfig(model=str(tiny_model_dir), train_file=train_file,
                                             output_dir=str(tmp / product), max_steps=1, learning_rate=0.05,
                                             gradient_accumulation_steps=1))["adapter_dir"]
    app = create_app(AdapterServer(str(tiny_model_dir), adapters), api_key="serve-secret",
                     metrics_file=tmp / "metrics.json")
    with served_on_loopback(app) as url:
        yield {"url": url, "metrics_file": tmp / "metrics.json"}


@contextlib.contextmanager
def served_on_loopback(app):
    """uvicorn serving `app` on a free loopback port in a thread; yields its base URL."""
    import uvicorn

    port = _free_port()
    uv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=uv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not uv.started:
        assert time.time() < deadline, "server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        uv.should_exit = True
        thread.join(timeout=10)


AUTH = {"authorization": "Bearer serve-secret"}


def _prometheus_samples(text: str) -> dict:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _client(server, key="serve-secret"):
    from openai import OpenAI

    return OpenAI(base_url=server["url"] + "/v1", api_key=key, max_retries=0)


def test_models_and_a_completion_per_product(server):
    client = _client(server)
    assert sorted(m.id for m in client.models.list().data) == ["billing", "shipping"]
    for product in ("billing", "shipping"):
        reply = client.chat.completions.create(model=product, max_tokens=5,
                                               messages=[{"role": "user", "content": "Where is my refund?"}])
        assert reply.model == product and reply.choices[0].finish_reason in ("stop", "length")
        assert reply.usage.completion_tokens <= 5 and reply.usage.prompt_tokens > 0
    assert httpx.get(server["url"] + "/metrics").status_code == 401, "/metrics is behind the key by default"
    prometheus = httpx.get(server["url"] + "/metrics", headers=AUTH)
    assert prometheus.headers["content-type"].startswith("text/plain")
    samples = _prometheus_samples(prometheus.text)
    for product in ("billing", "shipping"):  # per product and arm
        assert samples[("tuneline_requests_total", (("arm", "champion"), ("outcome", "ok"), ("product", product)))] >= 1
        assert samples[("tuneline_tokens_total", (("arm", "champion"), ("kind", "prompt"), ("product", product)))] > 0
        assert samples[("tuneline_request_seconds_count", (("arm", "champion"), ("product", product)))] >= 1
    from openai import NotFoundError

    with pytest.raises(NotFoundError):  # a model nobody serves mints no label value
        client.chat.completions.create(model='evil"label', max_tokens=1, messages=[{"role": "user", "content": "hi"}])
    after = _prometheus_samples(httpx.get(server["url"] + "/metrics", headers=AUTH).text)
    assert not [k for k in after if "evil" in str(k)]
    assert after[("tuneline_requests_total", (("arm", "none"), ("outcome", "error"), ("product", "none")))] >= 1
    metrics = httpx.get(server["url"] + "/metrics.json", headers=AUTH).json()
    assert metrics["requests"] >= 2 and metrics["p50_seconds"] > 0 and metrics["p99_seconds"] >= metrics["p50_seconds"]
    assert server["metrics_file"].is_file()


def test_auth_and_validation_errors(server):
    import openai

    with pytest.raises(openai.AuthenticationError):
        _client(server, key="wrong").models.list()
    url = server["url"] + "/v1/chat/completions"
    auth = {"authorization": "Bearer serve-secret"}
    assert httpx.post(url, json={"model": "billing", "messages": []}).status_code == 401
    cases = [
        ({"model": "billing", "messages": []}, 400),
        ({"model": "billing", "messages": [{"role": "robot", "content": "hi"}]}, 400),
        ({"model": "billing", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 100000}, 400),
        ({"model": "nope", "messages": [{"role": "user", "content": "hi"}]}, 404),
        ({"model": "billing", "messages": [{"role": "user", "content": "hi"}], "stream": True}, 400),
    ]
    for body, status in cases:
        response = httpx.post(url, json=body, headers=auth)
        assert response.status_code == status, (body, response.text)
        assert response.json()["error"]["message"]
    broken = httpx.post(url, content=b"{not json", headers={**auth, "content-type": "application/json"})
    assert broken.status_code == 400
    huge = {"model": "billing", "messages": [{"role": "user", "content": "x" * 70_000}]}
    assert httpx.post(url, json=huge, headers=auth).status_code == 413


def test_merged_export_matches_base_plus_adapter(tiny_model_dir, tmp_path):
    from tuneline.export import export_merged

    adapter = main(TrainConfig(model=str(tiny_model_dir), train_file=str(_chat_file(tmp_path / "t.jsonl", 8)),
                               output_dir=str(tmp_path / "adapter"), max_steps=2, learning_rate=0.05,
                               gradient_accumulation_steps=1))["adapter_dir"]
    result = export_merged(adapter, str(tmp_path / "merged"), max_new_tokens=8)
    assert result["parity"] and (tmp_path / "merged" / "config.json").is_file()
    assert not (tmp_path / "merged" / "adapter_config.json").exists()


def test_serving_metrics_asset_reads_what_the_server_wrote(server, tmp_path):
    import shutil

    import dagster as dg

    from ft_assets.serving import serving_metrics
    from ft_resources.storage import TunelineStorage

    (tmp_path / "serving").mkdir()
    shutil.copy(server["metrics_file"], tmp_path / "serving" / "metrics.json")
    with dg.instance_for_test() as instance:
        result = dg.materialize([serving_metrics], instance=instance,
                                resources={"storage": TunelineStorage(root=str(tmp_path))})
    metadata = result.asset_materializations_for_node("serving_metrics")[0].metadata
    assert metadata["requests"].value >= 2 and metadata["p95_seconds"].value > 0


@pytest.mark.slow  # the serving load test; the fast suite keeps single requests and the hostile ones
def test_bounded_load_on_loopback(server):
    """200 requests at concurrency 8: no errors, and the server's own percentiles agree."""
    from concurrent.futures import ThreadPoolExecutor

    client = _client(server)

    def one(i):
        started = time.perf_counter()
        reply = client.chat.completions.create(model=("billing", "shipping")[i % 2], max_tokens=4,
                                               messages=[{"role": "user", "content": f"order {i} is late"}])
        return time.perf_counter() - started, reply.choices[0].finish_reason

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(one, range(200)))
    latencies = sorted(seconds for seconds, _ in results)
    p95 = latencies[int(0.95 * len(latencies)) - 1]
    print(f"load: 200 requests, concurrency 8, client P95 {p95 * 1000:.0f} ms")
    assert len(results) == 200 and all(reason in ("stop", "length") for _, reason in results)
    assert httpx.get(server["url"] + "/metrics.json", headers=AUTH).json()["requests"] >= 200
