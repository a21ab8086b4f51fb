"""The path from a passed gate to served answers, run for real: the registered_model asset registers and
promotes, `tuneline serve --from-registry` serves the champions over HTTP, a rollback through the CLI
switches the served adapter and the answers change with it."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import httpx
import pytest

from ft_assets.evaluation import registered_model
from ft_assets.partitions import PRODUCTS_PARTITION_NAME, product_partitions
from ft_resources.io_manager import PartitionedFileIOManager, asset_partition_path
from ft_resources.storage import TunelineStorage
from ft_resources.tracking import MlflowTracking
from tests.conftest import _free_port
from tuneline.registry import champion_version
from tuneline.storage import atomic_write_json
from tuneline.training import TrainConfig, main


def _chats(path: Path, reply: str, n: int = 16) -> Path:
    rows = [{"messages": [{"role": "system", "content": "You are a support agent."},
                          {"role": "user", "content": f"Question number {i} about my order?"},
                          {"role": "assistant", "content": reply}]} for i in range(n)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _adapter(home: Path, tiny_model_dir, name: str, reply: str) -> dict:
    """An adapter trained hard towards one reply, so that two of them answer differently."""
    out = home / "adapters" / "billing" / name
    home.mkdir(parents=True, exist_ok=True)
    summary = main(TrainConfig(model=str(tiny_model_dir), train_file=str(_chats(home / f"{name}.jsonl", reply)),
                               output_dir=str(out), max_steps=12, learning_rate=0.05, gradient_accumulation_steps=1))
    return {**summary, "adapter_key": f"adapters/billing/{name}"}


def _register(instance, home, uri, lora_adapter: dict, rouge: float):
    """registered_model over upstream values as the IO manager stores them (a gate that passed)."""
    atomic_write_json(asset_partition_path(home, "lora_adapter", "billing", "json"), lora_adapter)
    atomic_write_json(asset_partition_path(home, "eval_report", "billing", "json"),
                      {"tuned": {"rougeL": rouge}, "gate": {"passed": True, "reasons": []}})
    upstream = [dg.AssetSpec(name, partitions_def=product_partitions) for name in ("lora_adapter", "eval_report")]
    result = dg.materialize([registered_model, *upstream], instance=instance, partition_key="billing",
                            resources={"io_manager": PartitionedFileIOManager(root=str(home)),
                                       "storage": TunelineStorage(root=str(home)),
                                       "tracking": MlflowTracking(tracking_uri=uri)})
    return result.asset_materializations_for_node("registered_model")[0].metadata


def _serve(uri, home, port, key):
    env = {**os.environ, "TUNELINE_SERVE_KEY": key, "TUNELINE_HOME": str(home)}
    process = subprocess.Popen([sys.executable, "-m", "tuneline.cli", "serve", "--from-registry", "billing",
                                "--api-key-env", "TUNELINE_SERVE_KEY", "--tracking-uri", uri, "--port", str(port),
                                "--home", str(home)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120
    while time.time() < deadline:
        assert process.poll() is None, process.stdout.read().decode()[-3000:]
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.3)
    process.kill()
    raise AssertionError("tuneline serve did not come up")


def _served_answer(uri, home) -> str:
    """Start `tuneline serve --from-registry billing`, ask it one question with the openai client, stop it."""
    from openai import OpenAI

    key, port = "registry-path-key", _free_port()
    server = _serve(uri, home, port, key)
    try:
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        reply = client.chat.completions.create(model="billing", max_tokens=8, messages=[
            {"role": "user", "content": "Question number 99 about my order?"}])
        return reply.choices[0].message.content
    finally:
        server.terminate()
        server.wait(timeout=30)


@pytest.mark.slow  # two `tuneline serve` processes (~1 min); CI runs it with the slow suite
def test_promotion_serving_and_rollback_change_the_answers(tmp_path, tiny_model_dir):
    from tuneline.cli import main as cli

    home = tmp_path / "home"
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    first = _adapter(home, tiny_model_dir, "v-a", "Refund sent today.")
    second = _adapter(home, tiny_model_dir, "v-b", "Please restart the router first.")
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, ["billing"])
        assert _register(instance, home, uri, first, 0.3)["champion"].value is True
        assert champion_version(uri, "tuneline-billing")["version"] == 1
        assert _register(instance, home, uri, second, 0.4)["version"].value == 2
    assert champion_version(uri, "tuneline-billing")["version"] == 2, "the second promotion moved the alias"

    served_second = _served_answer(uri, home)
    assert cli(["registry", "rollback", "--product", "billing", "--version", "1", "--tracking-uri", uri]) == 0
    served_first = _served_answer(uri, home)
    assert served_first != served_second, "rolling back the champion changed what is served"
