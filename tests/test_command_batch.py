"""Group commit (``ledger.command_batch``): a burst of bank postings in one transaction, each still
exactly-once and all-or-nothing.

Checked against the one-at-a-time path on the same centre: the same results, the same loans, one anchor
(one transaction) for the burst; a refusal inside a burst is refused alone and changes nothing, the others
are applied; a key twice in one burst is a repeat the second time; two postings on one loan in one burst
are allocated one after the other (LN-5), as if they had come apart.
"""

from __future__ import annotations

from typing import Any

import pytest

from ledger.aggregates.errors import IdempotencyConflictError
from ledger.command_batch import execute_batch
from test_banking import BANK, DEDUCTION_ON, banking_ledger, build_loan_centre

pytestmark = pytest.mark.storage


@pytest.fixture
def centre(store_url: str, clock: Any) -> Any:
    return build_loan_centre(banking_ledger(store_url, clock), clock)


def anchors(ledger: Any) -> int:
    return ledger.audit.store.fetchall(f"SELECT COUNT(*) AS n FROM {ledger.audit.store.anchor}")[0]["n"]


def command(ledger: Any, loan_no: str, amount: str, serial: str) -> Any:
    return ledger.repayment_command(BANK, loan_no, amount, DEDUCTION_ON, serial)


def test_a_burst_is_one_transaction_with_the_results_of_one_at_a_time(centre: Any) -> None:
    ledger, loans = centre.ledger, centre.loans
    before = anchors(ledger)
    outcomes = execute_batch(ledger, [command(ledger, loan_no, "100.00", f"B{n}") for n, loan_no in enumerate(loans)])
    assert [o.error for o in outcomes] == [None] * len(loans)
    assert anchors(ledger) == before + 1  # one transaction, one anchor
    alone = [ledger.bank_repayment(BANK, loan_no, "100.00", DEDUCTION_ON, f"C{n}") for n, loan_no in enumerate(loans)]
    assert anchors(ledger) == before + 1 + len(loans)
    for batched, single in zip(outcomes, alone):
        assert batched.result["amount"] == single["amount"] == "100.00"
    assert ledger.check_books()["ok"] and ledger.audit.verify().ok


def test_a_refusal_in_a_burst_is_refused_alone_and_changes_nothing(centre: Any) -> None:
    ledger, loans = centre.ledger, centre.loans
    ledger.bank_repayment(BANK, loans[1], "5.00", DEDUCTION_ON, "USED")
    status_before = ledger.loan_status(loans[1], DEDUCTION_ON)
    burst = [command(ledger, loans[0], "10.00", "D0"),
             command(ledger, loans[1], "7.00", "USED"),  # the same bank reference, other content: refused
             command(ledger, loans[2], "10.00", "D2")]
    outcomes = execute_batch(ledger, burst)
    assert outcomes[0].error is None and outcomes[2].error is None
    assert isinstance(outcomes[1].error, IdempotencyConflictError)
    assert ledger.loan_status(loans[1], DEDUCTION_ON) == status_before
    assert ledger.check_books()["ok"] and ledger.audit.verify().ok


def test_a_key_twice_in_a_burst_is_a_repeat_and_one_loan_twice_is_paid_in_order(centre: Any) -> None:
    ledger, loan_no = centre.ledger, centre.loans[0]
    due = ledger.loan_status(loan_no, DEDUCTION_ON)["amount_due"]
    outcomes = execute_batch(ledger, [command(ledger, loan_no, "30.00", "E1"), command(ledger, loan_no, "30.00", "E1"),
                                      command(ledger, loan_no, "20.00", "E2")])
    assert [o.error for o in outcomes] == [None, None, None]
    assert outcomes[1].result.get("repeat") is True and not outcomes[0].result.get("repeat")
    from ledger.money import Money
    assert ledger.loan_status(loan_no, DEDUCTION_ON)["amount_due"] == str(Money(due) - Money("50.00"))
    assert ledger.check_books()["ok"] and ledger.audit.verify().ok


def statuses(ledger: Any, loans: list[str]) -> list[dict[str, Any]]:
    return [ledger.loan_status(loan_no, DEDUCTION_ON) for loan_no in loans]


def test_a_body_refused_in_a_burst_is_set_aside_the_others_commit_together_and_a_retry_applies_nothing_twice(
        centre: Any) -> None:
    from ledger.money import MoneyError

    ledger, loans = centre.ledger, centre.loans
    before = anchors(ledger)
    burst = [command(ledger, loans[0], "10.00", "F0"),
             command(ledger, loans[1], "99999999.00", "F1"),  # more than the loan can owe: refused in its body
             command(ledger, loans[2], "10.00", "F2")]
    outcomes = execute_batch(ledger, burst)
    assert outcomes[0].error is None and outcomes[2].error is None
    assert isinstance(outcomes[1].error, MoneyError) and outcomes[1].error.field == "amount"
    assert anchors(ledger) == before + 1  # the two others in one transaction; the refused one saved nothing
    after = statuses(ledger, loans)
    again = execute_batch(ledger, [command(ledger, loans[0], "10.00", "F0"),
                                   command(ledger, loans[1], "99999999.00", "F1"),
                                   command(ledger, loans[2], "10.00", "F2")])
    assert again[0].result["repeat"] is True and again[2].result["repeat"] is True
    assert isinstance(again[1].error, MoneyError)
    assert anchors(ledger) == before + 1 and statuses(ledger, loans) == after  # nothing applied twice
    assert ledger.check_books()["ok"] and ledger.audit.verify().ok


def test_refusal_after_refusal_falls_back_to_one_at_a_time_with_the_same_answers(centre: Any) -> None:
    from ledger.command_batch import SPLITS_MAX

    ledger, loans = centre.ledger, centre.loans
    bad = [command(ledger, loans[n % 3], "99999999.00", f"G{n}") for n in range(SPLITS_MAX + 2)]
    good = [command(ledger, loans[n], "1.00", f"H{n}") for n in range(3)]
    outcomes = execute_batch(ledger, bad + good)
    assert all(o.error is not None for o in outcomes[:len(bad)])
    assert all(o.error is None and not o.result.get("repeat") for o in outcomes[len(bad):])
    assert ledger.check_books()["ok"] and ledger.audit.verify().ok


def test_the_cache_gives_the_answers_of_the_store_and_drops_what_another_writer_changed(centre: Any,
                                                                                      store_url: str) -> None:
    from ledger.command_batch import AggregateCache
    from ledger.money import Money

    ledger, loans = centre.ledger, centre.loans
    due = [Money(s["amount_due"]) for s in statuses(ledger, loans)]
    cache = AggregateCache()
    assert [o.error for o in execute_batch(ledger, [command(ledger, n, "10.00", f"K{i}")
                                                    for i, n in enumerate(loans)], cache)] == [None] * 3
    assert len(cache) >= 3 and cache.hits == 0
    ledger.bank_repayment(BANK, loans[0], "5.00", DEDUCTION_ON, "OUTSIDE")  # a writer the cache does not see
    outcomes = execute_batch(ledger, [command(ledger, n, "1.00", f"L{i}") for i, n in enumerate(loans)], cache)
    assert [o.error for o in outcomes] == [None] * 3
    assert cache.stale == 1 and cache.hits == 2  # loans[0] read again from the store, the others from the cache
    paid = [Money("16.00"), Money("11.00"), Money("11.00")]
    assert [Money(s["amount_due"]) for s in statuses(ledger, loans)] == [d - p for d, p in zip(due, paid)]
    failed = execute_batch(ledger, [command(ledger, loans[1], "1.00", "M1"),
                                    command(ledger, loans[1], "99999999.00", "M2")], cache)
    assert failed[0].error is None and failed[1].error is not None
    fresh = banking_ledger(store_url, centre.clock)
    try:  # what the cache holds is what a fresh reader of the store sees
        assert statuses(fresh, loans) == statuses(ledger, loans)
    finally:
        fresh.close()
    assert ledger.check_books()["ok"] and ledger.audit.verify().ok

