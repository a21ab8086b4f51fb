import json

import polars as pl

from tests.openai_stub import OpenAIStub
from tuneline.curation import CurationRules, score_conversations
from tuneline.ingest import MESSAGE_DTYPE
from tuneline.judge import Judge, mean_rubric, parse_judgement

GOOD = json.dumps({"helpfulness": 5, "accuracy": 5, "tone": 5, "completeness": 5, "justification": "clear"})
BAD = json.dumps({"helpfulness": 1, "accuracy": 1, "tone": 2, "completeness": 1, "justification": "wrong"})


def test_parse_judgement_accepts_json_in_prose_and_rejects_malformed():
    assert parse_judgement("Sure! " + GOOD + " done")["tone"] == 5.0
    assert parse_judgement("not json at all") is None
    assert parse_judgement('{"helpfulness": 9, "accuracy": 5, "tone": 5, "completeness": 5}') is None
    assert parse_judgement('{"helpfulness": "five"}') is None
    assert mean_rubric(parse_judgement(GOOD)) == 1.0 and mean_rubric(parse_judgement(BAD)) < 0.1


def test_judge_against_a_local_server_counts_malformed_answers():
    with OpenAIStub() as stub:
        stub.chat_replies = [GOOD, "I cannot answer in JSON", BAD]
        judge = Judge(stub.base_url, "judge-model", api_key="sk-test")
        results = [judge.score("Where is my parcel?", "It ships today.") for _ in range(3)]
        assert results[0]["helpfulness"] == 5.0 and results[1] is None and results[2]["accuracy"] == 1.0
        assert judge.stats.requested == 3 and judge.stats.malformed == 1
        assert stub.requests[0]["body"]["model"] == "judge-model"
        assert stub.requests[0]["auth"] == "Bearer sk-test"
        assert "Where is my parcel?" in stub.requests[0]["body"]["messages"][0]["content"]


def test_unreachable_judge_is_counted_not_fatal():
    judge = Judge("http://127.0.0.1:9/v1", "m", api_key="", timeout=1, max_retries=0)
    assert judge.score("q", "a") is None and judge.stats.failed == 1


def test_judge_scores_move_curation_quality():
    rows = [{"role": "user", "content": "My card was declined when I renewed my plan, what now?"},
            {"role": "assistant", "content": "Please check the card has not expired, then update it under "
                                             "Settings > Billing. We retry the charge within 3 days."}]
    frame = pl.DataFrame({"ticket_id": ["a"], "messages": pl.Series([rows], dtype=MESSAGE_DTYPE)})
    heuristic = score_conversations(frame)["quality_score"][0]
    with OpenAIStub() as stub:
        stub.chat_replies = [BAD]
        judged = score_conversations(frame, CurationRules(min_quality=0.6),
                                     judge=Judge(stub.base_url, "m", api_key=""))
    assert judged["judge_score"][0] < 0.1
    assert judged["quality_score"][0] < heuristic
    assert judged["status"][0] == "low_quality"
