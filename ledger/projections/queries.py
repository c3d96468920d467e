"""Questions answered from the read tables: balances, histories, states and the trial balance.

Every answer takes ``as_of`` (a value date: only postings value-dated on or before it count)
and ``known_at`` (a recorded time: only events the ledger had accepted by then count), the
two axes of MNY-4; either may be left out. Running balances are computed at query time in
value-date, then recorded-time, then log order, so a back-dated posting recorded later
lands in its place without rewriting stored rows. Nothing here reads the event store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, and_, func, select

from ledger.application import CHINA_TZ, NotFoundError
from ledger.money import ZERO, Money
from ledger.projections import tables
from ledger.projections.batch import money
from ledger.services.books import TrialBalance

CONTRIBUTION_KINDS = ("remittance", "back-payment")
LINES_MAX = 100_000  # one account's history; a longer one is a bug, not a member


def known_utc(known_at: datetime | None) -> datetime | None:
    """A recorded-time bound as naive UTC; a naive input is read as China time (CST)."""
    if known_at is None:
        return None
    moment = known_at if known_at.tzinfo else known_at.replace(tzinfo=CHINA_TZ)
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


def china_time(utc_naive: datetime) -> datetime:
    return utc_naive.replace(tzinfo=timezone.utc).astimezone(CHINA_TZ)


@dataclass(frozen=True)
class AccountLine:
    """One posting of ``rm_account_lines`` with the running balance after it."""

    position: int
    line_no: int
    value_date: date
    recorded_at: datetime
    kind: str
    kind_zh: str
    amount: Money
    balance: Money
    posting_id: str
    original_posting_id: str | None
    is_reversal: bool
    reverses_kind: str | None
    period: str | None
    reason_code: str
    reference: str

    def as_dict(self) -> dict[str, Any]:
        return {"position": self.position, "value_date": self.value_date.isoformat(),
                "recorded_at": self.recorded_at.isoformat(), "kind": self.kind, "kind_zh": self.kind_zh,
                "amount": str(self.amount), "balance": str(self.balance), "posting_id": self.posting_id,
                "original_posting_id": self.original_posting_id, "is_reversal": self.is_reversal,
                "reverses_kind": self.reverses_kind, "period": self.period, "reason_code": self.reason_code,
                "reference": self.reference}


class ReadModel:
    """Read-only queries over the projected tables (call ``Projector.catch_up()`` first)."""

    def __init__(self, engine: Engine):
        self.engine = engine

    # -- lookups ----------------------------------------------------------------------------
    def account(self, account_no: str) -> dict[str, Any]:
        return self._one(tables.accounts, tables.accounts.c.account_no == account_no, "account",
                         f"no fund account {account_no}")

    def member(self, id_number: str) -> dict[str, Any]:
        return self._one(tables.members, tables.members.c.id_number == id_number.strip().upper(), "id_number",
                         f"no member with id {id_number}")

    def employer(self, employer_id: str) -> dict[str, Any]:
        return self._one(tables.employers, tables.employers.c.employer_id == employer_id, "employer",
                         f"no employer {employer_id}")

    def _one(self, table: Any, condition: Any, field: str, message: str) -> dict[str, Any]:
        with self.engine.connect() as connection:
            row = connection.execute(select(table).where(condition)).mappings().first()
        if row is None:
            raise NotFoundError(message + " in the read models (run projections catch-up?)", field)
        return dict(row)

    # -- balances and histories (MNY-4) -------------------------------------------------------
    def _line_filter(self, account_no: str, as_of: date | None, known_at: datetime | None) -> Any:
        lines = tables.account_lines.c
        condition = lines.account_no == account_no
        if as_of is not None:
            condition = and_(condition, lines.value_date <= as_of)
        bound = known_utc(known_at)
        if bound is not None:
            condition = and_(condition, lines.recorded_at_utc <= bound)
        return condition

    def balance(self, account_no: str, as_of: date | None = None, known_at: datetime | None = None) -> Money:
        """Σ postings value-dated ≤ ``as_of`` and recorded ≤ ``known_at``; an unknown account is refused."""
        self.account(account_no)
        return self._sum(account_no, as_of, known_at)

    def _sum(self, account_no: str, as_of: date | None, known_at: datetime | None) -> Money:
        statement = select(func.coalesce(func.sum(tables.account_lines.c.amount_fen), 0)).where(
            self._line_filter(account_no, as_of, known_at))
        with self.engine.connect() as connection:
            return money(int(connection.execute(statement).scalar() or 0))

    def lines(self, account_no: str, date_from: date | None = None, date_to: date | None = None,
              known_at: datetime | None = None) -> tuple[Money, list[AccountLine]]:
        """The opening balance (as of the day before ``date_from``) and the lines of the period."""
        opening = ZERO if date_from is None else self._sum(account_no, date_from - timedelta(days=1), known_at)
        table = tables.account_lines
        condition = self._line_filter(account_no, date_to, known_at)
        if date_from is not None:
            condition = and_(condition, table.c.value_date >= date_from)
        statement = (select(table).where(condition)
                     .order_by(table.c.value_date, table.c.recorded_at_utc, table.c.position, table.c.line_no)
                     .limit(LINES_MAX + 1))
        with self.engine.connect() as connection:
            rows = connection.execute(statement).mappings().all()
        if len(rows) > LINES_MAX:
            raise NotFoundError(f"more than {LINES_MAX} lines; ask for a shorter period", "date_from")
        return opening, self._running(opening, rows)

    @staticmethod
    def _running(opening: Money, rows: Any) -> list[AccountLine]:
        balance_fen = int(opening.amount * 100)
        result = []
        for row in rows:
            balance_fen += row["amount_fen"]
            result.append(AccountLine(
                position=row["position"], line_no=row["line_no"], value_date=row["value_date"],
                recorded_at=china_time(row["recorded_at_utc"]), kind=row["kind"], kind_zh=row["kind_zh"],
                amount=money(row["amount_fen"]), balance=money(balance_fen), posting_id=row["posting_id"],
                original_posting_id=row["original_posting_id"], is_reversal=bool(row["is_reversal"]),
                reverses_kind=row["reverses_kind"], period=row["period"], reason_code=row["reason_code"],
                reference=row["reference"]))
        return result

    def history(self, account_no: str, as_of: date | None = None, known_at: datetime | None = None) -> dict[str, Any]:
        """Like ``Ledger.history`` but from the read side, as of a value date and as known at a time."""
        account = self.account(account_no)
        _opening, lines = self.lines(account_no, None, as_of, known_at)
        closing = lines[-1].balance if lines else ZERO
        return {"account_no": account_no, "state": account["state"],
                "as_of": as_of.isoformat() if as_of else None,
                "known_at": known_at.isoformat() if known_at else None,
                "lines": [line.as_dict() for line in lines], "closing_balance": str(closing)}

    def state_as_of(self, account_no: str, as_of: date | None = None,
                    known_at: datetime | None = None) -> tuple[str, str]:
        """(state, national export code) after the last state change value-dated ≤ ``as_of``."""
        table = tables.account_states
        condition = table.c.account_no == account_no
        if as_of is not None:
            condition = and_(condition, table.c.value_date <= as_of)
        bound = known_utc(known_at)
        if bound is not None:
            condition = and_(condition, table.c.recorded_at_utc <= bound)
        statement = (select(table.c.state, table.c.export_code).where(condition)
                     .order_by(table.c.value_date.desc(), table.c.position.desc()).limit(1))
        with self.engine.connect() as connection:
            row = connection.execute(statement).first()
        if row is None:
            raise NotFoundError(f"account {account_no} was not open on {as_of}", "as_of")
        return row[0], row[1]

    def contributions_by_period(self, account_no: str, as_of: date | None = None,
                                known_at: datetime | None = None) -> dict[str, Money]:
        """Σ credited per period (remittance and back-payment), net of their reversals (COR-1)."""
        lines = tables.account_lines.c
        is_contribution = lines.kind.in_(CONTRIBUTION_KINDS) | lines.reverses_kind.in_(CONTRIBUTION_KINDS)
        statement = (select(lines.period, func.sum(lines.amount_fen))
                     .where(and_(self._line_filter(account_no, as_of, known_at), is_contribution,
                                 lines.period.is_not(None)))
                     .group_by(lines.period))
        with self.engine.connect() as connection:
            return {period: money(int(total)) for period, total in connection.execute(statement)}

    def account_balances(self) -> dict[str, Money]:
        """Every account's balance as ``rm_accounts`` keeps it (all value dates, all recorded)."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(tables.accounts.c.account_no, tables.accounts.c.balance_fen))
            return {account_no: money(balance_fen) for account_no, balance_fen in rows}

    def line_sums(self) -> dict[str, Money]:
        """Every account's Σ lines: a second, independent read-side balance."""
        lines = tables.account_lines.c
        statement = select(lines.account_no, func.sum(lines.amount_fen)).group_by(lines.account_no)
        with self.engine.connect() as connection:
            return {account_no: money(int(total)) for account_no, total in connection.execute(statement)}

    # -- the books (GL-3) ----------------------------------------------------------------------
    def trial_balance(self, as_of: date | None = None, known_at: datetime | None = None) -> TrialBalance:
        """Per account Σ debits and Σ credits of entries value-dated ≤ D and recorded ≤ T."""
        journal = tables.journal_lines.c
        condition = journal.position > 0
        if as_of is not None:
            condition = and_(condition, journal.value_date <= as_of)
        bound = known_utc(known_at)
        if bound is not None:
            condition = and_(condition, journal.recorded_at_utc <= bound)
        sums = select(journal.account, journal.side, func.sum(journal.amount_fen)).where(condition).group_by(
            journal.account, journal.side)
        entries = select(func.count()).where(and_(condition, journal.line_no == 1))
        trial = TrialBalance(as_of)
        with self.engine.connect() as connection:
            for account, side, total in connection.execute(sums):
                book = trial.debits if side == "Dr" else trial.credits
                book[account] = Decimal(int(total)) / 100
            trial.entries = int(connection.execute(entries).scalar() or 0)
        return trial

    # -- members -------------------------------------------------------------------------------------
    @staticmethod
    def loan_marks_known_by(member: dict[str, Any], known_at: datetime | None) -> tuple[dict[str, str], int]:
        """The member's loan marks (loan id → mark) and loans used, as recorded by ``known_at``."""
        bound = known_utc(known_at)
        marks: dict[str, str] = {}
        used = 0
        for recorded, loan_id, mark in json.loads(member["loan_marks_json"]):
            if bound is not None and datetime.fromisoformat(recorded) > bound:
                break
            if mark == "outstanding" and marks.get(loan_id) != "outstanding":
                used += 1
            if mark == "none":
                marks.pop(loan_id, None)
            else:
                marks[loan_id] = mark
        return marks, used

    @staticmethod
    def fraud_records_by(member: dict[str, Any], as_of: date | None) -> list[dict[str, str]]:
        records = json.loads(member["fraud_records_json"])
        return [{"value_date": day, "reference": reference} for day, reference in records
                if as_of is None or date.fromisoformat(day) <= as_of]
