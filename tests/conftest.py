"""Shared fixtures: a tiny chat model built offline, one presidio engine per session, the real data folder."""

import os
import socket
import urllib.request
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT_ROOT.parent / "shared" / "data"


def age_files(root: Path, seconds: float = 120) -> None:
    """Back-date every file under `root`: landing files younger than min_age_seconds are still being written
    and are not ingested, so tests that write a landing zone and ingest at once mark it as delivered."""
    import time

    past = time.time() - seconds
    for path in Path(root).rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.utime(path, (past, past))


@pytest.fixture(autouse=True)
def fixed_installation_key(monkeypatch):
    """One installation key for every test storage root: the thread-hash splits of a small product then do not
    depend on a random key (with one, a 40-ticket product drew no test ticket about once in 40 runs). Servers
    started as subprocesses get TUNELINE_PSEUDONYM_KEY from their test instead."""
    import ft_resources.storage

    monkeypatch.setattr(ft_resources.storage, "new_installation_secret", lambda: "tuneline-tests-installation-key")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real public datasets not found at {SHARED_DATA} (they sit beside the project in CI and "
                    "on developer machines, not in a user's clone)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from tuneline.synthetic import PRODUCTS, PlantedTruth, generate_product_tickets
    from tuneline.tiny_model import build_tiny_chat_model

    truth = PlantedTruth()
    corpus = []
    for product in PRODUCTS:
        for row in generate_product_tickets(product, 80, seed=3, truth=truth):
            corpus += [row["customer_message"], row["agent_response"]]
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-model"), corpus)


@pytest.fixture(scope="session")
def redactor():
    from ft_resources.pii import PiiEngine

    return PiiEngine().redactor()  # the same cached engine the assets use in this process


@pytest.fixture
def home(tmp_path) -> Path:
    return tmp_path / "tuneline-home"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def s3_endpoint(monkeypatch):
    from moto.server import ThreadedMotoServer

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    yield endpoint
    # moto keeps its backends in process-wide state: reset so the next test starts with an empty S3
    urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
    server.stop()
