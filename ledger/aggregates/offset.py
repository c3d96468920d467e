"""Monthly offset repayment (按月冲还贷): mandates, deductions, card debits (OFF-1..5).

- ``OffsetMandate`` (冲还贷协议, OFF-1): the loan and its payer accounts in order; the spouse signs
  when the spouse's account pays; effective from the 1st of the month after the last required
  signature; cancelled by either signer from the 1st of the next month; ended at once with a reason.
- ``Deduction`` (OFF-4): one per (loan, deduction date), id derived from that key, so it is created
  at most once; it records the outcome (DEDUCTED or SKIPPED with a reason) and the source split.
- ``BankDebit`` (OFF-3): the card part: CREATED → SUBMITTED → COLLECTED | FAILED(code) → … →
  EXHAUSTED, or CANCELLED into a newer amount; each attempt has its own serial (BNK-2).
- ``OffsetRunLog``: the dates whose run completed, so a run covers every date since the last one.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from ledger.aggregates.base import LedgerAggregate, LedgerRuleError, derive_id
from ledger.money import ZERO, Money

DEDUCTED, SKIPPED = "DEDUCTED", "SKIPPED"
SKIP_REASONS = ("NOTHING_DUE", "MANDATE_NOT_EFFECTIVE", "MANDATE_ENDED", "LOAN_CLOSED", "DEBIT_PENDING",
                "NO_AVAILABLE_ACCOUNT")
DEBIT_LIVE_STATES = ("CREATED", "SUBMITTED", "FAILED")
RUN_LOG_DATES_KEPT = 400


class MandateError(LedgerRuleError):
    rule = "OFF-1"


class DebitStateError(LedgerRuleError):
    rule = "OFF-3"


def first_of_next_month(day: date) -> date:
    return date(day.year + (day.month == 12), day.month % 12 + 1, 1)


class OffsetMandate(LedgerAggregate):
    """冲还贷协议: payer accounts in order (borrower, then spouse)."""

    @staticmethod
    def create_id(loan_no: str, number: int = 1) -> UUID:
        """The loan's first mandate, or its ``number``-th after earlier ones were cancelled or ended."""
        return derive_id("offset-mandate", loan_no) if number == 1 else derive_id("offset-mandate", loan_no,
                                                                                      str(number))

    @event("Drafted")
    def __init__(self, loan_no: str, loan_id: UUID, payers: list[dict[str, str]], drafted_on: date, due_day: int,
                 number: int = 1):
        self.loan_no = loan_no
        self.number = number
        self.loan_id = loan_id
        self.due_day = due_day
        self.payers = payers  # [{"role": "borrower"|"spouse", "member_id", "account_no"}]
        self.drafted_on = drafted_on
        self.signatures: dict[str, date] = {}
        self.effective_from: date | None = None
        self.cancelled_from: date | None = None
        self.ended_on: date | None = None
        self.end_reason: str | None = None
        self.last_debit_id: UUID | None = None

    @property
    def required_signers(self) -> list[str]:
        return [str(p["member_id"]) for p in self.payers]

    def sign(self, member_id: UUID, on: date) -> None:
        if self.ended_on is not None:
            raise MandateError("the mandate has ended", field="mandate")
        if str(member_id) not in self.required_signers:
            raise MandateError("only the borrower and a paying spouse sign the mandate", field="member")
        if str(member_id) in self.signatures:
            raise MandateError("already signed", field="member")
        self._signed(member_id=str(member_id), on=on)

    @event("Signed")
    def _signed(self, member_id: str, on: date) -> None:
        self.signatures[member_id] = on
        if all(s in self.signatures for s in self.required_signers):
            self.effective_from = first_of_next_month(max(self.signatures.values()))

    def cancel(self, member_id: UUID, on: date) -> None:
        if str(member_id) not in self.required_signers:
            raise MandateError("only a signer may cancel the mandate", field="member")
        if self.ended_on is not None or self.cancelled_from is not None:
            raise MandateError("the mandate is already cancelled or ended", field="mandate")
        self._cancelled(member_id=str(member_id), on=on, cancelled_from=first_of_next_month(on))

    @event("Cancelled")
    def _cancelled(self, member_id: str, on: date, cancelled_from: date) -> None:
        self.cancelled_from = cancelled_from

    def end(self, on: date, reason: str) -> None:
        """OFF-1: at once when the loan closes, a payer closes or transfers out, or the spouse link ends."""
        if self.ended_on is None:
            self._ended(on=on, reason=reason)

    @event("MandateEnded")
    def _ended(self, on: date, reason: str) -> None:
        self.ended_on = on
        self.end_reason = reason

    def effective_on(self, day: date) -> bool:
        if self.effective_from is None or day < self.effective_from:
            return False
        if self.cancelled_from is not None and day >= self.cancelled_from:
            return False
        return self.ended_on is None or day < self.ended_on

    @property
    def is_live(self) -> bool:
        return self.ended_on is None and self.cancelled_from is None

    @event("DebitLinked")
    def link_debit(self, debit_id: UUID) -> None:
        self.last_debit_id = debit_id


class Deduction(LedgerAggregate):
    """One outcome per (loan, deduction date): created at most once (OFF-4)."""

    @staticmethod
    def create_id(loan_no: str, deduction_on: date) -> UUID:
        return derive_id("deduction", loan_no, deduction_on.isoformat())

    @event("Recorded")
    def __init__(self, loan_no: str, deduction_on: date, outcome: str, reason: str | None, amount_due: Money,
                 parts: list[dict[str, Any]], card_amount: Money, debit_id: UUID | None, rule: str,
                 policy_used: dict[str, Any]):
        if outcome not in (DEDUCTED, SKIPPED) or (outcome == SKIPPED and reason not in SKIP_REASONS):
            raise LedgerRuleError(f"bad outcome {outcome}/{reason}", field="outcome", rule="OFF-4")
        self.loan_no = loan_no
        self.deduction_on = deduction_on
        self.outcome = outcome
        self.reason = reason
        self.amount_due = amount_due
        self.parts = parts  # [{"role", "account_no", "amount", "penalty", "interest", "principal"}]
        self.card_amount = card_amount
        self.debit_id = debit_id
        self.rule = rule
        self.policy_used = policy_used

    def fund_amount(self, role: str) -> Money:
        return Money.sum(p["amount"] for p in self.parts if p["role"] == role)


class BankDebit(LedgerAggregate):
    """The card part of a deduction (OFF-3), one per (loan, deduction date)."""

    @staticmethod
    def create_id(loan_no: str, deduction_on: date) -> UUID:
        return derive_id("bank-debit", loan_no, deduction_on.isoformat())

    @event("Created")
    def __init__(self, loan_no: str, deduction_on: date, amount: Money, bank: str, card: dict[str, str],
                 payer_name: str, serial: str, instalments: list[int]):
        self.loan_no = loan_no
        self.deduction_on = deduction_on
        self.amount = amount
        self.bank = bank
        self.card = card
        self.payer_name = payer_name
        self.instalments = instalments
        self.state = "CREATED"
        self.attempts: list[dict[str, Any]] = [{"serial": serial, "created_on": deduction_on, "state": "CREATED"}]
        self.retries = 0
        self.next_attempt_on: date | None = None
        self.collected: dict[str, Any] | None = None
        self.failure: dict[str, Any] | None = None
        self.batch: dict[str, Any] | None = None

    @property
    def serial(self) -> str:
        return self.attempts[-1]["serial"]

    @property
    def is_live(self) -> bool:
        return self.state in DEBIT_LIVE_STATES

    def check_state(self, *states: str) -> None:
        if self.state not in states:
            raise DebitStateError(f"debit {self.serial} is {self.state}; expected {' or '.join(states)}",
                                  field="serial")

    @event("Submitted")
    def submit(self, on: date, batch_number: str, sequence: int) -> None:
        self.state = "SUBMITTED"
        self.attempts[-1]["state"] = "SUBMITTED"
        self.batch = {"number": batch_number, "sequence": sequence, "on": on}

    @event("Collected")
    def mark_collected(self, host_date: date, bank_reference: str, amount: Money) -> None:
        self.state = "COLLECTED"
        self.attempts[-1]["state"] = "COLLECTED"
        self.collected = {"host_date": host_date, "bank_reference": bank_reference, "amount": amount}

    def fail(self, on: date, code: str, message: str, retryable: bool, cause: str, retry_count_max: int,
             next_attempt_on: date) -> None:
        self.check_state("SUBMITTED")
        exhausted = not retryable or self.retries >= retry_count_max
        self._failed(on=on, code=code, message=message, retryable=retryable, cause=cause, exhausted=exhausted,
                     next_attempt_on=None if exhausted else next_attempt_on)

    @event("Failed")
    def _failed(self, on: date, code: str, message: str, retryable: bool, cause: str, exhausted: bool,
                next_attempt_on: date | None) -> None:
        self.state = "EXHAUSTED" if exhausted else "FAILED"
        self.attempts[-1]["state"] = "FAILED"
        self.failure = {"on": on, "code": code, "message": message, "retryable": retryable, "cause": cause,
                        "manual": cause == "centre" and not retryable}
        self.next_attempt_on = next_attempt_on

    @event("Retried")
    def retry(self, on: date, serial: str, amount: Money) -> None:
        self.retries += 1
        self.amount = amount
        self.state = "CREATED"
        self.next_attempt_on = None
        self.attempts.append({"serial": serial, "created_on": on, "state": "CREATED"})

    @event("Cancelled")
    def cancel(self, on: date, reason: str) -> None:
        self.state = "CANCELLED"
        self.attempts[-1]["state"] = "CANCELLED"


class OffsetRunLog(LedgerAggregate):
    """The deduction dates whose run completed (OFF-4 catch-up); one log per centre."""

    @staticmethod
    def create_id(name: str = "offset") -> UUID:
        return derive_id("offset-run-log", name)

    @event("Started")
    def __init__(self, name: str, first_date: date):
        self.name = name
        self.first_date = first_date
        self.last_completed: date | None = None
        self.reports: dict[str, dict[str, Any]] = {}

    def dates_to_run(self, through: date) -> list[date]:
        start = self.last_completed + timedelta(days=1) if self.last_completed else self.first_date
        days = []
        while start <= through:
            days.append(start)
            start += timedelta(days=1)
        return days

    @event("Completed")
    def complete(self, run_date: date, report: dict[str, Any]) -> None:
        self.last_completed = max(run_date, self.last_completed or run_date)
        self.reports[run_date.isoformat()] = report
        if len(self.reports) > RUN_LOG_DATES_KEPT:
            for key in sorted(self.reports)[:-RUN_LOG_DATES_KEPT]:
                self.reports.pop(key)
