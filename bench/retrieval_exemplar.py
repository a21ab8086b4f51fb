"""A similar past ticket and its reply in the prompt (retrieval-augmented fine-tuning), side by side with plain
fine-tuning, on bitext's categories as products (issue 18). Dev data only: validation splits decide.

    python -m bench.bitext_quality prepare --home /tmp/bq          # the data graph, once
    python -m bench.retrieval_exemplar --home /tmp/bq --products refund delivery feedback account

Each training ticket gets the reply of the most similar other training ticket (TF-IDF cosine over the customer's
words, every product's training split pooled) appended to its system prompt; a validation ticket gets the most
similar training ticket's. Both routes train the same way for the same examples seen: a shared LoRA adapter on
the pooled training splits, then per product a continuation on the product's own split (as `lora_adapter`
continues the shared adapter). Greedy replies on the validation tickets are scored by ROUGE-L, the routes'
difference gets a paired interval, and the exemplar reply alone is the yardstick the routes must beat.
Adapters are kept under `<home>/exemplar/` and reused; rows land in `<home>/exemplar/rows_<route>.json`.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.bitext_quality import _pooled, _resources, _trained, customer_words
from tuneline.names import product_key
from tuneline.storage import atomic_write_jsonl


def with_exemplar(record: dict, exemplar: dict) -> dict:
    """The record with `exemplar` (a past ticket and its reply) appended to its system prompt."""
    messages = [dict(m) for m in record["messages"]]
    messages[0]["content"] += ("\n\nA similar ticket answered before:\nCustomer: " + customer_words(exemplar)
                               + "\nAgent: " + exemplar["messages"][-1]["content"])
    return {**record, "messages": messages}


class ExemplarBank:
    """The training tickets, searched by TF-IDF cosine over the customer's words (scikit-learn)."""

    def __init__(self, records: list[dict]):
        from sklearn.feature_extraction.text import TfidfVectorizer

        self.records = records
        self.vectorizer = TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2))
        self.matrix = self.vectorizer.fit_transform([customer_words(r) for r in records])

    def nearest(self, records: list[dict], bank_positions: list[int] | None = None) -> list[dict]:
        """Per record its most similar bank record; a record that is itself in the bank (`bank_positions`)
        never gets itself."""
        similarity = (self.vectorizer.transform([customer_words(r) for r in records]) @ self.matrix.T).toarray()
        for row, position in enumerate(bank_positions or []):
            similarity[row, position] = -1.0
        return [self.records[int(row.argmax())] for row in similarity]


def first_per_product(records: list[dict], limit: int) -> list[dict]:
    counts: dict[str, int] = {}
    kept = []
    for record in records:
        product = record["metadata"]["product"]
        if counts.get(product, 0) < limit:
            kept.append(record)
            counts[product] = counts.get(product, 0) + 1
    return kept


def _write(path: Path, records: list[dict]) -> str:
    return str(atomic_write_jsonl(path, records))


def _train(config) -> dict:
    """The run's folder and its training seconds (training's own summary): trained once, then reused."""
    done = _trained(config)
    summary = json.loads((done / "metadata.json").read_text())["summary"]
    return {"dir": str(done), "train_seconds": round(summary["train_seconds"])}


def _scored(base: str, adapter: str, records: list[dict]) -> tuple[list[float], int, int]:
    """Greedy replies' ROUGE-L per record, the generation budget, and how many replies ended."""
    from tuneline.evaluation import rouge_per_example, validation_rouge

    replies: dict = {}
    _, budget = validation_rouge(base, {"candidate": adapter}, records, replies_out=replies)
    references = [r["messages"][-1]["content"] for r in records]
    per = rouge_per_example(replies["candidate"]["replies"], references)["rougeL"]
    return per, budget, sum(replies["candidate"]["finished"])


@dataclass
class Route:
    """A way of prompting set beside plain fine-tuning: how the pooled training records and the evaluation records
    look under it, and optionally a yardstick reply per evaluation record (scored alone)."""

    name: str
    train: Callable[[list[dict]], list[dict]]
    prompt: Callable[[list[dict]], list[dict]]
    yardstick: Callable[[list[dict]], list[str]] | None = None


def exemplar_route(train: list[dict]) -> Route:
    bank = ExemplarBank(train)

    def trained(records: list[dict]) -> list[dict]:
        exemplars = bank.nearest(records, bank_positions=list(range(len(records))))
        return [with_exemplar(r, e) for r, e in zip(records, exemplars, strict=True)]

    def prompted(records: list[dict]) -> list[dict]:
        return [with_exemplar(r, e) for r, e in zip(records, bank.nearest(records), strict=True)]

    def alone(records: list[dict]) -> list[str]:
        return [e["messages"][-1]["content"] for e in bank.nearest(records)]

    return Route("exemplar", trained, prompted, alone)


def side_by_side(home: Path, products: list[str], shared_examples: int, product_examples: int,
                 shared_val_per_product: int, product_val: int, learning_rate: float, lora_r: int,
                 make_route: Callable[[list[dict]], Route] = exemplar_route) -> list[dict]:
    """Plain fine-tuning and `make_route(train)`'s, both stages, compared on the same validation tickets."""
    from tuneline.evaluation import paired_bootstrap, rouge_per_example
    from tuneline.training import TrainConfig

    out = home / "exemplar"  # every route's adapters live here, so the plain ones are trained once for all
    out.mkdir(exist_ok=True)
    resources = _resources(home)
    base = resources["base_model"].resolve(resources["storage"].model_cache)
    train = _pooled(home, "train")
    val = _pooled(home, "val")
    route = make_route(train)
    names = ("plain", route.name)
    data = {"plain": train, route.name: route.train(train)}
    loss_val = first_per_product(val, 16)
    loss_val_data = {"plain": loss_val, route.name: route.prompt(loss_val)}
    common = {"learning_rate": learning_rate, "lora_r": lora_r, "lora_alpha": 2 * lora_r, "max_length": 1024,
              "keep": "last"}
    rows = []

    def compare(label: str, records: list[dict], adapters: dict[str, dict]) -> dict:
        prompts = {"plain": records, route.name: route.prompt(records)}
        row: dict = {"scope": label, "val_tickets": len(records)}
        if route.yardstick is not None:
            references = [r["messages"][-1]["content"] for r in records]
            alone = rouge_per_example(route.yardstick(records), references)["rougeL"]
            row[f"rougeL_{route.name}_reply_alone"] = _mean(alone)
        per = {}
        for name in names:
            started = time.perf_counter()
            per[name], row["max_new_tokens"], ended = _scored(base, adapters[name]["dir"], prompts[name])
            row[f"rougeL_{name}"] = _mean(per[name])
            row[f"ended_{name}"] = ended
            row[f"train_seconds_{name}"] = adapters[name]["train_seconds"]
            row[f"generate_seconds_{name}"] = round(time.perf_counter() - started)
        interval = paired_bootstrap(per[route.name], per["plain"])
        row[f"{route.name}_minus_plain"] = (f"{interval['delta']:+.3f} "
                                            f"[{interval['ci_low']:+.3f}, {interval['ci_high']:+.3f}]")
        print(json.dumps(row), flush=True)
        rows.append(row)
        (out / f"rows_{route.name}.json").write_text(json.dumps(rows, indent=1))
        return row

    shared = {}
    for name in names:
        shared[name] = _train(TrainConfig(
            model=base, train_file=_write(out / f"train_{name}.jsonl", data[name]),
            val_file=_write(out / f"val_{name}.jsonl", loss_val_data[name]),
            output_dir=str(out / f"shared_{name}_{shared_examples}"), examples_seen=shared_examples, **common))
    compare("shared adapter as is, every product", first_per_product(val, shared_val_per_product), shared)
    for product in products:
        mine = [k for k, r in enumerate(train) if r["metadata"]["product"] == product]
        continued = {}
        for name in names:
            continued[name] = _train(TrainConfig(
                model=base, init_adapter=shared[name]["dir"],
                train_file=_write(out / f"train_{name}_{product}.jsonl", [data[name][k] for k in mine]),
                output_dir=str(out / product / f"{name}_{product_examples}"), examples_seen=product_examples,
                **common))
        compare(product, [r for r in val if r["metadata"]["product"] == product][:product_val], continued)
    return rows


def _mean(values: list[float]) -> float:
    return round(sum(values) / max(1, len(values)), 4)


def main(make_route: Callable[[list[dict]], Route] = exemplar_route, description: str = __doc__) -> None:
    parser = argparse.ArgumentParser(description=description.splitlines()[0])
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--products", nargs="*", type=product_key, default=[])  # the one gate for names
    parser.add_argument("--shared-examples", type=int, default=960)
    parser.add_argument("--product-examples", type=int, default=480)
    parser.add_argument("--shared-val-per-product", type=int, default=10)
    parser.add_argument("--product-val", type=int, default=24)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--lora-r", type=int, default=16)
    args = parser.parse_args()
    side_by_side(args.home, args.products, args.shared_examples, args.product_examples,
                 args.shared_val_per_product, args.product_val, args.learning_rate, args.lora_r, make_route)


if __name__ == "__main__":
    main()
