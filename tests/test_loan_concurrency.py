"""LN-1 couple rule under concurrency, on SQLite and PostgreSQL.

One outstanding loan or pending application per couple must hold when two applications
for the same couple start at once. Each application runs in its own thread on its own
``Ledger`` over the same store; a barrier inside the eligibility check makes both read the
couple's marks before either saves, so every run takes the conflict path: one save wins,
the other conflicts on the members' versions, reruns, sees the 'pending' mark and is
refused with LoanEligibilityError. A race between two *different* couples must let both
through (they only share the daily serial sequence).
"""

from __future__ import annotations

import threading
from datetime import date
from typing import Any, Callable

import pytest

from ledger.aggregates.loan import APPLIED, LoanEligibilityError

pytestmark = pytest.mark.storage

APPLIED_ON = date(2025, 1, 10)
BARRIER_TIMEOUT_SECONDS = 20
THREAD_JOIN_SECONDS = 60
ROUNDS = 3


def couples(fund: Any, count: int) -> tuple[str, list[tuple[str, str]]]:
    """``count`` couples credited 2024-07..2024-12 (the 6 periods before January 2025)."""
    pairs = []
    with fund.ledger.audit_bulk_load():
        employer = fund.employer()
        for _ in range(count):
            husband, husband_account = fund.member(employer, base="30000.00")
            wife, wife_account = fund.member(employer, base="30000.00", birth_date=date(1991, 3, 3), male=False)
            fund.ledger.link_spouses(husband, wife, fund.today)
            pairs.append(((husband, husband_account), (wife, wife_account)))
        for month in range(7, 13):
            fund.on(date(2024, month, 5))
            fund.remit(employer, f"2024-{month:02d}", [a for pair in pairs for _, a in pair])
    fund.on(APPLIED_ON)
    return employer, [(husband, wife) for (husband, _), (wife, _) in pairs]


def apply(ledger: Any, id_number: str, key: str) -> dict[str, Any]:
    return ledger.apply_for_loan(id_number, "300000.00", 240, "equal-instalment", "800000.00", "20000.00",
                                 APPLIED_ON, "ICBC", idempotency_key=key)


def race(ledgers: list[Any], calls: list[Callable[[Any], Any]], checks: list[int] | None = None) -> list[Any]:
    """Run ``calls[i](ledgers[i])`` in threads that all pass the eligibility check before any saves.

    ``checks[i]`` counts the eligibility checks ledger i ran (2 when its save conflicted and reran)."""
    barrier = threading.Barrier(len(calls), timeout=BARRIER_TIMEOUT_SECONDS)
    counts = checks if checks is not None else [0] * len(ledgers)
    for index, ledger in enumerate(ledgers):
        original = ledger._eligibility

        def held(*args: Any, _original: Callable[..., Any] = original, _index: int = index) -> Any:
            counts[_index] += 1
            result = _original(*args)  # the check passes on the state read ...
            if counts[_index] == 1:
                barrier.wait()  # ... and waits until the other command has read it too
            return result
        ledger._eligibility = held
    outcomes: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        try:
            outcomes[index] = calls[index](ledgers[index])
        except BaseException as error:  # reported below, never lost in the thread
            outcomes[index] = error
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(THREAD_JOIN_SECONDS)
        assert not thread.is_alive(), "an application hung"
    for ledger in ledgers:
        del ledger._eligibility
    return outcomes


@pytest.mark.parametrize("who", ["borrower-and-spouse", "same-borrower-twice"])
def test_two_applications_for_one_couple_at_once_one_wins(open_ledger: Any, fund_for: Any, who: str) -> None:
    fund = fund_for(open_ledger())
    _, [(husband, wife)] = couples(fund, 1)
    second = wife if who == "borrower-and-spouse" else husband
    for round_number in range(ROUNDS):
        racers = [open_ledger(), open_ledger()]  # two Ledger instances on the same store
        loans_before = len(fund.ledger.loan_ids())
        checks = [0, 0]
        outcomes = race(racers, [lambda l, r=round_number: apply(l, husband, f"h-{r}"),
                                 lambda l, r=round_number: apply(l, second, f"w-{r}")], checks)
        won = [o for o in outcomes if isinstance(o, dict)]
        lost = [o for o in outcomes if isinstance(o, Exception)]
        assert len(won) == 1 and len(lost) == 1, outcomes
        # the loser passed the check once, lost the save to a version conflict, reran and was refused
        assert checks[outcomes.index(lost[0])] == 2 and checks[outcomes.index(won[0])] == 1, checks
        assert isinstance(lost[0], LoanEligibilityError), repr(lost[0])
        assert (lost[0].field, lost[0].rule) == ("id_number", "LN-1")
        assert won[0]["state"] == APPLIED
        assert len(fund.ledger.loan_ids()) == loans_before + 1
        loan = fund.ledger.loan(won[0]["loan_no"])
        for id_number in (husband, wife):
            assert fund.ledger.member(id_number).loan_marks == {str(loan.id): "pending"}
        assert fund.ledger.check_books()["ok"]
        assert fund.ledger.trial_balance().difference.is_zero
        fund.ledger.reject_loan(won[0]["loan_no"], APPLIED_ON, "next round")  # frees the couple
    report = fund.ledger.audit.verify()
    assert report.ok, report.problems  # AUD-1: concurrent saves from two ledgers still chain


def test_two_couples_at_once_both_get_their_application(open_ledger: Any, fund_for: Any) -> None:
    fund = fund_for(open_ledger())
    _, [(first, _), (second, _)] = couples(fund, 2)
    outcomes = race([open_ledger(), open_ledger()],
                    [lambda l: apply(l, first, "c-1"), lambda l: apply(l, second, "c-2")])
    assert all(isinstance(o, dict) for o in outcomes), outcomes
    numbers = {o["loan_no"] for o in outcomes}
    assert len(numbers) == 2  # the daily serial sequence conflicted and was retried, never reused
    assert len(fund.ledger.loan_ids()) == 2
    assert fund.ledger.check_books()["ok"]
