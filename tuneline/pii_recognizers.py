"""Custom presidio recognizers for support data, and a precision filter for the small NER model.

- street addresses (the small spaCy model finds only city/state), order ids, account numbers,
  international phone formats the default recognizer misses;
- lowercase "first last" names from US census name lists (package `names`), which NER misses;
- a filter that drops single-word PERSON hits that are ordinary English words ("Dude", "Funny").
"""

from __future__ import annotations

import functools
import re
from importlib.resources import files

from presidio_analyzer import EntityRecognizer, Pattern, PatternRecognizer, RecognizerResult

STREET_SUFFIXES = (r"st|street|ave|avenue|rd|road|blvd|boulevard|dr|drive|ln|lane|way|ct|court|pl|place|ter|"
                   r"terrace|pkwy|parkway|hwy|highway|cir|circle|sq|square")
US_STATES = ("AL|AK|AZ|AR|CA|CO|CT|DE|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|"
             "NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|DC")


def support_recognizers() -> list[EntityRecognizer]:
    street = PatternRecognizer(supported_entity="STREET_ADDRESS", name="StreetAddressRecognizer", patterns=[
        Pattern("number street suffix", rf"(?i)\b\d{{1,6}}\s+(?:[a-z0-9'.-]+\s+){{0,3}}(?:{STREET_SUFFIXES})\b\.?"
                r"(?:,?\s+(?:suite|ste|apt|apartment|unit|#)\s*[\w-]+)?", 0.6),
        Pattern("suite or apartment", r"(?i)\b(?:suite|apt|apartment|unit)\s+#?\d+[a-z]?\b", 0.45),
        Pattern("state and zip", rf"(?i)\b(?:{US_STATES}),?\s+\d{{5}}(?:-\d{{4}})?\b", 0.5),
        Pattern("po box", r"(?i)\bp\.?\s?o\.?\s+box\s+\d+\b", 0.6),
    ], context=["address", "street", "ship", "deliver", "live", "billing"])
    order = PatternRecognizer(supported_entity="ORDER_ID", name="OrderIdRecognizer", patterns=[
        Pattern("order id after keyword",
                r"(?i)(?<=\border(?:\s+(?:id|number|no\.?))?\s*[:#]?\s*)[A-Z0-9][A-Z0-9-]{5,}\b", 0.6),
    ])
    account = PatternRecognizer(supported_entity="ACCOUNT_NUMBER", name="AccountNumberRecognizer", patterns=[
        Pattern("account number after keyword",
                r"(?i)(?<=\b(?:account|acct)(?:\s+(?:number|no\.?|#))?\s*[:#]?\s*)\d[\d -]{5,}\d\b", 0.6),
    ])
    phone = PatternRecognizer(supported_entity="PHONE_NUMBER", name="InternationalPhoneRecognizer", patterns=[
        Pattern("parenthesised area code", r"(?<![\w(])\(\d{2,4}\)\s?\d{2,4}[\s.-]?\d{3,4}(?![\w-])", 0.5),
        Pattern("plus country code", r"(?<![\w+])\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}(?![\w-])", 0.55),
        Pattern("dotted or dashed groups",
                r"(?<![\w.-])\d{3}[.-]\d{3}[.-]\d{4}(?:\s?(?:x|ext\.?)\s?\d{1,6})?(?![\w.-])", 0.5),
        Pattern("spaced digit groups", r"(?<![\w.,+-])(?:\+?\d{1,3}[\s.-])?\d{2,4}(?:[ .-]\d{2,4}){2,4}"
                r"(?:\s?(?:x|ext\.?)\s?\d{1,6})?(?![\w.,-])", 0.4),
    ], context=["phone", "call", "number", "mobile", "cell", "tel", "reach"])
    person_context = PatternRecognizer(supported_entity="PERSON", name="PersonContextRecognizer", patterns=[
        Pattern("honorific", r"(?<=\b(?:[Mm]r|[Mm]rs|[Mm]s|[Mm]iss|[Dd]r)\.?\s)[A-Z][\w'-]+(?:\s[A-Z][\w'-]+)?", 0.6),
        Pattern("introduced name", r"(?<=\b(?:[Mm]y name is|[Nn]ame is|[Cc]all me|[Tt]his is|[Nn]ame:)\s)"
                r"[A-Z][\w'-]+(?:\s[A-Z][\w'-]+)?", 0.6),
        # chat users type in lowercase: after an unambiguous introduction any case is a name
        Pattern("introduced name, any case", r"(?<=\b(?i:my name is|name is|call me|name:)\s)"
                r"(?i:[a-z][\w'-]+(?:\s[a-z][\w'-]+)?)", 0.6),
        Pattern("agent introduction", r"(?<=\b(?i:this is)\s)(?i:[a-z][\w'-]+(?:\s[a-z][\w'-]+)?)"
                r"(?=\s(?i:from|with|at|here|speaking)\b)", 0.6),
        # names by their role in the sentence: who said, who lives where, whose kid, who made what
        Pattern("speaker", r"(?<=\b(?:said|asked|told|replied|wrote|thanked)\s)[A-Z][\w'-]+(?:\s[A-Z][\w'-]+)?", 0.55),
        Pattern("resident", r"\b[A-Z][\w'-]+(?:\s[A-Z][\w'-]+)?(?=\s(?:lives|lived|moved|works|worked)\b)", 0.55),
        Pattern("relative", r"(?<=\b(?:my|his|her|our|their)\s(?:kid|son|daughter|wife|husband|partner|mother|"
                r"father|mom|dad|brother|sister|boss|manager|colleague|friend)\s)[A-Z][\w'-]+", 0.6),
        Pattern("credited", r"(?<=\b(?:directed by|written by|starring|produced by|signed by)\s)"
                r"[A-Z][\w'-]+(?:\s[A-Z][\w'-]+)?", 0.55),
    ], global_regex_flags=re.DOTALL | re.MULTILINE)  # case-sensitive: the capital letter is the signal
    # presidio's email recognizer accepts only public suffixes; internal and reserved domains
    # (jane@corp.internal, ops@acme.example) are addresses all the same
    email = PatternRecognizer(supported_entity="EMAIL_ADDRESS", name="AnyDomainEmailRecognizer", patterns=[
        Pattern("address at any dotted domain",
                r"(?<![\w.+-])[\w.+-]+@[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*\.[a-zA-Z]{2,24}(?![\w-])", 0.7),
    ])
    return [street, order, account, phone, person_context, email, NameLexiconRecognizer()]


@functools.lru_cache(maxsize=1)
def name_lexicon() -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(first names, common last names (top 5k), all last names) from the `names` package's census files."""
    root = files("names")

    def read(name: str, limit: int | None = None) -> frozenset[str]:
        lines = root.joinpath(name).read_text().splitlines()[:limit]
        return frozenset(line.split()[0].lower() for line in lines if line.strip())

    first = read("dist.female.first") | read("dist.male.first")
    return first, read("dist.all.last", 5000), read("dist.all.last")


@functools.lru_cache(maxsize=1)
def first_and_common_last_names() -> frozenset[str]:
    first, common_last, _ = name_lexicon()
    return first | common_last


@functools.lru_cache(maxsize=1)
def common_english_words() -> frozenset[str]:
    from spacy.lang.en.stop_words import STOP_WORDS
    from wordfreq import top_n_list

    return frozenset(top_n_list("en", 30000)) | frozenset(STOP_WORDS)


_NAME_TOKEN = re.compile(r"[^\W\d_][\w'-]*[^\W\d_]|[^\W\d_]")  # letters of any script: "Honoré" is one word


class NameLexiconRecognizer(EntityRecognizer):
    """"first last" pairs from census name lists, any case: catches "crystal minh" that NER misses."""

    def __init__(self):
        super().__init__(supported_entities=["PERSON"], name="NameLexiconRecognizer", supported_language="en")

    def load(self) -> None:
        name_lexicon()

    def analyze(self, text, entities, nlp_artifacts=None):
        from spacy.lang.en.stop_words import STOP_WORDS

        first, _, last = name_lexicon()
        tokens = list(_NAME_TOKEN.finditer(text))
        results = []
        common = common_english_words()
        for token in tokens:  # a capitalised first name that is not also an everyday word
            word = token.group()
            if word[0].isupper() and word[1:].islower() and word.lower() in first and word.lower() not in common:
                results.append(RecognizerResult("PERSON", token.start(), token.end(), 0.5))
        for a, b in zip(tokens, tokens[1:], strict=False):
            x, y = a.group().lower(), b.group().lower()
            if text[a.end():b.start()] != " " or x in STOP_WORDS or y in STOP_WORDS:
                continue
            if x not in first or not (y in last or y in first):
                continue
            capitalised = a.group()[0].isupper() and b.group()[0].isupper()
            # lowercase pairs are mostly ordinary phrases ("love ya"): keep them only with a rare surname
            if not capitalised and y in common:
                continue
            results.append(RecognizerResult("PERSON", a.start(), b.end(), 0.7 if capitalised else 0.5))
        return results


def digit_gated_phone_recognizer() -> EntityRecognizer:
    """presidio's phonenumbers-based recognizer, skipped on text with fewer than 7 digits.

    It runs libphonenumber's matcher once per region (8 by default) on every text, the most expensive
    recognizer here; no number it can accept has fewer than 7 digits, so the gate changes no result.
    """
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    class DigitGatedPhoneRecognizer(PhoneRecognizer):
        def analyze(self, text, entities, nlp_artifacts=None):
            if sum(c.isdigit() for c in text) < 7:
                return []
            return super().analyze(text, entities, nlp_artifacts)

    return DigitGatedPhoneRecognizer(name="DigitGatedPhoneRecognizer")


def drop_common_word_persons(text: str, results: list) -> list:
    """Remove NER hits that are shouting (one all-caps word: "LMAOO"), and PERSON hits that are one ordinary
    English word ("Dude") or all-lowercase words none of which is a name. Places keep common words: most
    city names are also dictionary words."""
    if not results:
        return results
    names = first_and_common_last_names()
    common = common_english_words()
    streets = [(r.start, r.end) for r in results if r.entity_type == "STREET_ADDRESS"]
    kept = []
    for r in results:
        if r.entity_type == "PERSON" and any(s <= r.start and r.end <= e for s, e in streets):
            continue  # "Nelson Mandela Drive": a street named after someone; the address placeholder covers it
        if r.entity_type in ("PERSON", "LOCATION"):
            span = text[r.start:r.end]
            words = [w.lower() for w in _NAME_TOKEN.findall(span)]
            if not words:
                continue
            if r.entity_type == "PERSON" and len(words) == 1 and words[0] in common and words[0] not in names:
                continue
            if len(words) == 1 and span.isupper() and len(span) > 3:
                continue
            if r.entity_type == "PERSON" and span.islower() and not any(w in names for w in words):
                continue
        kept.append(r)
    return kept
