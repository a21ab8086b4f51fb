"""A learned second opinion on name-like detections, for precision on informal text.

spaCy's NER and the name lists read names, places and organisations into capitalised words ("Nuff Said",
"Swiss Chard", "Sagittarius"); every single rule that removed such words also removed real names. This
filter weighs the evidence together: the span's and its neighbours' word vectors (the spaCy pipeline's
own), its shape, its position, the name and place lists, word frequency and how the whole text uses
capitals. It is a gradient-boosted classifier (scikit-learn) fitted by `python -m bench.name_filter` on the
dev sets only (presidio-research generated_large, WNUT'17 train); its decision threshold is the highest
that keeps >= 98.5% of the true detections of the synthetic dev set in cross-validation. It sees only
PERSON/LOCATION/ORGANIZATION detections scored below 0.9 that no context vouches for (titled names,
introduced and signed names, addresses and pattern types pass untouched), and only with the pipeline
whose vectors it was fitted on.
"""

from __future__ import annotations

import hashlib
import pickle
import re
from dataclasses import dataclass
from functools import cache, lru_cache
from pathlib import Path

import numpy as np

from tuneline.pii_recognizers import CONFIDENT_NAME_SCORE, NER_TYPES, registered_name_end

MODEL_PATH = Path(__file__).with_name("pii_name_filter.pkl")
FEATURE_VERSION = 3
_WORD = re.compile(r"[^\W\d_][\w'’-]*")
_SENTENCE_END = ".!?:"
# languages whose words spaCy's English NER reads as names in a tweet or ticket written in them ("Langkah
# Cegah", "como saben que"); wordfreq says how much likelier a word is in one of them than in English
OTHER_LANGUAGES = ("es", "pt", "fr", "de", "it", "nl", "id", "ms", "fil", "tr", "pl", "sv")
FOREIGN_MARGIN = 1.5  # Zipf points: "como" pt 6.8 vs en 3.2 is foreign; "sabrina" pt 3.8 vs en 3.4 is not
# words of time for the filter's calendar feature: wider than pii_recognizers.CALENDAR_WORDS, which drops a name
# outright and so leaves out months that are also first names ("May", "April", "June") and "today"-like words;
# a feature only weighs them, so here they all count
TIME_WORDS = frozenset(
    "monday tuesday wednesday thursday friday saturday sunday today tonight tomorrow yesterday weekend "
    "morning evening night day days week january february march april may june july august september "
    "october november december jan feb mar apr jun jul aug sep sept oct nov dec spring summer autumn "
    "fall winter christmas easter halloween".split())


def is_candidate(result, text: str) -> bool:
    """Name-like and not confident; a firm named with its legal form ("Dada Nexus Limited") is stated by it."""
    return result.entity_type in NER_TYPES and result.score < CONFIDENT_NAME_SCORE and not (
        result.entity_type == "ORGANIZATION" and registered_name_end(text[result.start:result.end]) is not None)


def candidates(texts: list[str], results: list[list], vouched) -> list[tuple[int, int]]:
    """(text, result) indices the filter judges: name-like, not confident, and not where a context pattern
    vouches for a name ("This is Grace Brown", "Jonas Brown here", "Mrs. Teresa"). `vouched(text)` gives
    those spans; a detection the NER and a context pattern both found keeps the NER's score, so the
    pattern's word is asked again here."""
    at = []
    for i, (text, found) in enumerate(zip(texts, results, strict=True)):
        judged = [j for j, r in enumerate(found) if is_candidate(r, text)]
        if not judged:
            continue
        spans = vouched(text)
        at += [(i, j) for j in judged if not any(a < found[j].end and found[j].start < b for a, b in spans)]
    return at


def _mean_vector(vocab, words: list[str], width: int) -> tuple[np.ndarray, float]:
    found = [vocab[w].vector for w in words if vocab.has_vector(w)]
    if not found:
        return np.zeros(width, dtype=np.float32), 0.0
    return np.mean(found, axis=0).astype(np.float32), len(found) / len(words)


@lru_cache(maxsize=1 << 16)
def foreign_margin(word: str) -> float:
    """How many Zipf points likelier a lowercase word is in its likeliest other language than in English."""
    from wordfreq import zipf_frequency

    return max(zipf_frequency(word, language) for language in OTHER_LANGUAGES) - zipf_frequency(word, "en")


def _foreign_share(words: list[str]) -> float:
    return sum(foreign_margin(w) > FOREIGN_MARGIN for w in words) / max(1, len(words))


@lru_cache(maxsize=1024)
def _text_shares(text: str) -> tuple[float, float]:
    """The shares of a text's words that are capitalised and that lean to another language: once per text, not
    once per judged span in it."""
    words = _WORD.findall(text)
    return sum(w[0].isupper() for w in words) / max(1, len(words)), _foreign_share([w.lower() for w in words])


def span_features(text: str, start: int, end: int, entity_type: str, score: float, vocab) -> np.ndarray:
    """One row: 24 scalar features, the span's mean word vector, the mean vector of two words either side."""
    from wordfreq import zipf_frequency

    from tuneline.pii_context import all_place_names
    from tuneline.pii_recognizers import common_english_words, first_and_common_last_names

    names, common, places = first_and_common_last_names(), common_english_words(), all_place_names()
    width = vocab.vectors.shape[1]
    span = text[start:end]
    words = _WORD.findall(span)
    low = [w.lower() for w in words]
    before = _WORD.findall(text[max(0, start - 40):start])[-2:]
    after = _WORD.findall(text[end:end + 40])[:2]
    context_low = [w.lower() for w in before + after]
    capitalised_share, text_foreign_share = _text_shares(text)
    span_vector, with_vector = _mean_vector(vocab, low, width)
    context_vector, _ = _mean_vector(vocab, context_low, width)
    zipfs = [zipf_frequency(w, "en") for w in low] or [0.0]
    sentence_initial = start == 0 or text[:start].rstrip()[-1:] in _SENTENCE_END
    mark = text[max(0, start - 1):start]
    scalars = [len(words), span.istitle(), span.isupper(), sentence_initial,
               any(w in names for w in low), all(w in names for w in low), any(w in places for w in low),
               any(w in common for w in low), max(zipfs), min(zipfs), with_vector, capitalised_share, score,
               entity_type == "PERSON", entity_type == "LOCATION", entity_type == "ORGANIZATION",
               mark in ("@", "#"), text == text.lower(), bool(before) and before[-1][0].isupper(),
               span == span.lower(), _foreign_share(low), _foreign_share(context_low), text_foreign_share,
               any(w in TIME_WORDS for w in low + context_low)]
    return np.concatenate([np.asarray(scalars, dtype=np.float32), span_vector, context_vector])


@dataclass
class NameFilter:
    """The fitted classifier, the pipeline it was fitted with and the threshold below which a detection goes."""

    classifier: object
    spacy_model: str
    vector_width: int
    threshold: float
    feature_version: int = FEATURE_VERSION
    fitted_on: tuple[str, ...] = ()

    def applies_to(self, spacy_model: str, vocab) -> bool:
        return (spacy_model == self.spacy_model and self.feature_version == FEATURE_VERSION
                and vocab.vectors.shape[1] == self.vector_width)

    def keep(self, texts: list[str], results: list[list], vocab, vouched) -> list[list]:
        """Each text's results without the name-like detections the classifier finds implausible."""
        where = candidates(texts, results, vouched)
        if not where:
            return results
        rows = [span_features(texts[i], results[i][j].start, results[i][j].end, results[i][j].entity_type,
                              results[i][j].score, vocab) for i, j in where]
        probability = self.classifier.predict_proba(np.stack(rows))[:, 1]
        dropped = {at for at, p in zip(where, probability, strict=True) if p < self.threshold}
        return [[r for j, r in enumerate(found) if (i, j) not in dropped] for i, found in enumerate(results)]


def save(name_filter: NameFilter, path: Path = MODEL_PATH) -> str:
    """Write the filter and its sha256 beside it (checked on load: only the file this project wrote is read)."""
    data = pickle.dumps(name_filter, protocol=5)
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    path.with_suffix(".sha256").write_text(digest + "\n")
    return digest


@cache
def load(path: Path = MODEL_PATH) -> NameFilter | None:
    """The shipped filter, or None when it is absent. A file whose digest does not match is refused."""
    if not path.is_file():
        return None
    data = path.read_bytes()
    expected = path.with_suffix(".sha256").read_text().strip()
    if hashlib.sha256(data).hexdigest() != expected:
        raise RuntimeError(f"{path} does not match its recorded sha256; refit it with `python -m bench.name_filter`")
    return pickle.loads(data)  # noqa: S301 - the project's own file, digest-checked above
