import polars as pl
import pytest

from tuneline.cleaning import normalize_text
from tuneline.curation import CurationRules, funnel, near_duplicate_of, quality_score, score_conversations
from tuneline.ingest import MESSAGE_DTYPE
from tuneline.synthetic import PlantedTruth, generate_product_tickets


def _frame(rows):
    return pl.DataFrame({
        "ticket_id": [r["ticket_id"] for r in rows],
        "messages": pl.Series([[{"role": "user", "content": normalize_text(r["customer_message"])},
                                {"role": "assistant", "content": r["agent_response"]}] for r in rows],
                              dtype=MESSAGE_DTYPE),
    })


def test_planted_problems_are_filtered_with_their_reason():
    truth = PlantedTruth()
    rows = [r for r in generate_product_tickets("shipping", 150, seed=5, truth=truth) if r["agent_response"]]
    scored = score_conversations(_frame(rows))
    status = dict(zip(scored["ticket_id"], scored["status"], strict=True))
    shorts = [t for t in status if "-short" in t]
    foreign = [t for t in status if "-intl" in t]
    assert shorts and all(status[t] == "too_short" for t in shorts)
    assert foreign and all(status[t].startswith("language_") for t in foreign)
    # rows are shuffled, so a planted copy may come before its source: one of the two must be flagged
    for copy, source in truth.duplicate_pairs:
        assert (status[copy], status[source]).count("kept") <= 1, (copy, source, status[copy], status[source])
    kept = scored.filter(pl.col("status") == "kept")
    assert kept.height > 100
    assert kept["content_hash"].n_unique() == kept.height


def test_near_duplicate_detection_threshold():
    base = "user: my parcel never arrived and the tracking page has not changed for a whole week now, please help"
    texts = [base, "Hello, " + base + " Thanks.", "user: how do I turn on two factor authentication for my account"]
    assert near_duplicate_of(texts, CurationRules()) == [None, 0, None]
    assert near_duplicate_of(texts, CurationRules(near_dup_threshold=0.95)) == [None, None, None]


def test_quality_score_prefers_substantive_non_repetitive_replies():
    question = "My card was declined when I renewed. What should I do?"
    good = "Please check the card has not expired, then update it under Settings > Billing. We retry within 3 days."
    assert quality_score(question, good) > quality_score(question, "ok ok ok ok ok ok ok ok") > 0
    assert quality_score(question, "") == 0.0


def test_funnel_is_monotone_and_ends_at_kept_count():
    truth = PlantedTruth()
    rows = [r for r in generate_product_tickets("billing", 80, seed=2, truth=truth) if r["agent_response"]]
    scored = score_conversations(_frame(rows))
    stages = funnel(scored)
    values = list(stages.values())
    assert values == sorted(values, reverse=True)
    assert stages["raw"] == scored.height
    assert stages["final"] == scored.filter(pl.col("status") == "kept").height


def test_dedup_on_real_banking77_queries_with_every_filter_on(shared_data):
    queries = pl.read_csv(shared_data / "banking77" / "train_sample.csv")["text"].to_list()[:800]
    redelivered = queries[:40]
    frame = pl.DataFrame({
        "ticket_id": [str(i) for i in range(len(queries) + len(redelivered))],
        "messages": pl.Series([[{"role": "user", "content": q},
                                {"role": "assistant", "content": "I can help you with that right away."}]
                               for q in queries + redelivered], dtype=MESSAGE_DTYPE)})
    scored = score_conversations(frame)  # the default rules: length, language, dedup and quality all on
    statuses = scored["status"].to_list()
    assert len(statuses) == frame.height
    for i in range(len(redelivered)):
        original, copy = statuses[i], statuses[len(queries) + i]
        assert copy == original if original != "kept" else copy in ("exact_duplicate", "near_duplicate"), i
    assert statuses.count("exact_duplicate") >= len(redelivered)
    assert statuses.count("kept") > 700


def test_quality_score_ranks_real_replies_above_mismatched_and_canned_ones(shared_data):
    """On real bitext pairs: the agent's own reply scores above another ticket's reply, which scores above a
    canned non-answer. (The gap to mismatched replies is small: the score is a weak judge of relevance.)"""
    import random

    bitext = pl.read_csv(shared_data / "bitext" / "tickets.csv").head(400)
    questions, replies = bitext["instruction"].to_list(), bitext["response"].to_list()
    shuffled = replies[:]
    random.Random(0).shuffle(shuffled)

    def mean_quality(pairs):
        frame = pl.DataFrame({"ticket_id": [str(i) for i in range(len(pairs))], "messages": pl.Series(
            [[{"role": "user", "content": q}, {"role": "assistant", "content": r}] for q, r in pairs],
            dtype=MESSAGE_DTYPE)})
        return score_conversations(frame)["quality_score"].mean()

    real = mean_quality(list(zip(questions, replies, strict=True)))
    mismatched = mean_quality(list(zip(questions, shuffled, strict=True)))
    canned = mean_quality([(q, "I can help you with that right away.") for q in questions])
    assert real > mismatched + 0.02 and mismatched > canned + 0.1, (real, mismatched, canned)


def test_a_conversation_two_products_share_belongs_to_the_first_by_key_in_any_order():
    from tuneline.curation import CrossProductIndex, IndexSettingsMismatch, index_settings, signature_frame

    rules = CurationRules()
    shared = {"ticket_id": "t1", "customer_message": "my parcel never arrived and the tracking page has not "
              "changed for a whole week", "agent_response": "I have asked the carrier to trace it and will send "
              "the new tracking link today"}
    frame = _frame([shared])
    index = {"billing": signature_frame(frame, rules), "shipping": signature_frame(frame, rules)}
    assert index["billing"].height == 1 and index["billing"]["signature"].list.len()[0] == rules.num_perm
    assert index_settings(index) == {"near_dup_threshold": 0.8, "num_perm": 128, "shingle_words": 5}
    # billing sorts first: it keeps the conversation, shipping marks it, whichever is scored first
    for product, expected in (("shipping", "cross_product_duplicate"), ("billing", "kept")):
        others = CrossProductIndex({p: f for p, f in index.items() if p != product}, rules)
        assert score_conversations(frame, rules, index=others, product=product)["status"].to_list() == [expected]
    changed = {**index, "shipping": signature_frame(frame, CurationRules(near_dup_threshold=0.9))}
    with pytest.raises(IndexSettingsMismatch, match="backfill near_duplicate_index"):
        index_settings(changed)


def test_csat_moves_the_quality_score():
    question = "My card was declined when I renewed. What should I do?"
    reply = "Please check the card has not expired, then update it under Settings > Billing. We retry within 3 days."
    assert quality_score(question, reply, csat=5) > quality_score(question, reply) > quality_score(question, reply, 1)
    from tuneline.curation import normalized_csat

    assert normalized_csat(5) == 1.0 and normalized_csat(1) == 0.0 and normalized_csat(70) == 0.7


def test_diversity_sampling_evens_out_strata():
    from tuneline.curation import diversity_sample

    frame = pl.DataFrame({"topic": ["refund"] * 90 + ["login"] * 10, "difficulty": ["short"] * 100,
                          "sentiment": ["neu"] * 100, "quality_score": [i / 100 for i in range(100)]})
    chosen = diversity_sample(frame, 20, seed=1)
    picked = frame[sorted(chosen)]
    assert len(chosen) == 20
    assert picked["topic"].value_counts().sort("topic")["count"].to_list() == [10, 10]
    refund = picked.filter(pl.col("topic") == "refund")["quality_score"]
    assert refund.min() >= 0.8, "within a stratum the best-scored examples come first"


def test_target_size_marks_the_rest_not_sampled_and_funnel_accounts_for_them():
    truth = PlantedTruth()
    rows = [r for r in generate_product_tickets("account", 80, seed=4, truth=truth) if r["agent_response"]]
    scored = score_conversations(_frame(rows), CurationRules(target_size=30))
    counts = dict(scored.group_by("status").len().iter_rows())
    assert counts["kept"] == 30 and counts["not_sampled"] > 0
    assert funnel(scored)["final"] == 30 and funnel(scored)["raw"] == scored.height
    assert {"topic", "difficulty", "sentiment"} <= set(scored.columns)


def test_kb_agreement_rewards_replies_that_match_the_knowledge_base():
    from tuneline.curation import kb_agreement_scores, quality_score

    users = ["How do I reset my password?", "How do I reset my password on the app?",
             "How do I reset my password please?", "Where is my parcel?"]
    replies = ["Open Settings, choose Security, click Reset password and follow the emailed link.",
               "Open Settings, then Security, click Reset password; a link arrives by email.",
               "We cannot help with that, sorry.", "It ships tomorrow."]
    is_kb = [True, False, False, False]
    scores = kb_agreement_scores(users, replies, is_kb)
    assert scores[0] is None  # the article itself
    assert scores[1] > 0.8 and scores[2] == 0.0  # same question: agreeing vs contradicting reply
    assert scores[3] is None  # no article asks this: the component is left out, not counted as zero
    assert quality_score(users[1], replies[1], kb_agreement=scores[1]) > quality_score(
        users[2], replies[2], kb_agreement=scores[2])
    assert kb_agreement_scores(users, replies, [False] * 4) == [None] * 4


def test_batches_find_duplicates_of_earlier_batches(redactor):
    from tuneline.curation import score_in_batches

    rows = [r for r in generate_product_tickets("billing", 120, seed=8, truth=PlantedTruth()) if r["agent_response"]]
    first = _frame(rows[:60])
    copy = {**rows[0], "ticket_id": "copy-of-first"}
    near = {**rows[1], "ticket_id": "near-of-first", "customer_message": rows[1]["customer_message"] + " Thanks!"}
    second = _frame(rows[60:] + [copy, near])
    scored = list(score_in_batches([first, second], redactor))
    status = dict(zip(scored[1]["ticket_id"], scored[1]["status"], strict=True))
    assert status["copy-of-first"] == "exact_duplicate"
    assert status["near-of-first"] in ("near_duplicate", "exact_duplicate")
    from tuneline.cleaning import clean_conversations

    whole = score_conversations(clean_conversations(pl.concat([first, second]), redactor))
    assert sum(len(s) for s in scored) == whole.height
    assert sum(int((s["status"] == "kept").sum()) for s in scored) == int((whole["status"] == "kept").sum())


def test_batches_refuse_diversity_sampling(redactor):
    import pytest

    from tuneline.curation import score_in_batches

    with pytest.raises(ValueError, match="target_size"):
        list(score_in_batches([], redactor, CurationRules(target_size=10)))


def test_signatures_from_the_index_score_exactly_as_hashing_again(monkeypatch):
    """scored_dataset hands score_conversations the product's index signatures: the statuses are the ones
    hashing every text again gives, and no text with a stored signature is hashed."""
    import tuneline.curation as curation
    from tuneline.curation import CrossProductIndex, reusable_signatures, signature_frame

    rules = CurationRules()
    truth = PlantedTruth()
    frame = _frame([r for r in generate_product_tickets("shipping", 150, seed=5, truth=truth) if r["agent_response"]])
    other = _frame([r for r in generate_product_tickets("billing", 60, seed=6, truth=PlantedTruth())
                    if r["agent_response"]])
    index = CrossProductIndex({"billing": signature_frame(other, rules)}, rules)
    expected = score_conversations(frame, rules, index=index, product="shipping")
    signatures = reusable_signatures(signature_frame(frame, rules), rules)
    hashed = []
    original = curation.minhash_of
    monkeypatch.setattr(curation, "minhash_of", lambda text, r: hashed.append(text) or original(text, r))
    reused = score_conversations(frame, rules, index=index, product="shipping", signatures=signatures)
    assert reused.equals(expected)
    assert "near_duplicate" in expected["status"].to_list() and hashed == []


def test_text_features_of_conversations_scored_before_are_reused_exactly(monkeypatch):
    """Language and sentiment are kept by the conversation's exact turns and the feature code's digest: a
    second scoring with the first one's features detects nothing again and gives the same frame; a changed
    turn is measured again; another digest reuses nothing."""
    import tuneline.curation as curation
    from tuneline.curation import reusable_text_features

    rows = [r for r in generate_product_tickets("shipping", 80, seed=3, truth=PlantedTruth()) if r["agent_response"]]
    first = score_conversations(_frame(rows))
    measured = []
    original = curation.detect_language
    monkeypatch.setattr(curation, "detect_language", lambda texts: measured.extend(texts) or original(texts))
    again = score_conversations(_frame(rows), features=reusable_text_features(first))
    assert again.equals(first) and measured == []

    changed = [{**rows[0], "customer_message": rows[0]["customer_message"].upper()}, *rows[1:]]
    score_conversations(_frame(changed), features=reusable_text_features(first))
    assert len(measured) == 1  # only the conversation whose turns changed (case included)

    measured.clear()
    monkeypatch.setattr(curation, "text_features_digest", lambda: "another feature code")
    score_conversations(_frame(rows), features=reusable_text_features(first))
    assert len(measured) == len(rows)
