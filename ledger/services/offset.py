"""Monthly offset repayment (按月冲还贷) as a ledger service: OFF-1..5, LN-5, GL-1.

``run_offset(through)`` covers every deduction date since the last completed
run, oldest first. For a date D it takes the loans whose instalments are
deducted on D (due date moved to the next working day, LN-4), and gives each
exactly one outcome: a ``Deduction`` whose id derives from (loan, D). Fund
debits, loan payments, the card debit instruction, the journal entries and the
deduction itself are one atomic save per batch of loans; a re-run, a restart
after a crash or two runs at once find the deduction already there and leave
the loan alone (the derived id is the safety net: a duplicate is refused by the
store).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Callable, Iterable
from uuid import UUID

from ledger.aggregates.base import LedgerRuleError
from ledger.aggregates.documents import CENTRE_SERIAL_SCOPE, SerialRef
from ledger.aggregates.fund_account import CLOSED as ACCOUNT_CLOSED
from ledger.aggregates.fund_account import SEALED, FundAccount
from ledger.aggregates.loan import ACTIVE, CLOSED, Loan
from ledger.aggregates.offset import (
    DEDUCTED,
    SKIPPED,
    BankDebit,
    Deduction,
    MandateError,
    OffsetMandate,
    OffsetRunLog,
)
from ledger.application import NotFoundError, as_str, chunked, gc_paused, topic_of
from ledger.calendar import WorkingCalendar
from ledger.money import ZERO, Money
from ledger.policy import OffsetPolicy, PolicyVersion

SERIAL_BLOCK_SIZE = 100  # serials reserved at a time for card debits (unused ones are gaps, never reused)
OFFSET_BATCH_SIZE = 1000  # loans per transaction: one commit, one chain extension, one snapshot write each
CATCH_UP_DAYS_MAX = 370
ENDED_MANDATE_REPORT_DAYS = 31  # an ended mandate gets outcomes this long, then none


@dataclass
class Payer:
    role: str  # "borrower" | "spouse"
    account: FundAccount
    available: Money


@dataclass
class DayReport:
    """What one deduction date did (OFF-4 outcomes, OFF-2 source split)."""

    deduction_on: date
    loans: int = 0
    deducted: int = 0
    already: int = 0
    borrower_funds: Money = ZERO
    spouse_funds: Money = ZERO
    card: Money = ZERO
    debits_created: int = 0
    debits_cancelled: int = 0
    skipped: Counter = field(default_factory=Counter)

    def add(self, other: "DayReport") -> None:
        self.loans += other.loans
        self.deducted += other.deducted
        self.already += other.already
        self.borrower_funds += other.borrower_funds
        self.spouse_funds += other.spouse_funds
        self.card += other.card
        self.debits_created += other.debits_created
        self.debits_cancelled += other.debits_cancelled
        self.skipped.update(other.skipped)

    def as_dict(self) -> dict[str, Any]:
        return {"deduction_on": self.deduction_on.isoformat(), "loans": self.loans, "deducted": self.deducted,
                "already_done": self.already, "from_borrower_funds": str(self.borrower_funds),
                "from_spouse_funds": str(self.spouse_funds), "to_cards": str(self.card),
                "debits_created": self.debits_created, "debits_cancelled": self.debits_cancelled,
                "skipped": dict(sorted(self.skipped.items()))}


def split_shortfall(due: Money, payers: list[Payer], rules: OffsetPolicy) -> list[Money]:
    """OFF-2: what each payer pays under the shortfall rule; the card pays the rest."""
    covers = (lambda have, need: have >= need) if rules.cover_test == ">=" else (lambda have, need: have > need)
    if rules.shortfall_rule == "waterfall":
        taken, remaining = [], due
        for payer in payers:
            part = payer.available.min(remaining)
            taken.append(part)
            remaining -= part
        return taken
    if rules.shortfall_rule == "household-all-or-nothing":
        if not covers(Money.sum(p.available for p in payers), due):
            return [ZERO for _ in payers]
        taken, remaining = [], due
        for payer in payers:
            part = payer.available.min(remaining)
            taken.append(part)
            remaining -= part
        return taken
    for index, payer in enumerate(payers):  # each-account-whole
        if covers(payer.available, due):
            return [due if i == index else ZERO for i in range(len(payers))]
    return [ZERO for _ in payers]


def available_for_offset(account: FundAccount, rules: OffsetPolicy, retained_balance_min: Money,
                         value_on: date | None = None) -> Money:
    """OFF-2: max(0, balance − frozen − retained minimum); 0 when closed, sealed or frozen as policy says.

    A deduction value-dated ``value_on`` (a catch-up run after downtime, OFF-4) may only take what the account
    held then and has held ever since (ACC-3 with MNY-4): money credited after that date does not count."""
    if account.state == ACCOUNT_CLOSED:
        return ZERO
    if account.state == SEALED and not rules.sealed_pays:
        return ZERO
    if account.is_frozen and not rules.frozen_pays:
        return ZERO
    available = account.available(retained_balance_min)
    if value_on is not None and any(movement[0] > value_on for movement in account.movements):
        since = account.balance.min(account.lowest_balance_from(value_on))
        available = available.min((since - account.frozen_sum - retained_balance_min).max(ZERO))
    return available


def deduction_window(day: date, calendar: WorkingCalendar) -> list[date]:
    """The due dates whose deduction falls on ``day``: the day itself and the non-working days before it."""
    if not calendar.is_working_day(day):
        return []
    window, cursor = [day], day - timedelta(days=1)
    while not calendar.is_working_day(cursor):
        window.append(cursor)
        cursor -= timedelta(days=1)
    return window


def _long_ended(mandate: OffsetMandate, day: date) -> bool:
    stopped = min((d for d in (mandate.ended_on, mandate.cancelled_from) if d is not None), default=None)
    return stopped is not None and (day - stopped).days > ENDED_MANDATE_REPORT_DAYS


def _due_days(window: list[date]) -> set[int]:
    days: set[int] = set()
    for due_on in window:
        days.add(due_on.day)
        last = (due_on.replace(day=28) + timedelta(days=4)).replace(day=1) - timedelta(days=1)
        if due_on == last:  # a due day past the month's end is clamped to it (LN-4)
            days.update(range(due_on.day + 1, 32))
    return days


class OffsetCommands:
    """Mixin on the ledger application: mandates, the daily run, card debits."""

    calendar = WorkingCalendar()

    # -- mandates (OFF-1) ------------------------------------------------------------
    def mandate(self, loan_no: str) -> OffsetMandate:
        """The loan's current mandate (the latest drafted)."""
        mandate = self._current_mandate(self.loan(loan_no))
        if mandate is None:
            raise NotFoundError(f"loan {loan_no} has no offset mandate", "loan")
        return mandate

    def _current_mandate(self, loan: Loan) -> OffsetMandate | None:
        found = self.find(loan.mandate_id or OffsetMandate.create_id(loan.loan_no))
        return found if isinstance(found, OffsetMandate) else None

    def create_mandate(self, loan_no: str, on: date, with_spouse: bool = True) -> dict[str, Any]:
        """Draft the mandate; payer accounts join it (one live agreement per account, WD-4). A loan whose
        mandate was cancelled or ended may sign a new one once the old one no longer deducts."""
        def body():
            loan = self.loan(loan_no)
            loan.check_state(ACTIVE)
            current = self._current_mandate(loan)
            if current is not None and current.ended_on is None and (current.cancelled_from is None
                                                                      or current.cancelled_from > on):
                until = f" until {current.cancelled_from}" if current.cancelled_from else ""
                raise MandateError(f"the loan has a mandate in force{until}", field="loan", rule="OFF-1")
            borrower = self.repository.get(loan.borrower_id)
            payers = [("borrower", borrower)]
            if with_spouse and loan.spouse_id and self.policy.at(on).offset.spouse_pays:
                payers.append(("spouse", self.repository.get(loan.spouse_id)))
            accounts = []
            for role, member in payers:
                account = self.account(member.account_no)
                if account.agreement and account.agreement != f"offset:{loan_no}":  # the old mandate's is reused
                    raise MandateError(f"account {account.account_no} is already in {account.agreement}",
                                       field="account", rule="OFF-1")
                account.set_agreement(agreement=f"offset:{loan_no}")
                accounts.append(account)
            due_day = loan.terms.get("due_day") or loan.disbursed_on.day
            number = current.__dict__.get("number", 1) + 1 if current is not None else 1
            mandate = OffsetMandate(loan_no=loan_no, loan_id=loan.id, drafted_on=on, due_day=due_day, payers=[
                {"role": role, "member_id": str(m.id), "account_no": m.account_no} for role, m in payers],
                number=number)
            loan.link_mandate(mandate_id=mandate.id)
            return {"loan_no": loan_no, "payers": as_str(mandate.payers)}, [mandate, loan, *accounts]
        return self.execute("create-mandate", None, {}, body)

    def sign_mandate(self, loan_no: str, id_number: str, on: date) -> dict[str, Any]:
        def body():
            mandate, member = self.mandate(loan_no), self.member(id_number)
            mandate.sign(member.id, on)
            return {"loan_no": loan_no, "signed_by": id_number, "effective_from":
                    mandate.effective_from.isoformat() if mandate.effective_from else None}, [mandate]
        return self.execute("sign-mandate", None, {}, body)

    def cancel_mandate(self, loan_no: str, id_number: str, on: date) -> dict[str, Any]:
        def body():
            mandate, member = self.mandate(loan_no), self.member(id_number)
            mandate.cancel(member.id, on)
            return {"loan_no": loan_no, "cancelled_from": mandate.cancelled_from.isoformat()}, [mandate]
        return self.execute("cancel-mandate", None, {}, body)

    def _end_mandate_on_close(self, loan: Loan, on: date) -> list[Any]:
        """OFF-1: the loan closed: the mandate ends at once and the payer accounts are free again."""
        mandate = self._current_mandate(loan)
        if mandate is None or mandate.ended_on is not None:
            return []
        mandate.end(on, "LOAN_CLOSED")
        accounts = [self.account(p["account_no"]) for p in mandate.payers]
        for account in accounts:
            if account.agreement == f"offset:{loan.loan_no}":
                account.set_agreement(agreement=None)
        return [mandate, *accounts]

    def end_offset_agreements(self, accounts: list[FundAccount], on: date, reason: str) -> list[Any]:
        """OFF-1: a payer account closed or transferred out, or the spouse link ended: the mandate ends at
        once and every payer account is free again. ``accounts`` are the caller's loaded copies (one save)."""
        loaded = {a.account_no: a for a in accounts}
        touched: list[Any] = []
        for agreement in {a.agreement for a in accounts if a.agreement and a.agreement.startswith("offset:")}:
            loan = self.find(Loan.create_id(agreement.split(":", 1)[1]))
            mandate = self._current_mandate(loan) if isinstance(loan, Loan) else None
            if mandate is None or mandate.ended_on is not None:
                continue
            mandate.end(on, reason)
            touched.append(mandate)
            for payer in mandate.payers:
                account = loaded.get(payer["account_no"]) or self.account(payer["account_no"])
                if account.agreement == agreement:
                    account.set_agreement(agreement=None)
                if payer["account_no"] not in loaded:
                    touched.append(account)
        return touched

    def live_debit_state(self, loan: Loan) -> str | None:
        mandate = self._current_mandate(loan)
        if mandate is None or mandate.last_debit_id is None:
            return None
        debit = self.find(mandate.last_debit_id)
        return debit.state if debit is not None else None

    def mandate_index(self) -> list[dict[str, Any]]:
        """Each loan's current mandate with its due day (from the mandates' creation events; a loan's
        later mandate replaces its earlier one)."""
        cache = self.__dict__.setdefault("_mandate_index", [0, {}])
        for notification in self.iter_notifications(topics=[topic_of(OffsetMandate, "Drafted")],
                                                    start=cache[0] + 1):
            event = self.mapper.to_domain_event(notification)
            cache[1].pop(event.loan_id, None)  # re-inserted last: the index keeps drafting order
            cache[1][event.loan_id] = {"mandate_id": event.originator_id, "loan_id": event.loan_id,
                                       "loan_no": event.loan_no, "due_day": event.due_day}
            cache[0] = notification.id
        return list(cache[1].values())

    # -- the daily run (OFF-2, OFF-4) ---------------------------------------------------------
    def run_offset(self, through: date, progress: Callable[[int, int], None] | None = None,
                   workers: int = 1) -> dict[str, Any]:
        """Run every deduction date since the last completed run through ``through``, oldest first; on
        PostgreSQL in ``workers`` processes (``ledger.services.offset_workers``)."""
        from ledger.services.offset_workers import check_workers

        check_workers(self.storage.engine, workers)
        log = self.find(OffsetRunLog.create_id()) or None
        days = log.dates_to_run(through) if log is not None else [through]
        if len(days) > CATCH_UP_DAYS_MAX:
            raise LedgerRuleError(f"{len(days)} days to catch up exceed {CATCH_UP_DAYS_MAX}", field="through",
                                  rule="OFF-4")
        index = self.mandate_index()
        reports = []
        for day in days:
            report = self.run_offset_date(day, index, progress, workers)
            self._complete_run(day, report)
            reports.append(report.as_dict())
        return {"through": through.isoformat(), "dates": reports}

    def _complete_run(self, day: date, report: DayReport) -> None:
        def body():
            log = self.find(OffsetRunLog.create_id())
            if log is None:
                log = OffsetRunLog(name="offset", first_date=day)
            if log.last_completed is not None and log.last_completed >= day:
                return {}, []
            log.complete(run_date=day, report=report.as_dict())
            return {}, [log]
        self.execute("complete-offset-run", None, {}, body)

    def run_offset_date(self, day: date, index: list[dict[str, Any]] | None = None,
                        progress: Callable[[int, int], None] | None = None, workers: int = 1) -> DayReport:
        due_days = _due_days(deduction_window(day, self.calendar))
        rows = [r for r in (index if index is not None else self.mandate_index()) if r["due_day"] in due_days]
        if workers > 1:
            from ledger.services.offset_workers import run_in_workers

            return run_in_workers(self, day, rows, workers, progress)
        report = DayReport(day)
        for batch in chunked(rows, OFFSET_BATCH_SIZE):
            with gc_paused():
                batch_report = self.execute("offset-batch", None, {},
                                            lambda batch=batch: self._offset_batch(day, batch))
            report.add(batch_report)
            if progress:
                progress(len(batch), len(rows))
        return report

    def _offset_batch(self, day: date, rows: list[dict[str, Any]]) -> tuple[DayReport, list[Any]]:
        report = DayReport(day)
        from ledger.bulk import existing_ids

        done = existing_ids(self, [Deduction.create_id(r["loan_no"], day) for r in rows])
        todo = [r for r in rows if Deduction.create_id(r["loan_no"], day) not in done]
        report.already = len(rows) - len(todo)
        mandates = self.load_many(r["mandate_id"] for r in todo)
        # OFF-4 covers loans whose mandate could be effective: one that ended (or was cancelled) more than
        # ENDED_MANDATE_REPORT_DAYS ago has had its SKIPPED outcome and is left alone from then on.
        todo = [r for r in todo if not _long_ended(mandates[r["mandate_id"]], day)]
        loans = self.load_many(r["loan_id"] for r in todo)
        accounts = self.load_many(FundAccount.create_id(p["account_no"]) for m in mandates.values() for p in m.payers)
        debits = self.load_many(m.last_debit_id for m in mandates.values() if m.last_debit_id)
        policy = self.policy.at(day)
        touched: dict[UUID, Any] = {}
        self._batch_extra: list[Any] = []
        for row in todo:
            mandate, loan = mandates[row["mandate_id"]], loans[row["loan_id"]]
            debit = debits.get(mandate.last_debit_id) if mandate.last_debit_id else None
            made = self._deduct(day, loan, mandate, debit, accounts, policy, report)
            for aggregate in made:
                touched[aggregate.id] = aggregate
        report.loans = report.already + len(todo)
        extra = self._batch_extra
        return report, [a for a in touched.values() if a.pending_events] + extra

    def _deduct(self, day: date, loan: Loan, mandate: OffsetMandate, debit: BankDebit | None,
                accounts: dict[UUID, FundAccount], policy: PolicyVersion, report: DayReport) -> list[Any]:
        """One loan's outcome for ``day``: exactly one Deduction, with whatever it moved."""
        reason, touched = self._skip_reason(day, loan, mandate, debit, policy), []
        amount_due, value_on = ZERO, day
        if reason is None:
            # A catch-up (OFF-4) may find the loan posted after ``day`` while the run was down (a counter
            # payment, a waiver, a repricing): its book cannot take a payment dated before that, so the
            # deduction is value-dated the book's date (never after today).
            value_on = max(day, loan.book.last_on)
            loan.accrue(value_on)
            amount_due = self._offset_amount(loan, value_on, policy)
            if amount_due.is_zero:
                reason = "NOTHING_DUE"
        if debit is not None and debit.state in ("CREATED", "FAILED") and reason != "DEBIT_PENDING":
            debit.cancel(on=day, reason="superseded by the deduction of " + day.isoformat())
            report.debits_cancelled += 1
            touched.append(debit)
        if reason is not None:
            report.skipped[reason] += 1
            return [*touched, self._record_deduction(loan, day, SKIPPED, reason, amount_due, [], ZERO, None, policy)]
        payers = self._payers(mandate, accounts, policy, value_on)
        parts = self._take_from_funds(day, value_on, loan, payers,
                                      split_shortfall(amount_due, payers, policy.offset), policy, report)
        card_amount = amount_due - Money.sum(p["amount"] for p in parts)
        if not parts and not (loan.card or {}).get("number"):
            report.skipped["NO_AVAILABLE_ACCOUNT"] += 1  # no fund money and no card: staff must act
            return [*touched, self._record_deduction(loan, day, SKIPPED, "NO_AVAILABLE_ACCOUNT", amount_due, [],
                                                     ZERO, None, policy)]
        new_debit = self._card_debit(day, loan, mandate, card_amount, report) if card_amount > ZERO else None
        report.deducted += 1
        deduction = self._record_deduction(loan, day, DEDUCTED, None, amount_due, parts, card_amount,
                                 new_debit.id if new_debit else None, policy)
        return [*touched, loan, mandate, *[p.account for p in payers], *([new_debit] if new_debit else []),
                deduction]

    def _offset_amount(self, loan: Loan, on: date, policy: PolicyVersion) -> Money:
        """OFF-2: the amount due (LN-5) with overdue parts and penalty, or ⚙ ``takes_overdue`` = no: only the
        instalments still on time on ``on`` (due in this deduction's window)."""
        if policy.offset.takes_overdue:
            return loan.book.amount_due(on)
        current = [a for a in loan.book.accounts_through(on) if a.on_time_until >= on]
        return Money.sum(a.unpaid for a in current)

    def _skip_reason(self, day: date, loan: Loan, mandate: OffsetMandate, debit: BankDebit | None,
                     policy: PolicyVersion) -> str | None:
        if loan.state == CLOSED or loan.state != ACTIVE:
            return "LOAN_CLOSED"
        if not mandate.effective_on(day):
            return "MANDATE_ENDED" if mandate.ended_on or mandate.cancelled_from else "MANDATE_NOT_EFFECTIVE"
        if policy.offset.effective_after_regular_repayment and not _repaid_regularly(loan, day):
            return "MANDATE_NOT_EFFECTIVE"  # OFF-1 ⚙: only after one regular repayment
        if debit is not None and debit.state == "SUBMITTED":
            return "DEBIT_PENDING"
        return None

    def _payers(self, mandate: OffsetMandate, accounts: dict[UUID, FundAccount], policy: PolicyVersion,
                value_on: date) -> list[Payer]:
        retained = policy.account.retained_balance_min
        payers = []
        for entry in mandate.payers:
            account = accounts[FundAccount.create_id(entry["account_no"])]
            payers.append(Payer(entry["role"], account,
                                available_for_offset(account, policy.offset, retained, value_on)))
        return payers

    def _take_from_funds(self, day: date, value_on: date, loan: Loan, payers: list[Payer], amounts: list[Money],
                         policy: PolicyVersion, report: DayReport) -> list[dict[str, Any]]:
        """Each payer's money is allocated by LN-5 where the previous one stopped; journal on the loan."""
        parts = []
        for payer, amount in zip(payers, amounts):
            if amount.is_zero:
                continue
            posting_id = f"offset:{loan.loan_no}:{day.isoformat()}:{payer.role}"
            payer.account.debit_for_loan(amount, value_on, posting_id, loan.loan_no,
                                         policy.account.retained_balance_min if not payer.account.is_frozen
                                         else ZERO)
            figures = loan.pay(amount, value_on, f"{payer.role}-fund", posting_id, self.centre_bank_account)
            parts.append({"role": payer.role, "account_no": payer.account.account_no, "amount": amount,
                          "penalty": figures["penalty"], "interest": figures["interest"],
                          "principal": figures["principal"], "allocation": figures["number"],
                          "value_date": value_on})
            if payer.role == "borrower":
                report.borrower_funds += amount
            else:
                report.spouse_funds += amount
        return parts

    def _card_debit(self, day: date, loan: Loan, mandate: OffsetMandate, amount: Money,
                    report: DayReport) -> BankDebit | None:
        borrower_card = loan.card or {}
        if not borrower_card.get("number"):
            return None
        serial = self._next_serial(day)
        due_numbers = [a.number for a in loan.book.accounts_through(day) if not a.cleared]
        debit = BankDebit(loan_no=loan.loan_no, deduction_on=day, amount=amount, bank=loan.bank, card=borrower_card,
                          payer_name=loan.borrower_name, serial=serial,
                          instalments=due_numbers)
        mandate.link_debit(debit_id=debit.id)
        report.debits_created += 1
        report.card += amount
        self._batch_extra.append(SerialRef(serial=serial, kind="debit", target_id=debit.id, detail={}))
        return debit

    def _next_serial(self, day: date) -> str:
        """BNK-2 serials from a block reserved for this process (no shared counter in the batch's save)."""
        pool = self.__dict__.setdefault("_serial_pool", {})
        block = pool.get(day)
        if not block:
            block = pool[day] = self.reserve_serials(CENTRE_SERIAL_SCOPE, day, SERIAL_BLOCK_SIZE)
            block.reverse()
        return block.pop()

    def _record_deduction(self, loan: Loan, day: date, outcome: str, reason: str | None, amount_due: Money,
                parts: list[dict[str, Any]], card_amount: Money, debit_id: UUID | None,
                policy: PolicyVersion) -> Deduction:
        rules = policy.offset
        return Deduction(loan_no=loan.loan_no, deduction_on=day, outcome=outcome, reason=reason,
                         amount_due=amount_due, parts=parts, card_amount=card_amount, debit_id=debit_id,
                         rule=rules.shortfall_rule,
                         policy_used={"shortfall_rule": rules.shortfall_rule, "cover_test": rules.cover_test,
                                      "sealed_pays": rules.sealed_pays, "frozen_pays": rules.frozen_pays,
                                      "retained_balance_min": str(policy.account.retained_balance_min)})


def _repaid_regularly(loan: Loan, day: date) -> bool:
    """OFF-1 ⚙ ``effective_after_regular_repayment``: the borrower has repaid once the regular way (card,
    counter or bank API, not reversed) before ``day``; fund money does not count."""
    return loan.repaid_regularly_before(day)
