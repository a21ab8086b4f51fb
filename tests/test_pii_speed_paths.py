"""The fast paths of PII analysis must not change what is found: sentence cache, forked workers, phone gate."""

import pytest

from tuneline.pii import MAX_SEGMENT_CHARS, PiiRedactor, sentence_spans
from tuneline.synthetic import PlantedTruth, generate_product_tickets


def _texts(n: int, seed: int = 3) -> list[str]:
    rows = generate_product_tickets("billing", n, seed=seed, truth=PlantedTruth())
    return [t for r in rows for t in (r["customer_message"], r["agent_response"]) if t]


@pytest.mark.parametrize("text", [
    "Hi Mr. Smith. This is J. Doe! Call me at 555-201-3344. Thanks",
    "What's your last name? Krylova",
    "Line one.\n\nLine two has more words. And a third sentence here.",
    "e.g. Visa works. Paid $5.00 today. Done and dusted now.",
    "word " * 1200,
    "   ",
])
def test_sentence_spans_cover_every_character_without_cutting_names(text):
    spans = sentence_spans(text)
    covered = set()
    for a, b in spans:
        assert 0 <= a < b <= len(text) and b - a <= MAX_SEGMENT_CHARS
        covered.update(range(a, b))
    assert all(i in covered for i, c in enumerate(text) if not c.isspace())
    segments = [text[a:b] for a, b in spans]
    assert not any(s.startswith(("Smith", "Doe", "Visa", "Krylova")) for s in segments), segments


def test_cached_sentences_give_the_same_results_as_a_cold_engine(redactor, monkeypatch):
    texts = _texts(60)
    warm = redactor.analyze(texts)
    cold = PiiRedactor().analyze(texts)
    spans = [[(r.entity_type, r.start, r.end) for r in found] for found in warm]
    assert spans == [[(r.entity_type, r.start, r.end) for r in found] for found in cold]
    assert any(spans), "the generated tickets carry planted PII"
    analysed: list[str] = []
    original = type(redactor)._analyze_uncached
    monkeypatch.setattr(type(redactor), "_analyze_uncached",
                        lambda self, t, e: analysed.extend(t) or original(self, t, e))
    again = redactor.analyze(texts + ["A brand new sentence from Olivia Brown."])
    assert analysed == ["A brand new sentence from Olivia Brown."]
    assert [[(r.entity_type, r.start, r.end) for r in f] for f in again[:-1]] == spans
    assert [r.entity_type for r in again[-1]] == ["PERSON"]


def test_cache_is_bounded():
    small = PiiRedactor(cache_size=50)
    small.analyze(_texts(80, seed=9))
    assert 0 < len(small._cache[tuple(sorted(small.entities))]) <= 50


def test_forked_workers_find_exactly_what_one_process_finds(redactor, monkeypatch):
    texts = list(dict.fromkeys(_texts(400, seed=21)))
    assert len(texts) >= 2 * 200  # enough for the second process to take a share
    two = PiiRedactor(n_process=2)
    single = redactor._analyze_uncached(texts, redactor.entities)
    forked = []
    import concurrent.futures

    original_submit = concurrent.futures.ProcessPoolExecutor.submit
    monkeypatch.setattr(concurrent.futures.ProcessPoolExecutor, "submit",
                        lambda self, *a, **k: forked.append(a[1]) or original_submit(self, *a, **k))
    assert two._analyze_uncached(texts, two.entities) == single
    assert forked and 0 < len(forked[0]) < len(texts), "a forked worker took a share"


def test_digit_gate_changes_no_phone_result(redactor):
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    from tuneline.pii_recognizers import digit_gated_phone_recognizer

    gated, plain = digit_gated_phone_recognizer(), PhoneRecognizer()
    texts = ["call 415-555-0199 now", "+44 20 7946 0958", "no digits", "ref 12345", "(206) 364-2255",
             "tel 030 1234567", "order 123456 and 7"]
    for text in texts:
        got = [(r.start, r.end) for r in gated.analyze(text, ["PHONE_NUMBER"])]
        assert got == [(r.start, r.end) for r in plain.analyze(text, ["PHONE_NUMBER"])], text
