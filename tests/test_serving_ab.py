"""Champion and challenger of one product in one server over real HTTP: a stable arm per conversation,
every answer logged redacted, feedback validated and joined into the A/B report."""

import json

import httpx
import pytest

from tests.test_serving import served_on_loopback
from tests.test_training import _chat_file
from tuneline.ab_testing import ab_report, load_outcomes
from tuneline.training import TrainConfig, main

KEY = {"authorization": "Bearer ab-secret"}


@pytest.fixture(scope="module")
def ab_server(tiny_model_dir, tmp_path_factory):
    from ft_resources.pii import PiiEngine
    from tuneline.serving import AdapterServer, ResponseLog, create_app

    tmp = tmp_path_factory.mktemp("ab")
    dirs = {}
    for arm, lr in (("champion", 0.05), ("challenger", 0.2)):
        dirs[arm] = main(TrainConfig(model=str(tiny_model_dir), train_file=str(_chat_file(tmp / f"{arm}.jsonl", 8)),
                                     output_dir=str(tmp / arm), max_steps=1, learning_rate=lr,
                                     gradient_accumulation_steps=1))["adapter_dir"]
    server = AdapterServer(str(tiny_model_dir), {"billing": dirs["champion"]}, {"billing": dirs["challenger"]})
    log = ResponseLog(tmp / "served", PiiEngine().redactor())
    app = create_app(server, api_key="ab-secret", challenger_share=0.5, response_log=log)
    with served_on_loopback(app) as url:
        yield {"url": url, "log": log, "root": tmp / "served", "dirs": dirs, "server": server}


def _ask(server, conversation: str, text: str = "Where is my refund?") -> dict:
    body = {"model": "billing", "messages": [{"role": "user", "content": text}], "max_tokens": 4,
            "user": conversation}
    response = httpx.post(server["url"] + "/v1/chat/completions", json=body, headers=KEY, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def _lines(root, product, kind):
    return [json.loads(line) for path in sorted((root / product).glob(f"{kind}-*.jsonl"))
            for line in path.read_text().splitlines()]


def test_one_conversation_meets_one_arm_and_both_arms_serve(ab_server):
    arms = {f"conv-{i}": _ask(ab_server, f"conv-{i}")["tuneline"]["arm"] for i in range(16)}
    assert set(arms.values()) == {"champion", "challenger"}
    for conversation in list(arms)[:4]:
        assert _ask(ab_server, conversation)["tuneline"]["arm"] == arms[conversation]


def test_answers_and_feedback_are_logged_redacted_and_validated(ab_server):
    secret = "my name is Teresa Okafor, mail teresa.okafor@corp.example, card 4111 1111 1111 1111"
    answer = _ask(ab_server, "okafor@corp.example", secret)
    post = lambda body: httpx.post(ab_server["url"] + "/v1/feedback", json=body, headers=KEY, timeout=30)  # noqa: E731
    ok = post({"response_id": answer["id"], "resolved": True, "escalated": False, "csat": 5, "thumbs": "up",
               "corrected_reply": "Thanks Teresa Okafor, call me on 212-555-0187 if needed."})
    assert ok.status_code == 200 and ok.json()["recorded"]
    assert post({"response_id": "chatcmpl-" + "0" * 24, "resolved": True}).status_code == 404
    for bad in ({"response_id": answer["id"], "csat": 6}, {"response_id": answer["id"], "resolved": "yes"},
                {"response_id": answer["id"], "extra": 1}, {"response_id": "../../etc/passwd"}, {}):
        assert post(bad).status_code == 422, bad
    assert httpx.post(ab_server["url"] + "/v1/feedback", json={"response_id": answer["id"]}).status_code == 401
    ab_server["log"].flush()
    # Every field but the machine-made ones (random ids, hashes, times, paths), which can hold "4111" by chance.
    machine_made = {"response_id", "shadow_of", "conversation", "created", "adapter_dir", "latency_seconds"}
    lines = [line for p in (ab_server["root"] / "billing").iterdir() for line in p.read_text().splitlines()]
    records = [json.loads(line) for line in lines]
    written = json.dumps([{k: v for k, v in r.items() if k not in machine_made} for r in records])
    for value in ("Teresa", "Okafor", "okafor@corp.example", "4111", "555-0187"):
        assert value not in written, value
    responses = _lines(ab_server["root"], "billing", "responses")
    entry = next(r for r in responses if r["response_id"] == answer["id"])
    assert entry["arm"] == answer["tuneline"]["arm"] and entry["adapter_dir"] == ab_server["dirs"][entry["arm"]]
    assert "[EMAIL]" in entry["messages"][-1]["content"] and len(entry["conversation"]) == 16


def test_the_log_joins_into_an_ab_report(ab_server):
    answers = [_ask(ab_server, f"report-{i}") for i in range(12)]
    for a in answers:  # the challenger resolves everything, the champion nothing
        httpx.post(ab_server["url"] + "/v1/feedback", headers=KEY, timeout=30,
                   json={"response_id": a["id"], "resolved": a["tuneline"]["arm"] == "challenger"})
    ab_server["log"].flush()
    outcomes = load_outcomes(_lines(ab_server["root"], "billing", "responses"),
                             _lines(ab_server["root"], "billing", "feedback"))
    report = ab_report(outcomes)
    assert report["arms"]["challenger"]["resolved"]["rate"] > report["arms"]["champion"]["resolved"]["rate"]
    assert report["resolution"]["diff"] > 0


def test_shadow_mode_answers_with_the_champion_and_logs_the_challenger(ab_server, tmp_path):
    from ft_resources.pii import PiiEngine
    from tuneline.serving import ResponseLog, create_app

    log = ResponseLog(tmp_path / "shadow", PiiEngine().redactor())
    app = create_app(ab_server["server"], api_key="ab-secret", challenger_share=0.5, response_log=log, shadow=True)
    with served_on_loopback(app) as url:
        answers = [_ask({"url": url}, f"shadow-{i}", "Where is my parcel, Teresa Okafor here?") for i in range(6)]
        assert {a["tuneline"]["arm"] for a in answers} == {"champion"}  # every customer meets the champion
        import time

        deadline = time.time() + 60  # the challenger answers after each reply went out
        while len(_lines(tmp_path / "shadow", "billing", "responses")) < 12 and time.time() < deadline:
            time.sleep(0.2)
        log.flush()
    entries = _lines(tmp_path / "shadow", "billing", "responses")
    shadows = [e for e in entries if e["arm"] == "shadow"]
    assert sorted(e["shadow_of"] for e in shadows) == sorted(a["id"] for a in answers)
    assert all(e["adapter_dir"] == ab_server["dirs"]["challenger"] for e in shadows)
    assert "Okafor" not in "".join(p.read_text() for p in (tmp_path / "shadow" / "billing").iterdir())


def test_the_server_uses_the_system_prompt_each_adapter_was_trained_with(ab_server):
    """assign_splits put the product's system prompt first in every training record; the adapter's metadata
    recorded it, and a request without a system message is answered (and logged) with it."""
    import json as _json
    from pathlib import Path

    from tuneline.serving import trained_system_prompt

    records = [_json.loads(line) for line in
               (Path(ab_server["dirs"]["champion"]).parent / "champion.jsonl").read_text().splitlines()]
    trained = records[0]["messages"][0]["content"]
    assert records[0]["messages"][0]["role"] == "system" and "billing" in trained.lower()
    assert trained_system_prompt(ab_server["dirs"]["champion"], "billing") == trained
    assert ab_server["server"].system_prompt("billing") == trained
    answer = _ask(ab_server, "prompt-check", "Hello?")
    ab_server["log"].flush()
    entry = next(e for e in _lines(ab_server["root"], "billing", "responses") if e["response_id"] == answer["id"])
    assert entry["messages"][0] == {"role": "system", "content": trained}


def test_adapters_trained_with_different_chat_templates_are_refused(tmp_path):
    from tuneline.serving import shared_chat_template

    dirs = []
    for name, sha in (("a", "1" * 64), ("b", "1" * 64), ("c", "2" * 64)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "metadata.json").write_text(json.dumps({"chat_template_sha256": sha}))
        dirs.append(str(tmp_path / name))
    (tmp_path / "old").mkdir()  # trained before the template was recorded
    assert shared_chat_template(dirs[:2] + [str(tmp_path / "old")]) == "1" * 64
    assert shared_chat_template([str(tmp_path / "old")]) is None
    with pytest.raises(ValueError, match="different chat templates"):
        shared_chat_template(dirs)
