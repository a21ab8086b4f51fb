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
from spacy.lang.en.stop_words import STOP_WORDS

STREET_SUFFIXES = (r"st|street|ave|avenue|rd|road|blvd|boulevard|dr|drive|ln|lane|way|ct|court|pl|place|ter|"
                   r"terrace|pkwy|parkway|hwy|highway|cir|circle|sq|square")
US_STATES = ("AL|AK|AZ|AR|CA|CO|CT|DE|FL|GA|HI|ID|IL|IN|IA|KS|KY|LA|ME|MD|MA|MI|MN|MS|MO|MT|NE|NV|NH|NJ|NM|NY|"
             "NC|ND|OH|OK|OR|PA|RI|SC|SD|TN|TX|UT|VT|VA|WA|WV|WI|WY|DC")


# a writer's family, whose name ("my mum Sarah") and age ("my son is 6") are personal ...
_RELATIVES = ("daughter|son|kid|child|children|baby|boy|girl|mother|mom|mum|mommy|father|dad|daddy|parent|"
              "husband|wife|partner|grandson|granddaughter|grandchild|grandchildren|grandmother|grandma|granny|"
              "grandfather|grandpa|brother|sister|sibling|niece|nephew|aunt|uncle|cousin|toddler|teen|teenager")
# ... and the other people around them, named the same way ("my assistant Lars", "our landlord Mr. Okafor")
_PEOPLE_AROUND = ("boss|manager|colleague|friend|assistant|coworker|co-worker|neighbou?r|fianc[ée]e?|girlfriend|"
                  "boyfriend|roommate|flatmate|landlord|landlady|tenant|nanny|carer|caregiver|supervisor")


def support_recognizers() -> list[EntityRecognizer]:
    street = PatternRecognizer(supported_entity="STREET_ADDRESS", name="StreetAddressRecognizer", patterns=[
        Pattern("number street suffix", rf"(?i)\b\d{{1,6}}\s+(?:[a-z0-9'.-]+\s+){{0,3}}(?:{STREET_SUFFIXES})\b\.?"
                r"(?:,?\s+(?:suite|ste|apt|apartment|unit|#)\s*[\w-]+)?", 0.6),
        Pattern("suite or apartment", r"(?i)\b(?:suite|apt|apartment|unit)\s+#?\d+[a-z]?\b", 0.45),
        Pattern("state and zip", rf"(?i)\b(?:{US_STATES}),?\s+\d{{5}}(?:-\d{{4}})?\b", 0.5),
        Pattern("po box", r"(?i)\bp\.?\s?o\.?\s+box\s+\d+\b", 0.6),
        # US military mail: "USNS Brown\nFPO AP 96522", "PSC 1234, Box 5678\nAPO AE 09012", "Unit 8231 Box 40\nDPO AA"
        Pattern("military mail", r"(?:\b(?:USNS|USNV|USS|USCGC)\s+[A-Z][\w'-]+(?:[ \t]+[A-Z][\w'-]+)?|"
                r"\b(?i:PSC|CMR|Unit)\s+\d{1,5},?\s+(?i:Box)\s+\d{1,5})[\s,]+(?:APO|FPO|DPO)\s+(?:AA|AE|AP)\s+\d{5}"
                r"(?:-\d{4})?\b|\b(?:APO|FPO|DPO)\s+(?:AA|AE|AP)\s+\d{5}(?:-\d{4})?\b", 0.6),
    ], context=["address", "street", "ship", "deliver", "live", "billing"])
    order = PatternRecognizer(supported_entity="ORDER_ID", name="OrderIdRecognizer", patterns=[
        Pattern("order id after keyword",
                # a parcel's tracking number leads to the customer's door as surely as their order's
                r"(?i)(?<=\b(?:order|purchase|tracking|shipment|parcel|consignment|waybill)(?:\s+(?:id|number|no\.?|code))?"
                r"(?:\s+is)?\s*[:#]?\s*)(?=[A-Z-]*\d)[A-Z0-9][A-Z0-9-]{5,}\b",
                0.6),
    ])
    account = PatternRecognizer(supported_entity="ACCOUNT_NUMBER", name="AccountNumberRecognizer", patterns=[
        Pattern("account number after keyword",
                r"(?i)(?<=\b(?:account|acct)(?:\s+(?:number|no\.?|#))?(?:\s+is)?\s*[:#]?\s*)\d[\d -]{5,}\d\b", 0.6),
    ])
    phone = PatternRecognizer(supported_entity="PHONE_NUMBER", name="InternationalPhoneRecognizer", patterns=[
        Pattern("parenthesised area code", r"(?<![\w(])\(\d{2,4}\)\s?\d{2,4}[\s.-]?\d{3,4}(?![\w-])", 0.5),
        Pattern("plus country code", r"(?<![\w+])\+\d{1,3}[\s.-]?\(?\d{1,4}\)?(?:[\s.-]?\d{2,4}){2,4}(?![\w-])", 0.55),
        Pattern("dotted or dashed groups",
                r"(?<![\w.-])\d{3}[.-]\d{3}[.-]\d{4}(?:\s?(?:x|ext\.?)\s?\d{1,6})?(?![\w-]|\.\w)", 0.5),
        # not a date: "2015-01-04", "10-02-10", "10.02.2010" (day and month up to 31, one separator), unless
        # another group of digits follows ("10-20-30 45" is a number; "10-02-10 14:30" a date and a time)
        Pattern("spaced digit groups", r"(?<![\w.,+:-])(?!(?:19|20)\d\d-\d\d?-\d\d?|"
                r"(?:[0-2]?\d|3[01])([.-])(?:[0-2]?\d|3[01])\1(?:(?:19|20)\d\d|\d\d)(?![\w.,:-]|[ .-]\d{2,4}(?![\d:])))"
                r"(?:\+?\d{1,3}[\s.-])?\d{2,4}"
                # a sentence's full stop or comma may end it ("... es 612 34 56 78."), a decimal point may not
                r"(?:[ .-]\d{2,4}){2,4}(?:\s?(?:x|ext\.?)\s?\d{1,6})?(?![\w:-]|[.,]\w)", 0.4),
    ], context=["phone", "call", "number", "mobile", "cell", "tel", "reach"])
    person_context = PatternRecognizer(supported_entity="PERSON", name="PersonContextRecognizer", patterns=[
        Pattern("honorific", r"(?<=\b(?:[Mm]r|[Mm]rs|[Mm]s|[Mm]iss|[Dd]r)\.?\s)[A-Z][\w'-]+(?:\s[A-Z][\w'-]+)?", 0.6),
        # "Name: ..." after a form's label is labeled_name_recognizer's, run over whole texts by PiiRedactor
        Pattern("introduced name", r"(?<=\b(?:[Mm]y name is|[Nn]ame is|[Cc]all me|[Tt]his is)\s)"
                r"[A-Z][\w'-]+(?:\s[A-Z][\w'-]+)?", 0.6),
        # chat users type in lowercase: after an unambiguous introduction any case is a name
        Pattern("introduced name, any case", r"(?<=\b(?i:my name is|name is|call me|calls me)\s)"
                r"(?i:[a-z][\w'-]+(?:\s[a-z][\w'-]+)?)", 0.6),
        Pattern("agent introduction", r"(?<=\b(?i:this is)\s)(?i:[a-z][\w'-]+(?:\s[a-z][\w'-]+)?)"
                r"(?=\s(?i:from|with|at|here|speaking)\b)", 0.6),
        # names by their role in the sentence: who said, who lives where, whose kid, who made what
        Pattern("speaker", r"(?<=\b(?:said|asked|told|replied|wrote|thanked|given|gave|emailed|called|texted|met|"
                r"contacted|shouted at|calls me|starring|assistant to|cc|forwarded to|spoke to|spoke with)\s)"
                r"[A-Z][\w'’-]+(?:\s[A-Z][\w'’-]+)?", 0.55),
        # greetings and sign-offs address someone by name: "Hi Ella,", "Thanks Teresa!", "Dear Mr. Okafor"
        Pattern("greeted", r"(?<=\b(?i:hi|hello|hey|dear|thanks|thank you|thx|cheers|regards|sincerely|best|welcome|"
                r"good morning|good afternoon|good evening|bye)\s)[A-Z][\w'’-]+(?:\s[A-Z][\w'’-]+)?"
                r"(?=\s*(?:[,!.:;\n]|$))", 0.55),
        Pattern("addressed", r"^[A-Z][\w'’-]+"
                r"(?=,\s(?i:can|could|would|will|please|i|we|you|do|did|are|is|thanks|thank)\b)", 0.55),
        Pattern("signed", r"(?:^|(?<=[.!?,:]\s))[A-Z][\w'’-]+(?:\s[A-Z][\w'’-]+)?(?=\s(?:here|speaking)\b)", 0.55),
        # whose address, daughter, account: "Fiammetta's address", "lisa's daughter" (any case: lowercase text)
        Pattern("owner", r"\b(?i:[^\W\d_][\w'’-]+)(?=['’]s\s(?i:address|daughter|son|kid|child|wife|husband|mother|"
                r"father|mom|dad|account|email|phone|number|order|card|birthday|boss|friend|brother|sister|partner|"
                r"name|profile)\b)", 0.55),
        Pattern("resident", r"\b[A-Z][\w'-]+(?:\s[A-Z][\w'-]+)?(?=\s(?:lives|lived|moved|works|worked)\b)", 0.55),
        Pattern("relative", rf"(?<=\b(?:my|his|her|our|their)\s(?:{_RELATIVES}|{_PEOPLE_AROUND})\s)"
                r"(?!I['’])[A-Z][\w'-]+", 0.6),
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
    from wordfreq import top_n_list

    return frozenset(top_n_list("en", 30000)) | frozenset(STOP_WORDS)


EVERYDAY_ZIPF = 4.5  # wordfreq's Zipf scale: "will" 6.5, "mark" 5.0, "bill" 4.9 | "dawn" 4.3, "jeremy" 4.0


@functools.lru_cache(maxsize=50_000)
def everyday(word: str) -> bool:
    """Whether a lowercase word is frequent enough in English to be read as a word before a name."""
    from wordfreq import zipf_frequency

    return zipf_frequency(word, "en") >= EVERYDAY_ZIPF


_NAME_TOKEN = re.compile(r"[^\W\d_][\w'-]*[^\W\d_]|[^\W\d_]")  # letters of any script: "Honoré" is one word


class NameLexiconRecognizer(EntityRecognizer):
    """"first last" pairs from census name lists, any case: catches "crystal minh" that NER misses."""

    def __init__(self):
        super().__init__(supported_entities=["PERSON"], name="NameLexiconRecognizer", supported_language="en")

    def load(self) -> None:
        name_lexicon()

    def analyze(self, text, entities, nlp_artifacts=None):
        first, _, last = name_lexicon()
        tokens = list(_NAME_TOKEN.finditer(text))
        results = []
        common = common_english_words()
        for token in tokens:  # a capitalised first name that is not also an everyday word
            word = token.group()
            if word[0].isupper() and word[1:].islower() and word.lower() in first and not everyday(word.lower()):
                results.append(RecognizerResult("PERSON", token.start(), token.end(), 0.5))
        for a, b in zip(tokens, tokens[1:], strict=False):
            x, y = a.group().lower(), b.group().lower()
            if text[a.end():b.start()] != " " or x in STOP_WORDS or y in STOP_WORDS:
                continue
            if x not in first or not (y in last or y in first):
                continue
            capitalised = a.group()[0].isupper() and b.group()[0].isupper()
            if not capitalised and text != text.lower():
                continue  # a text that uses capitals writes names with them: "sanda vara" is not a name there
            # lowercase pairs are mostly ordinary phrases ("love ya"): keep them only with a rare surname
            if not capitalised and y in common:
                continue
            results.append(RecognizerResult("PERSON", a.start(), b.end(), 0.7 if capitalised else 0.5))
        return results


def uk_national_insurance_recognizer() -> EntityRecognizer:
    """presidio's UK National Insurance number recognizer (off in presidio's defaults), skipped on text with
    fewer than 6 digits: every number it matches has six."""
    from presidio_analyzer.predefined_recognizers import UkNinoRecognizer

    class DigitGatedUkNinoRecognizer(UkNinoRecognizer):
        def analyze(self, text, entities, nlp_artifacts=None, regex_flags=None):
            if sum(c.isdigit() for c in text) < 6:
                return []
            return super().analyze(text, entities, nlp_artifacts, regex_flags)

    return DigitGatedUkNinoRecognizer(name="UkNinoRecognizer")


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


_SOCIAL_NOISE = re.compile(r"^(?:(?:RT|rt)\b\s*|[@#]\w+\s*|&\w+;?\s*|[^\w\s]+\s*)+")
NER_TYPES = ("PERSON", "LOCATION", "ORGANIZATION")
CONFIDENT_NAME_SCORE = 0.9  # titled names ("Mrs. Teresa") score this and are not second-guessed
_TEMPLATE_SLOT = re.compile(r"\{\{[^{}\d]{1,60}\}\}")
NER_SCORE = 0.85  # the score presidio gives every spaCy entity (set in PiiRedactor's NER configuration)


def trim_social_noise(text: str, start: int, end: int) -> tuple[int, int]:
    """The span without a leading retweet mark, @handles, #tags, HTML entities or punctuation."""
    span = text[start:end]
    head = _SOCIAL_NOISE.match(span)
    if head and head.end() > 0 and head.start() == 0:
        start += head.end()
        span = text[start:end]
    tail = re.search(r"(?:\s*(?:[@#]\w*|&\w+;?|[^\w\s.]+))+$", span)
    if tail and tail.start() > 0:
        end = start + tail.start()
    return start, end


# the lowercase words between a person's names ("Juan de la Cruz", "Siobhán Ní Bhriain", "Ahmad bin Ali"): one
# list for sign-offs, self-introductions abroad and the NER's names
SURNAME_PARTICLES = frozenset("de del della da das do dos di du la le van von der den ter ten bin binti ibn al el y "
                              "e mc o'".split())
# ... and of an organisation's or a place's ("Bank of the West", "Stratford-upon-Avon")
NAME_PARTICLES = SURNAME_PARTICLES | {"of", "the", "and", "upon", "on"}
CALENDAR_WORDS = frozenset(
    "mon tue tues wed thu thur thurs fri sat sun monday tuesday wednesday thursday friday saturday sunday jan feb "
    "mar apr jun jul aug sep sept oct nov dec january february march july august september october november "
    "december christmas xmas easter noel halloween".split())
_ELONGATED = re.compile(r"([a-z])\1\1|^(?:so|to|yes|no)o+$")


def _adverb(word: str) -> bool:
    """An English adjective with "-ly" ("optionally", "finally"); not a name like "Tilly", "Beverly", "Bailey"."""
    from wordfreq import zipf_frequency

    stem = word[:-2]
    return word.endswith("ly") and len(stem) >= 5 and zipf_frequency(stem, "en") >= 3.5


# a numbered list item's marker ("2. ", "4) "), read by the street rules and for a list item's heading
LIST_MARKER = r"\d{1,2}[.)][ \t]+"
# a numbered list item's heading: "2. Non-Delivery: If the product ..." (the span starts after the marker)
_LIST_HEADING_BEFORE = re.compile(rf"(?:^|\n)[ \t]*{LIST_MARKER}$")
_LIST_HEADING_AFTER = re.compile(r"[ \t]*:")


def _inside_handle_or_link(text: str, start: int, end: int) -> bool:
    """Whether [start, end) lies inside an @handle, a #tag or a web address."""
    token_start = max(text.rfind(" ", 0, start), text.rfind("\n", 0, start)) + 1
    token = text[token_start:end]
    return token[:1] in ("@", "#") or "://" in token or token.startswith("www.")


def _inside_link(text: str, position: int) -> bool:
    """Whether `position` falls inside a web address (scheme or www. form)."""
    token_start = max(text.rfind(" ", 0, position), text.rfind("\n", 0, position)) + 1
    token = text[token_start:position + 1]
    return "://" in token or token.startswith("www.")


def mostly_english(text: str) -> bool:
    """Whether the lowercase words of `text` are mostly English: the small NER model reads names into
    other languages' ordinary words ("Bakit lagi na lang"). Texts with few lowercase words count as English."""
    lowercase = [w for w in re.findall(r"\b[a-z]{2,}\b", text)]
    if len(lowercase) < 4:
        return True
    common = common_english_words()
    return sum(w in common for w in lowercase) / len(lowercase) >= 0.7


def drop_implausible_names(text: str, results: list, vouched=None) -> list:
    """Precision filter for NER hits (PERSON, LOCATION, ORGANIZATION) on informal text.

    Drops: shouting (one all-caps word: "LMAOO"); @handles, #tags and retweet marks (trimmed off);
    one ordinary English word ("Dude", "Wisdom", "Devil") that is not a first/last name (PERSON) or a
    known place (LOCATION); lowercase words in a text that uses capitals, unless they are names or places;
    organisations made only of everyday words. Streets named after someone stay inside the address.
    `vouched()`, asked only when needed, gives the spans a context says are names ("my friend Lars", "Lars" being
    common in English text; "Customer: Fatima Zahra El Idrissi" in a French-speaking ticket): there a name
    is kept.
    """
    if not results:
        return results
    from presidio_analyzer import RecognizerResult

    from tuneline.pii_context import all_place_names, sentence_not_street

    names = first_and_common_last_names()
    common = common_english_words()
    places = all_place_names()
    mixed_case = text != text.lower()
    foreign = not mostly_english(text)
    streets = [(r.start, r.end) for r in results if r.entity_type == "STREET_ADDRESS"]
    templates = [m.span() for m in _TEMPLATE_SLOT.finditer(text)]
    kept = []
    for r in results:
        if any(a < r.end and r.start < b for a, b in templates):
            continue  # a template's own slot ("{{Bill Number}}", "{{Website Name}}") is not anyone's data
        if r.entity_type == "PHONE_NUMBER" and _inside_link(text, r.start):
            continue  # digits in a web address's path are an article's id ("lsnlw.com/t/4188153892/")
        if r.entity_type == "STREET_ADDRESS" and mixed_case and sentence_not_street(text, r.start, r.end):
            continue  # "a 7 hour drive", "3 more on the way": a number and a street word in a sentence
        if r.entity_type == "PERSON" and any(s <= r.start and r.end <= e for s, e in streets):
            continue  # "Nelson Mandela Drive": a street named after someone; the address placeholder covers it
        if r.entity_type in NER_TYPES and r.score < CONFIDENT_NAME_SCORE:  # not the titled names
            start, end = trim_social_noise(text, r.start, r.end)
            span = text[start:end]
            words = [w.lower() for w in _NAME_TOKEN.findall(span)]
            if not words or end <= start or "://" in span or "/" in span:
                continue
            known = {"PERSON": names, "LOCATION": places, "ORGANIZATION": frozenset()}[r.entity_type]
            said = r.entity_type == "PERSON" and vouched is not None and any(  # "Customer: Fatima El Idrissi"
                a <= start and end <= b for a, b in vouched())
            if foreign and not said and not all(w in known for w in words):
                continue
            if foreign and not said and len(words) == 1 and r.score < NER_SCORE:
                continue  # a lone listed name or place in another language is mostly a word ("Na", "Anak")
            if len(words) == 1 and words[0] in CALENDAR_WORDS:
                continue  # "March", "May": months, not the towns of that name
            name_end = registered_name_end(span) if r.entity_type == "ORGANIZATION" else None
            if name_end is not None:  # "Sound Energy PLC" of "Sound Energy PLC's"
                end = start + name_end
                span = text[start:end]
                words = [w.lower() for w in _NAME_TOKEN.findall(span)]
            legal_form = name_end is not None
            if (start, end) != (r.start, r.end):
                r = RecognizerResult(r.entity_type, start, end, r.score)
            if span.isupper() and len(span) > 3 and span.lower() not in known and not legal_form:
                continue  # shouting ("LMAOO", "SUNDAY NIGHT"); capitals that are a known place or firm stay
            if r.entity_type == "ORGANIZATION" and span.isupper() and len(words) == 1 and r.score == NER_SCORE:
                continue  # an acronym alone ("VMA", "HSM", "XPS") names a brand, show or product, not a customer
            if r.entity_type == "PERSON" and any(w in CALENDAR_WORDS for w in words):
                continue  # "Thu Jan", "Sunday Sept", "Merry Christmas"
            if r.entity_type == "PERSON" and len(words) == 1 and _adverb(words[0]) and words[0] not in names:
                continue  # an adverb opening a sentence: "Optionally, you may ...", "Alternatively, we"
            if not said and not all(w in names for w in words) and _LIST_HEADING_AFTER.match(text, end) \
                    and _LIST_HEADING_BEFORE.search(text, max(0, start - 8), start):
                continue  # "2. Non-Delivery: If ...": a list item's heading; not "1. Maria Lopez: manager"
            by_context = r.entity_type == "ORGANIZATION" and (  # "the X office", "X Ltd."
                r.score != NER_SCORE or bool(ENDS_WITH_COMPANY_SUFFIX.search(span)))
            if len(words) == 1 and words[0] in common and words[0] not in known and not by_context and not said:
                continue
            if mixed_case and span.islower() and not any(w in known for w in words) \
                    and span.lower() not in known:
                continue
            if r.entity_type == "ORGANIZATION" and not by_context and all(w in common for w in words):
                continue
            if _inside_handle_or_link(text, start, end) or any(_ELONGATED.search(w) for w in words):
                continue  # "Suzie" in "@Suzie55"; "Wheeee", "Soo Glad"
            if r.entity_type == "PERSON" and len(words) > 1 and \
                    all(w in common and w not in names and w.isascii() for w in words):
                continue  # "Guitar Hero", "Sun Care"; not "Mateo Müller" (English words are written in ASCII)
            name_part = span[:_LEGAL_FORM_AT.search(span).start()] if legal_form else span  # "Mallinckrodt" (plc)
            if mixed_case and any(w[0].islower() and w.lower() not in NAME_PARTICLES for w in name_part.split()):
                continue  # a text with capitals writes names with them: "Sana sa", "Reda c'est mon"
        kept.append(r)
    return kept

# words a company puts after its own product or plan name ("Freemium account", "Acme Pro plan")
PRODUCT_WORDS = frozenset("plan plans account accounts tier subscription edition membership package app profile "
                          "option version pro plus premium basic free business enterprise team support care "
                          "service services helpdesk desk customer".split())  # and a signature's "Acme Support"


def company_vocabulary(names) -> frozenset[str]:
    """The lowercase words of the company's own names, products and plans (`PiiEngine.allow_list`,
    `CleaningConfig.company_names`): a name made only of them is the company's, not a customer's."""
    return frozenset(w.lower() for name in names for w in _NAME_TOKEN.findall(name))


def drop_company_names(text: str, results: list, vocabulary: frozenset[str]) -> list:
    """NER hits (PERSON, LOCATION, ORGANIZATION) whose words are all the company's own, optionally with
    a product word, are not personal data: "Freemium", "freemium account", "Acme Pro plan". A name with
    any other word ("Freemium Kowalski") stays a detection; so does every pattern type (emails, numbers)."""
    if not vocabulary:
        return results
    kept = []
    for r in results:
        words = [w.lower() for w in _NAME_TOKEN.findall(text[r.start:r.end])]
        if r.entity_type in NER_TYPES and words and any(w in vocabulary for w in words) \
                and all(w in vocabulary or w in PRODUCT_WORDS for w in words):
            continue
        kept.append(r)
    return kept


STATED_IDENTIFIERS = ("ORDER_ID", "ACCOUNT_NUMBER")
GUESSED_NUMBERS = ("PHONE_NUMBER", "CREDIT_CARD")


def prefer_stated_identifiers(results: list) -> list:
    """A number the text calls an order or account number ("order 3707955617", "purchase 113542617735902")
    is that, even when its digits could dial or pass Luhn: a phone or card detection inside it is dropped,
    so one number gets one placeholder and a model trained on the text learns [ORDER_ID] after "order"."""
    stated = [r for r in results if r.entity_type in STATED_IDENTIFIERS]
    if not stated:
        return results
    return [r for r in results if r.entity_type not in GUESSED_NUMBERS
            or not any(s.start <= r.start and r.end <= s.end for s in stated)]


_ANY_DIGIT = re.compile(r"\d")


class RegexValueRecognizer(EntityRecognizer):
    """Patterns whose named group `v` is the value and whose rest is the context that makes it PII
    ("my driver's license number is (v)", "(v) office"): Python's lookbehind cannot vary in width."""

    def __init__(self, entity: str, name: str, patterns: list[str], score: float = 0.6, validate=None,
                 needs_digit: bool = False):
        super().__init__(supported_entities=[entity], name=name, supported_language="en")
        self.patterns = [re.compile(p) for p in patterns]
        self.score = score
        self.validate = validate
        self.needs_digit = needs_digit  # every pattern's value has a digit: a text without one is skipped

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        results = []
        if self.needs_digit and not _ANY_DIGIT.search(text):
            return results
        for pattern in self.patterns:
            for m in pattern.finditer(text):
                start, end = m.span("v")
                if end > start and (self.validate is None or self.validate(m.group("v"))):
                    results.append(RecognizerResult(self.supported_entities[0], start, end, self.score))
        return results


def luhn_valid(value: str) -> bool:
    digits = [int(c) for c in value if c.isdigit()]
    if not 12 <= len(digits) <= 19 or len(set(digits)) == 1:
        return False
    total = 0
    for i, d in enumerate(reversed(digits)):
        total += d if i % 2 == 0 else (d * 2 - 9 if d * 2 > 9 else d * 2)
    return total % 10 == 0


# "double nine", "triple oh": British ways of saying a repeated digit
_DIGIT_WORD = r"(?:(?:double|triple)[\s-]+)?(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|\d)"
_PHONE_CONTEXT = (r"(?i:\b(?:call(?:ed|ing)?|phone|tel(?:ephone)?|mobile|cell|reach(?: me)?|text(?: me)?|"
                  r"whatsapp|answering at|fax|dial|contact(?: number)?|sms|messages? (?:to|on)|registered)\b)")
_TLDS = (r"com|net|org|edu|gov|io|co|uk|de|fr|es|it|nl|be|ch|at|se|no|dk|fi|pl|cz|ru|jp|cn|in|au|ca|br|mx|info|"
         r"biz|me|us|eu|hu|is|si|tn|nz|za|pt|gr|ie|tv|app|dev|mail")


# the rest of a web address, not the sentence's punctuation after it ("at www.lenaphotos.de, my email ...")
_URL_TAIL = r"[^\s<>\"'|]*[^\s<>\"'|.,;:!?)]"


# an age ends its clause or is followed by years: not "he is 5 minutes away", "my son was 2 hours late"
_AGE_END = r"(?=\s*(?:years?|yrs?|$|[.!;)]|,\s|and\b|but\b|so\b|now\b|next\b|this\b|last\b))"


def context_recognizers() -> list[EntityRecognizer]:
    """Values that only context makes personal: ages, dates of birth, local phone numbers, licence and
    account numbers, obfuscated emails, spelled-out digits, cards by Luhn, personal web addresses."""
    age = RegexValueRecognizer("AGE", "AgeRecognizer", [
        # not the end of a range: "a class for 3-5 year olds", "ages 8 to 12 years old" is no one's age
        r"(?i)\b(?<!\d-)(?<!\d–)(?<!\d to )(?P<v>\d{1,3})(?:[- ](?:years?|yrs?)[- ]old|[- ]year[- ]old|\s?y/?o\b)",
        r"(?i)\bat the age of\s+(?P<v>\d{1,3})\b",
        r"(?i)\b(?:aged?|age:|age is|i am|i'm|im|turn|turns|turned|turning)\s+(?P<v>\d{1,3})\b(?=\s*(?:years?|yrs?|$|"
        r"[.,!;)]|and|but|so|now))",
        # "written when he was 61.", "when I was 12,": a person's age at a moment of their life
        r"(?i)\bwhen (?:i|he|she|they|we|you) (?:was|were)\s+(?P<v>\d{1,3})\b(?=\s*(?:years?|yrs?|$|[.,!;)]))",
        # a relative's age as a bare number: "my daughter is 6", "our kids are 4 and 7", "my dad just turned 70"
        r"(?i)\b(?:my|our|his|her|their)\s+(?:(?:little|baby|young|younger|old|older|eldest|oldest|youngest|elder|"
        r"step|twin|two|three)\s+)?(?:" + _RELATIVES + r")s?"
        r"(?:'s|,?\s+(?:who\s+)?(?:is|are|was|were|will be|(?:just\s+)?turn(?:s|ed)?))"
        r"\s+(?P<v>\d{1,3}(?:(?:,\s*|\s+and\s+|\s*&\s*)\d{1,3})*)\b" + _AGE_END,
        # "my father, who is 81,", "she is 45 and lives in Leeds", "I turned 65 last month"
        r"(?i),\s*who(?:\s+is|\s+was|\s+just\s+turned|\s+turned|'s)\s+(?P<v>\d{1,3})\b" + _AGE_END,
        r"(?i)\b(?:he|she)(?:\s+is|\s+was|'s|\s+just\s+turned|\s+turned)\s+(?P<v>\d{1,3})\b" + _AGE_END,
        r"(?i)\b(?:i|we)\s+(?:just\s+)?turned\s+(?P<v>\d{1,3})\b(?=\s+(?:last|this|in|on|today|yesterday|recently)\b)",
    ], 0.6, validate=lambda v: all(0 < int(n) < 125 for n in re.findall(r"\d+", v)), needs_digit=True)
    date = PatternRecognizer(supported_entity="DATE_TIME", name="PersonalDateRecognizer", patterns=[
        # a whole calendar date in a customer's ticket is theirs: a birth, a purchase, a visit. A day and month
        # alone (a reply's schedule) and times of day stay readable.
        Pattern("numeric date with year", r"(?<![\w/.:-])(?:\d{1,2}[/.-]\d{1,2}[/.-](?:19|20)\d{2}|"
                r"(?:19|20)\d{2}[/.-]\d{1,2}[/.-]\d{1,2})"
                # a time with it is part of the same moment: "2021-03-04 10:22:05.123456+01:00", "...T10:22Z"
                r"(?:[ T]\d{1,2}:\d{2}(?::\d{2}(?:[.,]\d{1,9})?)?(?:\s?(?:Z|UTC|GMT|[+-]\d{2}:?\d{2})(?![\w:]))?)?"
                r"(?![\w/-]|[.:]\d)", 0.6),
        Pattern("month name date with year, of a birth",
                r"(?i)(?<=\b(?:born|birth|dob|birthday|b\.)\W{1,4}(?:on|is|:)?\W{0,2})\b(?:\d{1,2}(?:st|nd|rd|th)?\s+(?:of\s+)?)?(?:jan|feb|mar|apr|may|jun|jul|aug|sep|sept|oct|nov|"
                r"dec)[a-z]*\.?\s+(?:\d{1,2}(?:st|nd|rd|th)?,?\s+)?(?:19|20)\d{2}\b", 0.55),
    ])
    phone = RegexValueRecognizer("PHONE_NUMBER", "ContextPhoneRecognizer", [
        _PHONE_CONTEXT + r"[^\d\n]{0,25}?"
        r"(?P<v>\+?\(?\d[\d()]{0,4}\)?(?:[ .-]?\(?\d{2,5}\)?){1,5}(?:\s?(?:x|ext\.?)\s?\d{1,6})?)"
        r"(?![\w-]*\d)",
        r"(?<![\w.+-])(?P<v>\+?\(?\d[\d()]{0,4}\)?(?:[ .-]?\(?\d{2,5}\)?){1,5}(?:\s?(?:x|ext\.?)\s?\d{1,6})?)"
        r"\s*-?\s*(?i:office|fax|mobile|cell|home|work|direct)\b",
        r"(?i)\b(?P<v>(?:" + _DIGIT_WORD + r"[\s,-]+){6,14}" + _DIGIT_WORD + r")\b",
    ], 0.55, validate=lambda v: 6 <= sum(c.isdigit() for c in v) <= 15 or len(v.split()) >= 7)
    licence = RegexValueRecognizer("US_DRIVER_LICENSE", "LicenceNumberRecognizer", [
        r"(?i)\b(?:driver'?s?|driving)\s+licen[cs]e(?:\s+(?:number|no\.?|#))?\s*(?:is|:|#)?\s*(?P<v>[A-Z0-9][A-Z0-9-]{4,19})\b",
        r"(?i)\b(?:licen[cs]e|passport|dl|id|identity card|national id|tax id|member(?:ship)?|customer|policy|"
        r"loyalty|employee)\s*(?:number|no\.?|#|id)\s*(?:is|:|#)?\s*(?P<v>[A-Z0-9][A-Z0-9-]{4,19})\b",
    ], 0.6, validate=lambda v: any(c.isdigit() for c in v), needs_digit=True)
    labelled_id = RegexValueRecognizer("US_DRIVER_LICENSE", "LabelledIdRecognizer", [
        # identifiers a label names on its own: "Tax ID: 12-3456789", "my SIN is 046 454 286", "license plate is
        # KA-01-HH-1234", "patient MRN 00482913", "NI number QQ 12 34 56 C" (the value in capitals and digits)
        r"(?i)\b(?:tax id|tin|ein|sin|nin|ni number|national insurance(?: number)?|aadhaar|pan|nhs number|"
        r"mrn|medical record(?: number)?|patient id|licen[cs]e plate|number plate|plate number|"
        r"(?:insurance|medicare|medicaid|subscriber|member|health card|health plan|benefits)(?: id| number| no\.?)|"
        r"passport(?: number| no\.?| #)?|"
        r"(?:vehicle )?registration(?: number| no\.?)?|reg(?: number| no\.?)|vin)\b\s*(?:is|:|#)?\s*"
        # groups of capitals and digits, joined by hyphens or by spaces before short groups ("AB12 CDE")
        r"(?P<v>(?-i:[A-Z0-9]{1,20}(?:-[A-Z0-9]{1,20})*(?: [A-Z0-9]{1,4}(?:-[A-Z0-9]{1,20})*){0,4}))(?![\w-])",
    ], 0.6, validate=lambda v: sum(c.isdigit() for c in v) >= 2 and sum(c.isalnum() for c in v) >= 5,
       needs_digit=True)
    card = RegexValueRecognizer("CREDIT_CARD", "LuhnCardRecognizer", [
        r"(?<![\w-])(?P<v>\d(?:[ -]?\d){11,18})(?![\w-])",
    ], 0.6, validate=luhn_valid, needs_digit=True)
    obfuscated_email = RegexValueRecognizer("EMAIL_ADDRESS", "ObfuscatedEmailRecognizer", [
        r"(?i)(?<![\w.])(?P<v>[a-z0-9_+-]+(?:(?:\s+dot\s+|\s*[\[({]dot[\])}]\s*|\.)[a-z0-9_+-]+)*"
        r"(?:\s+at\s+|\s*[\[({]at[\])}]\s*|\s*@\s*)[a-z0-9-]+(?:(?:\s+dot\s+|\s*[\[({]dot[\])}]\s*|\.)[a-z0-9-]+)*"
        r"(?:\s+dot\s+|\s*[\[({]dot[\])}]\s*|\.)(?:" + _TLDS + r"))\b",
    ], 0.6, validate=lambda v: bool(re.search(r"(?i)\sdot\s|[\[({](?:at|dot)[\])}]|\s@|@\s", v)))
    url = RegexValueRecognizer("URL", "WebAddressRecognizer", [
        # a web address the writer owns or a label states: "my website is ...", "posted a photo https://...",
        # "Website:\nhttps://...", "files shared with you https://..."
        r"(?i)\bmy (?:website|site|blog|page|homepage|portfolio|shop|store|profile) (?:is|at|on)[ \t:]+"
        r"(?P<v>(?:https?://)?(?:www\.)?[a-z0-9-]+(?:\.[a-z0-9-]+)*\.(?:" + _TLDS + r")\b(?:" + _URL_TAIL + ")?)",
        # "my personal site https://janedoe.dev/contact": a full address right after it needs no verb
        r"(?i)\bmy (?:(?:personal|own|new|old|private|art|photography|band's|business) )?(?:website|web site|site|"
        r"blog|page|homepage|portfolio|shop|store|profile|linktree)(?: (?:is|at|on|here))?[ \t:]+"
        r"(?P<v>(?:https?://|www\.)" + _URL_TAIL + ")",
        r"(?i)\bposted a (?:photo|picture|video) (?P<v>https?://" + _URL_TAIL + ")",
        r"(?i)\b(?:website|web site|homepage|home page|blog|portfolio)[ \t]*:[ \t]*(?:\n[ \t]*)?"
        r"(?P<v>(?:https?://|www\.)" + _URL_TAIL + ")",
        r"(?i)\bshared (?:[\w-]+ ){0,3}with you:?\s+(?P<v>https?://" + _URL_TAIL + ")",
    ], 0.6)
    post_code = RegexValueRecognizer("STREET_ADDRESS", "PostCodeRecognizer", [
        r"(?i)\b(?:zip|postal|post|postcode)(?:\s*code)?\s*(?:is|was|:|#)?\s*(?P<v>\d{3,6}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]?\s?"
        r"\d[A-Z]{2}|[A-Z]\d[A-Z]\s?\d[A-Z]\d|\d{2}-\d{3}|\d{4,5}-\d{3}|\d{3}\s\d{2})(?![\w-])",
    ], 0.6, needs_digit=True)
    # a handle or user name the writer states as theirs: "my Twitter is @jane_doe88", "username: kdoe_77";
    # a value that is an everyday word ("my username is not working") is not one
    handle = RegexValueRecognizer("USERNAME", "UsernameRecognizer", [
        r"(?i)\bmy (?:twitter|instagram|insta|ig|tiktok|snapchat|snap|telegram|discord|github|gitlab|reddit|"
        r"skype|twitch|youtube|mastodon|threads|steam|xbox|psn|gamer ?tag|venmo|cash ?app|paypal\.me|linkedin|"
        r"facebook|fb|pinterest|bluesky|roblox|minecraft|spotify|soundcloud|behance|dribbble|patreon|kik|wechat)"
        r"(?: (?:handle|username|user name|account|name|id|tag|cashtag))? is:? (?P<v>[@$]?[\w.-]*\w(?:/[\w.-]*\w)*)",
        # "my username on the portal is wanderlust_kate": where the name is used may stand between
        r"(?i)\b(?:user ?name|handle|login|gamer ?tag)(?:[ \t]+(?:on|for|at|in)(?:[ \t]+[\w.-]+){1,3}?)?"
        r"(?: is|:)[ \t]*(?P<v>@?[\w.-]*\w(?:/[\w.-]*\w)*)",
    ], 0.6, validate=lambda v: len(v) > 2 and (v[0] in "@$" or any(c.isdigit() or c in "_." for c in v)
                                               or not everyday(v.lower())))
    # a secret the writer pastes ("my password is Summer2024!", "PIN 4821", "the code was 583 201"): whoever reads
    # the ticket could sign in as them. A state of it ("my password is not working", "PIN is wrong") is not one
    secret = RegexValueRecognizer("CREDENTIAL", "CredentialRecognizer", [
        r"(?i)\b(?:password|passcode|pass code|passphrase|passwd|pwd|pin(?: code| number)?|security code|cvv2?|cvc|"
        r"otp|one[- ]time (?:code|password)|verification code|security answer|memorable word)"
        r"[ \t]*(?:is|was|=|:|(?:is|was)[ \t]+set[ \t]+to)[ \t]*[\"'“‘]?(?P<v>[^\s\"'”’{}]{2,63}[^\s\"'”’{}.,;:])",
        r"(?i)\b(?:pin|cvv2?|cvc|otp|security code|verification code)(?: code| number)?[ \t]+(?P<v>\d{3,8})\b",
    ], 0.95, validate=lambda v: any(not c.isalpha() for c in v) or v.lower() not in common_english_words())
    return [age, date, phone, licence, labelled_id, card, obfuscated_email, url, post_code, handle, secret,
            *organization_recognizers()]


# where a form's or a chat's name label may stand: a line's start, after punctuation, or after whose name it is
# ("Product name: Widget Pro" is not one)
_NAME_LABEL = (r"(?:(?m:^)[ \t]*|(?<=[^\w\s][ \t])|(?i:\b(?:your|my|the|his|her|their|customer'?s?)\s+))"
               r"(?i:(?:full |first |last |sur)?name(?: on (?:the|your|my) (?:account|card|order))?)")


def _a_name_first(value: str) -> bool:
    """A labelled value whose first word is not an everyday word: "Customer: Thank You" is a reply, "Customer:
    Fatima El Idrissi" a person."""
    return not everyday(value.split()[0].lower())


def labeled_name_recognizer() -> RegexValueRecognizer:
    """The name a label states: "Name:    Klaudia Wiśniewska", "What's your last name? Trevisan", "name: john
    smith" (chat users type in lowercase: then at most two words). A label says outright that a name follows,
    so the name filter does not second-guess these (PiiRedactor.vouched_names). It reads whole texts, not
    sentences: "What's the name on the account? User: Bibulat Z Sultygov" is a label and its answer."""
    return RegexValueRecognizer("PERSON", "LabeledNameRecognizer", [
        _NAME_LABEL + r"[ \t]*[:?][ \t]*(?:\n[ \t]*)?(?i:user:[ \t]*)?"
        r"(?P<v>[A-Z][\w'’-]+(?:[ \t]+[A-Z][\w'’.-]*){0,3})",
        _NAME_LABEL + r"[ \t]*:[ \t]*(?P<v>[a-z][\w'’-]+(?:[ \t][a-z][\w'’-]+)?)(?![\w'’-])",
    ], 0.6)


def person_field_recognizer() -> RegexValueRecognizer:
    """A person a form's field or an email header names without the word "name"; read with the name labels
    (PiiRedactor.labeled_names) and vouched for like them."""
    return RegexValueRecognizer("PERSON", "PersonFieldRecognizer", [
        # a form's person field: "Customer: Fatima Zahra El Idrissi", "Account holder: Mr J Okoro" (a whole line
        # of capitalised words, the first a name, not "Customer: Thank You")
        r"(?m:^)[ \t]*(?i:customer|client|contact(?: person)?|account holder|account owner|card ?holder|recipient|"
        r"sender|patient|guest|passenger|attn\.?|attention|requester|requested by|reported by|submitted by|"
        r"caller|tenant|beneficiary|applicant|employee)[ \t]*:[ \t]*"
        r"(?P<v>[A-Z][\w'’-]+(?:[ \t]+[A-Z][\w'’.-]*){1,4})[ \t]*(?=\n|$|,|\|)",
        # an email's display name: 'From: "Wojciech Szczęsny" <w.szczesny@onet.pl>', "Ana Ruiz <ana@x.es>"
        r"(?P<v>(?-i:[A-Z][\w'’-]+(?:[ \t]+[A-Z][\w'’.-]*){1,4}))[\"”]?[ \t]*<[^<>@\s]+@",
    ], 0.6, validate=_a_name_first)


_ORG_SUFFIX = (r"co\.\s?ltd|p\.l\.c|s\.a|l\.p|n\.v|"  # the dotted forms first: "CO.LTD." is one suffix, not "CO."
               r"inc|llc|ltd|plc|gmbh|corp|corporation|company|co|group|partners|consulting|technologies|"
               r"labs|holdings|bank|insurance|associates|ag|sa|sas|bv|nv|ab|oy|pty|llp|foundation|university|"
               r"limited|incorporated")
# a sentence's small words are not a lowercase company's name: "a complaint against ur company"
_NOT_A_NAME_WORD = (r"(?!(?:against|about|for|from|with|to|of|in|on|at|by|your|ur|yor|yr|my|our|their|his|her|its|"
                    r"the|a|an|this|that|these|those|and|or)\b)")
# a name that ends in a company's legal form is an organisation by its form, whatever its words
ENDS_WITH_COMPANY_SUFFIX = re.compile(rf"(?i)\s(?:{_ORG_SUFFIX})\.?$")
# the registered legal forms alone (not "group", "bank", "company"), written as registries write them: in any case
# when spelled out or abbreviated ("MANAC INCORPORATED", "Mallinckrodt plc"), in capitals when two letters
# ("Stratec SE", not the word "sa"). A name that ends in one is a firm's, so neither its capitals nor its
# lowercase form marks it as noise, and what follows the form ("'s", "as Courier") is not part of the name.
_LEGAL_FORM = (r"(?:(?i:co\.\s?ltd|p\.l\.c|s\.p\.a|s\.a|n\.v|l\.p|k\.k|incorporated|corporation|limited|inc|llc|"
               r"ltd|plc|gmbh|corp)|AG|SA|SAS|SE|NV|BV|OY|AB|KK|SpA)\b\.?")
_LEGAL_FORM_AT = re.compile(rf"[\s,]+{_LEGAL_FORM}")


def registered_name_end(span: str) -> int | None:
    """Where a firm's name ends in `span`: after its first legal form ("Dada Nexus Limited" of "Dada Nexus
    Limited as Kennel"), or None when no legal form follows name words (not "Am I limited", "SO GOOD INC")."""
    found = _LEGAL_FORM_AT.search(span)
    if not found or found.start() == 0:
        return None
    words = [w.lower() for w in _NAME_TOKEN.findall(span[:found.start()])]
    return None if any(w in STOP_WORDS and w not in NAME_PARTICLES for w in words) else found.end()


_CAPS_RUN = r"(?:[A-Z0-9][\w&'’.-]*)(?:\s+(?:[A-Z0-9][\w&'’.-]*|of|and|&|de|für)){0,4}"


def organization_recognizers() -> list[EntityRecognizer]:
    """Organisations NER misses: a company suffix ("Mclaughlin Ltd.", "nationwide mutual insurance company"),
    surnames in a firm's style ("Rose, Turner and Thompson", "Vazquez-Riggs"), and a capitalised name where
    only an organisation fits ("the X office is at", "spent a year at X", "works for X")."""
    suffixed = PatternRecognizer(supported_entity="ORGANIZATION", name="CompanySuffixRecognizer", patterns=[
        Pattern("words and a company suffix", rf"\b{_CAPS_RUN},?\s+(?i:{_ORG_SUFFIX})\b\.?", 0.6),
        Pattern("lowercase words and a company suffix",
                rf"(?<![\w])(?:{_NOT_A_NAME_WORD}[a-z][\w'-]*\s+){{1,3}}(?i:{_ORG_SUFFIX})\b\.?(?=\s+(?:is|was|has|invested|office)\b|"
                rf"\s*(?:\n|\||$))", 0.5),
    ], global_regex_flags=re.DOTALL | re.MULTILINE)  # case-sensitive: the capitals mark where the name begins
    firm = RegexValueRecognizer("ORGANIZATION", "FirmNameRecognizer", [
        r"(?i)(?P<v>\b[^\W\d_][\w'-]+,\s+[^\W\d_][\w'-]+,?\s+(?:and|&)\s+[^\W\d_][\w'-]+)\b",
        r"(?P<v>\b[A-Z][a-z]+-[A-Z][a-z]+)\b",
    ], 0.55, validate=_surnames_only)
    by_role = RegexValueRecognizer("ORGANIZATION", "OrganizationRoleRecognizer", [
        rf"(?i:\bthe\s)(?P<v>{_CAPS_RUN})(?=\s(?i:office|headquarters|team|company)\b)",
        rf"(?i:\baddress of\s)(?P<v>{_CAPS_RUN})(?=\s(?i:is)\b)",
        rf"(?i:\b(?:works?|worked|working|employed|job|year|years|months?|intern(?:ed)?)\s(?:at|for|by|with)\s)"
        rf"(?P<v>{_CAPS_RUN})",
        rf"(?i:\b(?:recorded|signed|acquired|founded|joined)\s(?:for|by|with)?\s?)(?P<v>{_CAPS_RUN})",
        rf"(?P<v>{_CAPS_RUN})(?=\s(?i:is the brainchild|invested|is a 501))",
    ], 0.55, validate=_not_everyday_words)
    return [suffixed, firm, by_role]


def _surnames_only(value: str) -> bool:
    _, _, last = name_lexicon()
    words = [w.lower() for w in re.split(r"[\s,&-]+", value) if w and w.lower() not in ("and", "&")]
    return len(words) >= 2 and all(w in last for w in words)


def _not_everyday_words(value: str) -> bool:
    words = [w.lower().strip(".") for w in value.split() if w.lower() not in ("of", "and", "&")]
    return bool(words) and not all(everyday(w) for w in words)
