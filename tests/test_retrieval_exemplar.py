"""The exemplar side-by-side bench (bench/retrieval_exemplar.py): a training ticket never gets itself."""

from bench.retrieval_exemplar import ExemplarBank, first_per_product, with_exemplar


def _chat(product: str, asked: str, reply: str) -> dict:
    return {"messages": [{"role": "system", "content": "You are an agent."}, {"role": "user", "content": asked},
                         {"role": "assistant", "content": reply}], "metadata": {"product": product}}


TICKETS = [_chat("refund", "I want a refund for my order", "Refund steps"),
           _chat("refund", "refund for my order please", "Refund steps again"),
           _chat("delivery", "where is my parcel delivery", "Tracking steps")]


def test_a_ticket_in_the_bank_gets_its_nearest_other_ticket_never_itself():
    bank = ExemplarBank(TICKETS)
    assert bank.nearest(TICKETS, bank_positions=[0, 1, 2])[:2] == [TICKETS[1], TICKETS[0]]
    assert bank.nearest([_chat("refund", "I want a refund for my order", "?")]) == [TICKETS[0]]


def test_the_exemplar_goes_into_the_system_prompt_and_the_ticket_itself_is_unchanged():
    record = with_exemplar(TICKETS[0], TICKETS[2])
    assert record["messages"][0]["content"].endswith(
        "A similar ticket answered before:\nCustomer: where is my parcel delivery\nAgent: Tracking steps")
    assert record["messages"][1:] == TICKETS[0]["messages"][1:]
    assert TICKETS[0]["messages"][0]["content"] == "You are an agent."


def test_first_per_product_keeps_each_products_first_tickets():
    assert first_per_product(TICKETS, 1) == [TICKETS[0], TICKETS[2]]
