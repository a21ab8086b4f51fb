"""The topic side-by-side bench (bench/topic_prompt.py): training tickets carry their own topic, evaluation tickets
the predicted one, chosen only among their product's topics."""

from bench.topic_prompt import TopicPredictor, topic_route, with_topic


def _chat(product: str, topic: str, asked: str) -> dict:
    return {"messages": [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": asked},
                         {"role": "assistant", "content": "reply"}],
            "metadata": {"product": product, "topic": topic}}


TRAIN = [_chat("refund", "track_refund", "where is my refund, status please"),
         _chat("refund", "track_refund", "status of my refund?"),
         _chat("refund", "check_refund_policy", "what is your refund policy"),
         _chat("refund", "check_refund_policy", "policy for refunds, can you tell me"),
         _chat("delivery", "delivery_period", "how long does shipping take"),
         _chat("delivery", "delivery_period", "when will my order arrive, how long")]


def test_the_predicted_topic_comes_from_the_customers_words_and_the_products_own_topics():
    predictor = TopicPredictor(TRAIN)
    asked = [_chat("refund", "?", "can you tell me the refund policy"), _chat("refund", "?", "refund status?")]
    assert predictor.predict(asked) == ["check_refund_policy", "track_refund"]
    # words that point at delivery, asked of the refund product, still get one of refund's topics
    assert predictor.predict([_chat("refund", "?", "how long does shipping take")])[0] in {
        "track_refund", "check_refund_policy"}


def test_training_tickets_carry_their_own_topic_and_evaluation_tickets_the_predicted_one():
    route = topic_route(TRAIN)
    assert route.train(TRAIN[:1])[0]["messages"][0]["content"] == (
        "You are an agent. The request is about: track refund.")
    mislabelled = _chat("refund", "track_refund", "what is your refund policy")
    assert route.prompt([mislabelled])[0]["messages"][0]["content"].endswith("about: check refund policy.")
    assert with_topic(TRAIN[0], "x")["messages"][1:] == TRAIN[0]["messages"][1:]
    assert TRAIN[0]["messages"][0]["content"] == "You are an agent."
