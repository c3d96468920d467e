"""Fund loans (个人住房公积金贷款) through the ledger, on both stores: LN-1..9, COR-3, GL-1..3, MNY-1.

The worked loan of SPEC.md runs through the service layer with a fixed clock: 500,000.00 over
360 months at 2.85 %, disbursed 2025-01-15, due on the 15th. Every expected figure below is
typed from SPEC.md (or worked by hand in a comment), never read back from the code. After
every scenario the books balance (GL-3) and every control account, 1101 and 1102 included,
equals its sub-ledger (GL-2), now and as of the value dates the scenario touched.
The pure arithmetic is pinned in test_loan_math.py and test_loan_book.py; here it is the
aggregate, the events, the journal and the use cases around them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

import pytest

from ledger.aggregates.base import LedgerRuleError, recording
from ledger.aggregates.loan import ACTIVE, APPLIED, APPROVED, CLOSED, REJECTED, LoanEligibilityError, LoanStateError
from ledger.application import NotFoundError
from ledger.loan_math import LoanRuleError
from ledger.money import Money, MoneyError
from ledger.sampledata import card_number, resident_id
from ledger.services.loans import schedule_rows

pytestmark = pytest.mark.storage

CENTRE_ACCOUNT = "3100000001"
BANK_LEDGER = f"1001.{CENTRE_ACCOUNT}"
APPLIED_ON, APPROVED_ON, DISBURSED_ON = date(2025, 1, 10), date(2025, 1, 12), date(2025, 1, 15)
PRINCIPAL = "500000.00"
INSTALMENT = Money("2067.79")  # SPEC: the worked loan's instalment
BASE = "30000.00"  # 30,000.00 x 12 % x 2 = 7,200.00 a month per member


# -- set-up -------------------------------------------------------------------------------------------
@dataclass
class Household:
    employer: str
    borrower: str
    spouse: str
    borrower_account: str
    spouse_account: str
    others: list[tuple[str, str]]


def household(fund: Any, others: list[dict[str, Any]] | None = None) -> Household:
    """A couple (borrower born 1990, spouse 1991) credited 2024-06..2024-12 at base 30,000.00.

    ``others``: extra members as ``fund.member`` keyword arguments plus ``periods`` (the months of
    2024 credited to them, default all seven)."""
    with fund.ledger.audit_bulk_load():  # set-up: chain once at the end (AUD-1), not after every save
        employer = fund.employer()
        borrower, borrower_account = fund.member(employer, base=BASE)
        spouse, spouse_account = fund.member(employer, base=BASE, birth_date=date(1991, 3, 3), male=False)
        fund.ledger.link_spouses(borrower, spouse, fund.today)
        extra = []
        for spec in others or []:
            spec = dict(spec)
            periods = spec.pop("periods", range(6, 13))
            extra.append((*fund.member(employer, **spec), periods))
        for month in range(6, 13):
            fund.on(date(2024, month, 5))
            accounts = [borrower_account, spouse_account] + [a for _, a, periods in extra if month in periods]
            fund.remit(employer, f"2024-{month:02d}", accounts)
    fund.on(APPLIED_ON)
    return Household(employer, borrower, spouse, borrower_account, spouse_account, [(i, a) for i, a, _ in extra])


def apply(fund: Any, id_number: str, principal: str = PRINCIPAL, months: int = 360,
          method: str = "equal-instalment", price: str = "800000.00", income: str = "20000.00",
          on: date = APPLIED_ON, **options: Any) -> dict[str, Any]:
    return fund.ledger.apply_for_loan(id_number, principal, months, method, price, income, on, "ICBC", **options)


def disbursed_loan(fund: Any, id_number: str, **apply_options: Any) -> str:
    """Apply on 2025-01-10, approve on the 12th, disburse on 2025-01-15 (rate in force: 2.85 %)."""
    fund.on(APPLIED_ON)
    loan_no = apply(fund, id_number, **apply_options)["loan_no"]
    fund.on(APPROVED_ON)
    fund.ledger.approve_loan(loan_no, APPROVED_ON)
    fund.on(DISBURSED_ON)
    fund.ledger.disburse_loan(loan_no, DISBURSED_ON)
    return loan_no


def due_on(number: int) -> date:
    """Instalment ``number`` of a loan disbursed 2025-01-15 is due on the 15th, ``number`` months on (LN-4)."""
    months = 2025 * 12 + number
    return date(months // 12, months % 12 + 1, 15)


def pay(fund: Any, loan_no: str, amount: str | Money, day: date, reference: str | None = None,
        source: str = "card") -> dict[str, Any]:
    fund.on(day)
    return fund.ledger.pay_loan(loan_no, str(amount), day, source, reference or f"{loan_no}-{day}-{fund.next()}")


def pay_instalments(fund: Any, loan_no: str, first: int, last: int) -> None:
    """Pay instalments ``first``..``last`` on their due dates, each its scheduled payment (all on time)."""
    book = fund.ledger.loan(loan_no).book
    for number in range(first, last + 1):
        account = book.account(number)
        assert account.due_on == due_on(number)
        figures = pay(fund, loan_no, account.instalment.payment, account.due_on)
        assert (figures["penalty"], figures["excess"], figures["parts"]) == (
            "0.00", "0.00", [[number, str(account.instalment.interest), str(account.instalment.principal)]]), figures


def balance(fund: Any, account: str, as_of: date | None = None) -> Money:
    return fund.ledger.trial_balance(as_of).balance(account)


def loan_events(ledger: Any, loan_no: str, name: str) -> list[Any]:
    loan = ledger.loan(loan_no)
    return [e for e in ledger.iter_events() if e.originator_id == loan.id and type(e).__name__ == name]


def refused(fund: Any, error: type[Exception], field: str, rule: str, action: Callable[[], Any]) -> Exception:
    """The command is refused with ``error`` naming ``field`` and ``rule``, and nothing changed."""
    before, loans = fund.fingerprint(), len(fund.ledger.loan_ids())
    with pytest.raises(error) as caught:
        action()
    assert caught.value.field == field, (caught.value, field)
    assert str(caught.value.rule).startswith(rule), (caught.value.rule, rule)
    assert fund.fingerprint() == before, f"{caught.value} changed the store"
    assert len(fund.ledger.loan_ids()) == loans
    return caught.value


# -- LN-1..4: application, approval, disbursement ----------------------------------------------------
def test_worked_loan_application_approval_and_disbursement(fund: Any) -> None:
    people = household(fund)
    applied = apply(fund, people.borrower)
    assert applied["state"] == APPLIED
    checks = applied["eligibility"]
    # 7 months x 7,200.00 x 2 members = 100,800.00; x 25 = 2,520,000.00; 800,000.00 x 80 % = 640,000.00
    assert (checks["couple_balances"], checks["balance_multiple"], checks["loan_to_value"]) == (
        "100800.00", "2520000.00", "640000.00")
    assert (checks["city_cap"], checks["instalment"], checks["capacity"]) == ("1000000.00", "2067.79", "10000.00")
    loan_no = applied["loan_no"]
    assert fund.ledger.member(people.borrower).loan_marks == fund.ledger.member(people.spouse).loan_marks
    fund.on(APPROVED_ON)
    assert fund.ledger.approve_loan(loan_no, APPROVED_ON)["state"] == APPROVED
    assert balance(fund, "1101").is_zero  # nothing moves before disbursement

    fund.on(DISBURSED_ON)
    disbursed = fund.ledger.disburse_loan(loan_no, DISBURSED_ON)
    assert (disbursed["state"], disbursed["annual_rate"], disbursed["instalment"], disbursed["first_due_on"]) == (
        ACTIVE, "2.85", "2067.79", "2025-02-15")
    # GL-1: disbursement instructed Dr 1101 / Cr 2101
    assert balance(fund, "1101") == Money(PRINCIPAL) == balance(fund, "2101")
    assert set(fund.ledger.member(people.borrower).loan_marks.values()) == {"outstanding"}

    status = fund.ledger.loan_status(loan_no, due_on(1))
    assert (status["principal_due"], status["interest_due"], status["amount_due"]) == ("880.29", "1187.50", "2067.79")
    assert (status["outstanding_principal"], status["days_past_due"], status["bucket"]) == ("500000.00", 0, None)
    assert (status["next_due_on"], status["next_amount"]) == ("2025-03-15", "2067.79")
    before = fund.ledger.loan_status(loan_no, date(2025, 1, 20))
    assert (before["amount_due"], before["instalments_due"]) == ("0.00", 0)
    fund.assert_books(APPLIED_ON, DISBURSED_ON)


def test_equal_principal_worked_loan(fund: Any) -> None:
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower, method="equal-principal")
    # LN-3: principal round(500,000.00 / 360) = 1,388.89 + interest 1,187.50 = 2,576.39
    status = fund.ledger.loan_status(loan_no, due_on(1))
    assert (status["principal_due"], status["interest_due"], status["amount_due"]) == ("1388.89", "1187.50", "2576.39")
    pay_instalments(fund, loan_no, 1, 2)
    # instalment 2: interest round(498,611.11 x 2.85 % / 12) = 1,184.20
    status = fund.ledger.loan_status(loan_no, due_on(2))
    assert (status["outstanding_principal"], status["instalments_paid"]) == ("497222.22", 2)
    assert balance(fund, "4001") == Money("1187.50") + Money("1184.20")
    schedule = fund.ledger.loan_whole(loan_no).book.schedule
    assert (len(schedule), schedule[-1].outstanding) == (360, Money("0.00"))
    fund.assert_books(due_on(1), due_on(2))


def test_first_instalment_paid_on_time_through_the_ledger(fund: Any) -> None:
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    figures = pay(fund, loan_no, "2067.79", due_on(1))
    assert (figures["interest"], figures["principal"], figures["penalty"]) == ("1187.50", "880.29", "0.00")
    # GL-1: instalment falls due Dr 1102 / Cr 4001; card repayment Dr 1001 / Cr 1102, 1101
    assert balance(fund, "4001") == Money("1187.50")
    assert balance(fund, "1102").is_zero
    assert balance(fund, "1101") == Money("499119.71")
    pay_instalments(fund, loan_no, 2, 2)  # month 2 (SPEC LN-3): 882.38 principal, 1,185.41 interest
    assert balance(fund, "1101") == Money("499119.71") - Money("882.38")
    assert balance(fund, "4001") == Money("1187.50") + Money("1185.41")
    fund.assert_books(date(2025, 2, 14), due_on(1), due_on(2))


def test_the_sub_ledger_of_a_lazily_built_loan_is_that_of_the_whole_book(fund: Any) -> None:
    """GL-2 figures read from the instalments built so far (``Loan.subledger_as_of``) equal those read
    from the whole schedule, also when interest was recognised for instalments a replay has not built."""
    from uuid import UUID

    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    pay_instalments(fund, loan_no, 1, 3)
    fund.on(due_on(9))
    fund.ledger.daily_loan_update(due_on(9))  # instalments 4..9 fall due unpaid: interest recognised
    loan_id = fund.ledger.loan(loan_no).id
    replayed = fund.ledger.replay_whole(UUID(str(loan_id)))  # from the events: the book builds lazily
    whole = fund.ledger.replay_whole(UUID(str(loan_id)))
    whole.book.accounts  # noqa: B018 - every instalment built
    assert len(replayed.book.head) < 9 <= len(replayed.accrued) and whole.book.tail is None
    for day in (due_on(1), due_on(3), due_on(5), due_on(9), due_on(40), date.max):
        assert replayed.subledger_as_of(day) == whole.subledger_as_of(day), day
    pay_instalments(fund, loan_no, 4, 9)  # now every recognised instalment has been built by a payment
    replayed = fund.ledger.replay_whole(UUID(str(loan_id)))
    whole = fund.ledger.replay_whole(UUID(str(loan_id)))
    whole.book.accounts  # noqa: B018
    assert len(replayed.book.head) >= max(int(number) for number in replayed.accrued) and replayed.book.tail
    for day in (due_on(4), due_on(9), due_on(40), date.max):
        assert replayed.subledger_as_of(day) == whole.subledger_as_of(day), day


# -- LN-2 repricing ----------------------------------------------------------------------------------------
def test_repricing_on_1_january_worked_loan(fund: Any, open_ledger: Any) -> None:
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    pay_instalments(fund, loan_no, 1, 11)
    new_year = date(2026, 1, 1)
    fund.on(new_year)
    # The sample city's table: > 5 years first home 2.60 % from 2025-05-08.
    assert fund.ledger.reprice_loans(new_year)["repriced"] == 1
    status = fund.ledger.loan_status(loan_no, due_on(12))
    assert status["amount_due"] == "2067.79"  # instalment 12's period started 2025-12-15: still 2.85 %
    pay_instalments(fund, loan_no, 12, 12)
    status = fund.ledger.loan_status(loan_no, due_on(12))
    assert (status["outstanding_principal"], status["annual_rate"]) == ("489297.43", "2.60")
    assert (status["next_due_on"], status["next_amount"]) == ("2026-02-15", "2003.54")
    later = fund.ledger.loan_whole(loan_no).book.accounts[12:]
    assert [a.number for a in later] == list(range(13, 361))  # 348 instalments
    assert {a.instalment.payment for a in later[:-1]} == {Money("2003.54")}
    assert later[-1].instalment.outstanding == Money("0.00")
    assert abs(later[-1].instalment.payment - Money("2003.54")) < Money("1.00")
    events = loan_events(fund.ledger, loan_no, "Repriced")
    assert len(events) == 1 and events[0].figures["from_number"] == 13

    fresh = open_ledger()  # over 24 events: a fresh ledger loads the loan from its snapshot
    assert fresh.loan(loan_no).version == fund.ledger.loan(loan_no).version > 24
    assert fresh.loan_status(loan_no, date(2026, 3, 1)) == fund.ledger.loan_status(loan_no, date(2026, 3, 1))

    fund.on(date(2027, 1, 1))  # the rate in force is still 2.60 %: nothing to do
    assert fund.ledger.reprice_loans(date(2027, 1, 1))["repriced"] == 0
    refused(fund, LedgerRuleError, "on", "LN-2", lambda: fund.ledger.reprice_loans(date(2027, 1, 2)))
    fund.assert_books(date(2025, 12, 31), new_year, due_on(12))


# -- LN-5 allocation and payers -------------------------------------------------------------------------
def test_one_deduction_split_between_borrower_fund_spouse_fund_and_card(fund: Any) -> None:
    """LN-5 on the aggregate: each payer continues where the last stopped; fund money posts Dr 2001."""
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    fund.on(due_on(1))
    loan = fund.ledger.loan(loan_no)
    with recording(fund.clock.now()):
        borrower = loan.pay(Money("1200.00"), due_on(1), "borrower-fund", "off-1", CENTRE_ACCOUNT)
        spouse = loan.pay(Money("500.00"), due_on(1), "spouse-fund", "off-2", CENTRE_ACCOUNT)
        card = loan.pay(Money("367.79"), due_on(1), "card", "card-1", CENTRE_ACCOUNT)
        with pytest.raises(LedgerRuleError) as beyond:  # nothing is due any more: fund money is refused
            loan.pay(Money("0.01"), due_on(1), "borrower-fund", "off-3", CENTRE_ACCOUNT)
    assert (beyond.value.field, beyond.value.rule) == ("amount", "LN-5")
    assert (borrower["interest"], borrower["principal"]) == (Money("1187.50"), Money("12.50"))
    assert (spouse["interest"], spouse["principal"]) == (Money("0.00"), Money("500.00"))
    assert (card["interest"], card["principal"]) == (Money("0.00"), Money("367.79"))
    journals = [e.journal for e in loan.pending_events if type(e).__name__ == "PaymentReceived"]
    as_tuples = [sorted((l["account"], l["side"], str(l["amount"])) for l in lines) for lines in journals]
    assert as_tuples == [
        [("1101", "Cr", "12.50"), ("1102", "Cr", "1187.50"), ("2001", "Dr", "1200.00")],
        [("1101", "Cr", "500.00"), ("2001", "Dr", "500.00")],
        [("1001.3100000001", "Dr", "367.79"), ("1101", "Cr", "367.79")],
    ]
    assert loan.book.amount_due(due_on(1)).is_zero
    fund.assert_books(DISBURSED_ON)  # nothing was saved


def test_card_payments_of_one_instalment_allocate_in_order(fund: Any) -> None:
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    first = pay(fund, loan_no, "1200.00", due_on(1))
    second = pay(fund, loan_no, "500.00", due_on(1))
    third = pay(fund, loan_no, "367.79", due_on(1))
    assert [(f["interest"], f["principal"]) for f in (first, second, third)] == [
        ("1187.50", "12.50"), ("0.00", "500.00"), ("0.00", "367.79")]
    status = fund.ledger.loan_status(loan_no, due_on(1))
    assert (status["amount_due"], status["instalments_paid"]) == ("0.00", 1)
    # the same bank reference twice is one payment (idempotent), not two
    repeat = fund.ledger.pay_loan(loan_no, "367.79", due_on(1), "card", _reference_of(fund, loan_no, 3))
    assert repeat.get("repeat") is True
    assert balance(fund, "1101") == Money("499119.71")
    fund.assert_books(due_on(1))


def _reference_of(fund: Any, loan_no: str, allocation: int) -> str:
    return next(p["reference"] for p in fund.ledger.loan_whole(loan_no).payments if p["allocation"] == allocation)


def test_money_beyond_the_amount_due_goes_to_suspense(fund: Any) -> None:
    """LN-5 / BNK-5: what a bank already took beyond the amount due is held in 2102, which GL-2 counts."""
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    figures = pay(fund, loan_no, "2100.00", due_on(1))
    assert figures["excess"] == "32.21"  # 2,100.00 - 2,067.79
    assert balance(fund, "2102") == Money("32.21")
    assert fund.ledger.loan(loan_no).book.account(2).paid == []
    fund.assert_books(date(2025, 2, 14), due_on(1))


def test_loan_suspense_is_applied_to_the_next_instalment_or_refunded(fund: Any) -> None:
    """BNK-5: loan money in suspense is applied to the amount due (Dr 2102) or paid back (Dr 2102 / Cr 2101
    and a payout); a refund the bank fails comes back to the loan; neither can take more than is held."""
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    pay(fund, loan_no, "2100.00", due_on(1))                      # 32.21 beyond instalment 1
    ledger = fund.ledger
    assert ledger.loan_suspense(loan_no, due_on(1))["held"] == "32.21"
    listed = ledger.suspense_items()
    assert [(i["kind"], i["reference"], i["amount"]) for i in listed["items"]] == [("loan", loan_no, "32.21")]
    assert listed["ok"] and listed["total"] == listed["ledger_2102"] == "32.21"
    fund.on(due_on(2))
    before = fund.fingerprint()
    with pytest.raises(LedgerRuleError) as refused:
        ledger.apply_loan_suspense(loan_no, "32.22", due_on(2), "S1")
    assert (refused.value.field, refused.value.rule) == ("amount", "BNK-5")
    with pytest.raises(LedgerRuleError):
        ledger.refund_loan_suspense(loan_no, "40.00", due_on(2), "R1")
    assert fund.fingerprint() == before
    applied = ledger.apply_loan_suspense(loan_no, "20.00", due_on(2), "S1")
    assert (applied["interest"], applied["principal"], applied["held"]) == ("20.00", "0.00", "12.21")
    assert ledger.apply_loan_suspense(loan_no, "20.00", due_on(2), "S1") == {**applied, "repeat": True}
    clearing = balance(fund, "2101")                              # the disbursement's payout is unanswered
    refund = ledger.refund_loan_suspense(loan_no, "12.21", due_on(2), "R1")
    assert refund["held"] == "0.00" and balance(fund, "2102") == Money("0.00")
    assert balance(fund, "2101") == clearing + Money("12.21")
    fund.assert_books(due_on(1), due_on(2))
    ledger.settle_payout(refund["serial"], False, due_on(2), "BANK-FAIL-1")   # the bank could not pay
    assert ledger.loan_suspense(loan_no, due_on(2))["held"] == "12.21"
    assert [m["kind"] for m in ledger.loan_suspense(loan_no, due_on(2))["moves"]] == [
        "excess", "applied", "refunded", "refund-failed"]
    assert balance(fund, "2102") == Money("12.21") and balance(fund, "2101") == clearing
    fund.assert_books(due_on(2))
    again = ledger.refund_loan_suspense(loan_no, "12.21", due_on(2), "R2")
    ledger.settle_payout(again["serial"], True, due_on(2), "BANK-OK-2")
    assert ledger.loan_suspense(loan_no, due_on(2))["held"] == "0.00"
    fund.assert_books(due_on(2))


def test_a_failed_disbursement_payout_holds_the_money_in_suspense(fund: Any) -> None:
    """No member account takes a failed disbursement back: the failure carries Dr 2101 / Cr 2102 (GL-2)."""
    people = household(fund)
    fund.on(APPLIED_ON)
    loan_no = apply(fund, people.borrower)["loan_no"]
    fund.on(APPROVED_ON)
    fund.ledger.approve_loan(loan_no, APPROVED_ON)
    fund.on(DISBURSED_ON)
    serial = fund.ledger.disburse_loan(loan_no, DISBURSED_ON)["payout_serial"]
    clearing, suspense = balance(fund, "2101"), balance(fund, "2102")
    fund.ledger.settle_payout(serial, False, DISBURSED_ON, "SELLER-BANK-REJECT")
    listed = fund.ledger.suspense_items(DISBURSED_ON)
    assert [(i["kind"], i["reference"], i["amount"]) for i in listed["items"]] == [
        ("failed-payout", serial, PRINCIPAL)] and listed["ok"]
    assert balance(fund, "2101") == clearing - Money(PRINCIPAL)
    assert balance(fund, "2102") == suspense + Money(PRINCIPAL)
    fund.assert_books(DISBURSED_ON)


# -- LN-6 prepayment ---------------------------------------------------------------------------------------
def test_prepayment_worked_example(fund: Any) -> None:
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    pay_instalments(fund, loan_no, 1, 1)
    day = date(2025, 3, 1)
    fund.on(day)
    figures = fund.ledger.prepay_loan(loan_no, "50000.00", day, "reduce-payment", "pp-1")
    assert (figures["interest"], figures["paid"], figures["days"]) == ("55.42", "50055.42", 14)
    assert fund.ledger.loan_status(loan_no, day)["outstanding_principal"] == "449119.71"
    entry = next(lines for event, _, lines in fund.ledger.journal() if type(event).__name__ == "Prepaid")
    # GL-1: prepayment interest Cr 4001 directly
    assert sorted((l["account"], l["side"], str(l["amount"])) for l in entry) == [
        (BANK_LEDGER, "Dr", "50055.42"), ("1101", "Cr", "50000.00"), ("4001", "Cr", "55.42")]
    fund.assert_books(due_on(1), day)


@pytest.mark.parametrize("mode, payment, months, last", [
    ("reduce-payment", "1645.18", 348, None),
    ("shorten-term", "2067.79", 250, "1715.55"),
])
def test_prepayment_after_instalment_12(fund: Any, mode: str, payment: str, months: int, last: str | None) -> None:
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    pay_instalments(fund, loan_no, 1, 12)
    assert fund.ledger.loan_status(loan_no, due_on(12))["outstanding_principal"] == "489297.43"
    day = date(2026, 1, 20)
    fund.on(day)
    figures = fund.ledger.prepay_loan(loan_no, "100000.00", day, mode, f"pp-{mode}")
    # 100,000.00 x 2.85 % x 5 / 360 = 39.583.. -> 39.58
    assert (figures["interest"], figures["paid"]) == ("39.58", "100039.58")
    assert (figures["payment_after"], figures["months_after"]) == (payment, months)
    later = fund.ledger.loan_whole(loan_no).book.accounts[12:]
    assert [a.number for a in later] == list(range(13, 13 + months))
    assert {a.instalment.payment for a in later[:-1]} == {Money(payment)}
    assert later[-1].instalment.outstanding == Money("0.00")
    if last is not None:
        assert later[-1].instalment.payment == Money(last)
    status = fund.ledger.loan_status(loan_no, day)
    assert (status["outstanding_principal"], status["next_amount"]) == ("389297.43", payment)
    fund.assert_books(due_on(12), day)


def test_prepayment_refused_while_something_is_overdue(fund: Any) -> None:
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    fund.on(date(2025, 3, 1))
    refused(fund, LoanRuleError, "on", "LN-6",
            lambda: fund.ledger.prepay_loan(loan_no, "50000.00", date(2025, 3, 1), "reduce-payment", "pp-x"))
    fund.assert_books()


# -- LN-7 penalty --------------------------------------------------------------------------------------------
def test_penalty_ten_days_late(fund: Any) -> None:
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    day = date(2025, 2, 25)
    status = fund.ledger.loan_status(loan_no, day)
    # shown, not posted (LN-7): 2,067.79 x 10 x 2.85 % x 1.5 / 360 = 2.455.. -> 2.46
    assert (status["penalty_accrued"], status["amount_due"]) == ("2.46", "2070.25")
    assert (status["days_past_due"], status["bucket"], status["instalments_overdue"]) == (10, "1-30", [1])
    assert balance(fund, "4002").is_zero
    figures = pay(fund, loan_no, "2070.25", day)
    assert (figures["penalty"], figures["interest"], figures["principal"]) == ("2.46", "1187.50", "880.29")
    assert balance(fund, "4002") == Money("2.46")
    status = fund.ledger.loan_status(loan_no, day)
    assert (status["amount_due"], status["days_past_due"], status["missed_total"]) == ("0.00", 0, 1)
    fund.assert_books(due_on(1), day)


def test_penalty_partial_payment_then_the_rest(fund: Any) -> None:
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    first = pay(fund, loan_no, "1000.00", date(2025, 2, 20))
    assert (first["penalty"], first["interest"], first["principal"]) == ("1.23", "998.77", "0.00")
    assert fund.ledger.loan(loan_no).book.account(1).unpaid == Money("1069.02")
    assert fund.ledger.loan_status(loan_no, date(2025, 2, 25))["amount_due"] == "1069.65"
    rest = pay(fund, loan_no, "1069.65", date(2025, 2, 25))
    assert (rest["penalty"], rest["excess"]) == ("0.63", "0.00")
    assert balance(fund, "4002") == Money("1.86")
    fund.assert_books(date(2025, 2, 20), date(2025, 2, 25))


@pytest.mark.parametrize("day, penalty", [(18, "0.00"), (19, "0.98")])
def test_penalty_with_three_grace_days(open_ledger: Any, make_policy: Any, fund_for: Any, day: int,
                                       penalty: str) -> None:
    fund = fund_for(open_ledger(make_policy(loan={"grace_days": 3})))
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    paid_on = date(2025, 2, day)
    due = fund.ledger.loan_status(loan_no, paid_on)["amount_due"]
    assert Money(due) == INSTALMENT + Money(penalty)
    figures = pay(fund, loan_no, due, paid_on)
    assert figures["penalty"] == penalty
    assert balance(fund, "4002") == Money(penalty)
    fund.assert_books(paid_on)


# -- LN-7 ageing and default ---------------------------------------------------------------------------------
def test_ageing_buckets_list_only_delinquent_loans(fund: Any) -> None:
    people = household(fund, others=[{"base": BASE, "birth_date": date(1992, 5, 5)}])
    late = disbursed_loan(fund, people.borrower)
    single = disbursed_loan(fund, people.others[0][0], principal="200000.00", price="300000.00")
    for number in range(1, 5):
        day = due_on(number)
        pay(fund, single, fund.ledger.loan_status(single, day)["amount_due"], day)
    expected = [(date(2025, 2, 15), None, 0), (date(2025, 3, 1), "1-30", 14), (date(2025, 3, 20), "31-60", 33),
                (date(2025, 4, 20), "61-90", 64), (date(2025, 5, 20), "91+", 94)]
    for as_of, bucket, days in expected:
        report = fund.ledger.delinquent_loans(as_of)
        listed = [(name, row["loan_no"], row["days_past_due"]) for name, rows in report["buckets"].items()
                  for row in rows]
        assert listed == ([] if bucket is None else [(bucket, late, days)]), as_of
        assert sum(report["counts"].values()) == len(listed)
    fund.assert_books(date(2025, 3, 1), date(2025, 5, 20))


def test_three_missed_in_a_row_raise_one_loan_defaulted(fund: Any) -> None:
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    # instalment 3 falls due 2025-04-15 (a Tuesday); it is missed once that day ends
    fund.on(due_on(3))
    result = fund.ledger.daily_loan_update(due_on(3))
    assert (result["loans"], result["accrued"], result["defaulted"]) == (1, 1, 0)
    fund.on(date(2025, 4, 16))
    assert fund.ledger.daily_loan_update(date(2025, 4, 16))["defaulted"] == 1
    fund.on(date(2025, 4, 17))
    assert fund.ledger.daily_loan_update(date(2025, 4, 17))["defaulted"] == 0
    assert len(loan_events(fund.ledger, loan_no, "Defaulted")) == 1
    status = fund.ledger.loan_status(loan_no, date(2025, 4, 17))
    assert (status["defaulted"], status["missed_in_a_row"], status["instalments_overdue"]) == (True, 3, [1, 2, 3])
    assert fund.ledger.loan_status(loan_no, date(2025, 4, 15))["defaulted"] is False  # as of before the event
    # GL-1: the three instalments' interest fell due Dr 1102 / Cr 4001 and is still unpaid
    assert balance(fund, "1102") == Money(status["interest_due"]) == balance(fund, "4001")
    assert balance(fund, "1102", date(2025, 3, 31)) == Money("1187.50") + Money("1185.41")
    fund.assert_books(due_on(1), date(2025, 3, 31), date(2025, 4, 17))


def test_a_loan_paid_on_time_does_not_default(fund: Any) -> None:
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    pay_instalments(fund, loan_no, 1, 3)
    fund.on(date(2025, 4, 16))
    assert fund.ledger.daily_loan_update(date(2025, 4, 16))["defaulted"] == 0
    status = fund.ledger.loan_status(loan_no, date(2025, 4, 16))
    assert (status["defaulted"], status["missed_total"], status["amount_due"]) == (False, 0, "0.00")
    fund.assert_books()


# -- LN-8 waivers -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("scope", ["loan", "employer", "all"])
def test_waiver_window(fund: Any, scope: str) -> None:
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    declared = date(2025, 2, 10)
    fund.on(declared)
    result = fund.ledger.declare_waiver(scope, declared, date(2025, 3, 10), declared,
                                        loan_no=loan_no if scope == "loan" else None,
                                        employer_code=people.employer if scope == "employer" else None)
    assert (result["loans"], result["penalty_refunded"]) == (1, "0.00")
    for inside in (date(2025, 2, 25), date(2025, 3, 10)):
        status = fund.ledger.loan_status(loan_no, inside)
        assert (status["days_past_due"], status["bucket"], status["instalments_overdue"]) == (0, None, [])
        assert (status["penalty_accrued"], status["amount_due"]) == ("0.00", "2067.79")  # still owed
        assert sum(fund.ledger.delinquent_loans(inside)["counts"].values()) == 0
    # after the range: overdue again, penalty from 03-11: 2,067.79 x 4 x 2.85 % x 1.5 / 360 = 0.982.. -> 0.98
    after = date(2025, 3, 14)
    status = fund.ledger.loan_status(loan_no, after)
    assert (status["days_past_due"], status["instalments_overdue"], status["penalty_accrued"]) == (4, [1], "0.98")
    figures = pay(fund, loan_no, "2068.77", after)
    assert (figures["penalty"], figures["excess"]) == ("0.98", "0.00")
    fund.assert_books(declared, after)


@pytest.mark.parametrize("declared, suspense", [
    (date(2025, 3, 1), "2.46"),  # nothing due: the refund is held in 2102 for the borrower
    (date(2025, 3, 15), "0.00"),  # instalment 2 due: the refund pays part of it
])
def test_late_waiver_reverses_the_penalty_already_paid(fund: Any, declared: date, suspense: str) -> None:
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    assert pay(fund, loan_no, "2070.25", date(2025, 2, 25))["penalty"] == "2.46"
    assert balance(fund, "4002") == Money("2.46")
    fund.on(declared)
    result = fund.ledger.declare_waiver("loan", date(2025, 2, 15), date(2025, 2, 28), declared, loan_no=loan_no)
    assert (result["loans"], result["penalty_refunded"]) == (1, "2.46")
    assert balance(fund, "4002").is_zero  # COR: the penalty income for the covered days is gone
    assert balance(fund, "2102") == Money(suspense)
    if declared == date(2025, 3, 15):
        assert fund.ledger.loan_status(loan_no, declared)["amount_due"] == str(INSTALMENT - Money("2.46"))
        pay(fund, loan_no, "2065.33", declared)
    status = fund.ledger.loan_status(loan_no, declared)
    assert (status["amount_due"], status["penalty_unpaid"]) == ("0.00", "0.00")
    assert status["missed_total"] == 0  # the only late days were waived
    fund.assert_books(date(2025, 2, 25), declared)


def test_late_waiver_refund_goes_to_the_instalment_still_due(fund: Any) -> None:
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    pay(fund, loan_no, "1000.00", date(2025, 2, 20))  # crystallises and pays 1.23
    declared = date(2025, 2, 22)
    fund.on(declared)
    result = fund.ledger.declare_waiver("loan", date(2025, 2, 15), date(2025, 2, 28), declared, loan_no=loan_no)
    assert result["penalty_refunded"] == "1.23"
    # the refund went back to instalment 1 (still due): 1,069.02 - 1.23
    assert fund.ledger.loan_status(loan_no, declared)["amount_due"] == "1067.79"
    assert balance(fund, "4002").is_zero
    fund.assert_books(date(2025, 2, 20), declared)


# -- LN-6 payoff --------------------------------------------------------------------------------------------
def test_payoff_closes_the_loan_and_frees_the_couple(fund: Any) -> None:
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    fund.on(date(2025, 2, 5))
    for period in ("2025-01", "2025-02"):  # keeps the 6 periods before 2025-03 credited
        fund.remit(people.employer, period, [people.borrower_account, people.spouse_account])
    pay_instalments(fund, loan_no, 1, 1)
    day = date(2025, 3, 1)
    fund.on(day)
    # 499,119.71 x 2.85 % x 14 / 360 = 553.191.. -> 553.19
    quote = fund.ledger.payoff_quote(loan_no, day)
    assert (quote["amount_due"], quote["principal"], quote["interest"], quote["total"]) == (
        "0.00", "499119.71", "553.19", "499672.90")
    figures = fund.ledger.pay_off_loan(loan_no, day, "payoff-1")
    assert (figures["state"], figures["total"]) == (CLOSED, "499672.90")
    status = fund.ledger.loan_status(loan_no, day)
    assert (status["state"], status["outstanding_principal"], status["amount_due"]) == (CLOSED, "0.00", "0.00")
    for id_number in (people.borrower, people.spouse):
        member = fund.ledger.member(id_number)
        assert member.loan_marks == {} and not member.has_open_loan
    assert fund.ledger.member(people.borrower).loans_used == 1
    assert balance(fund, "1101").is_zero and balance(fund, "1102").is_zero
    refused(fund, LoanStateError, "loan", "LN-1", lambda: fund.ledger.pay_loan(loan_no, "10.00", day, "card", "late"))
    fund.assert_books(due_on(1), date(2025, 2, 28), day)

    again = date(2025, 3, 5)
    fund.on(again)
    # the spouse (female, 34; retirement 55 + 5) may borrow over 20 years at most
    second = apply(fund, people.spouse, principal="300000.00", months=240, on=again)
    assert second["state"] == APPLIED and second["loan_no"] != loan_no
    fund.assert_books()


# -- COR-3 reversal of a loan payment -------------------------------------------------------------------------
def test_reversal_reopens_the_instalment_and_mirrors_the_journal(fund: Any) -> None:
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    paid = pay(fund, loan_no, "2067.79", due_on(1))
    day = date(2025, 2, 20)
    fund.on(day)
    result = fund.ledger.reverse_loan_payment(loan_no, paid["number"], day, "card debit returned")
    assert (result["amount"], result["source"]) == ("2067.79", "card")
    status = fund.ledger.loan_status(loan_no, day)
    # overdue again from the original due date: 5 days, 2,067.79 x 5 x 2.85 % x 1.5 / 360 = 1.227.. -> 1.23
    assert (status["instalments_overdue"], status["days_past_due"], status["penalty_accrued"]) == ([1], 5, "1.23")
    assert (status["amount_due"], status["outstanding_principal"]) == ("2069.02", "500000.00")

    original = next(e for e in loan_events(fund.ledger, loan_no, "PaymentReceived"))
    reversal = next(e for e in loan_events(fund.ledger, loan_no, "PaymentReversed"))
    assert reversal.value_date == original.value_date == due_on(1)  # COR-1: the original's value date
    swap = {"Dr": "Cr", "Cr": "Dr"}
    assert sorted((l["account"], swap[l["side"]], l["amount"]) for l in original.journal) == sorted(
        (l["account"], l["side"], l["amount"]) for l in reversal.journal)
    assert balance(fund, "1101") == Money(PRINCIPAL) and balance(fund, "1102") == Money("1187.50")

    loan = fund.ledger.loan(loan_no)
    with recording(fund.clock.now()), pytest.raises(LedgerRuleError) as twice:
        loan.reverse_payment(paid["number"], day, "again")
    assert (twice.value.field, twice.value.rule) == ("allocation", "COR-1")
    refused(fund, LedgerRuleError, "allocation", "COR-1",
            lambda: fund.ledger.reverse_loan_payment(loan_no, 99, day, "no such payment"))

    again = pay(fund, loan_no, "2069.02", day)
    assert (again["penalty"], again["excess"]) == ("1.23", "0.00")
    fund.assert_books(due_on(1), date(2025, 2, 17), day)


def test_a_payment_from_a_fund_account_is_reversed_with_the_account_credited_back(fund: Any) -> None:
    """COR-1: the mirror of an offset deduction credits 2001 and the payer's account gets the money back on
    the original's value date; the instalment is owed again from its due date (COR-3)."""
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    fund.on(date(2025, 1, 20))
    fund.ledger.set_card(people.borrower, "ICBC", card_number(1))
    fund.ledger.create_mandate(loan_no, date(2025, 1, 20), with_spouse=True)
    for id_number in (people.borrower, people.spouse):
        fund.ledger.sign_mandate(loan_no, id_number, date(2025, 1, 20))
    fund.on(date(2025, 2, 17))  # instalment 1 falls on Saturday 02-15: deducted on Monday (LN-4)
    fund.ledger.run_offset(date(2025, 2, 17))
    [paid] = fund.ledger.loan(loan_no).payments
    assert (paid["source"], paid["amount"]) == ("borrower-fund", INSTALMENT)
    account_no = fund.ledger.member(people.borrower).account_no
    before = fund.ledger.account(account_no).balance
    fund.on(date(2025, 2, 20))
    result = fund.ledger.reverse_loan_payment(loan_no, paid["allocation"], date(2025, 2, 20), "wrong payer")
    assert (result["account_no"], result["amount"], result["interest_adjustment"]) == (
        account_no, str(INSTALMENT), "0.00")
    account = fund.ledger.account(account_no)
    assert account.balance == before + INSTALMENT
    assert account.balance_as_of(date(2025, 2, 17)) == before + INSTALMENT  # on the original's value date
    status = fund.ledger.loan_status(loan_no, date(2025, 2, 20))
    assert status["amount_due"] != "0.00" and status["instalments_overdue"] == [1]
    again = fund.ledger.reverse_loan_payment(loan_no, paid["allocation"], date(2025, 2, 20), "wrong payer")
    assert again == {**result, "repeat": True}                 # one reversal per payment, applied once
    assert fund.ledger.account(account_no).balance == before + INSTALMENT
    fund.assert_books(date(2025, 2, 17), date(2025, 2, 20))


# -- replay -------------------------------------------------------------------------------------------------------
def test_a_loan_replayed_from_the_store_has_the_live_status(fund: Any, open_ledger: Any) -> None:
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    pay(fund, loan_no, "1000.00", date(2025, 2, 20))
    pay(fund, loan_no, "1069.65", date(2025, 2, 25))
    fund.on(date(2025, 3, 3))
    fund.ledger.declare_waiver("loan", date(2025, 2, 18), date(2025, 2, 22), date(2025, 3, 3), loan_no=loan_no)
    second = pay(fund, loan_no, "2067.79", due_on(2))
    fund.on(date(2025, 3, 20))
    fund.ledger.prepay_loan(loan_no, "20000.00", date(2025, 3, 20), "shorten-term", "pp-r")
    fund.on(date(2025, 3, 21))
    fund.ledger.reverse_loan_payment(loan_no, second["number"], date(2025, 3, 21), "returned")
    fund.on(date(2025, 4, 20))
    fund.ledger.daily_loan_update(date(2025, 4, 20))

    live = fund.ledger.loan(loan_no)
    fresh_ledger = open_ledger()
    fresh = fresh_ledger.loan(loan_no)
    assert (fresh.state, fresh.version, fresh.book.schedule) == (live.state, live.version, live.book.schedule)
    assert fresh.book.crystallisations == live.book.crystallisations
    for day in (date(2025, 2, 21), date(2025, 3, 16), date(2025, 3, 21), date(2025, 4, 20), date(2025, 6, 1)):
        assert fresh_ledger.loan_status(loan_no, day) == fund.ledger.loan_status(loan_no, day), day
    assert fresh_ledger.check_books()["ok"]
    fund.assert_books(date(2025, 2, 20), date(2025, 3, 15), date(2025, 3, 21))


# -- LN-1 couple rule (one at a time; the concurrent case is test_loan_concurrency.py) ------------------------
def test_one_loan_or_application_per_couple(fund: Any) -> None:
    people = household(fund)
    first = apply(fund, people.borrower, idempotency_key="app-1")
    assert apply(fund, people.borrower, idempotency_key="app-1")["repeat"] is True
    error = refused(fund, LoanEligibilityError, "id_number", "LN-1", lambda: apply(fund, people.spouse, months=240))
    assert "pending application" in str(error)
    fund.on(APPROVED_ON)
    assert fund.ledger.reject_loan(first["loan_no"], APPROVED_ON, "documents missing")["state"] == REJECTED
    second = apply(fund, people.spouse, months=240, on=APPROVED_ON)
    refused(fund, LoanEligibilityError, "id_number", "LN-1", lambda: apply(fund, people.borrower, on=APPROVED_ON))
    assert len(fund.ledger.loan_ids()) == 2 and second["state"] == APPLIED
    fund.assert_books()


# -- bad input: a clear error and nothing changed ----------------------------------------------------------------
def test_bad_applications_are_refused_and_change_nothing(fund: Any) -> None:
    people = household(fund, others=[
        {"base": BASE, "birth_date": date(1993, 1, 1), "periods": range(8, 13)},  # 2024-07 missing
        {"base": BASE, "birth_date": date(1964, 6, 1)},  # 60 on 2025-01-10: retirement age
        {"base": BASE, "birth_date": date(1980, 6, 1)},  # 44: 30 years would end at 75 > 60 + 5
        {"birth_date": date(1994, 1, 1)},  # base 7,777.00: 7 x 1,866.48 = 13,065.36 (x 25 = 326,634.00)
    ])
    gap, old, late, small = (number for number, _ in people.others)
    borrower = people.borrower
    cases: list[tuple[type[Exception], str, str, Callable[[], Any]]] = [
        (MoneyError, "principal", "MNY-1", lambda: apply(fund, borrower, principal=500000.0)),
        (MoneyError, "principal", "MNY-1", lambda: apply(fund, borrower, principal="-500000.00")),
        (MoneyError, "principal", "MNY-1", lambda: apply(fund, borrower, principal="0.00")),
        (MoneyError, "principal", "MNY-1", lambda: apply(fund, borrower, principal="500000.001")),
        (MoneyError, "price", "MNY-1", lambda: apply(fund, borrower, price=800000.0)),
        (MoneyError, "monthly_income", "MNY-1", lambda: apply(fund, borrower, income="-20000.00")),
        (LoanEligibilityError, "method", "LN-3", lambda: apply(fund, borrower, method="balloon")),
        (LoanEligibilityError, "months", "LN-1", lambda: apply(fund, borrower, months=361)),
        (LoanEligibilityError, "months", "LN-1", lambda: apply(fund, borrower, months=0)),
        (LoanEligibilityError, "months", "LN-1", lambda: apply(fund, borrower, months=360.0)),
        (NotFoundError, "id_number", "", lambda: apply(fund, resident_id(date(1990, 2, 2), 999, True))),
        (LoanEligibilityError, "id_number", "LN-1", lambda: apply(fund, gap, principal="100000.00")),
        (LoanEligibilityError, "id_number", "LN-1", lambda: apply(fund, old, principal="100000.00", months=60)),
        (LoanEligibilityError, "months", "LN-1", lambda: apply(fund, late, principal="100000.00")),
        (LoanEligibilityError, "principal", "LN-1", lambda: apply(fund, small, principal="400000.00")),
        (LoanEligibilityError, "principal", "LN-1", lambda: apply(fund, borrower, price="600000.00")),
        # down payment 125,000.00 of 625,000.01 is just under 20 % (the limit 500,000.008 is not rounded up)
        (LoanEligibilityError, "principal", "LN-1",
         lambda: apply(fund, borrower, principal="500000.01", price="625000.01")),
        (LoanEligibilityError, "principal", "LN-1",
         lambda: apply(fund, borrower, principal="1000000.01", price="2000000.00", income="90000.00")),
        (LoanEligibilityError, "monthly_income", "LN-1", lambda: apply(fund, borrower, income="4135.57")),
    ]
    messages = []
    for error, field, rule, action in cases:
        messages.append(str(refused(fund, error, field, rule, action)))
    limits = " / ".join(messages[-5:-1])
    assert "balance multiple" in limits and "loan to value" in limits and "city cap" in limits
    # capacity: 4,135.57 x 50 % = 2,067.785 < 2,067.79 above; 4,135.58 x 50 % just covers it
    assert apply(fund, borrower, income="4135.58", price="625000.00")["state"] == APPLIED
    fund.assert_books()


def test_bad_loan_commands_are_refused_and_change_nothing(fund: Any) -> None:
    people = household(fund, others=[{"base": BASE, "birth_date": date(1992, 5, 5)}])
    loan_no = disbursed_loan(fund, people.borrower)
    pending = apply(fund, people.others[0][0], principal="100000.00", on=DISBURSED_ON)
    day = date(2025, 2, 15)
    fund.on(day)
    ledger = fund.ledger
    cases: list[tuple[type[Exception], str, str, Callable[[], Any]]] = [
        (MoneyError, "amount", "MNY-1", lambda: ledger.pay_loan(loan_no, 2067.79, day, "card", "r1")),
        (MoneyError, "amount", "MNY-1", lambda: ledger.pay_loan(loan_no, "-2067.79", day, "card", "r2")),
        (MoneyError, "amount", "MNY-1", lambda: ledger.pay_loan(loan_no, "0", day, "card", "r3")),
        (MoneyError, "amount", "MNY-1", lambda: ledger.pay_loan(loan_no, "NaN", day, "card", "r4")),
        (LedgerRuleError, "source", "LN-5", lambda: ledger.pay_loan(loan_no, "10.00", day, "cash", "r5")),
        (NotFoundError, "loan", "", lambda: ledger.pay_loan("DK000", "10.00", day, "card", "r6")),
        (MoneyError, "principal", "MNY-1",
         lambda: ledger.prepay_loan(loan_no, 1000.0, day, "reduce-payment", "p1")),
        (LoanRuleError, "on", "LN-6", lambda: ledger.prepay_loan(loan_no, "1000.00", day, "reduce-payment", "p2")),
        (LoanStateError, "loan", "LN-1", lambda: ledger.approve_loan(loan_no, day)),
        (LoanStateError, "loan", "LN-1", lambda: ledger.disburse_loan(pending["loan_no"], day)),
        (LoanStateError, "loan", "LN-1", lambda: ledger.pay_loan(pending["loan_no"], "10.00", day, "card", "r7")),
        (LedgerRuleError, "end_on", "LN-8",
         lambda: ledger.declare_waiver("loan", day, date(2025, 2, 1), day, loan_no=loan_no)),
        (LedgerRuleError, "scope", "LN-8", lambda: ledger.declare_waiver("city", day, day, day)),
        (LedgerRuleError, "on", "LN-2", lambda: ledger.reprice_loans(day)),
        # MNY-4: a value date never follows its recording (the clock says 2025-02-15)
        (LedgerRuleError, "on", "MNY-4", lambda: ledger.pay_loan(loan_no, "2067.79", date(2025, 2, 16), "card", "f1")),
        (LedgerRuleError, "on", "MNY-4", lambda: ledger.pay_off_loan(loan_no, date(2025, 2, 16), "f2")),
        (LedgerRuleError, "declared_on", "MNY-4",
         lambda: ledger.declare_waiver("loan", day, day, date(2025, 2, 16), loan_no=loan_no)),
    ]
    for error, field, rule, action in cases:
        refused(fund, error, field, rule, action)
    pay(fund, loan_no, "2067.79", day)
    later = date(2025, 3, 1)
    fund.on(later)
    refused(fund, LoanRuleError, "mode", "LN-6", lambda: ledger.prepay_loan(loan_no, "1000.00", later, "halve", "p3"))
    refused(fund, LoanRuleError, "principal", "LN-6",
            lambda: ledger.prepay_loan(loan_no, "499119.71", later, "reduce-payment", "p4"))
    fund.assert_books()


@pytest.mark.parametrize("rate", ["0", "-2.85", "10.01", 2.85])
def test_schedule_refuses_a_rate_out_of_range(rate: Any) -> None:
    with pytest.raises(MoneyError) as caught:
        schedule_rows(PRINCIPAL, 360, rate, "equal-instalment", DISBURSED_ON)
    assert caught.value.field == "annual_rate"


def test_a_policy_rate_out_of_range_refuses_the_application(open_ledger: Any, make_policy: Any,
                                                            fund_for: Any) -> None:
    """LN-1 accepts 0 < r <= 10 %: a policy table that gives more refuses the application."""
    rates = [{"effective_from": "2015-08-26", "first_short": "9.50", "first_long": "10.50", "second_short": "9.50",
              "second_long": "10.50"}]
    fund = fund_for(open_ledger(make_policy(loan={"rates": rates})))
    people = household(fund)
    refused(fund, MoneyError, "annual_rate", "MNY-3", lambda: apply(fund, people.borrower))
    assert apply(fund, people.borrower, months=60, principal="100000.00")["state"] == APPLIED  # 9.50 % is fine
    fund.assert_books()


def test_a_loan_paid_off_later_is_still_delinquent_as_of_an_earlier_date(fund: Any) -> None:
    """MNY-4 as-of: instalment 1 was 14 days past due on 2025-03-01 even though the loan closed on 03-20."""
    people = household(fund)
    loan_no = disbursed_loan(fund, people.borrower)
    fund.on(date(2025, 3, 5))
    for period in ("2025-01", "2025-02"):
        fund.remit(people.employer, period, [people.borrower_account, people.spouse_account])
    fund.on(date(2025, 3, 20))
    fund.ledger.pay_off_loan(loan_no, date(2025, 3, 20), "payoff-late")
    earlier = fund.ledger.delinquent_loans(date(2025, 3, 1))
    assert [(row["loan_no"], row["days_past_due"]) for row in earlier["buckets"]["1-30"]] == [(loan_no, 14)]
    assert sum(fund.ledger.delinquent_loans(date(2025, 3, 21))["counts"].values()) == 0
    fund.assert_books(date(2025, 3, 1), date(2025, 3, 21))
