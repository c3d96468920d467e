"""The double-entry books read from the events: journal, trial balance (GL-3), GL-2 checks.

Every event that moves money carries its journal lines (ADR 0002); the trial
balance as of D sums the lines of entries value-dated on or before D, on each
account's normal side. GL-2 compares the control accounts with the
sub-ledgers: 2001 with Σ member balances, 2101 with payouts awaiting an
answer, 2102 with money held in suspense, 1101 with outstanding principal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any, Iterable, Iterator

from ledger.aggregates.fund_account import (
    GL_CLEARING,
    GL_FUND,
    GL_INTEREST_RECEIVABLE,
    GL_LOANS,
    GL_SUSPENSE,
)
from ledger.aggregates.documents import LOAN_REFUND_PURPOSE
from ledger.money import ZERO, Money

CHART = {
    "1001": ("银行存款", "bank deposits", "Dr"),
    "1101": ("委托贷款", "loans receivable", "Dr"),
    "1102": ("应收利息", "interest receivable", "Dr"),
    "2001": ("住房公积金", "member fund liability", "Cr"),
    "2101": ("待清算款项", "bank clearing", "Cr"),
    "2102": ("暂收款", "suspense", "Cr"),
    "4001": ("委托贷款利息收入", "loan interest income", "Cr"),
    "4002": ("罚息收入", "penalty income", "Cr"),
    "5001": ("住房公积金利息支出", "member interest expense", "Dr"),
}


def normal_side(account: str) -> str:
    return CHART[account.split(".")[0]][2]


def journal_entries(event: Any) -> Iterator[tuple[date, list[dict[str, Any]]]]:
    """The (value date, lines) entries an event carries; most carry one, a reversal may carry two."""
    lines = getattr(event, "journal", None)
    if lines:
        yield event.value_date, lines
    adjustment = getattr(event, "interest_adjustment", None)
    if adjustment is not None and not adjustment.is_zero:
        side_fund, side_expense = ("Cr", "Dr") if adjustment > ZERO else ("Dr", "Cr")
        yield event.correction_date, [
            {"account": GL_FUND, "side": side_fund, "amount": abs(adjustment)},
            {"account": "5001", "side": side_expense, "amount": abs(adjustment)},
        ]
    for extra in getattr(event, "entries", None) or []:
        yield extra["value_date"], extra["lines"]


@dataclass
class TrialBalance:
    as_of: date | None
    debits: dict[str, Decimal] = field(default_factory=dict)
    credits: dict[str, Decimal] = field(default_factory=dict)
    entries: int = 0

    def add(self, lines: Iterable[dict[str, Any]]) -> None:
        self.entries += 1
        for line in lines:
            book = self.debits if line["side"] == "Dr" else self.credits
            book[line["account"]] = book.get(line["account"], Decimal(0)) + line["amount"].amount

    def balance(self, account_prefix: str) -> Money:
        """Balance on the account's normal side, summed over sub-accounts (1001.xxx)."""
        debit = sum((v for k, v in self.debits.items() if k.split(".")[0] == account_prefix), Decimal(0))
        credit = sum((v for k, v in self.credits.items() if k.split(".")[0] == account_prefix), Decimal(0))
        return Money(debit - credit if normal_side(account_prefix) == "Dr" else credit - debit)

    def rows(self) -> list[dict[str, Any]]:
        accounts = sorted(set(self.debits) | set(self.credits))
        rows = []
        for account in accounts:
            debit, credit = self.debits.get(account, Decimal(0)), self.credits.get(account, Decimal(0))
            side = normal_side(account)
            name_zh, name_en, _ = CHART[account.split(".")[0]]
            net = debit - credit if side == "Dr" else credit - debit
            rows.append({"account": account, "name": name_en, "name_zh": name_zh, "side": side,
                         "debits": str(Money(debit)), "credits": str(Money(credit)), "balance": str(Money(net))})
        return rows

    @property
    def debit_side_total(self) -> Money:
        return Money.sum(Money(r["balance"]) for r in self.rows() if r["side"] == "Dr")

    @property
    def credit_side_total(self) -> Money:
        return Money.sum(Money(r["balance"]) for r in self.rows() if r["side"] == "Cr")

    @property
    def difference(self) -> Money:
        return self.debit_side_total - self.credit_side_total

    def as_dict(self) -> dict[str, Any]:
        return {"as_of": self.as_of.isoformat() if self.as_of else None, "entries": self.entries,
                "accounts": self.rows(), "debit_side_total": str(self.debit_side_total),
                "credit_side_total": str(self.credit_side_total), "difference": str(self.difference),
                "balanced": self.difference.is_zero}


class BookCommands:
    """Mixin on the ledger application: the journal and the trial balance."""

    def journal(self, as_of: date | None = None) -> Iterator[tuple[Any, date, list[dict[str, Any]]]]:
        for event in self.iter_events():
            for value_date, lines in journal_entries(event):
                if as_of is None or value_date <= as_of:
                    yield event, value_date, lines

    def trial_balance(self, as_of: date | None = None) -> TrialBalance:
        """GL-3: per account Σ debits − Σ credits of entries value-dated ≤ D."""
        trial = TrialBalance(as_of)
        for _event, _value_date, lines in self.journal(as_of):
            trial.add(lines)
        return trial

    def check_books(self, as_of: date | None = None) -> dict[str, Any]:
        """GL-2: control accounts equal their sub-ledgers (as of a value date, or now)."""
        trial = self.trial_balance(as_of)
        day = as_of or date.max
        members = Money.sum(self.as_of(a, lambda account: account.balance_as_of(day))
                            for a in self.load_many(self.account_ids()).values())
        loans = self.loan_subledger(day) if hasattr(self, "loan_subledger") else None  # loans load once
        suspense = self.suspense_total(day) + (loans["suspense"] if loans is not None else ZERO)
        checks = {
            GL_FUND: (trial.balance(GL_FUND), members),
            GL_SUSPENSE: (trial.balance(GL_SUSPENSE), suspense),
            GL_CLEARING: (trial.balance(GL_CLEARING), self.clearing_total(day)),
        }
        if loans is not None:
            checks[GL_LOANS] = (trial.balance(GL_LOANS), loans["principal"])
            checks[GL_INTEREST_RECEIVABLE] = (trial.balance(GL_INTEREST_RECEIVABLE), loans["interest"])
        rows = {code: {"ledger": str(book), "subledger": str(sub), "ok": book == sub}
                for code, (book, sub) in checks.items()}
        return {"as_of": as_of.isoformat() if as_of else None, "trial_balanced": trial.difference.is_zero,
                "checks": rows, "ok": trial.difference.is_zero and all(r["ok"] for r in rows.values())}

    def suspense_items(self, as_of: date | None = None) -> dict[str, Any]:
        """BNK-5 for staff: everything held in suspense (2102) at the end of ``as_of``, item by item — bank
        receipts not yet applied, payouts the bank failed that no member account took back, and loan money
        beyond the amount due — with their total beside the 2102 balance of the journal."""
        day = as_of or date.max
        items: list[dict[str, Any]] = []
        for receipt_id in self.ids_of("ledger.aggregates.documents:BankReceipt.Recorded"):
            receipt = self.repository.get(receipt_id)
            if receipt.value_date <= day:
                held = receipt.amount - receipt.applied - Money.sum(
                    a["amount"] for a in receipt.allocations if a["value_date"] <= day)
                if not held.is_zero:
                    note = receipt.applied_to if receipt.applied.is_zero else ""  # why it is held (BNK-5)
                    items.append({"kind": "bank-receipt", "reference": receipt.reference,
                                  "value_date": receipt.value_date.isoformat(), "amount": held, "note": note})
        for payout_id in self.ids_of("ledger.aggregates.documents:Payout.Failed"):
            payout = self.repository.get(payout_id)
            if payout.account_no is None and payout.purpose != LOAN_REFUND_PURPOSE and payout.settled_on <= day:
                items.append({"kind": "failed-payout", "reference": payout.serial,
                              "value_date": payout.settled_on.isoformat(), "amount": payout.amount})
        if hasattr(self, "loan_ids"):
            for loan in self.load_many(self.loan_ids()).values():
                held = loan.suspense_held(day) if loan.disbursed_on is not None else ZERO
                if not held.is_zero:
                    items.append({"kind": "loan", "reference": loan.loan_no, "value_date": None, "amount": held})
        total = Money.sum(item["amount"] for item in items)
        ledger = self.trial_balance(as_of).balance(GL_SUSPENSE)
        return {"as_of": as_of.isoformat() if as_of else None,
                "items": [{**item, "amount": str(item["amount"])} for item in items],
                "total": str(total), "ledger_2102": str(ledger), "ok": total == ledger}

    def suspense_total(self, day: date) -> Money:
        """Money held in suspense by bank receipts and by payouts the bank failed that no member account
        took back (loan money beyond the amount due, and its failed refunds, are the loans' own)."""
        total = ZERO
        for payout_id in self.ids_of("ledger.aggregates.documents:Payout.Failed"):
            payout = self.repository.get(payout_id)
            if payout.account_no is None and payout.purpose != LOAN_REFUND_PURPOSE and payout.settled_on <= day:
                total = total + payout.amount
        for receipt_id in self.ids_of("ledger.aggregates.documents:BankReceipt.Recorded"):
            receipt = self.repository.get(receipt_id)
            if receipt.value_date <= day:
                total = total + receipt.amount - receipt.applied
                total = total - Money.sum(a["amount"] for a in receipt.allocations if a["value_date"] <= day)
        return total

    def clearing_total(self, day: date) -> Money:
        total = ZERO
        for payout_id in self.ids_of("ledger.aggregates.documents:Payout.Instructed"):
            payout = self.repository.get(payout_id)
            if payout.value_date <= day and (payout.state == "INSTRUCTED" or self._settled_after(payout, day)):
                total = total + payout.amount
        return total

    def _settled_after(self, payout: Any, day: date) -> bool:
        return getattr(payout, "settled_on", None) is not None and payout.settled_on > day
