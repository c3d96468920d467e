"""Business documents with natural-key ids: remittances, bank receipts, payouts, serials, idempotency.

- ``RemittanceDocument`` (汇缴书 + 清册, CON-4): id from (employer, period, kind, number), so a
  document is registered at most once (CON-2).
- ``BankReceipt``: money a bank reported, id from the bank reference (bank, 主机日期, 主机流水号,
  BNK-2); what cannot be applied is held in suspense (2102) until allocated or refunded.
- ``Payout``: a payment the centre instructed (withdrawal, refund): 2101 until the bank answers.
- ``DailySequence`` and ``SerialRef``: the centre's 15-character serials (业务流水号, YYYYMMDD + 7
  digits) and the index from a serial to its business.
- ``IdempotencyRecord``: the first result of a command, keyed by its idempotency key.
"""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from eventsourcing.domain import event

from ledger.aggregates.base import LedgerAggregate, balanced, derive_id, journal_line
from ledger.aggregates.errors import DocumentStateError, PayoutStateError, SuspenseError
from ledger.aggregates.fund_account import GL_CLEARING, GL_FUND, GL_SUSPENSE, bank_account_code
from ledger.money import ZERO, Money

SEQUENCE_MAX = 9_999_999
# BNK-2: one daily sequence for every centre serial. ``SerialRef`` is keyed by the serial
# alone (a bank statement's 备注 carries nothing else), so two scopes handing out the
# same YYYYMMDD0000001 would collide; every caller of ``take_serials`` uses this scope.
CENTRE_SERIAL_SCOPE = "centre"


class RemittanceDocument(LedgerAggregate):
    """An employer's monthly remittance (汇缴) or back-payment (补缴) with its list (清册)."""

    @staticmethod
    def create_id(employer_code: str, period: str, kind: str, document_number: str) -> UUID:
        return derive_id("remittance", employer_code, period, kind, document_number)

    @event("Registered")
    def __init__(self, employer_code: str, period: str, kind: str, document_number: str, employer_id: UUID,
                 serial: str, lines: list[list[Any]], total: Money, content_hash: str, registered_on: date):
        self.employer_code = employer_code
        self.employer_id = employer_id
        self.period = period
        self.kind = kind
        self.document_number = document_number
        self.serial = serial
        self.lines = lines  # [account_no, period, base, employer_amount, employee_amount]
        self.total = total
        self.content_hash = content_hash
        self.registered_on = registered_on
        self.state = "PENDING"
        self.received: dict[str, Any] | None = None

    @property
    def count(self) -> int:
        return len(self.lines)

    def check_receivable(self) -> None:
        if self.state != "PENDING":
            raise DocumentStateError(f"document {self.document_number} is already {self.state}", field="serial")

    @event("Received")
    def mark_received(self, value_date: date, bank_reference: str, amount: Money, source: str) -> None:
        self.state = "RECEIVED"
        self.received = {"value_date": value_date, "bank_reference": bank_reference, "amount": amount,
                         "source": source}

    @event("ReceiptReversed")
    def mark_receipt_reversed(self, on: date, bank_reference: str, reason: str) -> None:
        """BNK-6: the bank reversed the money that paid this document; it waits for its money again."""
        self.__dict__.setdefault("reversed_receipts", []).append(
            {"on": on, "bank_reference": bank_reference, "reason": reason, "received": self.received})
        self.state = "PENDING"
        self.received = None


class BankReceipt(LedgerAggregate):
    """Money that arrived at a centre bank account, keyed by the bank reference (BNK-2)."""

    @staticmethod
    def create_id(bank: str, host_date: str, host_serial: str) -> UUID:
        return derive_id("bank-ref", bank, host_date, host_serial)

    @event("Recorded")
    def __init__(self, bank: str, host_date: str, host_serial: str, bank_account: str, amount: Money,
                 value_date: date, serial: str, content_hash: str, applied: Money, suspense: Money,
                 applied_to: str, journal: list[dict[str, Any]]):
        self.bank = bank
        self.host_date = host_date
        self.host_serial = host_serial
        self.bank_account = bank_account
        self.amount = amount
        self.value_date = value_date
        self.serial = serial
        self.content_hash = content_hash
        self.applied = applied
        self.suspense = suspense
        self.applied_to = applied_to
        self.allocations: list[dict[str, Any]] = []

    @classmethod
    def record(cls, bank: str, host_date: str, host_serial: str, bank_account: str, amount: Money,
               value_date: date, serial: str, content_hash: str, applied: Money, applied_to: str) -> "BankReceipt":
        """The applied part is journalled by the members' credits; the rest goes to suspense (Dr 1001 / Cr 2102)."""
        suspense = amount - applied
        journal = balanced([journal_line(bank_account_code(bank_account), "Dr", suspense),
                            journal_line(GL_SUSPENSE, "Cr", suspense)])
        return cls(bank=bank, host_date=host_date, host_serial=host_serial, bank_account=bank_account,
                   amount=amount, value_date=value_date, serial=serial, content_hash=content_hash,
                   applied=applied, suspense=suspense, applied_to=applied_to, journal=journal)

    @property
    def reference(self) -> str:
        return f"{self.bank}/{self.host_date}/{self.host_serial}"

    def release(self, amount: Money, value_date: date, target: str, credit_account: str | None) -> None:
        """Take money out of suspense: back to the payer (Dr 2102 / Cr 2101 here), or to members.

        ``credit_account=None`` when the members' own credits already carry Dr 2102 / Cr 2001
        (allocation): a second entry here would count the money twice (GL-2).
        """
        if amount > self.suspense or amount <= ZERO:
            raise SuspenseError(f"{amount} exceeds what is in suspense ({self.suspense})", field="amount")
        journal = [] if credit_account is None else balanced(
            [journal_line(GL_SUSPENSE, "Dr", amount), journal_line(credit_account, "Cr", amount)])
        self._released(amount=amount, value_date=value_date, target=target, journal=journal)

    @event("Released")
    def _released(self, amount: Money, value_date: date, target: str, journal: list[dict[str, Any]]) -> None:
        self.suspense = self.suspense - amount
        self.allocations.append({"amount": amount, "value_date": value_date, "target": target})


LOAN_REFUND_PURPOSE = "loan-suspense-refund"  # a loan's suspense paid back: a failure returns it to the loan


class Payout(LedgerAggregate):
    """A payment instructed to the bank (withdrawal, refund); clearing (2101) until answered."""

    @staticmethod
    def create_id(posting_id: str) -> UUID:
        return derive_id("payout", posting_id)

    @event("Instructed")
    def __init__(self, posting_id: str, account_no: str | None, payee: str, amount: Money, value_date: date,
                 serial: str, purpose: str, bank_account: str):
        self.posting_id = posting_id
        self.account_no = account_no
        self.payee = payee
        self.amount = amount
        self.value_date = value_date
        self.serial = serial
        self.purpose = purpose
        self.bank_account = bank_account
        self.state = "INSTRUCTED"
        self.settled_on: date | None = None

    def settle(self, paid: bool, value_date: date, bank_reference: str) -> list[dict[str, Any]]:
        """Paid: Dr 2101 / Cr 1001. Failed: Dr 2101 / Cr 2001 (the caller credits the member back)."""
        if self.state != "INSTRUCTED":
            raise PayoutStateError(f"payout {self.serial} is already {self.state}", field="serial")
        credit = bank_account_code(self.bank_account) if paid else (GL_FUND if self.account_no else GL_SUSPENSE)
        journal = balanced([journal_line(GL_CLEARING, "Dr", self.amount), journal_line(credit, "Cr", self.amount)])
        if paid:
            self._paid(value_date=value_date, bank_reference=bank_reference, journal=journal)
            return []
        if self.account_no is None:  # nobody's account takes it back: the failure carries Dr 2101 / Cr 2102
            self._failed(value_date=value_date, bank_reference=bank_reference, journal=journal)
            return []
        self._failed(value_date=value_date, bank_reference=bank_reference)
        return journal

    def cancel(self, value_date: date, reason: str) -> None:
        """COR-1: the debit that funded this instruction was reversed before the bank answered.

        The reversal's mirrored journal (Dr 2101 / Cr 2001) already empties clearing as of the
        original value date, so the cancellation counts from that date and carries no journal.
        """
        if self.state != "INSTRUCTED":
            raise PayoutStateError(f"payout {self.serial} is already {self.state}", field="serial")
        self._cancelled(value_date=value_date, reason=reason)

    @event("Cancelled")
    def _cancelled(self, value_date: date, reason: str) -> None:
        self.state = "CANCELLED"
        self.settled_on = value_date

    @event("Paid")
    def _paid(self, value_date: date, bank_reference: str, journal: list[dict[str, Any]]) -> None:
        self.state = "PAID"
        self.settled_on = value_date

    @event("Failed")
    def _failed(self, value_date: date, bank_reference: str, journal: list[dict[str, Any]] | None = None) -> None:
        self.state = "FAILED"
        self.settled_on = value_date


class DailySequence(LedgerAggregate):
    """Hands out the 7-digit daily part of serials; conflicts are retried by the caller."""

    @staticmethod
    def create_id(scope: str, day: date) -> UUID:
        return derive_id("sequence", scope, day.isoformat())

    @event("Started")
    def __init__(self, scope: str, day: date):
        self.scope = scope
        self.day = day
        self.last = 0

    def take(self, count: int = 1) -> list[str]:
        if count == 0:
            return []
        if self.last + count > SEQUENCE_MAX:
            raise DocumentStateError("the daily serial sequence is exhausted", field="serial", rule="BNK-2")
        first = self.last + 1
        self._taken(count=count)
        prefix = self.day.strftime("%Y%m%d")
        return [f"{prefix}{n:07d}" for n in range(first, first + count)]

    @event("Taken")
    def _taken(self, count: int) -> None:
        self.last += count


class SerialRef(LedgerAggregate):
    """Index from a centre serial (业务流水号) to the business that carries it."""

    @staticmethod
    def create_id(serial: str) -> UUID:
        return derive_id("serial", serial)

    @event("Assigned")
    def __init__(self, serial: str, kind: str, target_id: UUID, detail: dict[str, Any]):
        self.serial = serial
        self.kind = kind
        self.target_id = target_id
        self.detail = detail


class IdempotencyRecord(LedgerAggregate):
    """The first result of a money-moving command, keyed by its idempotency key."""

    @staticmethod
    def create_id(key: str) -> UUID:
        return derive_id("idempotency", key)

    @event("Recorded")
    def __init__(self, key: str, command: str, content_hash: str, result: dict[str, Any]):
        self.key = key
        self.command = command
        self.content_hash = content_hash
        self.result = result
