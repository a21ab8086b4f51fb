"""The placeholder each detected PII type becomes: one table for the redactor that writes them and the
evaluation that looks for them in a model's replies. Kept apart from tuneline.pii so reading it costs no
presidio import."""

from __future__ import annotations

import re

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
    "ORGANIZATION": "[ORGANIZATION]",
    "AGE": "[AGE]",
    "DATE_TIME": "[DATE]",
    "URL": "[URL]",
    "USERNAME": "[USERNAME]",
    "US_DRIVER_LICENSE": "[ID_NUMBER]",
    "UK_NINO": "[ID_NUMBER]",
    "CRYPTO": "[CRYPTO_WALLET]",
    "JOB_TITLE": "[JOB_TITLE]",
    "CREDENTIAL": "[SECRET]",
}

# any of them in a text: a reply that carries one its prompt did not made it up
PLACEHOLDER = re.compile("|".join(re.escape(p) for p in sorted(set(PLACEHOLDERS.values()), key=len, reverse=True)))
