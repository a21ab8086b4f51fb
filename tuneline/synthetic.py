"""Seeded generator of realistic support tickets for the demo, tests and benchmarks.

Every stage of the graph gets something to do: planted PII (names, emails, phones,
cards), exact and near duplicates, too-short and non-English tickets, and malformed
rows (missing reply, broken JSON line). The generator also returns what it planted so
tests can check the pipeline against ground truth instead of hard-coded numbers.
"""

from __future__ import annotations

import csv
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from tuneline.names import product_key
from tuneline.paths import under

FIRST_NAMES = ["Maria", "James", "Aisha", "Chen", "Olivia", "Lucas", "Priya", "Daniel", "Sofia", "Ethan",
               "Fatima", "Noah", "Hannah", "Mateo", "Grace", "Liam", "Yuki", "Omar", "Emma", "Jonas"]
LAST_NAMES = ["Garcia", "Smith", "Khan", "Wang", "Johnson", "Müller", "Patel", "Brown", "Rossi", "Miller",
              "Nguyen", "Davis", "Kowalski", "Lopez", "Anderson", "Silva", "Tanaka", "Haddad", "Wilson", "Fischer"]
AREA_CODES = [212, 303, 312, 415, 512, 617, 646, 206, 718, 773, 404, 213]
EMAIL_DOMAINS = ["example.com", "mail.example.org", "inbox.example.net", "corp.example.io"]

# Per product: (customer question template, agent answer template). {item} and {days} vary;
# PII slots are added separately so the amount of PII is controlled.
PRODUCTS: dict[str, dict] = {
    "billing": {
        "items": ["invoice", "subscription", "refund", "annual plan", "payment method", "receipt"],
        "pairs": [
            ("I was charged twice for my {item} this month. Can you fix this and refund the extra charge?",
             "I'm sorry about the double charge on your {item}. I have reversed the duplicate payment; the refund "
             "will appear on your statement within {days} business days. Is there anything else I can help with?"),
            ("How do I download the {item} for last month? I need it for my expense report.",
             "You can download it from Settings > Billing > History: click the {item} and choose Download PDF. "
             "Copies are kept for {days} months, so earlier ones are there too."),
            ("Can I switch my {item} to yearly billing and keep my current discount?",
             "Yes. Go to Settings > Billing > Plan and choose yearly billing for your {item}; your discount carries "
             "over and the change applies at the next renewal, in {days} days."),
            ("My card was declined when I tried to renew the {item}. What should I do?",
             "Declines usually come from the bank. Please check that the card has not expired, then update it under "
             "Settings > Billing > {item}. We retry the charge automatically within {days} days."),
        ],
    },
    "shipping": {
        "items": ["package", "order", "parcel", "replacement", "return label", "delivery"],
        "pairs": [
            ("My {item} has not arrived yet and tracking has not updated for a week. Where is it?",
             "I'm sorry for the delay. I checked with the carrier: your {item} is at the regional hub and should be "
             "delivered within {days} business days. I'll send you the new tracking link by email."),
            ("I need to change the delivery address on my {item} before it ships.",
             "No problem. I have updated the address on your {item}; it has not left the warehouse yet, so the change "
             "is in time. Expect it in {days} business days."),
            ("The {item} arrived damaged. The box was crushed and the item is broken.",
             "I'm sorry it arrived damaged. I've issued a prepaid return label and a free replacement {item}, which "
             "ships today and arrives in about {days} days. You don't need to wait for the return."),
            ("Do you ship the {item} internationally, and how long does it take?",
             "Yes, we ship internationally. The {item} usually takes {days} business days, and customs fees are "
             "shown at checkout so there are no surprises on delivery."),
        ],
    },
    "account": {
        "items": ["password", "login", "two-factor code", "username", "profile", "account"],
        "pairs": [
            ("I forgot my {item} and the reset email never arrives. Can you help me get back in?",
             "Sorry for the trouble. Reset emails can land in spam; I've sent a new one that stays valid for {days} "
             "hours. If it still does not arrive, reply here and I'll verify you another way."),
            ("How do I turn on two-factor authentication for my {item}?",
             "Go to Settings > Security and choose Enable two-factor authentication, then scan the QR code with an "
             "authenticator app. Keep the {days} backup codes somewhere safe."),
            ("I want to delete my {item} and all my data. How do I do that?",
             "You can delete it under Settings > Privacy > Delete account. Your data is removed within {days} days; "
             "export anything you need first, because deletion cannot be undone."),
            ("Someone else may have logged in to my {item}. I see a session I don't recognise.",
             "Thanks for telling us. I have signed out all sessions and locked the {item}; please set a new password "
             "now and turn on two-factor authentication. We'll watch the account for {days} days."),
        ],
    },
}

# Framing that varies independently of the request, as real tickets do.
OPENERS = ["", "Hi,", "Hello team,", "Good morning.", "Hey there,", "Hi support,", "Dear support team,", "Hello,"]
CONTEXTS = ["", "I've been a customer for {years} years.", "This is the second time this happens.",
            "I tried the help center but couldn't find an answer.", "It's quite urgent for me.",
            "I'm using the mobile app.", "I'm on the web version in Firefox.",
            "My colleague had the same issue last week.", "I already restarted everything twice."]
CLOSERS = ["", "Thanks!", "Thank you in advance.", "Cheers.", "Appreciate the help.", "Looking forward to your reply."]
AGENT_GREETINGS = ["Hi there,", "Hello,", "Thanks for reaching out.", "Thank you for contacting us.",
                   "Hi, thanks for your message.", "Thanks for your patience."]
AGENT_CLOSINGS = ["", "Have a great day!", "Let me know if there's anything else.", "Best regards, the support team.",
                  "Happy to help further if needed.", "Thanks for being with us."]

NON_ENGLISH = [
    ("Mi pedido no ha llegado todavía y el seguimiento no se actualiza desde hace una semana.",
     "Lamento el retraso. He revisado con la empresa de transporte y su pedido llegará en pocos días."),
    ("Ich wurde diesen Monat doppelt belastet. Können Sie mir das Geld bitte zurückerstatten?",
     "Das tut mir leid. Ich habe die doppelte Zahlung storniert, die Erstattung erscheint in wenigen Tagen."),
    ("Je n'arrive pas à me connecter à mon compte depuis hier soir, pouvez-vous m'aider rapidement ?",
     "Désolé pour ce problème. Je vous ai envoyé un nouveau lien de réinitialisation du mot de passe."),
]

SHORT_TEXTS = [("help", "Sure, how can I help?"), ("refund?", "Which order is it about?"), ("hi", "Hello!")]


@dataclass
class PlantedTruth:
    """What the generator planted, for tests that check the pipeline against it."""

    rows_written: int = 0
    malformed_rows: int = 0
    pii_values: dict[str, list[str]] = field(default_factory=lambda: {"PERSON": [], "EMAIL_ADDRESS": [],
                                                                       "PHONE_NUMBER": [], "CREDIT_CARD": []})
    exact_duplicates: int = 0
    near_duplicates: int = 0
    duplicate_pairs: list[tuple[str, str]] = field(default_factory=list)  # (copy id, source id), exact and near
    too_short: int = 0
    non_english: int = 0


def luhn_card(rng: random.Random) -> str:
    """A 16-digit card number that passes the Luhn check (presidio validates it)."""
    digits = [4] + [rng.randrange(10) for _ in range(14)]
    total = 0
    for i, d in enumerate(reversed(digits)):
        d = d * 2 if i % 2 == 0 else d
        total += d - 9 if d > 9 else d
    digits.append((10 - total % 10) % 10)
    s = "".join(map(str, digits))
    return f"{s[0:4]} {s[4:8]} {s[8:12]} {s[12:16]}"


def _pii_sentence(rng: random.Random, truth: PlantedTruth) -> str:
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    email = f"{first.lower()}.{last.lower().replace('ü', 'u')}{rng.randrange(10, 99)}@{rng.choice(EMAIL_DOMAINS)}"
    phone = f"({rng.choice(AREA_CODES)}) {rng.randrange(200, 999)}-{rng.randrange(1000, 9999)}"
    kind = rng.randrange(4)
    truth.pii_values["PERSON"].append(f"{first} {last}")
    if kind == 0:
        truth.pii_values["EMAIL_ADDRESS"].append(email)
        return f"My name is {first} {last} and my email is {email}."
    if kind == 1:
        truth.pii_values["PHONE_NUMBER"].append(phone)
        return f"This is {first} {last}, you can call me back at {phone}."
    if kind == 2:
        card = luhn_card(rng)
        truth.pii_values["CREDIT_CARD"].append(card)
        return f"{first} {last} here. The card I used ends the number {card}."
    truth.pii_values["EMAIL_ADDRESS"].append(email)
    truth.pii_values["PHONE_NUMBER"].append(phone)
    return f"Regards, {first} {last}, {email}, phone {phone}."


def _near_duplicate(text: str, rng: random.Random) -> str:
    """A light edit: what a customer re-sending the same ticket typically changes."""
    edits = [lambda t: t.replace(".", "!", 1), lambda t: "Hello, " + t[0].lower() + t[1:],
             lambda t: t + " Thanks.", lambda t: t.replace(" the ", " the the ", 1)]
    return rng.choice(edits)(text)


def generate_product_tickets(product: str, n: int, seed: int, truth: PlantedTruth) -> list[dict]:
    """Rows for one product: mostly good tickets plus planted problems (ratios fixed, placement seeded)."""
    spec = PRODUCTS[product]
    rng = random.Random(f"{seed}-{product}")
    rows: list[dict] = []
    for i in range(n):
        question, answer = rng.choice(spec["pairs"])
        item, days = rng.choice(spec["items"]), rng.choice([2, 3, 5, 7, 10, 14])
        context = rng.choice(CONTEXTS).format(years=rng.randrange(2, 9))
        user = " ".join(p for p in (rng.choice(OPENERS), question.format(item=item, days=days), context,
                                    rng.choice(CLOSERS)) if p)
        agent = " ".join(p for p in (rng.choice(AGENT_GREETINGS), answer.format(item=item, days=days),
                                     rng.choice(AGENT_CLOSINGS)) if p)
        if rng.random() < 0.35:
            user = f"{user} {_pii_sentence(rng, truth)}"
        rows.append({"ticket_id": f"{product}-{i:05d}", "thread_id": f"{product}-t{i:05d}",
                     "customer_message": user, "agent_response": agent,
                     "created_at": f"2026-{rng.randrange(1, 12):02d}-{rng.randrange(1, 28):02d}"})
    # Planted problems, a few per 100 rows, each with its own id so nothing collides.
    extra: list[dict] = []
    k = max(1, n // 25)
    for j in range(k):
        src = rows[rng.randrange(len(rows))]
        extra.append({**src, "ticket_id": f"{product}-dup{j:03d}", "thread_id": f"{product}-dup{j:03d}"})
        truth.duplicate_pairs.append((f"{product}-dup{j:03d}", src["ticket_id"]))
        truth.exact_duplicates += 1
        src = rows[rng.randrange(len(rows))]
        extra.append({**src, "ticket_id": f"{product}-near{j:03d}", "thread_id": f"{product}-near{j:03d}",
                      "customer_message": _near_duplicate(src["customer_message"], rng)})
        truth.duplicate_pairs.append((f"{product}-near{j:03d}", src["ticket_id"]))
        truth.near_duplicates += 1
        short_user, short_agent = rng.choice(SHORT_TEXTS)
        extra.append({"ticket_id": f"{product}-short{j:03d}", "thread_id": f"{product}-short{j:03d}",
                      "customer_message": short_user, "agent_response": short_agent, "created_at": "2026-05-01"})
        truth.too_short += 1
        foreign_user, foreign_agent = rng.choice(NON_ENGLISH)
        extra.append({"ticket_id": f"{product}-intl{j:03d}", "thread_id": f"{product}-intl{j:03d}",
                      "customer_message": foreign_user, "agent_response": foreign_agent,
                      "created_at": "2026-05-02"})
        truth.non_english += 1
        # Malformed: the agent never replied (unusable as a training example).
        extra.append({"ticket_id": f"{product}-bad{j:03d}", "thread_id": f"{product}-bad{j:03d}",
                      "customer_message": rows[rng.randrange(len(rows))]["customer_message"],
                      "agent_response": "", "created_at": "2026-05-03"})
        truth.malformed_rows += 1
    all_rows = rows + extra
    rng.shuffle(all_rows)
    return all_rows


def write_landing_zone(landing: Path, products: list[str], tickets_per_product: int, seed: int = 7) -> PlantedTruth:
    """Write `<landing>/<product>/tickets-0001.{csv|jsonl}`, alternating formats across products.

    JSONL files also get one broken JSON line, which ingestion must quarantine with a reason.
    """
    truth = PlantedTruth()
    for index, product in enumerate(products):
        rows = generate_product_tickets(product, tickets_per_product, seed, truth)
        folder = under(landing, product_key(product))
        folder.mkdir(parents=True, exist_ok=True)
        if index % 2 == 0:
            path = folder / "tickets-0001.csv"
            with path.open("w", newline="", encoding="utf-8") as fh:
                writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
        else:
            path = folder / "tickets-0001.jsonl"
            lines = [json.dumps(r, ensure_ascii=False) for r in rows]
            lines.insert(len(lines) // 2, '{"ticket_id": "broken-line", "customer_message": "unterminated')
            truth.malformed_rows += 1
            path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        truth.rows_written += len(rows) + (0 if index % 2 == 0 else 1)
    return truth
