"""The fund loan (个人住房公积金贷款) as an aggregate: LN-1..9, COR-3, GL-1.

The arithmetic lives in the pure :class:`ledger.loan_book.LoanBook`; this
aggregate records each operation on it as an event (payment, prepayment,
payoff, waiver, repricing, reversal) and replays the same call on load, so a
loan's state is always its events. A command runs the operation once on the
live book to learn the allocation, puts the figures and the journal entry in
the event, and the event's apply skips the second run (``_live_op``); on
replay the apply runs it and asserts the figures agree (a ledger that is wrong
must stop). An operation value-dated before the book's date rebuilds the book
from the operations in value-date order.

Decision state (issue 14, ADR 0015): a snapshot keeps the terms, the position of the book (the
instalments still open, the schedule's tail as the LN-3 recurrence's state, the penalty state)
and the payments that can still be reversed; the cleared past is folded
(``LoanBook.compact``, ``ledger.aggregates.loan_compact``). Operations that need it — one
value-dated before the book's date, a book as of an earlier date, the reversal of a folded
payment, a waiver reaching back over folded instalments — raise ``HistoryRequired`` and run on
the loan replayed from all its events (``history_complete``).
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

import orjson
from eventsourcing.utils import get_topic as _topic

from ledger.aggregates.base import (
    HistoryRequired,
    LedgerAggregate,
    LedgerRuleError,
    balanced,
    derive_id,
    journal_line,
    mirror,
)
from ledger.aggregates.fund_account import (
    GL_CLEARING,
    GL_FUND,
    GL_INTEREST_RECEIVABLE,
    GL_LOAN_INTEREST,
    GL_LOANS,
    GL_PENALTY,
    GL_SUSPENSE,
    bank_account_code,
)
from ledger.calendar import WorkingCalendar
from ledger.loan_book import Allocation, LoanBook, LoanTerms
from ledger.money import ZERO, Money

APPLIED, APPROVED, REJECTED, ACTIVE, CLOSED = "APPLIED", "APPROVED", "REJECTED", "ACTIVE", "CLOSED"
FUND_SOURCES = ("borrower-fund", "spouse-fund")
BANK_SOURCES = ("card", "api", "counter")
SUSPENSE_SOURCE = "suspense"  # BNK-5: money the loan already holds in suspense, applied to the amount due
SOURCES = FUND_SOURCES + BANK_SOURCES + ("penalty-refund", SUSPENSE_SOURCE)


class LoanStateError(LedgerRuleError):
    rule = "LN-1"


class LoanEligibilityError(LedgerRuleError):
    rule = "LN-1"


class LoanReplayMismatchError(AssertionError):
    """Replaying an operation gave other figures than the event recorded: stop."""


def _source_account(source: str, bank_account: str) -> str:
    if source in FUND_SOURCES:
        return GL_FUND
    if source == "penalty-refund":
        return GL_PENALTY
    if source == SUSPENSE_SOURCE:
        return GL_SUSPENSE
    return bank_account_code(bank_account)


def allocation_figures(allocation: Allocation) -> dict[str, Any]:
    return {"number": allocation.number, "penalty": allocation.penalty, "interest": allocation.interest,
            "principal": allocation.principal, "excess": allocation.excess,
            "parts": [[p.number, p.interest, p.principal] for p in allocation.parts]}


class Loan(LedgerAggregate):
    """One loan from application to closing."""

    @staticmethod
    def create_id(loan_no: str) -> UUID:
        return derive_id("loan", loan_no)

    @event("Applied")
    def __init__(self, loan_no: str, borrower_id: UUID, spouse_id: UUID | None, principal: Money, months: int,
                 method: str, second_home: bool, price: Money, monthly_income: Money, bank: str,
                 card: dict[str, str], applied_on: date, eligibility: dict[str, Any], borrower_name: str = ""):
        self.loan_no = loan_no
        self.borrower_name = borrower_name
        self.borrower_id = borrower_id
        self.spouse_id = spouse_id
        self.principal = principal
        self.months = months
        self.method = method
        self.second_home = second_home
        self.price = price
        self.monthly_income = monthly_income
        self.bank = bank
        self.card = card
        self.applied_on = applied_on
        self.eligibility = eligibility
        self.state = APPLIED
        self.terms: dict[str, Any] | None = None
        self.disbursed_on: date | None = None
        self.closed_on: date | None = None
        self.ops: list[dict[str, Any]] = []
        self.payments: list[dict[str, Any]] = []
        self.accrued: dict[str, Money] = {}  # instalment number -> interest recognised (Dr 1102 / Cr 4001)
        self.defaulted_on: date | None = None
        self.mandate_id: UUID | None = None
        self._book: LoanBook | None = None
        self._live_op: int | None = None
        # decision-state bookkeeping (module docstring)
        self.op_count = 0
        self.history_complete = True  # False once folded: ops and old payments are in the events only
        self.suspense_carried = ZERO  # folded payments' net suspense (BNK-5)
        self.regular_since: date | None = None  # earliest folded regular (bank) repayment, OFF-1 ⚙

    class_version = 2

    class Snapshot(LedgerAggregate.Snapshot):
        """A compact snapshot: the decision state, encoded by ``ledger.aggregates.loan_compact``."""

        compact = True  # its state is the decision state's JSON text (the mapper leaves it as it is)

        @classmethod
        def take(cls, aggregate: "Loan") -> "Loan.Snapshot":  # type: ignore[override]
            from ledger.aggregates.loan_compact import encode

            return cls(originator_id=aggregate.id, originator_version=aggregate.version,  # type: ignore[call-arg]
                       timestamp=cls.create_timestamp(), topic=_topic(type(aggregate)),
                       state={"z": orjson.dumps(encode(aggregate)).decode()})

        def mutate(self, _: None) -> "Loan":  # type: ignore[override]
            from ledger.aggregates.loan_compact import decode

            try:
                loan = decode(orjson.loads(self.state["z"]), self.originator_id, self.originator_version)
            except (ValueError, TypeError, KeyError, AssertionError) as error:  # another format: the events decide
                raise HistoryRequired(self.originator_id, f"snapshot v{self.originator_version} ({error})") from error
            loan.__dict__["_snapshot_version"] = self.originator_version
            return loan

    # -- decision state ----------------------------------------------------------
    def needs_history(self, why: str) -> HistoryRequired:
        return HistoryRequired(self.id, why)

    def compact(self) -> None:
        """Fold what the rules no longer decide on (``LoanBook.compact``, payments, ops, accrued)."""
        if self.terms is None or self.state not in (ACTIVE,):
            return
        book = self.book
        book.compact(lambda account: str(account.number) in self.accrued or account.instalment.interest.is_zero)
        through = book.pruned.through
        if through is None:
            return
        live = {a.number for a in book.allocations}
        kept = []
        for payment in self.payments:
            if payment["on"] > through or payment["allocation"] in live:
                kept.append(payment)
                continue
            if payment["reversed"]:
                continue
            self.suspense_carried += payment["figures"]["excess"]
            if payment["source"] == SUSPENSE_SOURCE:
                self.suspense_carried -= payment["amount"]
            if payment["source"] in BANK_SOURCES and (self.regular_since is None or payment["on"] < self.regular_since):
                self.regular_since = payment["on"]
        self.payments = kept
        self.accrued = {key: amount for key, amount in self.accrued.items() if int(key) > book.pruned.count}
        self.ops = []
        self.history_complete = False

    def payment_of(self, allocation: int) -> dict[str, Any] | None:
        """The payment with this allocation number (None when there is none)."""
        found = next((p for p in self.payments if p["allocation"] == allocation), None)
        if found is None and not self.history_complete:
            raise self.needs_history(f"payment {allocation}")
        return found

    def payment_by_reference(self, reference: str) -> dict[str, Any] | None:
        """The unreversed payment with this reference (a bank reference, a posting id)."""
        found = next((p for p in self.payments if p["reference"] == reference and not p["reversed"]), None)
        if found is None and not self.history_complete:
            raise self.needs_history(f"payment {reference}")
        return found

    def repaid_regularly_before(self, day: date) -> bool:
        """OFF-1 ⚙: a regular (card, counter, bank API) repayment not reversed, value-dated before ``day``."""
        if self.regular_since is not None and self.regular_since < day:
            return True
        return any(p["source"] in BANK_SOURCES and not p["reversed"] and p["on"] < day for p in self.payments)

    def all_payments(self) -> list[dict[str, Any]]:
        """Every payment since disbursement (history mode)."""
        if not self.history_complete:
            raise self.needs_history("every payment")
        return self.payments

    # -- the book --------------------------------------------------------------
    @property
    def book(self) -> LoanBook:
        if self._book is None:
            self._book = self._build_book(None)
        return self._book

    def _build_book(self, through: date | None) -> LoanBook:
        if self.terms is None:
            raise LoanStateError("the loan is not disbursed", field="loan")
        if not self.history_complete:
            raise self.needs_history("the book rebuilt from its operations")
        book = LoanBook.open(_terms_from(self.terms), _calendar_from(self.terms))
        book.owner = self.id
        for op in sorted(self.ops, key=lambda o: (o["on"], o["seq"])):
            if through is not None and op["on"] > through:
                break
            _run(book, op)
        return book

    def book_as_of(self, day: date) -> LoanBook:
        """The book with the operations value-dated on or before ``day`` (MNY-4 as-of)."""
        if day >= self.book.last_on:
            return self.book
        return self._build_book(day)

    def _apply_op(self, op: dict[str, Any], recorded: dict[str, Any] | None) -> None:
        self.ops.append(op)
        self.op_count += 1
        if self._live_op == op["seq"]:
            self._live_op = None
            return
        if self._book is None or op["on"] < self._book.last_on:
            self._book = self._build_book(None)
            return
        result = _run(self._book, op)
        if recorded is not None and result is not None and result != recorded:
            raise LoanReplayMismatchError(f"loan {self.loan_no} op {op}: replay gave {result}, event has {recorded}")

    def _live(self, op: dict[str, Any]) -> Any:
        """Run an operation on the live book before its event exists (see module docstring)."""
        if op["on"] < self.book.last_on:
            book = self._build_book(None)
            result = _run(book, op)  # rebuilt in value-date order when the event applies
        else:
            result = _run(self.book, op)
            self._live_op = op["seq"]
        return result

    def _next_op(self, kind: str, on: date, **args: Any) -> dict[str, Any]:
        return {"seq": self.op_count + 1, "kind": kind, "on": on, **args}

    # -- lifecycle -------------------------------------------------------------------
    def check_state(self, *states: str) -> None:
        if self.state not in states:
            raise LoanStateError(f"loan {self.loan_no} is {self.state}; expected {' or '.join(states)}", field="loan",
                                 rule="LN-1")

    def approve(self, on: date) -> None:
        self.check_state(APPLIED)
        self._approved(on=on)

    @event("Approved")
    def _approved(self, on: date) -> None:
        self.state = APPROVED

    def reject(self, on: date, reason: str) -> None:
        self.check_state(APPLIED, APPROVED)
        self._rejected(on=on, reason=reason)

    @event("Rejected")
    def _rejected(self, on: date, reason: str) -> None:
        self.state = REJECTED

    def disburse(self, on: date, terms: dict[str, Any], payout_serial: str) -> None:
        """Dr 1101 / Cr 2101: the principal is instructed to the seller's bank."""
        self.check_state(APPROVED)
        journal = balanced([journal_line(GL_LOANS, "Dr", self.principal),
                            journal_line(GL_CLEARING, "Cr", self.principal)])
        LoanBook.open(_terms_from(terms))  # refuses bad terms before the event exists
        self._disbursed(value_date=on, terms=terms, payout_serial=payout_serial, journal=journal)

    @event("Disbursed")
    def _disbursed(self, value_date: date, terms: dict[str, Any], payout_serial: str,
                   journal: list[dict[str, Any]]) -> None:
        self.state = ACTIVE
        self.terms = terms
        self.disbursed_on = value_date
        self._book = None

    # -- interest falling due (GL-1: Dr 1102 / Cr 4001) ---------------------------------
    def accrue(self, through: date) -> None:
        """Recognise the interest of every instalment due on or before ``through`` not yet recognised."""
        if self.state != ACTIVE:
            return
        entries = []
        for account in self.book.accounts_through(through):
            key = str(account.number)
            if key in self.accrued or account.instalment.interest.is_zero:
                continue
            lines = balanced([journal_line(GL_INTEREST_RECEIVABLE, "Dr", account.instalment.interest),
                              journal_line(GL_LOAN_INTEREST, "Cr", account.instalment.interest)])
            entries.append({"value_date": account.due_on, "number": account.number, "lines": lines})
        if entries:
            self._fell_due(through=through, entries=entries)

    @event("InstalmentsFellDue")
    def _fell_due(self, through: date, entries: list[dict[str, Any]]) -> None:
        for entry in entries:
            self.accrued[str(entry["number"])] = entry["lines"][0]["amount"]

    # -- payments (LN-5) -----------------------------------------------------------------
    def pay(self, amount: Money, on: date, source: str, reference: str, bank_account: str) -> dict[str, Any]:
        """Allocate one payer's money in LN-5 order; fund money never exceeds the amount due."""
        self.check_state(ACTIVE)
        if source not in SOURCES:
            raise LedgerRuleError(f"source is one of {SOURCES}", field="source", rule="LN-5")
        if source == SUSPENSE_SOURCE and amount > self.suspense_held(on):
            raise LedgerRuleError(f"the loan holds {self.suspense_held(on)} in suspense on {on}", field="amount",
                                  rule="BNK-5")
        self.accrue(on)
        op = self._next_op("pay", on, amount=amount)
        allocation = self._live(op)
        if source in FUND_SOURCES + (SUSPENSE_SOURCE,) and not allocation.excess.is_zero:
            raise LedgerRuleError(f"{source} money beyond the amount due is refused", field="amount", rule="LN-5")
        figures = allocation_figures(allocation)
        journal = self._payment_journal(allocation, source, bank_account)
        self._payment_received(op=op, source=source, reference=reference, figures=figures, value_date=on,
                               journal=journal)
        return figures

    def _payment_journal(self, allocation: Allocation, source: str, bank_account: str) -> list[dict[str, Any]]:
        return balanced([
            journal_line(_source_account(source, bank_account), "Dr", allocation.amount),
            journal_line(GL_PENALTY, "Cr", allocation.penalty),
            journal_line(GL_INTEREST_RECEIVABLE, "Cr", allocation.interest),
            journal_line(GL_LOANS, "Cr", allocation.principal),
            journal_line(GL_SUSPENSE, "Cr", allocation.excess),
        ])

    @event("PaymentReceived")
    def _payment_received(self, op: dict[str, Any], source: str, reference: str, figures: dict[str, Any],
                          value_date: date, journal: list[dict[str, Any]]) -> None:
        self._apply_op(op, None)
        self.payments.append({"allocation": figures["number"], "on": value_date, "source": source,
                              "reference": reference, "amount": op["amount"], "figures": figures,
                              "journal": journal, "reversed": False})

    # -- prepayment and payoff (LN-6) ----------------------------------------------------------
    def prepay(self, principal: Money, on: date, mode: str, source: str, reference: str,
               bank_account: str) -> dict[str, Any]:
        self.check_state(ACTIVE)
        self.accrue(on)
        op = self._next_op("prepay", on, principal=principal, mode=mode)
        prepayment = self._live(op)
        interest = prepayment.quote.interest
        journal = balanced([journal_line(_source_account(source, bank_account), "Dr", principal + interest),
                            journal_line(GL_LOANS, "Cr", principal), journal_line(GL_LOAN_INTEREST, "Cr", interest)])
        figures = {"principal": principal, "interest": interest, "paid": principal + interest,
                   "days": prepayment.quote.days, "mode": mode, "payment_after": prepayment.payment_after,
                   "months_after": prepayment.months_after}
        self._prepaid(op=op, source=source, reference=reference, figures=figures, value_date=on, journal=journal)
        return figures

    @event("Prepaid")
    def _prepaid(self, op: dict[str, Any], source: str, reference: str, figures: dict[str, Any], value_date: date,
                 journal: list[dict[str, Any]]) -> None:
        self._apply_op(op, None)

    def pay_off(self, on: date, source: str, reference: str, bank_account: str) -> dict[str, Any]:
        """结清: amount due + outstanding principal + its interest to D; closes the loan."""
        self.check_state(ACTIVE)
        self.accrue(on)
        op = self._next_op("payoff", on)
        payoff = self._live(op)
        quote, allocation = payoff.quote, payoff.allocation
        debit = quote.total
        lines = [journal_line(_source_account(source, bank_account), "Dr", debit),
                 journal_line(GL_LOANS, "Cr", quote.principal), journal_line(GL_LOAN_INTEREST, "Cr", quote.interest)]
        if allocation is not None:
            lines += [journal_line(GL_PENALTY, "Cr", allocation.penalty),
                      journal_line(GL_INTEREST_RECEIVABLE, "Cr", allocation.interest),
                      journal_line(GL_LOANS, "Cr", allocation.principal)]
        figures = {"total": debit, "amount_due": quote.amount_due, "principal": quote.principal,
                   "interest": quote.interest}
        self._paid_off(op=op, source=source, reference=reference, figures=figures, value_date=on,
                       journal=balanced(lines))
        return figures

    @event("PaidOff")
    def _paid_off(self, op: dict[str, Any], source: str, reference: str, figures: dict[str, Any], value_date: date,
                  journal: list[dict[str, Any]]) -> None:
        self._apply_op(op, None)
        self.state = CLOSED
        self.closed_on = value_date

    # -- waivers (LN-8), repricing (LN-2), reversal (COR-3) -------------------------------------
    def waive(self, start_on: date, end_on: date, declared_on: date, scope: str,
              instalment_number: int | None = None) -> dict[str, Any]:
        self.check_state(ACTIVE)
        op = self._next_op("waive", declared_on, start_on=start_on, end_on=end_on, instalment=instalment_number)
        effect = self._live(op)
        figures = {"penalty_crystallised": effect.penalty_crystallised, "penalty_reversed": effect.penalty_reversed,
                   "penalty_refund": effect.penalty_refund}
        self._waived(op=op, scope=scope, figures=figures, value_date=declared_on)
        return figures

    @event("Waived")
    def _waived(self, op: dict[str, Any], scope: str, figures: dict[str, Any], value_date: date) -> None:
        self._apply_op(op, None)

    def reprice(self, annual_rate: Decimal, effective_on: date) -> dict[str, Any] | None:
        self.check_state(ACTIVE)
        op = self._next_op("reprice", effective_on, annual_rate=annual_rate)
        change = self._live(op)
        if change is None:
            self._live_op = None
            return None
        figures = {"from_number": change.from_number, "annual_rate": change.annual_rate,
                   "payment_after": change.payment_after}
        self._repriced(op=op, figures=figures, value_date=effective_on)
        return figures

    @event("Repriced")
    def _repriced(self, op: dict[str, Any], figures: dict[str, Any], value_date: date) -> None:
        self._apply_op(op, None)

    def reverse_payment(self, allocation_number: int, on: date, reason: str) -> dict[str, Any]:
        """COR-3: reopen what a payment paid; mirrored journal at the original's value date."""
        self.check_state(ACTIVE)
        payment = self.payment_of(allocation_number)
        if payment is None:
            raise LedgerRuleError(f"no payment with allocation {allocation_number}", field="allocation", rule="COR-1")
        if payment["reversed"]:
            raise LedgerRuleError("this payment is already reversed", field="allocation", rule="COR-1")
        excess = payment["figures"]["excess"]
        if not excess.is_zero and min(self.suspense_held(payment["on"]), self.suspense_held(date.max)) < excess:
            # COR-2 / BNK-5: its excess already left suspense (refunded or applied); mirroring the payment would
            # take 2102 below zero. Reverse the refund or the application first, or correct by hand.
            raise LedgerRuleError(f"the payment's excess {excess} has left suspense (refunded or applied); "
                                  "reverse that first", field="allocation", rule="COR-2")
        op = self._next_op("reverse", on, allocation=allocation_number)
        self._live(op)
        self._payment_reversed(op=op, allocation=allocation_number, reason=reason,
                               value_date=payment["on"], correction_date=on, source=payment["source"],
                               amount=payment["amount"], journal=mirror(payment["journal"]))
        return {"allocation": allocation_number, "amount": payment["amount"], "source": payment["source"]}

    @event("PaymentReversed")
    def _payment_reversed(self, op: dict[str, Any], allocation: int, reason: str, value_date: date,
                          correction_date: date, source: str, amount: Money, journal: list[dict[str, Any]]) -> None:
        self._apply_op(op, None)
        for payment in self.payments:
            if payment["allocation"] == allocation:
                payment["reversed"] = True

    @event("Defaulted")
    def mark_defaulted(self, on: date, missed_in_a_row: int, missed_total: int) -> None:
        """LN-7: 3 missed in a row or 6 in total raises one LoanDefaulted event."""
        self.defaulted_on = on

    @event("MandateLinked")
    def link_mandate(self, mandate_id: UUID | None) -> None:
        self.mandate_id = mandate_id

    # -- suspense (BNK-5): money beyond the amount due, applied later or refunded ---------------
    def suspense_held(self, day: date) -> Money:
        """Loan money in suspense (2102) at the end of ``day``: payment excess, less what was applied to
        the amount due or refunded (a refund the bank failed to pay comes back)."""
        through = self.book.pruned.through if self._book is not None and not self.history_complete else None
        if through is not None and day < through:
            raise self.needs_history(f"suspense as of {day}")
        held = self.suspense_carried
        for payment in self.payments:
            if payment["on"] <= day and not payment["reversed"]:
                held += payment["figures"]["excess"]
                if payment["source"] == SUSPENSE_SOURCE:
                    held -= payment["amount"]
        for refund in getattr(self, "refunds", []):
            if refund["on"] <= day:
                held -= refund["amount"]
            if refund["failed_on"] is not None and refund["failed_on"] <= day:
                held += refund["amount"]
        return held

    def refund_suspense(self, amount: Money, on: date, reference: str, posting_id: str, payout_serial: str) -> None:
        """Pay loan money held in suspense back to the borrower (Dr 2102 / Cr 2101, then the payout)."""
        if self.state not in (ACTIVE, CLOSED):
            raise LoanStateError(f"loan {self.loan_no} is {self.state}", field="loan", rule="BNK-5")
        if amount > self.suspense_held(on) or amount > self.suspense_held(date.max):
            raise LedgerRuleError(f"the loan holds {self.suspense_held(on)} in suspense on {on}", field="amount",
                                  rule="BNK-5")
        if any(r["posting_id"] == posting_id for r in getattr(self, "refunds", [])):
            raise LedgerRuleError(f"refund {reference} is already recorded", field="reference", rule="BNK-2")
        journal = balanced([journal_line(GL_SUSPENSE, "Dr", amount), journal_line(GL_CLEARING, "Cr", amount)])
        self._suspense_refunded(amount=amount, value_date=on, reference=reference, posting_id=posting_id,
                                payout_serial=payout_serial, journal=journal)

    @event("SuspenseRefunded")
    def _suspense_refunded(self, amount: Money, value_date: date, reference: str, posting_id: str,
                           payout_serial: str, journal: list[dict[str, Any]]) -> None:
        self.__dict__.setdefault("refunds", []).append(
            {"amount": amount, "on": value_date, "reference": reference, "posting_id": posting_id,
             "payout_serial": payout_serial, "failed_on": None})

    @event("SuspenseRefundFailed")
    def refund_failed(self, posting_id: str, value_date: date) -> None:
        """The bank did not pay the refund: the money is the loan's suspense again (the payout's failure
        carries the journal Dr 2101 / Cr 2102)."""
        for refund in getattr(self, "refunds", []):
            if refund["posting_id"] == posting_id:
                refund["failed_on"] = value_date

    # -- sub-ledger figures for GL-2 ------------------------------------------------------
    def subledger_as_of(self, day: date) -> dict[str, Money]:
        """GL-2 figures as of a value date: outstanding principal (1101), recognised unpaid interest
        (1102) and money held in suspense (2102, LN-5 excess and LN-8 refunds).

        Read from the current book, whose paid parts keep their value dates and lose a reversed
        allocation entirely, as the mirrored journal at the original's value date does (COR-1).
        """
        if self.state not in (ACTIVE, CLOSED) or self.disbursed_on is None or day < self.disbursed_on:
            return {"principal": ZERO, "interest": ZERO, "suspense": ZERO}
        book = self.book
        pruned = book.pruned
        if pruned.through is not None and day < pruned.through:
            raise self.needs_history(f"the sub-ledger as of {day}")
        principal_paid, interest_paid, accrued = pruned.principal, ZERO, ZERO
        built = book.head  # only built instalments have paid parts; accrued ones may not be built after a replay
        last_built = built[-1].number if built else pruned.count
        if book.tail is not None and any(int(number) > last_built for number in self.accrued):
            built = book.accounts_through(day)
        for account in (a for a in built if a.due_on <= day):  # a part paid by ``day`` pays one due by then
            recognised = str(account.number) in self.accrued
            if recognised:
                accrued += self.accrued[str(account.number)]
            for part in account.paid:
                if part.on <= day:
                    principal_paid += part.principal
                    interest_paid += part.interest if recognised else ZERO
        prepaid = pruned.prepaid + Money.sum(p.quote.principal for p in book.prepayments if p.quote.on <= day)
        paid_off = book.payoff.quote.principal if book.payoff and book.payoff.quote.on <= day else ZERO
        return {"principal": self.principal - principal_paid - prepaid - paid_off, "interest": accrued - interest_paid,
                "suspense": self.suspense_held(day)}


def _terms_from(terms: dict[str, Any]) -> LoanTerms:
    """The book's terms from the loan's (shared between loans with the same terms: LoanTerms is frozen)."""
    key = tuple((name, terms.get(name)) for name in TERM_NAMES)
    found = _TERMS.get(key)
    if found is None:
        if len(_TERMS) > TERMS_CACHE_MAX:
            _TERMS.clear()
        found = _TERMS[key] = _make_terms(terms)
    return found


TERM_NAMES = ("principal", "months", "annual_rate", "method", "disbursed_on", "due_day", "grace_days",
              "penalty_multiplier", "penalty_day_count", "prepayment_day_count", "prepayment_blackout_days",
              "prepayment_minimum")
TERMS_CACHE_MAX = 50_000
_TERMS: dict[tuple[Any, ...], LoanTerms] = {}
_CALENDARS: dict[tuple[Any, ...], WorkingCalendar] = {}


def _make_terms(terms: dict[str, Any]) -> LoanTerms:
    return LoanTerms(
        principal=terms["principal"], months=terms["months"], annual_rate=terms["annual_rate"],
        method=terms["method"], disbursed_on=terms["disbursed_on"], due_day=terms.get("due_day"),
        grace_days=terms["grace_days"], penalty_multiplier=terms["penalty_multiplier"],
        penalty_day_count=terms["penalty_day_count"], prepayment_day_count=terms["prepayment_day_count"],
        prepayment_blackout_days=terms["prepayment_blackout_days"], prepayment_minimum=terms["prepayment_minimum"],
    )


def _calendar_from(terms: dict[str, Any]) -> WorkingCalendar:
    """The loan's calendar (immutable, so loans with the same extra days share one)."""
    key = (tuple(terms.get("extra_holidays", ())), tuple(terms.get("extra_workdays", ())))
    found = _CALENDARS.get(key)
    if found is None:
        found = _CALENDARS[key] = WorkingCalendar(extra_holidays=key[0], extra_workdays=key[1])
    return found


def _run(book: LoanBook, op: dict[str, Any]) -> Any:
    kind, on = op["kind"], op["on"]
    if kind == "pay":
        return book.allocate(op["amount"], on)
    if kind == "prepay":
        return book.prepay(op["principal"], on, op["mode"])
    if kind == "payoff":
        return book.pay_off(on)
    if kind == "waive":
        return book.add_waiver(op["start_on"], op["end_on"], on, op.get("instalment"))
    if kind == "reprice":
        return book.reprice(op["annual_rate"], on)
    if kind == "reverse":
        return book.reverse(op["allocation"], on)
    raise LoanReplayMismatchError(f"unknown loan operation {kind}")
