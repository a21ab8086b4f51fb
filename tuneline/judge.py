"""LLM-as-judge through any OpenAI-compatible endpoint: rubric scores for one reply.

Malformed judge answers are expected (small local models drift from JSON): they are
counted and skipped, never fatal.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

RUBRIC = ("helpfulness", "accuracy", "tone", "completeness")
JUDGE_PROMPT = """You grade a customer-support reply. Score each criterion from 1 (poor) to 5 (excellent):
helpfulness, accuracy, tone, completeness. Answer with JSON only:
{"helpfulness": n, "accuracy": n, "tone": n, "completeness": n, "justification": "one sentence"}

Customer: {question}
Reply: {answer}
"""


PAIRWISE_PROMPT = """Two support replies answer the same customer. Which one is better (more helpful, accurate,
polite and complete)? Answer with JSON only: {"winner": "A" | "B" | "tie", "justification": "one sentence"}

Customer: {question}
Reply A: {a}
Reply B: {b}
"""


def prompt_hash(template: str = JUDGE_PROMPT + PAIRWISE_PROMPT) -> str:
    return hashlib.sha256(template.encode()).hexdigest()[:16]


def parse_verdict(content: str) -> str | None:
    match = re.search(r"\{.*\}", content or "", re.DOTALL)
    try:
        winner = json.loads(match.group()).get("winner") if match else None
    except json.JSONDecodeError:
        return None
    return winner if winner in ("A", "B", "tie") else None


def parse_judgement(content: str) -> dict | None:
    """The first JSON object in `content` with all rubric keys as integers 1..5, else None."""
    match = re.search(r"\{.*\}", content or "", re.DOTALL)
    if not match:
        return None
    try:
        data = json.loads(match.group())
    except json.JSONDecodeError:
        return None
    scores = {}
    for key in RUBRIC:
        value = data.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 1 <= value <= 5:
            return None
        scores[key] = float(value)
    scores["justification"] = str(data.get("justification", ""))[:500]
    return scores


@dataclass
class JudgeStats:
    requested: int = 0
    malformed: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


class Judge:
    """Calls `model` at `base_url` with the rubric prompt; one request per reply."""

    def __init__(self, base_url: str, model: str, api_key: str, timeout: float = 60.0, max_retries: int = 2):
        from openai import OpenAI

        self.model = model
        self.client = OpenAI(base_url=base_url, api_key=api_key or "not-needed", timeout=timeout,
                             max_retries=max_retries)
        self.stats = JudgeStats()

    def _ask(self, prompt: str, parse):
        """One judge call parsed by `parse`; failures and malformed answers are counted and give None."""
        self.stats.requested += 1
        try:
            response = self.client.chat.completions.create(model=self.model, temperature=0,
                                                           messages=[{"role": "user", "content": prompt}])
        except Exception as exc:  # network or server errors: counted, the caller keeps its other signals
            self.stats.failed += 1
            self.stats.errors.append(f"{type(exc).__name__}: {exc}"[:300])
            return None
        parsed = parse(response.choices[0].message.content or "")
        if parsed is None:
            self.stats.malformed += 1
        return parsed

    def score(self, question: str, answer: str) -> dict | None:
        """Rubric scores 1..5 for one reply."""
        return self._ask(JUDGE_PROMPT.replace("{question}", question).replace("{answer}", answer), parse_judgement)

    def compare(self, question: str, a: str, b: str) -> str | None:
        """"A", "B" or "tie"; None when the answer is malformed or the call failed (both counted)."""
        prompt = PAIRWISE_PROMPT.replace("{question}", question).replace("{a}", a).replace("{b}", b)
        return self._ask(prompt, parse_verdict)


def mean_rubric(judgement: dict | None) -> float | None:
    """Rubric mean mapped from 1..5 to 0..1."""
    if judgement is None:
        return None
    return round((sum(judgement[k] for k in RUBRIC) / len(RUBRIC) - 1) / 4, 4)
