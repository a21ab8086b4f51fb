"""The ticket's topic in the prompt, predicted from the customer's words, side by side with plain fine-tuning, on
bitext's categories as products (issue 18). Dev data only: validation splits decide.

    python -m bench.bitext_quality prepare --home /tmp/bq          # the data graph, once
    python -m bench.topic_prompt --home /tmp/bq --products refund delivery feedback contact

Why: a product adapter's greedy replies answer another topic of the product than the customer asked about (a
refund's status for a request for the refund policy) in about a third of REFUND's and DELIVERY's validation
tickets, and those replies score far lower. A classifier over the customer's words (character n-gram TF-IDF and
logistic regression, scikit-learn, fitted on the training split's topics) names the topic almost always. Training
tickets carry their own topic in the system prompt, evaluation tickets the predicted one (as a served ticket
would), restricted to the topics the product's training split has. Training and comparison as in
bench/retrieval_exemplar.py; rows land in `<home>/exemplar/rows_topic.json`.
"""

from __future__ import annotations

from bench.bitext_quality import customer_words
from bench.retrieval_exemplar import Route
from bench.retrieval_exemplar import main as run


class TopicPredictor:
    """The topic of a ticket from its customer's words, among the topics its product's training tickets have."""

    def __init__(self, records: list[dict]):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        self.model = make_pipeline(TfidfVectorizer(sublinear_tf=True, analyzer="char_wb", ngram_range=(2, 5)),
                                   LogisticRegression(C=10.0, max_iter=2000))
        self.model.fit([customer_words(r) for r in records], [r["metadata"]["topic"] for r in records])
        self.topics: dict[str, set[str]] = {}
        for record in records:
            self.topics.setdefault(record["metadata"]["product"], set()).add(record["metadata"]["topic"])

    def predict(self, records: list[dict]) -> list[str]:
        probabilities = self.model.predict_proba([customer_words(r) for r in records])
        classes = list(self.model.classes_)
        chosen = []
        for record, row in zip(records, probabilities, strict=True):
            allowed = self.topics.get(record["metadata"]["product"]) or set(classes)
            chosen.append(max((p, c) for p, c in zip(row, classes, strict=True) if c in allowed)[1])
        return chosen


def with_topic(record: dict, topic: str) -> dict:
    """The record with its topic, in words, at the end of its system prompt."""
    messages = [dict(m) for m in record["messages"]]
    messages[0]["content"] += f" The request is about: {topic.replace('_', ' ')}."
    return {**record, "messages": messages}


def topic_route(train: list[dict]) -> Route:
    predictor = TopicPredictor(train)
    return Route("topic",
                 train=lambda records: [with_topic(r, r["metadata"]["topic"]) for r in records],
                 prompt=lambda records: [with_topic(r, t) for r, t in zip(records, predictor.predict(records),
                                                                          strict=True)])


if __name__ == "__main__":
    run(topic_route, __doc__)
