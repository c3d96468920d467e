"""The member's fund account (个人账户): ACC-1..5, CON-1..4, INT-1..2, WD-1..4, COR-1..3.

Balances are replayed from events. Every posting that changes the balance is a
*movement* ``[value_date, signed amount, kind, posting id]``; "as of D" sums
the movements with value date ≤ D (MNY-4). Each public method checks its rule
and raises the exception named after it before any event exists; the private
``@event`` methods only apply. Postings carry their journal entry (GL-1).

Decision state, bounded in the account's age (issue 14, ADR 0015): a snapshot keeps what the
rules decide on — balance, state, freezes, current base, the credited periods of the last
months, the movements since the last interest settlement (INT-1 needs them), the settlement
itself and recent withdrawals (WD-2 windows) — and folds everything older into ``carried``.
Its ``horizon`` is the first value date it still holds movements for. A rule that reaches
back past it (a balance as of an old date, the reversal of an old posting, COR-3 over settled
years) raises :class:`~ledger.aggregates.base.HistoryRequired`, and the application replays the
account from all its events (``horizon`` None: history mode) and asks again. The snapshot
codec is ``ledger.aggregates.fund_compact``.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.domain import event
from eventsourcing.utils import get_topic as _topic

from ledger.aggregates.base import HistoryRequired, LedgerAggregate, balanced, derive_id, journal_line, mirror
from ledger.aggregates.errors import (
    AccountFrozenError,
    AccountStateError,
    FreezeAuthorityError,
    InsufficientBalanceError,
    PeriodAlreadyCreditedError,
    ReversalError,
    ReversalWouldOverdrawError,
)
from ledger.interest import InterestResult
from ledger.money import ZERO, Money

NORMAL, SEALED, CLOSED = "NORMAL", "SEALED", "CLOSED"
STATE_CODES = {NORMAL: "01", SEALED: "02"}
CLOSE_CODES = {"merge": "03", "transfer-out": "04", "withdrawal": "05"}
FROZEN_CODE = "06"

GL_BANK = "1001"
GL_LOANS = "1101"
GL_INTEREST_RECEIVABLE = "1102"
GL_FUND = "2001"
GL_CLEARING = "2101"
GL_SUSPENSE = "2102"
GL_LOAN_INTEREST = "4001"
GL_PENALTY = "4002"
GL_INTEREST_EXPENSE = "5001"

KIND_NAMES_ZH = {
    "remittance": "汇缴", "back-payment": "补缴", "withdrawal": "提取", "interest": "结息",
    "offset": "冲还贷", "reversal": "冲正", "court-deduction": "司法扣划", "recovery": "追回",
    "interest-adjustment": "利息调整", "payout-failed": "退回", "standing-withdrawal": "委托提取",
    "transfer-in": "转入",
}


def bank_account_code(bank_account: str) -> str:
    return f"{GL_BANK}.{bank_account}"


class FundAccount(LedgerAggregate):
    """One account per member per centre (ACC-1)."""

    @staticmethod
    def create_id(account_no: str) -> UUID:
        return derive_id("fund-account", account_no)

    @event("Opened")
    def __init__(self, account_no: str, member_id: UUID, employer_id: UUID, opened_on: date):
        self.account_no = account_no
        self.member_id = member_id
        self.employer_id = employer_id
        self.opened_on = opened_on
        self.state = NORMAL
        self.sealed_on: date | None = None
        self.close_reason: str | None = None
        self.closed_on: date | None = None
        self.bases: list[list[Any]] = []  # [from_period, base]
        self.movements: list[list[Any]] = []  # [value_date, Decimal, kind, posting_id]
        self.postings: dict[str, dict[str, Any]] = {}
        self.credited: dict[str, dict[str, Decimal]] = {}  # period -> {"remittance": x, "back-payment": y}
        self.freezes: dict[str, dict[str, Any]] = {}
        self.interest_years: dict[str, dict[str, Any]] = {}  # "2024" (start year) -> settlement
        self.withdrawals: list[dict[str, Any]] = []
        self.agreement: str | None = None  # WD-4: rent | standing | offset
        # decision-state bookkeeping (module docstring); None/0 in history mode
        self.horizon: date | None = None
        self.carried = Decimal(0)  # Σ movements folded before the horizon
        self.total = Decimal(0)  # the balance, kept as postings apply
        self.credited_from: str | None = None  # periods before it are folded
        self.bases_from: str | None = None
        self.withdrawals_from: date | None = None
        self.last_withdrawn_on: dict[str, date] = {}  # WD-1 next-allowed date, per kind
        self.offset_by_year: dict[str, Decimal] = {}  # WD-2 loan-repayment cap: offset debits per calendar year

    class Snapshot(LedgerAggregate.Snapshot):
        """A compact snapshot: the decision state, encoded by ``ledger.aggregates.fund_compact``."""

        compact = True  # its state is the decision state's JSON text (the mapper leaves it as it is)

        @classmethod
        def take(cls, aggregate: "FundAccount") -> "FundAccount.Snapshot":  # type: ignore[override]
            from ledger.aggregates.fund_compact import encode

            return cls(originator_id=aggregate.id, originator_version=aggregate.version,  # type: ignore[call-arg]
                       timestamp=cls.create_timestamp(), topic=_topic(type(aggregate)),
                       state={"z": orjson.dumps(encode(aggregate)).decode()})

        def mutate(self, _: None) -> "FundAccount":  # type: ignore[override]
            from ledger.aggregates.fund_compact import decode

            try:
                account = decode(orjson.loads(self.state["z"]), self.originator_id, self.originator_version)
            except (ValueError, TypeError, KeyError, AssertionError) as error:  # another format: the events decide
                raise HistoryRequired(self.originator_id, f"snapshot v{self.originator_version} ({error})") from error
            account.__dict__["_snapshot_version"] = self.originator_version
            return account

    class_version = 2  # snapshots hold the decision state; older (unsealed) ones are replayed instead

    # -- history (decision state) -------------------------------------------
    def needs_history(self, why: str) -> HistoryRequired:
        return HistoryRequired(self.id, why)

    def check_reaches(self, day: date, why: str) -> None:
        """Balances as of ``day`` are known when no folded movement is dated after it."""
        if self.horizon is not None and day < self.horizon - timedelta(days=1):
            raise self.needs_history(f"{why} as of {day} (before {self.horizon})")

    def posting(self, posting_id: str) -> dict[str, Any] | None:
        """The posting, or None when the account never had it (history mode finds old ones)."""
        found = self.postings.get(posting_id)
        if found is None and self.horizon is not None:
            raise self.needs_history(f"posting {posting_id}")
        return found

    def movements_since(self, day: date) -> list[list[Any]]:
        """Movements value-dated on or after ``day``, with what came before as one ``carried`` line."""
        self.check_reaches(day, "movements")
        rows = [m for m in self.movements if m[0] >= day]
        before = self.carried + sum((m[1] for m in self.movements if m[0] < day), Decimal(0))
        return [[day - timedelta(days=1), before, "carried", None], *rows] if before else rows

    def credited_kinds(self, period: str) -> dict[str, Decimal]:
        """CON-2: what each kind credited for ``period``."""
        if self.credited_from is not None and period < self.credited_from:
            raise self.needs_history(f"credited period {period}")
        return self.credited.get(period, {})

    def withdrawals_since(self, day: date) -> list[dict[str, Any]]:
        """WD-2 windows: the withdrawals value-dated on or after ``day``."""
        if self.withdrawals_from is not None and day < self.withdrawals_from:
            raise self.needs_history(f"withdrawals since {day}")
        return [w for w in self.withdrawals if w["value_date"] >= day]

    def offset_debits_in(self, year: int) -> Money:
        """WD-2: fund debits for loan repayment (冲还贷) value-dated in calendar ``year``."""
        return Money(-self.offset_by_year.get(str(year), Decimal(0)))

    # -- queries ----------------------------------------------------------
    @property
    def balance(self) -> Money:
        return Money(self.total)

    def balance_as_of(self, day: date) -> Money:
        self.check_reaches(day, "balance")
        return Money(self.carried + sum((m[1] for m in self.movements if m[0] <= day), Decimal(0)))

    @property
    def frozen_sum(self) -> Money:
        total = ZERO
        for freeze in self.freezes.values():
            total += self.balance if freeze["amount"] is None else freeze["amount"]
        return total.min(self.balance)

    @property
    def is_frozen(self) -> bool:
        return bool(self.freezes)

    def available(self, retained_balance_min: Money) -> Money:
        """ACC-3/ACC-5/OFF-2: what a partial debit may take."""
        return (self.balance - self.frozen_sum - retained_balance_min).max(ZERO)

    @property
    def export_state_code(self) -> str:
        """ACC-1 national code; a frozen account exports as 06 whatever its state."""
        if self.is_frozen:
            return FROZEN_CODE
        if self.state == CLOSED:
            return CLOSE_CODES.get(self.close_reason or "withdrawal", "05")
        return STATE_CODES[self.state]

    def base_for(self, period: str) -> Money | None:
        if self.bases_from is not None and period < self.bases_from:
            raise self.needs_history(f"base for {period}")
        chosen = None
        for from_period, base in self.bases:
            if from_period <= period:
                chosen = base
        return chosen

    def interest_movements(self, since: date | None = None) -> list[tuple[date, Decimal, str]]:
        """INT-1 flows from ``since`` (a settlement's start) with the balance carried into it."""
        if since is None:
            if self.horizon is not None:
                raise self.needs_history("every movement")
            return [(m[0], m[1], m[2]) for m in self.movements]
        return [(m[0], m[1], m[2]) for m in self.movements_since(since)]

    # -- state checks -----------------------------------------------------
    def check_open(self) -> None:
        if self.state == CLOSED:
            raise AccountStateError(f"account {self.account_no} is closed", field="account")

    def check_can_contribute(self, period: str, kind: str = "remittance") -> None:
        """ACC-2: contributions only in NORMAL; while SEALED only a back-payment for a period before sealing."""
        self.check_open()
        if self.state == SEALED:
            sealed_period = self.sealed_on.strftime("%Y-%m") if self.sealed_on else ""
            if kind != "back-payment" or period >= sealed_period:
                raise AccountStateError("a sealed account accepts only back-payments for periods before sealing",
                                        field="period", rule="ACC-2")

    def lowest_balance_from(self, day: date) -> Money:
        """The lowest end-of-day balance as of ``day`` or any later value date.

        ACC-3 with MNY-4: a debit value-dated ``day`` (or a reversal of a credit of that day) must
        leave every balance from then on at zero or above, not only today's.
        """
        self.check_reaches(day, "lowest balance")
        by_day: dict[date, Decimal] = {}
        for value_date, amount, *_ in self.movements:
            if value_date > day:
                by_day[value_date] = by_day.get(value_date, Decimal(0)) + amount
        running = self.balance_as_of(day).amount
        lowest = running
        for value_date in sorted(by_day):
            running += by_day[value_date]
            lowest = min(lowest, running)
        return Money(lowest)

    def check_debit(self, amount: Money, retained_balance_min: Money, *, closing: bool = False,
                    value_date: date | None = None) -> None:
        self.check_open()
        balance = self.balance if value_date is None else self.balance.min(self.lowest_balance_from(value_date))
        available = (balance - self.frozen_sum).max(ZERO)
        if not closing:
            available = (available - retained_balance_min).max(ZERO)
        if amount > available:
            raise InsufficientBalanceError(
                f"debit {amount} exceeds the available balance {available} (balance {self.balance}, "
                f"frozen {self.frozen_sum}, retained minimum {retained_balance_min})", field="amount")

    # -- contributions (CON) ---------------------------------------------
    @event("BaseSet")
    def set_base(self, from_period: str, base: Money, floor: Money, cap: Money) -> None:
        self.bases = [b for b in self.bases if b[0] != from_period]
        self.bases.append([from_period, base])
        self.bases.sort(key=lambda b: b[0])

    def credit_contribution(self, period: str, kind: str, employer_amount: Money, employee_amount: Money,
                            value_date: date, document_key: str, bank_account: str, posting_id: str,
                            debit_account: str | None = None, period_cap: Money | None = None) -> None:
        """Dr 1001 (the money arrived) or Dr 2102 (it waited in suspense) / Cr 2001.

        ``period_cap``: what base and ratios give for the period (CON-2); a back-payment never takes the
        period beyond it, also when two back-payments were registered before either was paid."""
        self.check_can_contribute(period, kind)
        if kind == "remittance" and "remittance" in self.credited_kinds(period):
            raise PeriodAlreadyCreditedError(f"period {period} is already credited by remittance", field="period")
        amount = employer_amount + employee_amount
        if kind == "back-payment" and period_cap is not None and self.credited_total(period) + amount > period_cap:
            raise PeriodAlreadyCreditedError(
                f"a back-payment of {amount} takes {period} beyond {period_cap} (credited {self.credited_total(period)})",
                field="period")
        debit = debit_account or bank_account_code(bank_account)
        journal = balanced([journal_line(debit, "Dr", amount), journal_line(GL_FUND, "Cr", amount)])
        self._contributed(period=period, kind=kind, employer_amount=employer_amount,
                          employee_amount=employee_amount, value_date=value_date, document_key=document_key,
                          posting_id=posting_id, journal=journal)

    @event("Contributed")
    def _contributed(self, period: str, kind: str, employer_amount: Money, employee_amount: Money,
                     value_date: date, document_key: str, posting_id: str, journal: list[dict[str, Any]]) -> None:
        amount = (employer_amount + employee_amount).amount
        slot = self.credited.setdefault(period, {})
        slot[kind] = slot.get(kind, Decimal(0)) + amount
        self._post(posting_id, value_date, amount, kind, journal, {"period": period, "document": document_key})

    def credited_total(self, period: str) -> Money:
        return Money(sum(self.credited_kinds(period).values(), Decimal(0)))

    # -- movements ----------------------------------------------------------
    def _post(self, posting_id: str, value_date: date, amount: Decimal, kind: str,
              journal: list[dict[str, Any]], detail: dict[str, Any]) -> None:
        self.movements.append([value_date, amount, kind, posting_id])
        self.total += amount
        if kind == "offset":
            key = str(value_date.year)
            self.offset_by_year[key] = self.offset_by_year.get(key, Decimal(0)) + amount
        self.postings[posting_id] = {"value_date": value_date, "amount": amount, "kind": kind,
                                     "journal": journal, "detail": detail, "reversed": False}

    # -- withdrawals (WD) and court deductions --------------------------------
    def withdraw(self, kind: str, code: str, amount: Money, value_date: date, evidence: dict[str, Any],
                 retained_balance_min: Money, posting_id: str, payee: str, closing: bool = False,
                 interest: InterestResult | None = None, policy_used: dict[str, Any] | None = None) -> None:
        """WD-1..3: a withdrawal instructed to the bank (Dr 2001 / Cr 2101)."""
        self.check_open()
        if self.is_frozen:
            # ACC-5: available excludes the frozen sum; the rest stays withdrawable, a closing one is not.
            unfrozen = (self.balance - self.frozen_sum - retained_balance_min).max(ZERO)
            if closing or amount > unfrozen:
                raise AccountFrozenError(f"{self.frozen_sum} of the balance is frozen; at most {unfrozen} may be "
                                         f"withdrawn and the account cannot be closed", field="account")
        if closing and interest is not None and not interest.interest.is_zero:
            self._settle(interest, value_date - timedelta(days=1), posting_id + ":interest", closing=True)
        if closing:
            amount = self.balance
        self.check_debit(amount, retained_balance_min, closing=closing, value_date=value_date)
        journal = balanced([journal_line(GL_FUND, "Dr", amount), journal_line(GL_CLEARING, "Cr", amount)])
        self._withdrawn(kind=kind, code=code, amount=amount, value_date=value_date, evidence=evidence,
                        posting_id=posting_id, payee=payee, closing=closing, journal=journal,
                        policy_used=policy_used or {})

    @event("Withdrawn")
    def _withdrawn(self, kind: str, code: str, amount: Money, value_date: date, evidence: dict[str, Any],
                   posting_id: str, payee: str, closing: bool, journal: list[dict[str, Any]],
                   policy_used: dict[str, Any]) -> None:
        self._post(posting_id, value_date, -amount.amount, "withdrawal", journal,
                   {"kind": kind, "code": code, "payee": payee, "evidence": evidence})
        self.withdrawals.append({"kind": kind, "code": code, "amount": amount, "value_date": value_date,
                                 "posting_id": posting_id, "evidence": evidence})
        self.last_withdrawn_on[kind] = max(value_date, self.last_withdrawn_on.get(kind, value_date))
        if closing:
            self.state = CLOSED
            self.close_reason = "withdrawal"
            self.closed_on = value_date

    def court_deduct(self, amount: Money, value_date: date, document: str, posting_id: str) -> None:
        """ACC-5: a court deduction named in a document may debit a frozen account — whoever froze it —
        below the minimum. A freeze stays until its own authority lifts it (a court freeze of a sum is
        reduced by what the court took)."""
        self.check_open()
        within = self.balance.min(self.lowest_balance_from(value_date))  # frozen money included: a court takes it
        if amount > within:
            raise InsufficientBalanceError(f"deduction {amount} exceeds the balance {within}", field="amount")
        journal = balanced([journal_line(GL_FUND, "Dr", amount), journal_line(GL_CLEARING, "Cr", amount)])
        self._court_deducted(amount=amount, value_date=value_date, document=document, posting_id=posting_id,
                             journal=journal)

    @event("CourtDeducted")
    def _court_deducted(self, amount: Money, value_date: date, document: str, posting_id: str,
                        journal: list[dict[str, Any]]) -> None:
        self._post(posting_id, value_date, -amount.amount, "court-deduction", journal, {"document": document})
        for freeze in self.freezes.values():
            if freeze["authority"] == "court" and freeze["amount"] is not None:
                freeze["amount"] = (freeze["amount"] - amount).max(ZERO)

    def debit_for_loan(self, amount: Money, value_date: date, posting_id: str, loan_no: str,
                       retained_balance_min: Money, kind: str = "offset") -> None:
        """OFF-2/SW-1: the fund part of a repayment; the journal sits on the loan's payment."""
        self.check_open()
        self.check_debit(amount, retained_balance_min, value_date=value_date)
        self._debited_for_loan(amount=amount, value_date=value_date, posting_id=posting_id, loan_no=loan_no,
                               kind=kind)

    @event("DebitedForLoan")
    def _debited_for_loan(self, amount: Money, value_date: date, posting_id: str, loan_no: str, kind: str) -> None:
        self._post(posting_id, value_date, -amount.amount, kind, [], {"loan_no": loan_no, "code": "06"})

    def reverse_loan_debit(self, posting_id: str, correction_date: date, reason: str,
                           interest_adjustment: Money | None = None) -> None:
        """COR-1: the loan payment this fund debit made was reversed; the money comes back on the original's
        value date. The loan's mirrored journal carries Cr 2001; a settled year gets its COR-3 adjustment."""
        original = self.posting(posting_id)
        if original is None or original["journal"] or original["amount"] >= 0:
            raise ReversalError(f"no fund debit for a loan {posting_id} on this account", field="posting")
        if original["reversed"]:
            raise ReversalError("this posting is already reversed", field="posting")
        if self.state == CLOSED:
            raise ReversalError("the account is closed; recover the money as in WD-3", field="posting")
        self._reversed(posting_id=posting_id, reversal_id=f"rev:{posting_id}", value_date=original["value_date"],
                       correction_date=correction_date, amount=Money(-original["amount"]), reason=reason,
                       journal=[], interest_adjustment=interest_adjustment or ZERO,
                       original_kind=original["kind"], original_period=original["detail"].get("period"))

    def credit_back(self, amount: Money, value_date: date, posting_id: str, original_posting_id: str,
                    reason: str, journal: list[dict[str, Any]]) -> None:
        """A failed bank payout (Dr 2101 / Cr 2001) or a recovered fraudulent withdrawal (WD-3)."""
        if self.state == CLOSED:
            self._reopened(value_date=value_date, reason="RECOVERY")
        self._credited_back(amount=amount, value_date=value_date, posting_id=posting_id,
                            original_posting_id=original_posting_id, reason=reason, journal=balanced(journal))

    @event("Reopened")
    def _reopened(self, value_date: date, reason: str) -> None:
        self.state = SEALED
        self.sealed_on = value_date
        self.close_reason = None
        self.closed_on = None

    @event("CreditedBack")
    def _credited_back(self, amount: Money, value_date: date, posting_id: str, original_posting_id: str,
                       reason: str, journal: list[dict[str, Any]]) -> None:
        self._post(posting_id, value_date, amount.amount, reason, journal, {"original": original_posting_id})

    # -- states: seal, unseal, freeze, close (ACC-1, ACC-5) ------------------
    def seal(self, value_date: date, reason: str) -> None:
        if self.state != NORMAL:
            raise AccountStateError(f"only a NORMAL account can be sealed (it is {self.state})", field="account",
                                    rule="ACC-1")
        self._sealed(value_date=value_date, reason=reason)

    @event("Sealed")
    def _sealed(self, value_date: date, reason: str) -> None:
        self.state = SEALED
        self.sealed_on = value_date

    def unseal(self, value_date: date, employer_id: UUID) -> None:
        if self.state != SEALED:
            raise AccountStateError(f"only a SEALED account can be unsealed (it is {self.state})", field="account",
                                    rule="ACC-1")
        self._unsealed(value_date=value_date, employer_id=employer_id)

    @event("Unsealed")
    def _unsealed(self, value_date: date, employer_id: UUID) -> None:
        self.state = NORMAL
        self.sealed_on = None
        self.employer_id = employer_id

    def freeze(self, freeze_id: str, authority: str, document: str, amount: Money | None,
               value_date: date, until: date | None) -> None:
        self.check_open()
        if authority not in ("court", "centre"):
            raise FreezeAuthorityError("authority is court or centre", field="authority")
        if freeze_id in self.freezes:
            raise FreezeAuthorityError(f"freeze document {document} is already in force", field="document")
        self._frozen(freeze_id=freeze_id, authority=authority, document=document, amount=amount,
                     value_date=value_date, until=until)

    @event("Frozen")
    def _frozen(self, freeze_id: str, authority: str, document: str, amount: Money | None, value_date: date,
                until: date | None) -> None:
        self.freezes[freeze_id] = {"authority": authority, "document": document, "amount": amount,
                                   "from": value_date, "until": until}

    def unfreeze(self, freeze_id: str, authority: str, document: str, value_date: date) -> None:
        freeze = self.freezes.get(freeze_id)
        if freeze is None:
            raise FreezeAuthorityError("no such freeze on this account", field="freeze")
        if freeze["authority"] != authority:
            raise FreezeAuthorityError(f"only the {freeze['authority']}'s document lifts this freeze",
                                       field="authority")
        self._unfrozen(freeze_id=freeze_id, authority=authority, document=document, value_date=value_date)

    @event("Unfrozen")
    def _unfrozen(self, freeze_id: str, authority: str, document: str, value_date: date) -> None:
        self.freezes.pop(freeze_id, None)

    def close(self, reason: str, value_date: date) -> None:
        """ACC-1: terminal, balance 0 (transfer-out or merge after the money left)."""
        self.check_open()
        if reason not in CLOSE_CODES:
            raise AccountStateError(f"close reason is one of {sorted(CLOSE_CODES)}", field="reason", rule="ACC-1")
        if not self.balance.is_zero:
            raise AccountStateError(f"a closed account has balance 0.00 (it has {self.balance})", field="balance",
                                    rule="ACC-1")
        self._closed(reason=reason, value_date=value_date)

    @event("Closed")
    def _closed(self, reason: str, value_date: date) -> None:
        self.state = CLOSED
        self.close_reason = reason
        self.closed_on = value_date

    @event("AgreementSet")
    def set_agreement(self, agreement: str | None) -> None:
        self.agreement = agreement

    # -- interest (INT) ---------------------------------------------------------
    def settle_interest(self, result: InterestResult, posting_id: str) -> None:
        settled = self.interest_years.get(result.year_key)
        if settled is not None and settled["end"] >= result.end:
            return
        self._settle(result, result.end, posting_id, closing=False)

    def _settle(self, result: InterestResult, value_date: date, posting_id: str, closing: bool) -> None:
        journal = balanced([journal_line(GL_INTEREST_EXPENSE, "Dr", result.interest),
                            journal_line(GL_FUND, "Cr", result.interest)])
        self._interest_settled(year=result.year_key, start=result.start, end=result.end,
                               product=result.product, interest=result.interest, method=result.method,
                               rates=[[d, r] for d, r in result.rates], value_date=value_date,
                               posting_id=posting_id, closing=closing, journal=journal)

    @event("InterestSettled")
    def _interest_settled(self, year: str, start: date, end: date, product: Decimal, interest: Money, method: str,
                          rates: list[list[Any]], value_date: date, posting_id: str, closing: bool,
                          journal: list[dict[str, Any]]) -> None:
        earlier = self.interest_years.get(year)
        if earlier is not None and earlier["end"] < start:
            # the rest of a year that a closing settled part-way, after the account reopened (WD-3)
            self.interest_years[year] = {"start": earlier["start"], "end": end,
                                         "interest": earlier["interest"] + interest, "closing": closing,
                                         "posting_id": posting_id}
        else:
            self.interest_years[year] = {"start": start, "end": end, "interest": interest, "closing": closing,
                                         "posting_id": posting_id}
        if not interest.is_zero:
            self._post(posting_id, value_date, interest.amount, "interest", journal, {"year": year})

    def adjust_interest(self, original_posting_id: str, correction_date: date, amount: Money) -> None:
        """COR-3 for a posting value-dated into an interest year already settled: the year's interest
        recomputed with it, posted on the correction day (Cr 2001 / Dr 5001, or the other way)."""
        if amount.is_zero:
            return
        side_fund, side_expense = ("Cr", "Dr") if amount > ZERO else ("Dr", "Cr")
        journal = balanced([journal_line(GL_FUND, side_fund, abs(amount)),
                            journal_line(GL_INTEREST_EXPENSE, side_expense, abs(amount))])
        self._interest_adjusted(original=original_posting_id, posting_id=f"adj:{original_posting_id}",
                                value_date=correction_date, amount=amount, journal=journal)

    @event("InterestAdjusted")
    def _interest_adjusted(self, original: str, posting_id: str, value_date: date, amount: Money,
                           journal: list[dict[str, Any]]) -> None:
        self._post(posting_id, value_date, amount.amount, "interest-adjustment", journal, {"original": original})

    def last_settled_end(self) -> date | None:
        ends = [y["end"] for y in self.interest_years.values()]
        return max(ends) if ends else None

    # -- corrections (COR) --------------------------------------------------------
    def reverse(self, posting_id: str, reversal_id: str, correction_date: date, reason: str,
                interest_adjustment: Money | None = None) -> None:
        original = self.posting(posting_id)
        if original is None:
            raise ReversalError(f"no posting {posting_id} on this account", field="posting")
        if original["kind"] == "reversal":
            raise ReversalError("a reversal is never reversed", field="posting")
        if original["reversed"]:
            raise ReversalError("this posting is already reversed", field="posting")
        if not original["journal"]:
            raise ReversalError("this posting belongs to a loan payment; reverse the payment", field="posting")
        self.check_open()
        # COR-2: no balance may turn negative, today's or as of any date from the original's value date on.
        lowest = self.balance.min(self.lowest_balance_from(original["value_date"]))
        if lowest.amount - original["amount"] < 0:
            raise ReversalWouldOverdrawError("the reversal would make the balance negative; recover instead (WD-3)",
                                             field="posting")
        adjustment = interest_adjustment or ZERO
        lowest_after_correction = self.balance.min(self.lowest_balance_from(max(correction_date,
                                                                                original["value_date"])))
        if lowest_after_correction.amount - original["amount"] + adjustment.amount < 0:
            raise ReversalWouldOverdrawError("the interest adjustment would overdraw the account", field="posting")
        self._reversed(posting_id=posting_id, reversal_id=reversal_id, value_date=original["value_date"],
                       correction_date=correction_date, amount=Money(-original["amount"]), reason=reason,
                       journal=mirror(original["journal"]), interest_adjustment=adjustment,
                       original_kind=original["kind"], original_period=original["detail"].get("period"))

    @event("Reversed")
    def _reversed(self, posting_id: str, reversal_id: str, value_date: date, correction_date: date, amount: Money,
                  reason: str, journal: list[dict[str, Any]], interest_adjustment: Money,
                  original_kind: str | None = None, original_period: str | None = None) -> None:
        original = self.postings.get(posting_id)
        if original is not None:
            original["reversed"] = True
            original_kind, original_period = original["kind"], original["detail"].get("period")
        elif original_kind is None:  # an event written before reversals named their original's kind
            raise self.needs_history(f"reversal of {posting_id}")
        if original_period and not (self.credited_from and original_period < self.credited_from):
            slot = self.credited.get(original_period, {})
            if original_kind in slot:  # CON-2: a reversed contribution no longer counts as credited
                slot[original_kind] += amount.amount  # the reversal's amount mirrors the original's
                if not slot[original_kind]:
                    del slot[original_kind]
        self._post(reversal_id, value_date, amount.amount, "reversal", journal,
                   {"original": posting_id, "reason": reason})
        if not interest_adjustment.is_zero:
            adjust = interest_adjustment
            side_fund, side_expense = ("Cr", "Dr") if adjust > ZERO else ("Dr", "Cr")
            lines = balanced([journal_line(GL_FUND, side_fund, abs(adjust)),
                              journal_line(GL_INTEREST_EXPENSE, side_expense, abs(adjust))])
            self._post(reversal_id + ":interest", correction_date, adjust.amount, "interest-adjustment", lines,
                       {"original": posting_id})
