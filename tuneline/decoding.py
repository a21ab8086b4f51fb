"""How a reply is decoded: greedy, beam search, or minimum Bayes risk (MBR) over sampled replies.

Support replies are variations on a few shapes per request type. Greedy decoding takes the likeliest token
at each step, which can settle on an unusual opening and follow it; MBR samples several replies and keeps
the one that agrees most with the others (ROUGE-L as the agreement), the reply closest to the model's
typical answer: the one a reference is most likely to resemble. The greedy reply is one of the candidates,
so MBR falls back to it when the samples scatter. Beam search keeps the `beams` likeliest partial replies at
each step and returns the likeliest whole one: a reply that opens with a less likely token but continues
confidently can win, and greedy replies, which run shorter than the references, come closer to their
length (BENCHMARKS.md section 6). Which decoding an adapter serves with is chosen on its
validation split and recorded in its metadata.json, so evaluation and serving decode the same way.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

METHODS = ("greedy", "beam", "mbr")


@dataclass(frozen=True)
class Decoding:
    method: str = "greedy"
    samples: int = 8  # sampled replies besides the greedy one (mbr only)
    beams: int = 4  # partial replies kept at each step (beam only)
    # beam only: a finished reply's score is its summed log-probability / length ** length_penalty, so above 1
    # longer replies win more often, below 1 shorter ones (transformers' own setting, passed through)
    length_penalty: float = 1.0
    temperature: float = 0.7
    top_p: float = 0.95
    seed: int = 0  # the sampler is seeded per prompt: the same prompt gets the same reply on a machine

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"decoding method must be one of {METHODS}, got {self.method!r}")
        if self.method == "mbr" and self.samples < 1:
            raise ValueError("mbr decoding needs at least one sample")
        if self.method == "beam" and self.beams < 2:
            raise ValueError("beam decoding needs at least two beams (one is greedy)")

    def to_dict(self) -> dict:
        return asdict(self)


GREEDY = Decoding()


def search_settings(decoding: Decoding) -> dict:
    """The `generate` arguments of the deterministic decodings: beam search's for beam, none for greedy (and
    for MBR, whose first candidate is the greedy reply)."""
    if decoding.method == "beam":  # early_stopping: done as soon as `beams` replies have ended (a longer reply
        # that might score higher is not searched for; so the length penalty only orders those: BENCHMARKS.md)
        return {"num_beams": decoding.beams, "early_stopping": True, "length_penalty": decoding.length_penalty}
    return {}


def mbr_choice(candidates: list[str]) -> int:
    """The index of the candidate with the highest summed ROUGE-L F1 against every other candidate (ties: the
    earliest, so the greedy reply, listed first, wins a tie)."""
    from rouge_score import rouge_scorer

    if len(candidates) < 3:  # with two, each agrees with the other equally: keep the first
        return 0
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    agreement = [0.0] * len(candidates)
    for i in range(len(candidates)):
        for j in range(i + 1, len(candidates)):
            score = scorer.score(candidates[i], candidates[j])["rougeL"].fmeasure  # symmetric
            agreement[i] += score
            agreement[j] += score
    return max(range(len(candidates)), key=lambda i: (agreement[i], -i))


def sample_replies(model, tokenizer, inputs: dict, max_new_tokens: int, decoding: Decoding,
                   max_time: float | None = None):
    """`decoding.samples` sampled continuations of one prompt (`inputs`: a batch of one), seeded by
    `decoding.seed`; the generated token rows (a row that ended early is padded after its end)."""
    import torch

    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch.manual_seed(decoding.seed)
    extra = {"max_time": max_time} if max_time else {}
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=True,
                             temperature=decoding.temperature, top_p=decoding.top_p,
                             num_return_sequences=decoding.samples, pad_token_id=tokenizer.pad_token_id,
                             eos_token_id=tokenizer.eos_token_id, **extra)
    return out[:, inputs["input_ids"].shape[1]:]


def up_to_end(row, eos_token_id: int):
    """A generated token row cut after its first end-of-turn token (what follows is padding)."""
    ended = (row == eos_token_id).nonzero()
    return row[: int(ended[0, 0]) + 1] if len(ended) else row


def mbr_row(model, tokenizer, inputs: dict, greedy_row, max_new_tokens: int, decoding: Decoding,
            max_time: float | None = None):
    """The token row MBR keeps for one prompt among its greedy row (the first candidate) and
    `decoding.samples` sampled rows, cut after its end-of-turn token."""
    candidates = [greedy_row, *sample_replies(model, tokenizer, inputs, max_new_tokens, decoding, max_time)]
    kept = candidates[mbr_choice([tokenizer.decode(c, skip_special_tokens=True).strip() for c in candidates])]
    return up_to_end(kept, tokenizer.eos_token_id)


def recorded_decoding(adapter_dir: str | Path | None) -> Decoding:
    """The decoding an adapter was chosen to serve with (its metadata.json), greedy when none is recorded."""
    path = Path(adapter_dir) / "metadata.json" if adapter_dir else None
    if path is None or not path.is_file():
        return GREEDY
    recorded = json.loads(path.read_text()).get("decoding")
    return Decoding(**recorded) if recorded else GREEDY
