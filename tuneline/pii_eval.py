"""Measure the redactor on labeled data: recall, precision and F2 per entity type.

Input format is presidio-research's JSON: a list of {full_text, spans: [{entity_type,
start_position, end_position}]}. Two views of recall:

- masked recall, the privacy reviewer's: a gold span counts as found when at least half of its
  characters are masked by any detection, whatever its type; with it, the share of all gold PII
  characters masked. Every gold type counts here, including types the redactor does not target
  (reported as such): a leak of a type nobody asked for is still a leak.
- typed recall: a detection of a matching type overlaps the gold span (targeted types only).

A detection is a false positive when it overlaps no gold span of a matching type (and no gold span of an
untargeted type).
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

# gold type -> the redactor types that count as finding it
GOLD_TO_PREDICTED: dict[str, tuple[str, ...]] = {
    "PERSON": ("PERSON",),
    "EMAIL_ADDRESS": ("EMAIL_ADDRESS",),
    "PHONE_NUMBER": ("PHONE_NUMBER",),
    "CREDIT_CARD": ("CREDIT_CARD",),
    "IBAN_CODE": ("IBAN_CODE",),
    "IP_ADDRESS": ("IP_ADDRESS",),
    "US_SSN": ("US_SSN",),
    "ADDRESS": ("STREET_ADDRESS", "LOCATION"),
    "STREET_ADDRESS": ("STREET_ADDRESS", "LOCATION"),
    "LOCATION": ("LOCATION", "STREET_ADDRESS"),
    "ORGANIZATION": ("ORGANIZATION",),
    "AGE": ("AGE",),
    "DATE_TIME": ("DATE_TIME",),
    "DOMAIN_NAME": ("URL",),
    "URL": ("URL",),
    "US_DRIVER_LICENSE": ("US_DRIVER_LICENSE", "ACCOUNT_NUMBER", "UK_NINO"),
    "UK_NINO": ("UK_NINO", "US_DRIVER_LICENSE"),
    "CRYPTO": ("CRYPTO",),
    "ZIP_CODE": ("STREET_ADDRESS",),
    "TITLE": ("JOB_TITLE",),
    "CREDENTIAL": ("CREDENTIAL",),
    "PASSWORD": ("CREDENTIAL",),
}


# gold labels of other tools and data sets -> the names used here (mapped, never dropped)
GOLD_ALIASES = {"GPE": "LOCATION", "LOC": "LOCATION", "PER": "PERSON", "ORG": "ORGANIZATION",
                "STREET_ADDRESS": "ADDRESS", "ZIPCODE": "ZIP_CODE", "ZIP": "ZIP_CODE", "POSTCODE": "ZIP_CODE",
                "NORP": "NRP", "DATE": "DATE_TIME", "DOB": "DATE_TIME", "WNUT_CORPORATION": "ORGANIZATION",
                "WNUT_GROUP": "ORGANIZATION"}
# labeled entities that are not personal data (WNUT'17's products and creative works): neither recall nor FP
NOT_PII = {"WNUT_CREATIVE-WORK", "WNUT_PRODUCT"}
MASKED_SHARE = 0.5  # a gold span counts as masked when at least this share of its characters is


@dataclass
class TypeScore:
    tp: int = 0
    fn: int = 0
    fp: int = 0
    masked: int = 0  # gold spans with >= MASKED_SHARE of their characters masked, by any type
    spans: int = 0  # every gold span of this type (targeted or not)
    chars: int = 0
    chars_masked: int = 0

    @property
    def masked_recall(self) -> float | None:
        return self.masked / self.spans if self.spans else None

    @property
    def char_share(self) -> float | None:
        return self.chars_masked / self.chars if self.chars else None

    @property
    def recall(self) -> float | None:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else None

    @property
    def precision(self) -> float | None:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else None

    @property
    def f2(self) -> float | None:
        p, r = self.precision, self.recall
        if not p or not r:
            return None if p is None or r is None else 0.0
        return 5 * p * r / (4 * p + r)


@dataclass
class PiiReport:
    by_type: dict[str, TypeScore] = field(default_factory=lambda: defaultdict(TypeScore))
    untargeted: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    texts: int = 0
    pii_free_texts: int = 0
    pii_free_flagged: int = 0
    # per detected type, the texts without PII it flagged (a text flagged by two types counts under both):
    # a gold set that labels only names and places cannot say whether a phone or age found there is a leak
    pii_free_flagged_by: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def overall(self) -> TypeScore:
        total = TypeScore()
        for score in self.by_type.values():
            for name in ("tp", "fn", "fp", "masked", "spans", "chars", "chars_masked"):
                setattr(total, name, getattr(total, name) + getattr(score, name))
        return total

    HEADERS = ["entity", "targeted", "support", "masked_recall", "char_share", "typed_recall", "fp", "precision",
               "f2"]

    def rows(self) -> list[list]:
        def fmt(x):
            return "-" if x is None else f"{x:.3f}"

        def row(name, s, targeted):
            return [name, targeted, s.spans, fmt(s.masked_recall), fmt(s.char_share), fmt(s.recall), s.fp,
                    fmt(s.precision), fmt(s.f2)]

        rows = [row(t, s, "yes" if t in GOLD_TO_PREDICTED else "no") for t, s in sorted(self.by_type.items())]
        rows.append(row("OVERALL", self.overall(), "all"))
        return rows

    def to_dict(self) -> dict:
        return {
            "by_type": {t: {"support": s.spans, "targeted": t in GOLD_TO_PREDICTED, "tp": s.tp, "fp": s.fp,
                            "masked_recall": s.masked_recall, "char_share": s.char_share, "recall": s.recall,
                            "precision": s.precision, "f2": s.f2} for t, s in sorted(self.by_type.items())},
            "overall": {"masked_recall": self.overall().masked_recall, "char_share": self.overall().char_share,
                        "recall": self.overall().recall, "precision": self.overall().precision,
                        "f2": self.overall().f2},
            "untargeted_gold_types": dict(self.untargeted),
            "texts": self.texts,
            "pii_free_texts": self.pii_free_texts,
            "pii_free_false_positive_rate": (self.pii_free_flagged / self.pii_free_texts
                                             if self.pii_free_texts else None),
            "pii_free_flagged_by_type": dict(sorted(self.pii_free_flagged_by.items())),
        }


def _overlaps(a_start: int, a_end: int, b_start: int, b_end: int) -> bool:
    return a_start < b_end and b_start < a_end


def score_detections(records: list[dict], detections: list[list], report: PiiReport | None = None) -> PiiReport:
    """Pure scoring of detections (objects with entity_type/start/end) against gold spans."""
    report = report or PiiReport()
    for record, found in zip(records, detections, strict=True):
        report.texts += 1
        spans = record.get("spans") or []
        if not [s for s in spans if s["entity_type"] not in NOT_PII]:
            report.pii_free_texts += 1
            report.pii_free_flagged += bool(found)
            for entity_type in {d.entity_type for d in found}:
                report.pii_free_flagged_by[entity_type] += 1
        masked_positions = {i for d in found for i in range(d.start, d.end)}
        for span in spans:
            gold = GOLD_ALIASES.get(span["entity_type"], span["entity_type"])
            if gold in NOT_PII:
                continue
            score = report.by_type[gold]
            length = span["end_position"] - span["start_position"]
            covered = sum(1 for i in range(span["start_position"], span["end_position"]) if i in masked_positions)
            score.spans += 1
            score.chars += length
            score.chars_masked += covered
            score.masked += length > 0 and covered / length >= MASKED_SHARE
            if gold not in GOLD_TO_PREDICTED:
                report.untargeted[gold] += 1
                continue
            allowed = GOLD_TO_PREDICTED[gold]
            hit = any(d.entity_type in allowed and _overlaps(d.start, d.end, span["start_position"],
                                                             span["end_position"]) for d in found)
            if hit:
                report.by_type[gold].tp += 1
            else:
                report.by_type[gold].fn += 1
        for d in found:
            matched = any(d.entity_type in GOLD_TO_PREDICTED.get(GOLD_ALIASES.get(s["entity_type"], s["entity_type"]),
                                                                  ())
                          and _overlaps(d.start, d.end, s["start_position"], s["end_position"]) for s in spans)
            # a detection over an untargeted gold span (an organisation, a date) is not a leak but is not wrong either
            over_untargeted = any(GOLD_ALIASES.get(s["entity_type"], s["entity_type"]) not in GOLD_TO_PREDICTED
                                  and _overlaps(d.start, d.end, s["start_position"], s["end_position"])
                                  for s in spans)
            if not matched and not over_untargeted:
                bucket = _predicted_to_gold(d.entity_type)
                report.by_type[bucket].fp += 1
    return report


def _predicted_to_gold(predicted: str) -> str:
    return {"STREET_ADDRESS": "ADDRESS", "URL": "DOMAIN_NAME"}.get(predicted, predicted)


def load_presidio_json(path: Path) -> list[dict]:
    records = json.loads(Path(path).read_text())
    if not isinstance(records, list) or not all("full_text" in r for r in records):
        raise ValueError(f"{path} is not presidio-research JSON (a list of objects with full_text and spans)")
    return records


def load_conll_as_records(path: Path) -> list[dict]:
    """CoNLL token<TAB>BIO (WNUT'17): person -> PERSON, location -> LOCATION spans, other types untargeted."""
    records, tokens, tags = [], [], []

    def flush():
        if not tokens:
            return
        text, spans, pos, current = "", [], 0, None
        for token, tag in zip(tokens, tags, strict=True):
            start = pos if not text else pos + 1
            text = f"{text} {token}" if text else token
            end = start + len(token)
            pos = end
            kind = tag[2:].upper() if tag != "O" else None
            kind = {"PERSON": "PERSON", "LOCATION": "LOCATION"}.get(kind, kind and f"WNUT_{kind}")
            if tag.startswith("B-") or (tag.startswith("I-") and current is None):
                current = {"entity_type": kind, "start_position": start, "end_position": end}
                spans.append(current)
            elif tag.startswith("I-") and current is not None:
                current["end_position"] = end
            else:
                current = None
        records.append({"full_text": text, "spans": spans})
        tokens.clear()
        tags.clear()

    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            flush()
            continue
        token, _, tag = line.partition("\t")
        tokens.append(token)
        tags.append(tag.strip() or "O")
    flush()
    return records


def abcd_records(path: Path) -> list[dict]:
    """ABCD conversations as presidio-style records: gold spans = occurrences of the customer's own
    name, email and phone (scenario.personal) in the customer's and agent's turns."""
    records = []
    for convo in json.loads(Path(path).read_text()):
        personal = convo["scenario"]["personal"]
        gold = {"EMAIL_ADDRESS": personal.get("email"), "PHONE_NUMBER": personal.get("phone"),
                "PERSON": personal.get("customer_name")}
        for speaker, text in convo["original"]:
            if speaker == "action":
                continue
            spans = []
            for kind, value in gold.items():  # email and phone first: a name can sit inside an email address
                if not value:
                    continue
                candidates = [value] + ([p for p in value.split() if len(p) > 2] if kind == "PERSON" else [])
                for candidate in candidates:
                    for match in re.finditer(rf"(?<![\w@.]){re.escape(candidate)}(?![\w@])", text, re.IGNORECASE):
                        start, end = match.span()
                        if not any(_overlaps(start, end, s["start_position"], s["end_position"]) for s in spans):
                            spans.append({"entity_type": kind, "start_position": start, "end_position": end})
            records.append({"full_text": text, "spans": spans})
    return records


def load_labeled(path: Path, fmt: str | None = None) -> list[dict]:
    """Records of a labeled file; the format from `fmt`, else from the file (.conll, ABCD or presidio JSON)."""
    path = Path(path)
    if fmt is None:
        if path.suffix.lower() == ".conll":
            fmt = "conll"
        else:
            head = json.loads(path.read_text())
            fmt = "abcd" if isinstance(head, list) and head and "original" in head[0] else "presidio"
    return {"presidio": load_presidio_json, "conll": load_conll_as_records, "abcd": abcd_records}[fmt](path)


def evaluate_records(redactor, records: list[dict]) -> PiiReport:
    """Scores what the pipeline masks: each text is its own group, so a name found once counts everywhere in it."""
    detections = [group[0] for group in redactor.decide_groups([[r["full_text"]] for r in records])]
    return score_detections(records, detections)
