"""Adapter quality on real tickets: bitext's categories as products, the project's own held-out splits.

    python -m bench.bitext_quality prepare  --home /tmp/bitext    # the data graph over the 11 categories
    python -m bench.bitext_quality search   --home /tmp/bitext    # small grid on validation loss
    python -m bench.bitext_quality evaluate --home /tmp/bitext --learning-rate 3e-4 --lora-r 16 \
        --examples-seen 2400 --product-examples-seen 320 --eval-examples 24
    python -m bench.bitext_quality table    --home /tmp/bitext    # the markdown table of the evaluate rows
    python -m bench.bitext_quality nearest  --home /tmp/bitext    # yardsticks: nearest, typical, random, best reply
    python -m bench.bitext_quality decoding --home /tmp/bitext --products contact --split val  # greedy vs MBR
    python -m bench.bitext_quality decoding --home /tmp/bitext --products refund --split val --beams 4  # vs beam
    python -m bench.bitext_quality shared-start --home /tmp/bitext --learning-rate 1e-3 --products contact
        # a product's LoRA on the LoRA shared adapter vs on a fully fine-tuned shared model

`prepare` materializes raw_tickets .. dataset_splits per category with the embedded model's tokenizer.
`search` trains one adapter over every product's train split per grid point, for the same number of
examples seen, and ranks them by loss on every product's validation split (never the test split).
`search --vary lora_r=64 lr_scheduler_type=linear ...` searches one factor at a time instead: the
training defaults, then the defaults with one setting changed per point (rows of earlier searches on the
same home and budget are kept, so a search can be extended).
`evaluate` materializes shared_adapter, then per product lora_adapter (continued from the shared one, or
the shared one as is: with `--keep best_val_rougeL`, the default, whichever of the shared adapter and the
continued run's snapshots every `--candidate-every-examples` replies best on the product's validation split
by ROUGE-L; with `--keep last`, the shared or the last step by validation loss) and eval_report (base vs
the chosen adapter on the product's test split, generation at the references' 95th percentile length).
Results print as JSON rows and land in `<home>/bitext_quality.json`; `table` renders them as markdown.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

from bench.common import machine, today
from tuneline.decoding import Decoding
from tuneline.names import product_key
from tuneline.training import DEFAULT_TARGET_MODULES

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "bitext" / "tickets.csv"
# the plans bitext's company sells ("Freemium account", "Gold account"): its own names, never redacted
BITEXT_COMPANY_NAMES = ["Freemium", "Pro", "Platinum", "Gold", "Premium", "Standard"]
BITEXT_MAPPING = {"id_column": "none", "thread_column": "none", "user_column": "instruction",
                  "assistant_column": "response"}


def _instance(home: Path):
    os.environ["TUNELINE_HOME"] = str(home)
    os.environ["DAGSTER_HOME"] = str(home / "dagster_home")
    from tuneline.cli import ensure_dagster_home

    ensure_dagster_home()
    import dagster as dg

    from tuneline.launching import fail_orphaned_runs

    instance = dg.DagsterInstance.get()
    fail_orphaned_runs(instance)
    return instance


def _resources(home: Path):
    from ft_assets.definitions import Settings, build_resources

    return build_resources(Settings.from_env({**os.environ, "TUNELINE_HOME": str(home)}))


def prepare(home: Path) -> dict[str, int]:
    import dagster as dg

    from ft_assets.definitions import all_assets
    from ft_assets.partitions import PRODUCTS_PARTITION_NAME
    from tuneline.ingest import split_by_product

    counts = split_by_product(SHARED, home / "landing", "category")
    past = time.time() - 600
    for path in (home / "landing").rglob("*"):
        if path.is_file():
            os.utime(path, (past, past))
    instance = _instance(home)
    instance.add_dynamic_partitions(PRODUCTS_PARTITION_NAME, sorted(counts))
    data = dg.AssetSelection.assets("dataset_splits").upstream() | dg.AssetSelection.assets("rejected_tickets")
    for product in sorted(counts):
        config = {"ops": {"ingest_tickets": {"config": BITEXT_MAPPING},
                          "cleaned_conversations": {"config": {"company_names": BITEXT_COMPANY_NAMES}}}}
        result = dg.materialize(all_assets(), selection=data, instance=instance, resources=_resources(home),
                                partition_key=product, run_config=config)
        assert result.success, product
    sizes = {p: {s: len((home / "exports" / p / f"{s}.jsonl").read_text().splitlines())
                 for s in ("train", "val", "test")} for p in sorted(counts)}
    print(json.dumps(sizes, indent=1))
    return sizes


def _products(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "exports").iterdir() if p.is_dir() and not p.name.startswith("."))


def _pooled(home: Path, split: str, limit: int | None = None) -> list[dict]:
    records = []
    for folder in (home / "exports" / p for p in _products(home)):
        lines = (folder / f"{split}.jsonl").read_text().splitlines()
        records += [json.loads(line) for line in lines]
    if limit:  # every product represented: round-robin by product
        by_product: dict[str, list[dict]] = {}
        for r in records:
            by_product.setdefault(r["metadata"]["product"], []).append(r)
        records = [r for group in itertools.zip_longest(*by_product.values()) for r in group if r][:limit]
    return records


# what `--vary` may change, and the names of target-module sets (the default is every linear layer)
SEARCHED_SETTINGS = ("method", "learning_rate", "lora_r", "lr_scheduler_type", "per_device_batch_size",
                     "gradient_accumulation_steps", "target_modules", "max_length")
TARGET_SETS = {"all-linear": list(DEFAULT_TARGET_MODULES),
               "attention": [m for m in DEFAULT_TARGET_MODULES if m in ("q_proj", "k_proj", "v_proj", "o_proj")]}


def grid_points(grid: dict) -> list[dict]:
    keys = sorted(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(grid[k] for k in keys))]


def one_factor_points(variations: list[str]) -> list[dict]:
    """The defaults, then the defaults with one change per point: `name=value`, or settings that only make
    sense together joined by commas (`method=full,learning_rate=1e-4`: full fine-tuning at LoRA's rate
    diverges)."""
    import dataclasses

    from tuneline.training import TrainConfig

    fields = {f.name: f for f in dataclasses.fields(TrainConfig)}
    points: list[dict] = [{}]
    for variation in variations:
        point = {}
        for setting in variation.split(","):
            name, _, text = setting.partition("=")
            if name not in SEARCHED_SETTINGS or not text:
                raise SystemExit(f"--vary takes name=value with a name among {', '.join(SEARCHED_SETTINGS)}: "
                                 f"{setting!r}")
            if name == "target_modules" and text not in TARGET_SETS:
                raise SystemExit(f"target_modules is one of {', '.join(TARGET_SETS)}, not {text!r}")
            point[name] = text if name == "target_modules" else type(fields[name].default)(text)
        points.append(point)
    return points


def search(home: Path, examples_seen: int, val_limit: int, points: list[dict]) -> list[dict]:
    from tuneline.training import TrainConfig, main

    resources = _resources(home)
    model = resources["base_model"].resolve(resources["storage"].model_cache)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        train_file, val_file = Path(tmp) / "train.jsonl", Path(tmp) / "val.jsonl"
        train_file.write_text("".join(json.dumps(r) + "\n" for r in _pooled(home, "train")))
        val_file.write_text("".join(json.dumps(r) + "\n" for r in _pooled(home, "val", val_limit)))
        for point in points:
            settings = {**point, "target_modules": TARGET_SETS[point.get("target_modules", "all-linear")]}
            config = TrainConfig(model=model, train_file=str(train_file), val_file=str(val_file),
                                 output_dir=f"{tmp}/adapter", examples_seen=examples_seen, **settings)
            config.lora_alpha = 2 * config.lora_r
            config.eval_steps = -(-examples_seen // (config.per_device_batch_size * config.gradient_accumulation_steps))
            summary = main(config)
            row = {"changed": point or "defaults", "method": config.method, "learning_rate": config.learning_rate,
                   "lora_r": config.lora_r,
                   "lr_scheduler_type": config.lr_scheduler_type,
                   "batch": config.per_device_batch_size * config.gradient_accumulation_steps,
                   "target_modules": point.get("target_modules", "all-linear"), "max_length": config.max_length,
                   "examples_seen": examples_seen, "steps": summary["global_steps"],
                   "val_loss": round(summary["best_eval_loss"], 4), "train_seconds": summary["train_seconds"]}
            print(json.dumps(row), flush=True)
            results.append(row)
    return sorted(results, key=lambda r: r["val_loss"])


def interrupted(result) -> bool:
    """Whether a step of the run was stopped by a signal: Dagster turns SIGTERM and SIGINT into a step failure
    and returns, so a loop over products would otherwise go on to the next one."""
    return any(e.is_step_failure and e.step_failure_data.error is not None
               and e.step_failure_data.error.cls_name == "DagsterExecutionInterruptedError"
               for e in result.all_events)


def evaluate(home: Path, training: dict, product_examples_seen: int, eval_examples: int,
             min_examples: int, products: list[str] | None = None, reuse_shared: bool = False,
             eval_only: bool = False, shared_too: bool = False, product_keep: dict | None = None,
             on_row=lambda rows: None) -> list[dict]:
    """Rows per product; `on_row(rows so far)` after each, so a run stopped midway keeps what it measured."""
    import dagster as dg

    from ft_assets.definitions import all_assets

    instance = _instance(home)
    if not (reuse_shared and instance.get_latest_materialization_event(dg.AssetKey("shared_adapter"))):
        started = time.perf_counter()
        shared = dg.materialize(all_assets(), selection=["shared_adapter"], instance=instance,
                                resources=_resources(home),
                                run_config={"ops": {"shared_adapter": {"config": training}}})
        assert shared.success
        print(f"shared adapter: {time.perf_counter() - started:.0f} s", flush=True)
    rows = []
    product_training = {**training, "examples_seen": product_examples_seen,
                        "min_examples_for_own_adapter": min_examples, **(product_keep or {})}
    for product in products or _products(home):
        started, wall_started = time.perf_counter(), time.time()
        ops = {"eval_report": {"config": {"max_examples": eval_examples, "batch_size": 8}}}
        if not eval_only:
            ops["lora_adapter"] = {"config": product_training}
        result = dg.materialize(
            all_assets(), selection=["eval_report"] if eval_only else ["lora_adapter", "eval_report"],
            instance=instance, resources=_resources(home), partition_key=product, raise_on_error=False,
            run_config={"ops": ops})
        if interrupted(result):  # SIGTERM/SIGINT: Dagster fails the step and returns; the bench stops too
            print(json.dumps({"product": product, "interrupted": True}), flush=True)
            break
        report_file = home / "assets" / "eval_report" / f"{product}.json"
        if not report_file.exists() or report_file.stat().st_mtime < wall_started:  # no report from this run
            row = {"product": product, "run_ok": False, "failed_steps": [
                e.step_key for e in result.all_events if e.is_step_failure],
                   "seconds": round(time.perf_counter() - started, 1)}
            print(json.dumps(row), flush=True)
            rows.append(row)
            on_row(rows)
            continue
        adapter = json.loads((home / "assets" / "lora_adapter" / f"{product}.json").read_text())
        report = json.loads((home / "assets" / "eval_report" / f"{product}.json").read_text())
        ci = report["bootstrap"]["rougeL"]
        row = {"product": product, "source": adapter["source"], "train": adapter["train_examples"],
               "val_loss_shared": adapter.get("val_loss_shared") or adapter.get("val_loss_before"),
               "val_loss_continued": adapter.get("val_loss_continued") or adapter.get("val_loss_after"),
               "val_rougeL_shared": adapter.get("val_rougeL_shared") or adapter.get("val_rougeL_before"),
               "val_rougeL_continued": adapter.get("val_rougeL_continued") or adapter.get("val_rougeL_after"),
               "val_rougeL_by_examples_seen": adapter.get("val_rougeL"),
               "kept_examples_seen": adapter.get("kept_examples_seen"),
               "train_seconds": adapter.get("train_seconds"), "val_choice_seconds": adapter.get("val_choice_seconds"),
               "eval_seconds": round(report["base"]["seconds"] + report["tuned"]["seconds"], 1),
               "eot_count": round(report["tuned"]["ended_with_eot"] * report["examples"]),
               "broken_placeholders": report["tuned"]["broken_placeholders"],
               "leak_rate": report["tuned"]["leak_rate"],
               "test": report["examples"], "test_available": report["examples_available"],
               "max_new_tokens": report["generation"]["max_new_tokens"],
               "reference_tokens_p95": report["generation"]["reference_tokens_p95"],
               "rougeL_base": report["base"]["rougeL"], "rougeL_tuned": report["tuned"]["rougeL"],
               "decoding": (report["tuned"].get("decoding") or {}).get("method", "greedy"),
               "rougeL_tuned_greedy": report["tuned"].get("greedy_rougeL", report["tuned"]["rougeL"]),
               "val_rougeL_greedy": adapter.get("val_rougeL_greedy"), "val_rougeL_mbr": adapter.get("val_rougeL_mbr"),
               "val_rougeL_beam": adapter.get("val_rougeL_beam"),
               "delta": ci["delta"], "ci": f"[{ci['ci_low']:+.3f}, {ci['ci_high']:+.3f}]",
               "eot_tuned": report["tuned"]["ended_with_eot"], "gate": report["gate"]["passed"],
               "run_ok": result.success, "seconds": round(time.perf_counter() - started, 1)}
        if shared_too:  # the shared adapter on the same test tickets, same budget: the "shared" column
            row.update(_shared_on(home, product, report["generation"]["max_new_tokens"], eval_examples))
        print(json.dumps(row), flush=True)
        rows.append(row)
        on_row(rows)
    return rows


def finished_rows(rows: list[dict]) -> list[dict]:
    """The `evaluate` rows of products whose run finished with scores (a failed run is recorded too)."""
    return [r for r in rows if r.get("run_ok") is not False and "rougeL_tuned" in r]


def markdown_table(rows: list[dict], nearest: dict | None = None) -> str:
    """The issue's table from `evaluate` rows: per product base / shared / served adapter on its test split,
    the interval of served minus base, end-of-turn share, hygiene, gate and times; then the means. With
    `nearest` (the `nearest` command's rows), the nearest-training-reply yardstick beside the base."""
    nearest = nearest or {}
    def num(value, digits=3):
        return "-" if value is None else f"{value:.{digits}f}"

    done = finished_rows(rows)
    for r in done:  # rows written before eot_count was recorded carry the share only
        r.setdefault("eot_count", round(r["eot_tuned"] * r["test"]))
    lines = ["| product | served by (examples seen) | train | test | max_new_tokens | ROUGE-L base | nearest reply "
             "| typical reply | shared | served "
             "| delta [95% CI] | CI width | ended with EOT | leaks / broken | gate | train s + choice s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|---|---|---:|"]
    for r in done:  # "[+0.155, +0.263]" -> (0.155, 0.263)
        r["ci_bounds"] = tuple(float(x) for x in r["ci"].strip("[]").split(","))
    for r in sorted(done, key=lambda r: r["product"]):
        low, high = r["ci_bounds"]
        kept = r.get("kept_examples_seen")
        served = r["source"] if r["source"] == "shared" or kept is None else f"product ({kept})"
        lines.append(
            f"| {r['product']} | {served} | {r['train']} | {r['test']} | {r['max_new_tokens']} | "
            f"{num(r['rougeL_base'])} | {num(nearest.get(r['product'], {}).get('rougeL_nearest_reply'))} | "
            f"{num(nearest.get(r['product'], {}).get('rougeL_typical_reply'))} | "
            f"{num(r.get('rougeL_shared'))} | **{num(r['rougeL_tuned'])}** | "
            f"{r['delta']:+.3f} {r['ci']} | {high - low:.3f} | {r['eot_count']}/{r['test']} | "
            f"{num(r.get('leak_rate'), 2)} / {num(r.get('broken_placeholders'), 2)} | "
            f"{'passed' if r['gate'] else 'failed'} | {num(r.get('train_seconds'), 0)} + "
            f"{num(r.get('val_choice_seconds'), 0)} |")
    if done:
        n, tests = len(done), sum(r["test"] for r in done)
        shared = [r["rougeL_shared"] for r in done if r.get("rougeL_shared") is not None]
        ended = sum(r["eot_count"] for r in done)
        near = [nearest[r["product"]]["rougeL_nearest_reply"] for r in done if r["product"] in nearest]
        typical = [nearest[r["product"]].get("rougeL_typical_reply") for r in done if r["product"] in nearest]
        lines.append(f"\nMean over {n} products: base {sum(r['rougeL_base'] for r in done) / n:.3f}, "
                     + (f"nearest reply {sum(near) / n:.3f}, " if len(near) == n else "")
                     + (f"typical reply {sum(typical) / n:.3f}, " if len(typical) == n and None not in typical
                        else "")
                     + (f"shared {sum(shared) / len(shared):.3f}, " if len(shared) == n else "")
                     + f"served {sum(r['rougeL_tuned'] for r in done) / n:.3f}; every interval above 0: "
                     f"{all(r['ci_bounds'][0] > 0 for r in done)}; ended with EOT "
                     f"{ended}/{tests} = {ended / tests:.3f}.")
    return "\n".join(lines)


def _shared_on(home: Path, product: str, max_new_tokens: int, eval_examples: int) -> dict:
    from tuneline.evaluation import EvalSettings, evaluate_adapter
    from tuneline.training import read_chat_jsonl

    shared = json.loads((home / "assets" / "shared_adapter" / "__all__.json").read_text())
    test = read_chat_jsonl(home / "exports" / product / "test.jsonl")
    report = evaluate_adapter(shared["base_model"], shared["adapter_dir"], test,
                              EvalSettings(max_examples=eval_examples, max_new_tokens=max_new_tokens))
    ci = report["bootstrap"]["rougeL"]
    return {"rougeL_shared": report["tuned"]["rougeL"], "ci_shared": f"[{ci['ci_low']:+.3f}, {ci['ci_high']:+.3f}]",
            "eot_shared": report["tuned"]["ended_with_eot"]}


def decoding_side_by_side(home: Path, products: list[str], split: str, decoding, eval_examples: int) -> dict:
    """Greedy and `decoding`'s (beam or MBR) replies of each product's served adapter on one split (the
    validation split chooses; the test split only reports), budget sized as evaluation sizes it, scored by the
    same ROUGE-L."""
    from tuneline.evaluation import _prompt_and_reference, rouge_per_example, validation_rouge
    from tuneline.training import read_chat_jsonl

    rows = {}
    for product in products:
        adapter = json.loads((home / "assets" / "lora_adapter" / f"{product}.json").read_text())
        folder = home / "exports" / product
        records = read_chat_jsonl(folder / f"{split}.jsonl")[:eval_examples]
        others = [r for name in ("train", "val", "test") if name != split
                  for r in read_chat_jsonl(folder / f"{name}.jsonl")]
        started, out = time.perf_counter(), {}
        scores, budget = validation_rouge(adapter["base_model"], {product: adapter["adapter_dir"]}, records, others,
                                          decoding=decoding, replies_out=out)
        greedy, other, finished = out[product]["greedy"], out[product]["replies"], out[product]["finished"]
        references = [_prompt_and_reference(r)[1] for r in records]
        words = [sum(len(t.split()) for t in texts) / len(records) for texts in (greedy, other, references)]
        rows[product] = {"split": split, "examples": len(records), "max_new_tokens": budget,
                         "decoding": decoding.to_dict(),
                         "rougeL_greedy": round(sum(rouge_per_example(greedy, references)["rougeL"]) / len(records), 4),
                         f"rougeL_{decoding.method}": scores[product], "ended_with_eot": sum(finished),
                         "mean_words_greedy_decoded_reference": [round(w) for w in words],
                         "replies_changed": sum(a != b for a, b in zip(greedy, other, strict=True)),
                         "seconds": round(time.perf_counter() - started, 1)}
        print(json.dumps({"product": product, **rows[product]}), flush=True)
    return rows


def customer_words(record: dict) -> str:
    """A chat's customer turns as one text: what similar tickets are found by."""
    return " ".join(m["content"] for m in record["messages"] if m["role"] == "user")


def nearest_reply_rouge(home: Path, eval_examples: int) -> dict[str, dict]:
    """Two yardsticks that need no model, on the same first `eval_examples` test tickets and the same ROUGE-L:
    each ticket answered with the reply of the training ticket whose words overlap it most (Jaccard), and with
    the most typical training reply of that ticket's request type (bitext's intent, `metadata.topic`): the one
    with the highest summed ROUGE-L against the type's other training replies. The second shows how far a
    reply that is typical, not tailored, goes on this metric. Two more bound what any reply can gain by
    choosing among what was written before, from the ticket's own (recorded) type: the average ROUGE-L of
    that type's training replies against the reference (a reply of the right type, drawn at random), and the
    best of them (an oracle that has read the reference). When the nearest reply scores no better than a
    random one of its type, the customer's wording says nothing about the reference's wording beyond its type."""
    from tuneline.decoding import mbr_choice
    from tuneline.evaluation import rouge_per_example
    from tuneline.training import read_chat_jsonl

    def words(text: str) -> set[str]:
        return set(text.lower().split())

    def reply(record: dict) -> str:
        return record["messages"][-1]["content"]

    rows = {}
    for product in _products(home):
        train = read_chat_jsonl(home / "exports" / product / "train.jsonl")
        test = read_chat_jsonl(home / "exports" / product / "test.jsonl")[:eval_examples]
        train_words = [words(customer_words(r)) for r in train]
        by_type: dict[str, list[str]] = {}
        for record in train:
            by_type.setdefault(record["metadata"].get("topic") or "", []).append(reply(record))
        typical = {kind: replies[mbr_choice(replies)] for kind, replies in by_type.items()}
        nearest_replies, typical_replies, same_type_mean, same_type_best = [], [], [], []
        for record in test:
            same_type = by_type.get(record["metadata"].get("topic") or "", [])
            scores = rouge_per_example(same_type, [reply(record)] * len(same_type))["rougeL"] or [0.0]
            same_type_mean.append(sum(scores) / len(scores))
            same_type_best.append(max(scores))
            asked = words(customer_words(record))
            nearest = train[max(range(len(train)),
                                key=lambda i: len(asked & train_words[i]) / (len(asked | train_words[i]) or 1))]
            nearest_replies.append(reply(nearest))
            typical_replies.append(typical[nearest["metadata"].get("topic") or ""])
        references = [reply(r) for r in test]
        near = rouge_per_example(nearest_replies, references)["rougeL"]
        medoid = rouge_per_example(typical_replies, references)["rougeL"]
        rows[product] = {"test": len(test), "rougeL_nearest_reply": round(sum(near) / len(near), 4),
                         "rougeL_typical_reply": round(sum(medoid) / len(medoid), 4),
                         "rougeL_same_type_random": round(sum(same_type_mean) / len(test), 4),
                         "rougeL_same_type_oracle": round(sum(same_type_best) / len(test), 4)}
    return rows


def _trained(config) -> Path:
    """Train `config` unless its output already holds a finished run (metadata.json): runs are kept and reused."""
    from tuneline.training import main as train

    done = Path(config.output_dir)
    if not (done / "metadata.json").exists():
        summary = train(config)
        print(json.dumps({"trained": str(done), **{k: summary.get(k) for k in (
            "global_steps", "best_eval_loss", "train_seconds", "kept_examples_seen", "val_rougeL")}}), flush=True)
    return done


def shared_start_side_by_side(home: Path, products: list[str], shared_examples: int, product_examples: int,
                              eval_examples: int, lora_rate: float, lora_r: int, full_rate: float,
                              every: int) -> dict:
    """Two starting points for a product's own LoRA run, side by side: the LoRA shared adapter (continued, as
    `lora_adapter` does) and a fully fine-tuned shared model (a new adapter on it as base). Both shared runs see
    the same pooled training splits for the same examples; each product keeps, of its start as is, its snapshots
    every `every` examples and its last step, what replies best on its validation split; the test split
    (base, both routes) is scored once, with one budget, by the same ROUGE-L, and the routes' difference gets a
    paired interval."""
    from tuneline.evaluation import _prompt_and_reference, paired_bootstrap, rouge_per_example, validation_rouge
    from tuneline.storage import atomic_write_jsonl
    from tuneline.training import TrainConfig, read_chat_jsonl

    resources = _resources(home)
    base = resources["base_model"].resolve(resources["storage"].model_cache)
    side = home / "shared_start"
    side.mkdir(exist_ok=True)
    train_file, val_file = side / "pooled_train.jsonl", side / "pooled_val.jsonl"
    atomic_write_jsonl(train_file, _pooled(home, "train"))
    atomic_write_jsonl(val_file, _pooled(home, "val", 176))
    defaults = TrainConfig(model=base, train_file="", output_dir="")
    steps = -(-shared_examples // (defaults.per_device_batch_size * defaults.gradient_accumulation_steps))
    lora_shared = _trained(TrainConfig(model=base, train_file=str(train_file), val_file=str(val_file),
                                       output_dir=str(side / "lora_shared"), learning_rate=lora_rate, lora_r=lora_r,
                                       lora_alpha=2 * lora_r, examples_seen=shared_examples, eval_steps=steps))
    full_shared = _trained(TrainConfig(model=base, train_file=str(train_file), val_file=str(val_file),
                                       output_dir=str(side / "full_shared"), method="full", learning_rate=full_rate,
                                       examples_seen=shared_examples, eval_steps=steps))
    rows = {}
    for product in products:
        folder = home / "exports" / product
        common = {"train_file": str(folder / "train.jsonl"), "val_file": str(folder / "val.jsonl"),
                  "learning_rate": lora_rate, "lora_r": lora_r, "lora_alpha": 2 * lora_r,
                  "examples_seen": product_examples, "keep": "best_val_rougeL", "candidate_every_examples": every}
        started = time.perf_counter()
        on_lora = _trained(TrainConfig(model=base, init_adapter=str(lora_shared),
                                       output_dir=str(side / product / "on_lora_shared"), **common))
        on_full = _trained(TrainConfig(model=str(full_shared), output_dir=str(side / product / "on_full_shared"),
                                       **common))
        train_seconds = round(time.perf_counter() - started, 1)
        val, train = read_chat_jsonl(folder / "val.jsonl"), read_chat_jsonl(folder / "train.jsonl")
        # the full shared model as is: the candidate a continued run has for free (its starting adapter)
        as_is, _ = validation_rouge(str(full_shared), {"as_is": str(full_shared)}, val, train)
        on_full_meta = json.loads((on_full / "metadata.json").read_text())["summary"]
        on_lora_meta = json.loads((on_lora / "metadata.json").read_text())["summary"]
        full_kept = on_full if on_full_meta["val_rougeL_after"] >= as_is["as_is"] else full_shared
        test = read_chat_jsonl(folder / "test.jsonl")[:eval_examples]
        references = [_prompt_and_reference(r)[1] for r in test]
        started, replies = time.perf_counter(), {}
        scores, budget = validation_rouge(base, {"base": base, "lora_route": str(on_lora)}, test, train,
                                          replies_out=replies)
        full_scores, full_budget = validation_rouge(str(full_shared), {"full_route": str(full_kept)}, test, train,
                                                    replies_out=replies)
        assert budget == full_budget, (budget, full_budget)  # one tokenizer, one budget rule
        per = {k: rouge_per_example(v["replies"], references)["rougeL"] for k, v in replies.items()}
        interval = paired_bootstrap(per["full_route"], per["lora_route"])
        rows[product] = {
            "train": len(train), "val": len(val), "test": len(test), "max_new_tokens": budget,
            "val_lora_route": on_lora_meta["val_rougeL"], "val_full_route": {"0": as_is["as_is"],
                                                                             **on_full_meta["val_rougeL"]},
            "kept_lora_route": on_lora_meta["kept_examples_seen"],
            "kept_full_route": on_full_meta["kept_examples_seen"] if full_kept == on_full else 0,
            "rougeL_base": scores["base"], "rougeL_lora_route": scores["lora_route"],
            "rougeL_full_route": full_scores["full_route"],
            "full_minus_lora": f"{interval['delta']:+.3f} [{interval['ci_low']:+.3f}, {interval['ci_high']:+.3f}]",
            "ended_with_eot": {k: sum(v["finished"]) for k, v in replies.items()},
            "train_seconds": train_seconds, "test_seconds": round(time.perf_counter() - started, 1)}
        print(json.dumps({"product": product, **rows[product]}), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("prepare", "search", "evaluate", "table", "nearest", "decoding",
                                                "shared-start"))
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--examples-seen", type=int, default=640)
    parser.add_argument("--val-limit", type=int, default=176)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--lora-r", type=int, default=16)
    parser.add_argument("--product-examples-seen", type=int, default=320)
    parser.add_argument("--eval-examples", type=int, default=24)
    parser.add_argument("--min-examples", type=int, default=32)
    parser.add_argument("--keep", choices=("last", "best_val_rougeL"), default="best_val_rougeL",
                        help="what a product keeps: its last step (shared or continued on validation loss), or the "
                             "best of the shared adapter and its snapshots by validation ROUGE-L")
    parser.add_argument("--candidate-every-examples", type=int, default=160)
    parser.add_argument("--mbr-samples", type=int, default=None,
                        help="with best_val_rougeL: try MBR decoding over this many samples on validation "
                             "(0: greedy only; default: the product default)")
    parser.add_argument("--beams", type=int, default=None,
                        help="with best_val_rougeL: try beam search with this many beams on validation (0: not "
                             "tried; default: the product default); decoding: compare greedy with it, not MBR")
    parser.add_argument("--length-penalty", type=float, default=1.0,
                        help="decoding with --beams: the beam search's length penalty (above 1 favours longer replies)")
    parser.add_argument("--full-learning-rate", type=float, default=3e-4,
                        help="shared-start: the fully fine-tuned shared model's rate (3e-4: section 6's search)")
    parser.add_argument("--grid-learning-rates", type=float, nargs="+", default=[1e-4, 3e-4, 1e-3])
    parser.add_argument("--grid-ranks", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--vary", nargs="+", metavar="NAME=VALUE",
                        help="search one factor at a time around the training defaults instead of a grid")
    parser.add_argument("--products", nargs="*", type=product_key,  # the one gate for names (tuneline.names)
                        help="evaluate these products only (default: every product)")
    parser.add_argument("--split", choices=("val", "test"), default="val", help="decoding: the split to compare on")
    parser.add_argument("--eval-only", action="store_true",
                        help="evaluate the products' latest adapters again without training them")
    parser.add_argument("--shared-too", action="store_true",
                        help="also evaluate the shared adapter on each product's test tickets (base/shared/product)")
    parser.add_argument("--reuse-shared", action="store_true",
                        help="keep the latest shared_adapter materialization instead of training a new one")
    ns = parser.parse_args()
    home = ns.home.resolve()
    home.mkdir(parents=True, exist_ok=True)
    out = home / "bitext_quality.json"
    results = json.loads(out.read_text()) if out.exists() else {}
    if ns.command == "table":  # the markdown table of the last evaluate rows, nothing run
        print(markdown_table(results.get("evaluate", {}).get("rows", []), results.get("nearest_reply")))
        return
    if ns.command == "prepare":
        results["sizes"] = prepare(home)
    elif ns.command == "decoding":
        decoding = Decoding(method="beam", beams=ns.beams, length_penalty=ns.length_penalty) if ns.beams else \
            Decoding(method="mbr", samples=ns.mbr_samples or 8)
        found = decoding_side_by_side(home, ns.products or _products(home), ns.split, decoding, ns.eval_examples)
        penalty = f"/lp{ns.length_penalty:g}" if ns.beams and ns.length_penalty != 1 else ""
        results.setdefault("decoding", {}).update({f"{p}/{ns.split}/{decoding.method}{penalty}": row
                                                   for p, row in found.items()})
    elif ns.command == "shared-start":
        found = shared_start_side_by_side(home, ns.products or _products(home), ns.examples_seen,
                                          ns.product_examples_seen, ns.eval_examples, ns.learning_rate, ns.lora_r,
                                          ns.full_learning_rate, ns.candidate_every_examples)
        results.setdefault("shared_start", {"date": today(), "machine": machine()}).update(found)
    elif ns.command == "nearest":
        results["nearest_reply"] = nearest_reply_rouge(home, ns.eval_examples)
        print(json.dumps(results["nearest_reply"], indent=1))
    elif ns.command == "search":
        if ns.vary:
            rows = search(home, ns.examples_seen, ns.val_limit, one_factor_points(ns.vary))
            earlier = [r for r in results.get("one_factor_search", {}).get("rows", [])
                       if r["examples_seen"] == ns.examples_seen and r["changed"] not in [x["changed"] for x in rows]]
            results["one_factor_search"] = {"date": today(), "machine": machine(), "examples_seen": ns.examples_seen,
                                            "rows": sorted(earlier + rows, key=lambda r: r["val_loss"])}
        else:
            grid = {"learning_rate": ns.grid_learning_rates, "lora_r": ns.grid_ranks, "per_device_batch_size": [4],
                    "gradient_accumulation_steps": [4]}
            results["search"] = {"date": today(), "machine": machine(), "examples_seen": ns.examples_seen,
                                 "rows": search(home, ns.examples_seen, ns.val_limit, grid_points(grid))}
    else:
        training = {"learning_rate": ns.learning_rate, "lora_r": ns.lora_r, "lora_alpha": 2 * ns.lora_r,
                    "examples_seen": ns.examples_seen}
        earlier = results.get("evaluate", {}).get("rows", []) if ns.reuse_shared or ns.eval_only else []

        def save(rows: list[dict]) -> None:
            fresh = {r["product"] for r in rows}
            results["evaluate"] = {"date": today(), "training": training,
                                   "product_examples_seen": ns.product_examples_seen, "keep": ns.keep,
                                   "candidate_every_examples": ns.candidate_every_examples,
                                   "rows": [r for r in earlier if r["product"] not in fresh] + rows}
            out.write_text(json.dumps(results, indent=1))

        save(evaluate(home, training, ns.product_examples_seen, ns.eval_examples, ns.min_examples,
                      ns.products, ns.reuse_shared or ns.eval_only, ns.eval_only, ns.shared_too,
                      {"keep": ns.keep, "candidate_every_examples": ns.candidate_every_examples,
                       **({} if ns.mbr_samples is None else {"mbr_samples": ns.mbr_samples}),
                       **({} if ns.beams is None else {"beams": ns.beams})}, on_row=save))
        return
    out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
