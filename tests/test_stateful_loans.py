"""Random histories of loans, the monthly offset, bank postings and reversals keep the books (GL-2), and every
fund account and loan the ledger loads decides as its events replayed alone do (issue 14, item 7).

A hypothesis state machine starts from an employer, two couples (spouse links, repayment cards) and a single
member with six months of contributions, and one loan in repayment under a signed offset mandate (按月冲还贷).
Its rules apply for, approve, reject, disburse, prepay (both modes) and pay off loans; sign and cancel mandates;
move the clock by days (over due dates, month ends and 30 June); run the offset and the daily loan jobs; pay
loans by card, at the counter and through the bank API (below, at or beyond the amount due), repeat a bank
posting (BNK-2: the same content is a no-op, other content is refused); export the card debits (BDC105) and
answer them by a BDC108 file or the API (collected, or failed by the borrower, the bank or the centre); reverse
loan payments (COR-3) and fund postings (COR-1..3); declare waivers (LN-8), late ones too; apply and refund
loan suspense (BNK-5); remit, withdraw, answer payouts and settle interest at the year end (INT-1).

A refused command must be a domain error (``LedgerRuleError``, ``MoneyError``, ``NotFoundError``) that saved
nothing. After every step: the trial balance balances, ``check_books()`` (GL-2) is ok now and as of an earlier
value date, 2001 = Σ balances, 1101 = Σ outstanding principal, no balance or loan figure is negative, and every
fund account and loan as the ledger under test loads it (from a snapshot: here it snapshots every few events)
has the same :func:`decision_state` as the same aggregate replayed from its events alone by a second ledger with
snapshots off, which also answers the as-of queries (balances, loan status) the same. Issue 14 changes what
the aggregates keep; :func:`decision_state` is the one place that knows how to ask them.

Three bugs the machine found (a catch-up run stuck after a later credit, a reversal taking suspense below
zero, the status of a loan paid off before its first due date) are fixed; each keeps a regression test at the
end of this file, and the machine now walks those paths too.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from bank_adapters.formats import ResultFile, ResultLine, ResultSummary
from ledger.aggregates.base import LedgerRuleError
from ledger.aggregates.errors import IdempotencyConflictError, InsufficientBalanceError, ValueDateError
from ledger.aggregates.fund_account import FundAccount
from ledger.aggregates.loan import ACTIVE, APPLIED, APPROVED, BANK_SOURCES, CLOSED, REJECTED, Loan
from ledger.aggregates.offset import OffsetRunLog
from ledger.app import Ledger
from ledger.application import CHINA_TZ, FixedClock, NotFoundError
from ledger.money import ZERO, Money, MoneyError
from ledger.sampledata import card_number, credit_code, resident_id
from ledger.services.accounts import share
from ledger.services.contributions import RemittanceLine
from ledger.storage import drop_postgres_schema, parse_database_url

# Domain refusals: a broken rule, a bad amount, or something the user named that does not exist (NotFoundError:
# the HTTP API's 404, e.g. cancelling the mandate of a loan that never had one).
REFUSALS = (LedgerRuleError, MoneyError, NotFoundError)
BANK = "ICBC"
CENTRE_ACCOUNT = "3100000001"
CENTRE_NAME = "某市住房公积金管理中心"
FIRST_PERIOD = "2024-10"
SETUP_PERIODS = ("2024-10", "2024-11", "2024-12", "2025-01", "2025-02", "2025-03")  # 6 before April (LN-1)
LOAN_START = date(2025, 4, 10)  # the first loan is disbursed then: due on the 10th
FIRST_DEDUCTION = date(2025, 5, 12)  # instalment 1 is due on Saturday 2025-05-10: deducted on Monday (LN-4)
HORIZON = date(2025, 12, 31)  # the clock stops here: a bounded history per example (one year end, 7 due dates)
SETTLED_BEFORE = date(2024, 6, 30)  # the interest year before the accounts opened: nothing to settle
# (role, birth date, male, base): bases low enough that withdrawals leave the offset short (card debits)
PEOPLE = (
    ("A1", date(1990, 1, 1), True, "6000.00"),
    ("A2", date(1991, 3, 3), False, "3000.00"),
    ("B1", date(1988, 5, 5), True, "4000.00"),
    ("B2", date(1989, 7, 7), False, "4000.00"),
    ("C1", date(1985, 9, 9), False, "20000.00"),
)
COUPLES = (("A1", "A2"), ("B1", "B2"))
CARD_HOLDERS = ("A1", "B1")  # C1 has no card: a short offset is NO_AVAILABLE_ACCOUNT for her loans
APPLICANTS = ("A1", "A2", "B1", "B1", "C1", "C1")  # A1 and A2 are refused while their loan is out (LN-1)
PRINCIPALS = ("50000.00", "150000.00", "250000.00", "700000.00")
TERMS = (60, 120, 240, 240, 360)
METHODS = ("equal-instalment", "equal-principal")
PRICE = "1500000.00"
PURCHASE = {"contract_number": "HT2025-1", "price": PRICE, "loan_amount": "250000.00", "contract_date": "2025-04-01"}
RESPONSES = (("00000", "成功"), ("00000", "成功"), ("E0001", "余额不足"), ("E0003", "批次被撤销"),
             ("E0004", "校验位错误"))
LOANS_MAX = 4  # applications included: a few loans keep each step's full replays and books checks short
SCRATCH_DIR = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # scratch stores: no fsync to wait for

SQLITE_SETTINGS = settings(max_examples=30, stateful_step_count=40, deadline=None,
                           suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
POSTGRES_SETTINGS = settings(max_examples=5, stateful_step_count=35, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# -- the one helper the rewrite of issue 14 adapts -----------------------------------------------------------
def decision_state(ledger: Ledger, aggregate: Any, today: date) -> dict[str, Any]:
    """What the rules decide on for one fund account or loan on ``today``, asked through its behaviour.

    An aggregate keeps a bounded window (issue 14, ADR 0017); a question it cannot answer from it raises
    ``HistoryRequired`` and is asked of the aggregate replayed whole (``ledger.as_of``), as the ledger's own
    commands do. The one the ledger loads from a snapshot must answer these exactly as the one replayed from
    its events alone. ``ledger`` answers the interest an account has earned since its last settlement."""
    def ask(question: Any) -> Any:
        return ledger.as_of(aggregate, question)

    if isinstance(aggregate, FundAccount):
        account, policy = aggregate, ledger.policy.at(today)
        periods = [f"{(today.replace(day=1) - timedelta(days=28 * k)):%Y-%m}" for k in range(1, 7)]
        return {
            "version": account.version, "state": account.state, "balance": account.balance,
            "frozen": account.frozen_sum, "available": account.available(policy.account.retained_balance_min),
            "agreement": account.agreement, "base": account.base_for(f"{today:%Y-%m}"),
            "lowest_balance": ask(lambda a: a.lowest_balance_from(a.opened_on)),  # ACC-3 under MNY-4
            "credited": {p: dict(ask(lambda a, p=p: a.credited_kinds(p))) for p in periods},  # CON-2, LN-1
            "last_settled_end": account.last_settled_end(),
            "interest_since_settled": ask(lambda a: ledger.interest_to(a, today, policy).interest),
            "last_withdrawn": dict(account.last_withdrawn_on),  # WD-1 next allowed
            "withdrawn_this_year": {kind: Money.sum(w["amount"] for w in rows if w["kind"] == kind)  # WD-2 caps
                                    for rows in [ask(lambda a: a.withdrawals_since(date(today.year, 1, 1)))]
                                    for kind in {w["kind"] for w in rows}},
            "offset_this_year": account.offset_debits_in(today.year),
        }
    assert isinstance(aggregate, Loan), aggregate
    loan = aggregate
    state = {"version": loan.version, "state": loan.state, "principal": loan.principal,
             "disbursed_on": loan.disbursed_on, "closed_on": loan.closed_on, "defaulted_on": loan.defaulted_on,
             "mandate_id": loan.mandate_id}
    if loan.disbursed_on is None:
        return state
    book = loan.book
    on = max(today, book.last_on)  # the book refuses a date before its own (MNY-4)
    upcoming = book.first_after(on)
    state.update({
        "book_on": book.last_on, "status": asdict(book.status(on)),  # LN-5 amount due, LN-7 penalty and ageing
        "payoff": asdict(book.payoff_quote(on)) if loan.state == ACTIVE else None,  # LN-6
        "next_due": (upcoming.due_on, upcoming.instalment.payment) if upcoming else None,
        "instalments": book.instalment_count, "annual_rate": book.last_rate,
        # instalments whose interest is recognised (Dr 1102 / Cr 4001): the last, and the due ones still not
        "accrued_through": max((int(n) for n in loan.accrued), default=book.pruned.count),
        "unrecognised_due": [a.number for a in book.accounts_through(on)
                             if str(a.number) not in loan.accrued and not a.instalment.interest.is_zero],
        "suspense": ask(lambda a: a.suspense_held(today)),  # BNK-5
        "repaid_regularly": loan.repaid_regularly_before(date.max),  # OFF-1
        "subledger": ask(lambda a: a.subledger_as_of(today)),  # GL-2 figures
    })
    return state


# -- history read from the events (not decision state: the rewrite keeps it out of the aggregates) -----------
def loan_payments(ledger: Ledger, loan_no: str) -> list[dict[str, Any]]:
    """Each payment of a loan (allocation, value date, source, amount, excess), and whether it was reversed."""
    payments: dict[int, dict[str, Any]] = {}
    for domain_event in ledger.events.get(Loan.create_id(loan_no)):
        name = type(domain_event).__name__
        if name == "PaymentReceived":
            number = domain_event.figures["number"]
            payments[number] = {"allocation": number, "on": domain_event.value_date, "source": domain_event.source,
                                "amount": domain_event.op["amount"], "excess": domain_event.figures["excess"],
                                "reversed": False}
        elif name == "PaymentReversed":
            payments[domain_event.allocation]["reversed"] = True
    return list(payments.values())


def fund_postings(ledger: Ledger, account_no: str) -> list[dict[str, Any]]:
    """Contributions and withdrawals of an account (posting id, kind, value date), and whether reversed."""
    postings: dict[str, dict[str, Any]] = {}
    for domain_event in ledger.events.get(FundAccount.create_id(account_no)):
        name = type(domain_event).__name__
        if name in ("Contributed", "Withdrawn"):
            kind = domain_event.kind if name == "Contributed" else "withdrawal"
            postings[domain_event.posting_id] = {"posting_id": domain_event.posting_id, "kind": kind,
                                                 "on": domain_event.value_date, "reversed": False}
        elif name == "Reversed" and domain_event.posting_id in postings:
            postings[domain_event.posting_id]["reversed"] = True
    return list(postings.values())


class SnapshottingLedger(Ledger):
    """The ledger under test, snapshotting every few events so that its loads start from a snapshot (the offset's
    run log gains an event a day: without snapshots each day's run replays all of them)."""

    name = Ledger.name  # the same tables as the ledger it tests (eventsourcing names them after the application)
    snapshotting_intervals = {FundAccount: 3, Loan: 2, OffsetRunLog: 8}


@dataclass(frozen=True)
class Person:
    id_number: str
    account_no: str


@dataclass(frozen=True)
class ApiPosting:
    """A repayment the bank posted through the HTTP API's service, and what it answered."""

    loan_no: str
    amount: Money
    host_on: date
    host_serial: str
    result: dict[str, Any]


def pick(items: list[Any], index: int) -> Any:
    return items[index % len(items)]


class LoanMachine(RuleBasedStateMachine):
    """The ledger under random loan, offset, bank and correction commands; ``open_store`` gives a scratch store."""

    snapshot_loads = 0  # over all examples: aggregates the ledger under test loaded from a snapshot

    def __init__(self) -> None:
        super().__init__()
        self.url, self.drop = self.open_store()
        self.clock = FixedClock(datetime.combine(date(2024, 10, 8), time(10), CHINA_TZ))
        self.ledger = SnapshottingLedger(self.url, clock=self.clock)
        self.replay = Ledger(self.url, clock=self.clock, env={"IS_SNAPSHOTTING_ENABLED": "n"})
        assert self.ledger.snapshots is not None and self.replay.snapshots is None
        self.employer = credit_code(7)
        self.people: dict[str, Person] = {}
        self.loans: dict[str, str] = {}  # loan number -> state, kept from the commands' own results
        self.borrowers: dict[str, str] = {}  # loan number -> borrower's role
        self.api_postings: list[ApiPosting] = []
        self.batches: list[dict[str, Any]] = []  # exported debit batches awaiting the bank's answer
        self.settled_years: set[date] = {SETTLED_BEFORE}
        self.counter = 0
        self.setting_up = False
        self.checked: dict[Any, tuple[tuple[int, date], dict[str, Any]]] = {}  # id -> ((version, today), state)
        self.books_checked: tuple[int, date] | None = None  # (log head, today) of the last books check

    def open_store(self) -> tuple[str, Callable[[], None]]:
        folder = tempfile.mkdtemp(prefix="gjj-stateful-loans-", dir=SCRATCH_DIR)
        return f"sqlite:///{folder}/ledger.sqlite3", lambda: shutil.rmtree(folder, ignore_errors=True)

    def teardown(self) -> None:
        self.replay.close()
        self.ledger.close()
        self.drop()

    # -- helpers -------------------------------------------------------------------------------------------
    def next(self) -> int:
        self.counter += 1
        return self.counter

    @property
    def today(self) -> date:
        return self.ledger.today()

    def on(self, day: date) -> None:
        self.clock.set_day(day, 10)

    def loans_in(self, *states: str) -> list[str]:
        return [loan_no for loan_no, state in self.loans.items() if state in states]

    def person_of_account(self, account_no: str) -> Person:
        return next(p for p in self.people.values() if p.account_no == account_no)

    def last_year_end(self) -> date:
        return date(self.today.year if self.today.month >= 7 else self.today.year - 1, 6, 30)

    def note(self, text: str) -> None:
        """A hypothesis ``event`` for the statistics, except in the set-up every example shares."""
        if not self.setting_up:
            event(text)

    def attempt(self, label: str, command: Callable[[], Any], expect_ok: bool | None = None) -> Any | None:
        """Run a command; a refusal must be a domain error that saved nothing."""
        head = self.ledger.recorder.max_notification_id()
        try:
            result = command()
        except REFUSALS as exc:
            assert self.ledger.recorder.max_notification_id() == head, f"{label}: a refused command saved: {exc}"
            assert expect_ok is not True, f"{label}: refused although it must pass: {exc!r}"
            self.note(f"{label}: refused ({type(exc).__name__})")
            return None
        assert expect_ok is not False, f"{label}: accepted although it must be refused: {result}"
        self.note(f"{label}: accepted")
        return result

    def remit_all(self, period: str, kind: str, value_date: date) -> None:
        """One document for every member's shares of ``period`` (CON-1), paid in full on ``value_date``."""
        ratios = self.ledger.employer(self.employer).ratios_for(period)
        rounding = self.ledger.policy.at(date(int(period[:4]), int(period[5:]), 1)).contribution.share_rounding
        lines = []
        for number, person in enumerate(self.people.values(), start=1):
            base = self.ledger.as_of(self.ledger.account(person.account_no), lambda a: a.base_for(period))
            if base is not None and ratios is not None:
                lines.append(RemittanceLine(number, person.account_no, base, share(base, ratios[0], rounding),
                                            share(base, ratios[1], rounding)))
        document = self.attempt(f"register {kind}", lambda: self.ledger.register_remittance(
            self.employer, period, kind, f"D{self.next()}", lines, self.today))
        if document is None or document["accepted"] == 0:
            return
        receipt = self.attempt("receive", lambda: self.ledger.receive(
            BANK, f"{value_date:%Y%m%d}", f"H{self.next()}", CENTRE_ACCOUNT, document["total"], value_date,
            document["serial"]), expect_ok=True)
        assert receipt["applied"] == document["total"], (receipt, document)

    def apply(self, role: str, principal: str, months: int, method: str, income: str) -> str | None:
        result = self.attempt("apply for a loan", lambda: self.ledger.apply_for_loan(
            self.people[role].id_number, principal, months, method, PRICE, income, self.today, BANK))
        if result is None:
            return None
        self.loans[result["loan_no"]] = APPLIED
        self.borrowers[result["loan_no"]] = role
        return result["loan_no"]

    def amount_due(self, loan_no: str, on: date) -> Money:
        return Money(self.ledger.loan_status(loan_no, on).get("amount_due", "0.00"))  # none before disbursement

    # -- set-up ------------------------------------------------------------------------------------------------
    @initialize(method=st.sampled_from(METHODS), months=st.sampled_from((120, 240)))
    def centre_with_a_loan_in_repayment(self, method: str, months: int) -> None:
        """Five members credited 2024-10..2025-03; A1 borrows 250,000.00 on 2025-04-10 under a mandate signed by
        both spouses, who withdrew most of their balances for the purchase (WD-1 01), and pays 30.00 at the
        counter before anything is due; the first deduction (2025-05-12) takes what the fund accounts hold and
        leaves a card debit for the rest."""
        ledger = self.ledger
        self.setting_up = True
        with ledger.audit_bulk_load():
            ledger.open_employer(self.employer, "状态机贷款单位", "6222000011112222", self.today, ratio="12",
                                 from_period=FIRST_PERIOD)
            for sequence, (role, birth_date, male, base) in enumerate(PEOPLE, start=1):
                number = resident_id(birth_date, sequence, male)
                ledger.open_member(number, f"职工{role}", self.employer, self.today)
                opened = ledger.open_account(number, self.today, base=base, from_period=FIRST_PERIOD)
                self.people[role] = Person(number, opened["account_no"])
            for one, other in COUPLES:
                ledger.link_spouses(self.people[one].id_number, self.people[other].id_number, self.today)
            for sequence, role in enumerate(CARD_HOLDERS, start=1):
                ledger.set_card(self.people[role].id_number, BANK, card_number(sequence))
            for period in SETUP_PERIODS:
                self.on(date(int(period[:4]), int(period[5:]), 8))
                self.remit_all(period, "remittance", self.today)
            self.on(LOAN_START - timedelta(days=2))
            loan_no = self.apply("A1", "250000.00", months, method, "20000.00")
            for role, kept in (("A1", "500.00"), ("A2", "300.00")):  # the down payment: the offset falls short
                account_no = self.people[role].account_no
                amount = Money(ledger.balance(account_no)["available"]) - Money(kept)
                ledger.withdraw(account_no, "purchase", str(amount), self.today, PURCHASE, f"wd-{self.next()}")
            assert loan_no is not None
            ledger.approve_loan(loan_no, self.today)
            self.on(LOAN_START)
            ledger.disburse_loan(loan_no, LOAN_START)
            self.loans[loan_no] = ACTIVE
            ledger.create_mandate(loan_no, LOAN_START, with_spouse=True)
            for role in ("A1", "A2"):
                ledger.sign_mandate(loan_no, self.people[role].id_number, LOAN_START)
            self.on(LOAN_START + timedelta(days=10))  # paid before anything is due: held in suspense (BNK-5)
            ledger.pay_loan(loan_no, "30.00", self.today, "counter", f"P{self.next()}")
        self.on(FIRST_DEDUCTION)
        self.run_the_days_jobs()
        deduction = self.ledger.run_offset(FIRST_DEDUCTION)["dates"]  # the day is done: nothing more to do
        assert deduction == [] or deduction[0]["already_done"] == 1, deduction
        assert self.ledger.debits(("CREATED",), bank=BANK), "the fund accounts fell short: a card debit waits"
        self.remit_all("2025-04", "remittance", self.today)  # April paid: May applications are eligible (LN-1)
        self.setting_up = False

    # -- loans: application, approval, disbursement, mandates ---------------------------------------------------
    @precondition(lambda self: len(self.loans) < LOANS_MAX)
    @rule(role=st.sampled_from(APPLICANTS), principal=st.sampled_from(PRINCIPALS), months=st.sampled_from(TERMS),
          method=st.sampled_from(METHODS), income=st.sampled_from(("20000.00", "20000.00", "2500.00")),
          then=st.sampled_from(("approve+disburse", "approve+disburse", "approve", "reject", None)))
    def apply_for_loan(self, role: str, principal: str, months: int, method: str, income: str,
                       then: str | None) -> None:
        """LN-1; an accepted application may be decided at once (or later, by ``approve_and_disburse``)."""
        loan_no = self.apply(role, principal, months, method, income)
        if loan_no is not None and then is not None:
            self.decide(loan_no, then)

    @precondition(lambda self: self.loans_in(APPLIED, APPROVED))
    @rule(index=st.integers(0, 9),
          action=st.sampled_from(("approve+disburse", "approve+disburse", "approve", "disburse", "reject")))
    def approve_and_disburse(self, index: int, action: str) -> None:
        self.decide(pick(self.loans_in(APPLIED, APPROVED), index), action)

    def decide(self, loan_no: str, action: str) -> None:
        if action == "reject":
            if self.attempt("reject", lambda: self.ledger.reject_loan(loan_no, self.today, "状态机")):
                self.loans[loan_no] = REJECTED
            return
        if "approve" in action:
            approved = self.attempt("approve", lambda: self.ledger.approve_loan(loan_no, self.today),
                                    expect_ok=self.loans[loan_no] == APPLIED)
            if approved:
                self.loans[loan_no] = APPROVED
        if "disburse" in action:
            disbursed = self.attempt("disburse", lambda: self.ledger.disburse_loan(loan_no, self.today),
                                     expect_ok=self.loans[loan_no] == APPROVED)
            if disbursed:
                self.loans[loan_no] = ACTIVE

    @precondition(lambda self: self.loans_in(ACTIVE))
    @rule(index=st.integers(0, 9), with_spouse=st.booleans(),
          signers=st.sampled_from(("all", "all", "borrower", "cancel")))
    def offset_mandate(self, index: int, with_spouse: bool, signers: str) -> None:
        """OFF-1: draft and sign (by every payer, or by the borrower only), or cancel from next month."""
        loan_no = pick(self.loans_in(ACTIVE), index)
        borrower = self.people[self.borrowers.get(loan_no, "A1")]
        if signers == "cancel":
            self.attempt("cancel mandate", lambda: self.ledger.cancel_mandate(loan_no, borrower.id_number, self.today))
            return
        created = self.attempt("create mandate", lambda: self.ledger.create_mandate(loan_no, self.today, with_spouse))
        if created is None:
            return
        for payer in created["payers"]:
            if signers == "all" or payer["role"] == "borrower":
                signer = self.person_of_account(payer["account_no"])
                self.attempt("sign mandate", lambda: self.ledger.sign_mandate(loan_no, signer.id_number, self.today),
                             expect_ok=True)

    # -- time and the daily jobs -----------------------------------------------------------------------------
    # Every move of the clock runs the day's jobs at once, which catch up every date since the last run
    # (OFF-4); a catch-up over money credited after a missed date is its own regression test below.
    @precondition(lambda self: self.today < HORIZON)
    @rule(days=st.integers(1, 35), employer_pays=st.sampled_from((True, True, False)))
    def advance(self, days: int, employer_pays: bool) -> None:
        self.move_clock_to(self.today + timedelta(days=days), employer_pays)

    @precondition(lambda self: self.today < HORIZON and self.loans_in(ACTIVE))
    @rule(index=st.integers(0, 9), extra_days=st.sampled_from((0, 0, 1, 3, 12)))
    def advance_to_a_due_date(self, index: int, extra_days: int) -> None:
        """To a loan's next due date (or a few days after it: late)."""
        loan_no = pick(self.loans_in(ACTIVE), index)
        due_on = self.ledger.loan_status(loan_no, self.today)["next_due_on"]
        if due_on is not None:
            self.move_clock_to(date.fromisoformat(due_on) + timedelta(days=extra_days), employer_pays=True)

    def move_clock_to(self, day: date, employer_pays: bool) -> None:
        """Days pass (up to the horizon); the day's jobs run; the employer remits for each month the clock enters
        (or not: a gap in the periods, LN-1)."""
        day = min(day, HORIZON)
        months = {f"{self.today + timedelta(days=n):%Y-%m}" for n in range(1, (day - self.today).days + 1)}
        months.discard(f"{self.today:%Y-%m}")
        self.on(day)
        self.run_the_days_jobs()
        for period in sorted(months) if employer_pays else ():
            self.remit_all(period, "remittance", self.today)

    @rule()
    def run_the_days_jobs(self) -> None:
        """The offset (OFF-2/OFF-4: every deduction date since the last completed run, through today), interest
        falling due (Dr 1102 / Cr 4001), LN-7 default, and the card debits due for a retry (OFF-3)."""
        report = self.attempt("run offset", lambda: self.ledger.run_offset(self.today), expect_ok=True)
        for day in report["dates"]:
            for reason in day["skipped"]:
                self.note(f"offset: skipped {reason}")
            if Money(day["from_borrower_funds"]) + Money(day["from_spouse_funds"]) > ZERO:
                self.note("offset: deducted from the fund accounts")
            if day["debits_created"]:
                self.note("offset: a card debit created")
            if day["debits_cancelled"]:
                self.note("offset: a card debit cancelled into a new amount")
        self.attempt("daily loan update", lambda: self.ledger.daily_loan_update(self.today), expect_ok=True)
        retried = self.attempt("retry debits", lambda: self.ledger.retry_debits(self.today), expect_ok=True)
        if retried["retried"]:
            self.note("retry debits: retried")

    # -- money in: card, counter, bank API (LN-5, BNK-2, BNK-5) ---------------------------------------------
    @precondition(lambda self: self.loans_in(ACTIVE))
    @rule(index=st.integers(0, 9), source=st.sampled_from(("card", "counter", "api", "api")),
          relation=st.sampled_from(("below", "equal", "above")), days_back=st.sampled_from((0, 0, 0, 2, 9)),
          then_repeat=st.sampled_from((None, None, True, False)))
    def pay_loan(self, index: int, source: str, relation: str, days_back: int, then_repeat: bool | None) -> None:
        """Below, at or beyond the amount due; what a bank took beyond it goes to suspense (LN-5, BNK-5). The
        bank may post the same API repayment again at once (``then_repeat``: same content or not, BNK-2)."""
        loan_no = pick(self.loans_in(ACTIVE), index)
        on = self.today - timedelta(days=days_back)
        due = self.amount_due(loan_no, on)
        amount = {"below": due - Money("0.01"), "equal": due, "above": due + Money("50.00")}[relation]
        amount = amount if amount > ZERO else Money("100.00")
        if source == "api":
            host_serial = f"S{self.next():07d}"
            result = self.attempt("bank API repayment", lambda: self.ledger.bank_repayment(
                BANK, loan_no, str(amount), on, host_serial))
            if result is not None:
                self.api_postings.append(ApiPosting(loan_no, amount, on, host_serial, result))
                if then_repeat is not None:
                    self.repeat_bank_posting(len(self.api_postings) - 1, then_repeat)
        else:
            result = self.attempt(f"pay by {source}", lambda: self.ledger.pay_loan(
                loan_no, str(amount), on, source, f"P{self.next()}"))
        if result is not None:
            assert Money(result["excess"]) == (amount - due).max(ZERO), (result, amount, due)
            if Money(result["excess"]) > ZERO:
                self.note("pay loan: excess held in suspense")

    @precondition(lambda self: self.api_postings)
    @rule(index=st.integers(0, 20), same=st.booleans())
    def repeat_bank_posting(self, index: int, same: bool) -> None:
        """BNK-2: a bank reference seen before: the same content is a no-op returning the first result, other
        content is refused (and a 主机日期 past the back-dating limit is refused whatever the content)."""
        posting = pick(self.api_postings, index)
        amount = posting.amount if same else posting.amount + Money("1.00")
        head = self.ledger.recorder.max_notification_id()
        try:
            result = self.ledger.bank_repayment(BANK, posting.loan_no, str(amount), posting.host_on,
                                                posting.host_serial)
        except REFUSALS as exc:
            assert self.ledger.recorder.max_notification_id() == head, exc
            too_old = (self.today - posting.host_on).days > \
                self.ledger.policy.at(self.today).time.value_date_backdate_days_max
            assert isinstance(exc, ValueDateError if too_old else IdempotencyConflictError), exc
            assert not same or too_old, exc
            self.note(f"repeat bank posting: refused ({'too old' if too_old else 'other content'})")
            return
        assert same, result
        assert result == {**posting.result, "repeat": True}, (result, posting.result)
        assert self.ledger.recorder.max_notification_id() == head
        self.note("repeat bank posting: no-op")

    # -- card debits: BDC105 out, BDC108 or API back (OFF-3, BNK-4) ----------------------------------------------
    @precondition(lambda self: self.loans_in(ACTIVE, CLOSED))
    @rule(answer_via=st.sampled_from((None, "BDC108", "api")),
          responses=st.lists(st.sampled_from(RESPONSES), min_size=1, max_size=3))
    def export_card_debits(self, answer_via: str | None, responses: list[tuple[str, str]]) -> None:
        """The day's CREATED debits go to the bank in one batch; its answer comes now or later."""
        record = self.attempt("export debits", lambda: self.ledger.export_debits(BANK, self.today), expect_ok=True)
        if record["rows"] and not record["repeat"]:
            self.batches.append(record)
            self.note("export debits: a batch submitted")
            if answer_via is not None:
                self.answer_card_debits(len(self.batches) - 1, answer_via, 0, responses)

    @precondition(lambda self: self.batches)
    @rule(index=st.integers(0, 9), via=st.sampled_from(("BDC108", "api")), days_back=st.sampled_from((0, 0, 2)),
          responses=st.lists(st.sampled_from(RESPONSES), min_size=1, max_size=3))
    def answer_card_debits(self, index: int, via: str, days_back: int, responses: list[tuple[str, str]]) -> None:
        """The bank's answer to a batch: each line collected (paid as of 主机日期) or failed by code."""
        record = self.batches.pop(index % len(self.batches))
        host_on = max(self.today - timedelta(days=days_back), date.fromisoformat(record["on"]))
        answers = {row["sequence"]: responses[n % len(responses)] for n, row in enumerate(record["rows"])}
        if via == "BDC108":
            report = self.ledger.import_debit_results(self.result_file(record, answers, host_on))
            for line in report["lines"]:
                assert line["status"] in ("applied", "suspense"), line
                self.note(f"BDC108 line: {line['status']}")
            return
        for row in record["rows"]:
            code, message = answers[row["sequence"]]
            self.attempt(f"API debit result {code}", lambda: self.ledger.bank_debit_result(
                BANK, row["serial"], code, message, host_on, f"R{self.next():07d}",
                row["amount"] if code == "00000" else None), expect_ok=True)

    def result_file(self, record: dict[str, Any], answers: dict[int, tuple[str, str]], host_on: date) -> ResultFile:
        prefix = f"F{self.next():05d}"
        lines = tuple(ResultLine(row["sequence"], "156", "1", Money(row["amount"]), row["card"]["number"],
                                 row["name"], None, CENTRE_ACCOUNT, CENTRE_NAME, None, *answers[row["sequence"]],
                                 host_on, f"{prefix}{row['sequence']:04d}", "", "") for row in record["rows"])
        summary = ResultSummary.of(lines, batch_on=date.fromisoformat(record["on"]), institution_code="310000",
                                   batch_number=record["batch_number"], category="1", type_code="1", currency="156",
                                   cash_remittance="1", memo="贷款扣款")
        return ResultFile(summary, lines)

    # -- corrections (COR-1..3) ----------------------------------------------------------------------------------
    @precondition(lambda self: self.loans_in(ACTIVE, CLOSED))
    @rule(index=st.integers(0, 9), which=st.integers(0, 50), again=st.sampled_from((False, False, False, True)))
    def reverse_loan_payment(self, index: int, which: int, again: bool) -> None:
        """COR-3: reopen what a payment paid (a fund payer gets its money back); a second reversal of the same
        payment is the first one's result again, saving nothing. A payment whose excess was since refunded or
        applied is refused (COR-2: suspense would go below zero) and saves nothing."""
        loan_no = pick(self.loans_in(ACTIVE, CLOSED), index)
        candidates = [p for p in loan_payments(self.ledger, loan_no) if p["reversed"] == again]
        if not candidates:
            return
        payment = pick(candidates, which)
        if not again and payment["excess"] > Money(self.ledger.loan_suspense(loan_no, self.today)["held"]):
            self.note("reverse a loan payment whose excess left suspense: refused")
        head = self.ledger.recorder.max_notification_id()
        result = self.attempt(f"reverse a {payment['source']} payment{' again' if again else ''}",
                              lambda: self.ledger.reverse_loan_payment(loan_no, payment["allocation"], self.today,
                                                                       "状态机冲正"))
        if result is not None and again:
            assert result.get("repeat") is True and self.ledger.recorder.max_notification_id() == head, result
        if result is not None and Money(result.get("interest_adjustment", "0.00")) != ZERO:
            self.note("reverse a loan payment: interest adjusted for a settled year")

    @rule(role=st.sampled_from([p[0] for p in PEOPLE]), which=st.integers(0, 50))
    def reverse_fund_posting(self, role: str, which: int) -> None:
        """COR-1..3: a remittance, back-payment or withdrawal mirrored at its value date."""
        account_no = self.people[role].account_no
        candidates = [p for p in fund_postings(self.ledger, account_no) if not p["reversed"]]
        if not candidates:
            return
        posting = pick(candidates, which)
        result = self.attempt(f"reverse a {posting['kind']}", lambda: self.ledger.reverse(
            account_no, posting["posting_id"], self.today, "状态机冲正"))
        if result is not None and Money(result["interest_adjustment"]) != ZERO:
            self.note("reverse a fund posting: interest adjusted for a settled year")

    # -- prepayment, payoff, waivers, suspense (LN-6, LN-8, BNK-5) -----------------------------------------------
    @precondition(lambda self: self.loans_in(ACTIVE))
    @rule(index=st.integers(0, 9), mode=st.sampled_from(("reduce-payment", "shorten-term")),
          share_of_outstanding=st.sampled_from(("0.01", "0.2", "0.6", "1")), pay_due_first=st.booleans())
    def prepay(self, index: int, mode: str, share_of_outstanding: str, pay_due_first: bool) -> None:
        loan_no = pick(self.loans_in(ACTIVE), index)
        due = self.amount_due(loan_no, self.today)
        if pay_due_first and due > ZERO:
            self.attempt("pay the amount due", lambda: self.ledger.pay_loan(
                loan_no, str(due), self.today, "counter", f"P{self.next()}"))
        outstanding = Money(self.ledger.loan_status(loan_no, self.today)["outstanding_principal"])
        principal = outstanding.times(Decimal(share_of_outstanding)).max(Money("0.01"))
        self.attempt(f"prepay ({mode})", lambda: self.ledger.prepay_loan(
            loan_no, str(principal), self.today, mode, f"PP{self.next()}"))

    @precondition(lambda self: self.loans_in(ACTIVE))
    @rule(index=st.integers(0, 9))
    def pay_off(self, index: int) -> None:
        """结清 (LN-6), also before the first instalment falls due."""
        loan_no = pick(self.loans_in(ACTIVE), index)
        if self.attempt("pay off", lambda: self.ledger.pay_off_loan(loan_no, self.today, f"PO{self.next()}")):
            self.loans[loan_no] = CLOSED

    @precondition(lambda self: self.loans_in(ACTIVE))
    @rule(index=st.integers(0, 9), scope=st.sampled_from(("loan", "loan", "employer", "all")),
          start_days_back=st.sampled_from((0, 5, 20, 45)), length_days=st.sampled_from((3, 10, 30)))
    def declare_waiver(self, index: int, scope: str, start_days_back: int, length_days: int) -> None:
        """LN-8: a range from today on, or a late one reaching back over penalty already crystallised."""
        loan_no = pick(self.loans_in(ACTIVE), index)
        start_on = self.today - timedelta(days=start_days_back)
        label = f"declare a {'late ' if start_days_back else ''}waiver"
        result = self.attempt(label, lambda: self.ledger.declare_waiver(
            scope, start_on, start_on + timedelta(days=length_days), self.today,
            loan_no=loan_no if scope == "loan" else None, employer_code=self.employer if scope == "employer" else None))
        if result is not None and Money(result["penalty_refunded"]) > ZERO:
            self.note("late waiver: penalty refunded")

    @precondition(lambda self: self.loans_in(ACTIVE, CLOSED))
    @rule(index=st.integers(0, 9), action=st.sampled_from(("apply", "refund")),
          portion=st.sampled_from(("up to the amount due", "all", "half", "more")))
    def loan_suspense(self, index: int, action: str, portion: str) -> None:
        """BNK-5: money a loan holds in suspense applied to its amount due, or paid back to the borrower; never
        more than it holds. A loan that holds some is chosen when there is one."""
        loans = self.loans_in(ACTIVE, CLOSED)
        held_by = {loan_no: Money(self.ledger.loan_suspense(loan_no, self.today)["held"]) for loan_no in loans}
        loan_no = pick([n for n in loans if held_by[n] > ZERO] or loans, index)
        held = held_by[loan_no]
        amount = {"up to the amount due": held.min(self.amount_due(loan_no, self.today)), "all": held,
                  "half": held.times(Decimal("0.5")), "more": held + Money("1.00")}[portion]
        amount = amount if amount > ZERO else Money("1.00")
        command = self.ledger.apply_loan_suspense if action == "apply" else self.ledger.refund_loan_suspense
        self.attempt(f"{action} loan suspense", lambda: command(loan_no, str(amount), self.today, f"SU{self.next()}"),
                     expect_ok=False if amount > held else None)

    # -- fund accounts: remittances, withdrawals, payouts, interest ----------------------------------------------
    @rule(months_back=st.sampled_from((0, 0, 0, 1)), kind=st.sampled_from(("remittance", "remittance", "back-payment")),
          days_back=st.sampled_from((0, 0, 3, 20)))
    def remit(self, months_back: int, kind: str, days_back: int) -> None:
        first = self.today.replace(day=1)
        for _ in range(months_back):
            first = (first - timedelta(days=1)).replace(day=1)
        self.remit_all(f"{first:%Y-%m}", kind, self.today - timedelta(days=days_back))

    @rule(role=st.sampled_from([p[0] for p in PEOPLE]), days_back=st.sampled_from((0, 0, 2, 20)),
          amount=st.sampled_from(("100.00", "1500.00", "available", "available", "beyond")))
    def withdraw(self, role: str, days_back: int, amount: str) -> None:
        """WD: an 'other' withdrawal; taking what is available leaves the next offset to the card."""
        account_no = self.people[role].account_no
        if amount in ("available", "beyond"):
            available = Money(self.ledger.balance(account_no)["available"])
            amount = str(available if amount == "available" else available + Money("0.01"))
        self.attempt("withdraw", lambda: self.ledger.withdraw(account_no, "other", amount,
                                                              self.today - timedelta(days=days_back),
                                                              {"purpose": "状态机"}, f"wd-{self.next()}"))

    @rule(index=st.integers(0, 20), paid=st.sampled_from((True, True, False)))
    def answer_a_payout(self, index: int, paid: bool) -> None:
        """The bank pays (or fails) a withdrawal, a disbursement or a suspense refund."""
        pending = self.ledger.pending_payouts()
        if not pending:
            return
        payout = pick(sorted(pending, key=lambda p: p.serial), index)
        self.attempt(f"payout {'paid' if paid else 'failed'}", lambda: self.ledger.settle_payout(
            payout.serial, paid, self.today, f"BANK-{self.next()}"), expect_ok=True)

    @precondition(lambda self: self.last_year_end() not in self.settled_years)
    @rule()
    def settle_interest(self) -> None:
        year_end = self.last_year_end()
        self.settled_years.add(year_end)
        self.attempt("settle interest", lambda: self.ledger.settle_interest(year_end), expect_ok=True)

    # -- invariants ------------------------------------------------------------------------------------------
    # Each check is a function of the stored events and today's date: an aggregate whose version and today are
    # unchanged since its last check (a refused command, another loan's payment) would give the same answers,
    # so it is not checked again; the books likewise when neither the log's head nor today moved.
    def stored_version(self, aggregate_id: Any) -> int:
        (last,) = self.ledger.recorder.select_events(aggregate_id, desc=True, limit=1)
        return last.originator_version

    def decision_states(self) -> dict[Any, dict[str, Any]]:
        """The decision state of every account and loan as the ledger under test loads it, each checked against
        a full replay of its events (see ``the_state_equals_a_full_replay_of_the_events``)."""
        states = {}
        for aggregate_id, label in self.aggregate_labels().items():
            key = (self.stored_version(aggregate_id), self.today)
            checked = self.checked.get(aggregate_id)
            if checked is None or checked[0] != key:
                checked = (key, self.replay_check(aggregate_id, label))
                self.checked[aggregate_id] = checked
            states[aggregate_id] = checked[1]
        return states

    def aggregate_labels(self) -> dict[Any, tuple[str, str]]:
        labels = {FundAccount.create_id(p.account_no): ("account", p.account_no) for p in self.people.values()}
        labels.update({Loan.create_id(loan_no): ("loan", loan_no) for loan_no in self.loans})
        return labels

    def replay_check(self, aggregate_id: Any, label: tuple[str, str]) -> dict[str, Any]:
        """The ledger under test loads from its latest snapshot and the events after it (one at a time, and a
        batch at a time as the offset run does); the replay ledger has no snapshots and applies every event: all
        decide the same, and answer the as-of queries the same."""
        live = decision_state(self.ledger, self.ledger.repository.get(aggregate_id), self.today)
        replayed = decision_state(self.replay, self.replay.repository.get(aggregate_id), self.today)
        assert live == replayed, (label, live, replayed)
        batch = decision_state(self.ledger, self.ledger.load_many([aggregate_id])[aggregate_id], self.today)
        assert batch == live, (label, batch, live)  # the batch paths' loader (ledger.bulk) reads the same
        if list(self.ledger.snapshots.get(aggregate_id, desc=True, limit=1)):
            type(self).snapshot_loads += 1
            self.note("invariant: an aggregate loaded from a snapshot")
        kind, number = label
        days = sorted({self.today - timedelta(days=20), self.last_year_end()})  # past due dates and a year end
        for day in days:
            if kind == "account":
                assert self.ledger.balance(number, day) == self.replay.balance(number, day), (label, day)
            else:
                assert self.ledger.loan_status(number, day) == self.replay.loan_status(number, day), (label, day)
        return live

    @invariant()
    def the_state_equals_a_full_replay_of_the_events(self) -> None:
        self.decision_states()

    @invariant()
    def the_books_balance_and_agree_with_the_subledgers(self) -> None:
        """GL-3 balanced and GL-2 ok now and as of an earlier value date (3 or 40 days back, the last year end
        or the first deduction, in turn); 2001 = Σ balances and 1101 = Σ outstanding principal as the aggregates
        decide them."""
        states = self.decision_states()
        key = (self.ledger.recorder.max_notification_id(), self.today)
        if key == self.books_checked:
            return
        self.books_checked = key
        now = self.ledger.check_books()
        assert now["ok"], now
        accounts = [s for s in states.values() if "balance" in s]
        loans = [s for s in states.values() if "balance" not in s]
        assert Money(now["checks"]["2001"]["ledger"]) == Money.sum(s["balance"] for s in accounts), now
        assert Money(now["checks"]["1101"]["ledger"]) == Money.sum(
            s["status"]["outstanding_principal"] for s in loans if s["state"] == ACTIVE), now
        earlier = (self.today - timedelta(days=3), self.today - timedelta(days=40), self.last_year_end(),
                   FIRST_DEDUCTION)[self.counter % 4]
        checks = self.ledger.check_books(earlier)
        assert checks["ok"], checks

    @invariant()
    def nothing_goes_negative_and_loans_are_as_the_commands_said(self) -> None:
        states = self.decision_states()
        for aggregate_id, (kind, number) in self.aggregate_labels().items():
            state = states[aggregate_id]
            if kind == "account":
                assert state["lowest_balance"] >= ZERO and state["available"] >= ZERO, state
                continue
            assert state["state"] == self.loans[number], state
            if state["disbursed_on"] is not None:
                status = state["status"]
                for name in ("amount_due", "penalty_unpaid", "outstanding_principal"):
                    assert status[name] >= ZERO, (name, state)
                assert state["suspense"] >= ZERO and all(v >= ZERO for v in state["subledger"].values()), state

    @precondition(lambda self: len(self.settled_years) > 1)
    @invariant()
    def every_settled_year_earned_what_its_movements_give(self) -> None:
        """COR-3 / MNY-4: after reversals and postings dated into a settled year, the settlement plus every
        interest adjustment equals the year recomputed from today's movements (nothing owed either way)."""
        for person in self.people.values():
            account = self.ledger.account_whole(person.account_no)  # every settled year (ADR 0017)
            owed = self.ledger._interest_adjustment(account, "", {"value_date": date.min}, without=False)
            assert owed.is_zero, (person.account_no, owed)


class PostgresLoanMachine(LoanMachine):
    """The same machine on PostgreSQL: a scratch schema per example, dropped at its teardown."""

    scratch_url: Callable[[], str]

    def open_store(self) -> tuple[str, Callable[[], None]]:
        url = type(self).scratch_url()
        return url, lambda: drop_postgres_schema(parse_database_url(url))


def run_machine(machine: type[LoanMachine], request: pytest.FixtureRequest) -> None:
    """Run the machine; its hypothesis statistics (the ``event`` notes) go where pytest's
    ``--hypothesis-show-statistics`` prints them, and some loads must have started from a snapshot."""
    from hypothesis.statistics import collector, describe_statistics

    def note_statistics(stats: dict[str, Any]) -> None:
        stats["nodeid"] = request.node.nodeid
        request.node.hypothesis_statistics = describe_statistics(stats)

    machine.snapshot_loads = 0
    with collector.with_value(note_statistics):
        machine.TestCase().runTest()
    assert machine.snapshot_loads > 0, "no aggregate was ever loaded from a snapshot: the replay check is idle"


@pytest.mark.slow
def test_random_loan_histories_keep_the_books_and_replay_on_sqlite(request: pytest.FixtureRequest) -> None:
    LoanMachine.TestCase.settings = SQLITE_SETTINGS
    run_machine(LoanMachine, request)


@pytest.mark.slow
@pytest.mark.storage
def test_random_loan_histories_keep_the_books_and_replay_on_postgresql(
        request: pytest.FixtureRequest, postgres_scratch_url: Callable[[], str]) -> None:
    PostgresLoanMachine.scratch_url = staticmethod(postgres_scratch_url)  # type: ignore[assignment]
    PostgresLoanMachine.TestCase.settings = POSTGRES_SETTINGS
    run_machine(PostgresLoanMachine, request)


# -- bugs the machine found (fixed; regression tests) ---------------------------------------------------------
def _borrower_with_a_loan(fund: Any) -> tuple[str, str, str]:
    """One member credited 2024-06..2024-12 at base 30,000.00 (50,400.00), a 500,000.00 / 360 months loan
    disbursed 2025-01-15 (instalment 1 of 2,067.79 due Saturday 2025-02-15, deducted Monday 02-17)."""
    employer = fund.employer(from_period="2024-06")
    borrower, account_no = fund.member(employer, base="30000.00", from_period="2024-06")
    for month in range(6, 13):
        fund.on(date(2024, month, 5))
        fund.remit(employer, f"2024-{month:02d}", [account_no])
    fund.on(date(2025, 1, 10))
    loan_no = fund.ledger.apply_for_loan(borrower, "500000.00", 360, "equal-instalment", "800000.00", "20000.00",
                                         date(2025, 1, 10), BANK)["loan_no"]
    fund.ledger.approve_loan(loan_no, date(2025, 1, 10))
    fund.on(date(2025, 1, 15))
    fund.ledger.disburse_loan(loan_no, date(2025, 1, 15))
    return employer, account_no, loan_no


def test_the_status_of_a_loan_paid_off_before_its_first_due_date(sqlite_fund: Any) -> None:
    _employer, _account_no, loan_no = _borrower_with_a_loan(sqlite_fund)
    paid_off = sqlite_fund.ledger.pay_off_loan(loan_no, date(2025, 1, 15), "po-1")
    assert (paid_off["state"], paid_off["total"]) == (CLOSED, "500000.00")  # no day of interest yet
    status = sqlite_fund.ledger.loan_status(loan_no, date(2025, 1, 15))
    assert (status["state"], status["outstanding_principal"], status["amount_due"]) == (CLOSED, "0.00", "0.00")


def test_a_catch_up_offset_run_after_a_later_credit(sqlite_fund: Any) -> None:
    fund, ledger = sqlite_fund, sqlite_fund.ledger
    employer, account_no, loan_no = _borrower_with_a_loan(fund)
    fund.on(date(2025, 1, 20))
    fund.withdraw(account_no, "49400.00")  # 1,000.00 left
    ledger.create_mandate(loan_no, date(2025, 1, 20), with_spouse=False)
    ledger.sign_mandate(loan_no, fund.ledger.member_by_account(account_no).id_number, date(2025, 1, 20))
    fund.on(date(2025, 2, 10))
    ledger.run_offset(date(2025, 2, 10))  # completed through 02-10; then the run is down for ten days
    fund.on(date(2025, 2, 20))
    fund.remit(employer, "2025-01", [account_no])  # +7,200.00 value-dated 02-20, after the due date
    assert fund.account(account_no).balance_as_of(date(2025, 2, 17)) == Money("1000.00")
    report = ledger.run_offset(date(2025, 2, 20))  # catches up 02-11..02-20, instalment 1 on 02-17
    deducted = next(day for day in report["dates"] if day["deduction_on"] == "2025-02-17")
    assert deducted["loans"] == 1
    assert fund.account(account_no).lowest_balance_from(date(2025, 2, 17)) >= ZERO
    fund.assert_books(date(2025, 2, 17), date(2025, 2, 20))


def test_reversing_a_payment_whose_excess_was_refunded(sqlite_fund: Any) -> None:
    fund, ledger = sqlite_fund, sqlite_fund.ledger
    _employer, _account_no, loan_no = _borrower_with_a_loan(fund)
    fund.on(date(2025, 1, 20))
    assert ledger.pay_loan(loan_no, "100.00", date(2025, 1, 20), "card", "C-1")["excess"] == "100.00"  # nothing due
    ledger.refund_loan_suspense(loan_no, "100.00", date(2025, 1, 20), "R-1")
    before = fund.fingerprint()
    with pytest.raises(LedgerRuleError):
        ledger.reverse_loan_payment(loan_no, 1, date(2025, 1, 20), "card payment returned")
    assert fund.fingerprint() == before
    assert ledger.loan_suspense(loan_no, date(2025, 1, 20))["held"] == "0.00"
