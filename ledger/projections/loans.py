"""The loan read side (个人住房公积金贷款): loans, their instalments, what paid them, money received.

A loan's instalments and their paid parts follow from its book (``ledger.loan_book``), which
a back-dated operation, a repricing (LN-2), a prepayment (LN-6) or a reversal (COR-3) may
recompute as a whole. So the handler does not re-derive the arithmetic: it replays the
``Loan`` aggregate itself — each event applied to the aggregate of the version before
(kept between pages of one run, loaded from the store when it is not) — and once per page a
finalizer writes every touched loan's rows from its book: its ``rm_loans`` row once, after its
last event in the page (the outstanding principal sums the whole book), its paid parts, and its
instalments only if the schedule changed (``SCHEDULE_EVENTS``, ``schedule_mark``): a daily
deduction touches one instalment of a loan, not the 360 rows of its schedule.

- ``rm_loans``: the loan's terms and state (one row per loan);
- ``rm_loan_instalments``: the schedule now in force: due date, on-time-until (LN-4 moved
  deduction day plus grace, LN-7), principal and interest due, rate;
- ``rm_loan_parts``: each paid part with its date, allocation and payer (borrower fund,
  spouse fund, card / bank), and the penalty of an allocation on the first instalment it
  paid (LN-5 takes penalty first), so that a part's payer split adds up to what it paid;
- ``rm_loan_payments``: one row per payment, prepayment, payoff or reversal event.

The repayment statement (OFF-5 source split, days overdue, penalty) is read from these rows
as of any value date (:func:`repayment_rows`).
"""

from __future__ import annotations

from datetime import date
from typing import Any
from uuid import UUID

from sqlalchemy import BigInteger, Boolean, Column, Date, DateTime, Engine, Index, Integer, String, Table, select

from ledger.aggregates.loan import Loan
from ledger.application import NotFoundError
from ledger.rules import HistoryRequired
from ledger.money import ZERO, Money
from ledger.projections import tables
from ledger.projections.batch import Batch, chunks, fen
from ledger.projections.registry import REGISTRY, EventMeta

LOAN_CACHE_MAX = 5_000
PAYMENT_EVENTS = ("PaymentReceived", "Prepaid", "PaidOff", "PaymentReversed")
# Events after which a loan's instalment rows are written again; after any other (a payment, a reversal, a
# waiver, falling due) only its paid parts are, unless ``schedule_mark`` moved all the same.
SCHEDULE_EVENTS = frozenset(("Disbursed", "Repriced", "Prepaid", "PaidOff"))
SKIP_UNCHANGED_SCHEDULES = True  # False: every touched loan's instalments rewritten (the tests' reference)
SOURCE_COLUMNS = {"borrower-fund": "from_borrower_fund_fen", "spouse-fund": "from_spouse_fund_fen"}
BANK_COLUMN = "from_card_fen"  # card, API, counter: the borrower's own money through a bank

loans = Table(
    "rm_loans", tables.metadata,
    Column("loan_id", String(tables.ID), primary_key=True),
    Column("loan_no", String(tables.CODE), nullable=False, unique=True),
    Column("borrower_id", String(tables.ID), nullable=False),
    Column("borrower_name", String(tables.NAME), nullable=False),
    Column("spouse_id", String(tables.ID)),
    Column("principal_fen", BigInteger, nullable=False),
    Column("months", Integer, nullable=False),
    Column("method", String(tables.CODE), nullable=False),
    Column("annual_rate", String(16)),  # in force on disbursement (LN-2)
    Column("state", String(16), nullable=False),
    Column("applied_on", Date, nullable=False),
    Column("disbursed_on", Date),
    Column("closed_on", Date),
    Column("defaulted_on", Date),
    Column("outstanding_principal_fen", BigInteger, nullable=False),
    Column("version", Integer, nullable=False),
)

loan_instalments = Table(
    "rm_loan_instalments", tables.metadata,
    Column("loan_no", String(tables.CODE), primary_key=True),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("due_on", Date, nullable=False),
    Column("on_time_until", Date, nullable=False),
    Column("annual_rate", String(16), nullable=False),
    Column("principal_fen", BigInteger, nullable=False),
    Column("interest_fen", BigInteger, nullable=False),
)

loan_parts = Table(
    "rm_loan_parts", tables.metadata,
    Column("loan_no", String(tables.CODE), primary_key=True),
    Column("number", Integer, primary_key=True, autoincrement=False),
    Column("allocation", Integer, primary_key=True, autoincrement=False),
    Column("paid_on", Date, nullable=False),
    Column("source", String(32), nullable=False),
    Column("interest_fen", BigInteger, nullable=False),
    Column("principal_fen", BigInteger, nullable=False),
    Column("penalty_fen", BigInteger, nullable=False),
)

loan_payments = Table(
    "rm_loan_payments", tables.metadata,
    Column("position", BigInteger, primary_key=True),
    Column("loan_no", String(tables.CODE), nullable=False),
    Column("event", String(tables.CODE), nullable=False),
    Column("value_date", Date, nullable=False),
    Column("recorded_at_utc", DateTime, nullable=False),
    Column("source", String(32), nullable=False),
    Column("amount_fen", BigInteger, nullable=False),  # a reversal: negative
    Column("allocation", Integer),
    Column("reference", String(tables.NAME), nullable=False),
    Column("is_reversal", Boolean, nullable=False),
    Index("rm_loan_payments_loan_idx", "loan_no", "value_date"),
)

REGISTRY.entity("loans", loans, "loan_id")


def loan_event_names() -> list[str]:
    """Every event class the Loan aggregate declares: a new one is projected without a code change."""
    return sorted(name for name, value in vars(Loan).items()
                  if isinstance(value, type) and issubclass(value, Loan.Event) and name not in ("Event", "Created"))


# -- replaying the aggregate ----------------------------------------------------------------
def replayed(batch: Batch, event: Any, meta: EventMeta) -> Loan:
    """The loan after this event: the cached previous version mutated, or loaded and mutated."""
    cache: dict[str, Loan] = batch.context.setdefault("loans", {})
    loan = cache.get(meta.aggregate_id)
    if loan is None or loan.version != meta.version - 1:
        loan = None if meta.version == 1 else batch.app.repository.get(UUID(meta.aggregate_id),
                                                                       version=meta.version - 1)
    before = batch.context.setdefault("loans_schedule_before", {})
    if meta.aggregate_id not in before:  # the schedule its instalment rows were written from
        before[meta.aggregate_id] = schedule_mark(loan)
    try:
        loan = event.mutate(loan)
    except HistoryRequired:  # a compact loan cannot take this event (back-dated, old format): whole history
        loan = event.mutate(batch.app.replay_whole(UUID(meta.aggregate_id), version=meta.version - 1))
    cache[meta.aggregate_id] = loan
    batch.context.setdefault("loans_touched", set()).add(meta.aggregate_id)
    return loan


def _loan_row(batch: Batch, loan: Loan, meta: EventMeta) -> dict[str, Any]:
    borrower = batch.get("members", str(loan.borrower_id))
    terms = loan.terms or {}
    outstanding = loan.subledger_as_of(date.max)["principal"] if loan.terms else loan.principal
    return {
        "loan_id": meta.aggregate_id, "loan_no": loan.loan_no, "borrower_id": str(loan.borrower_id),
        "borrower_name": loan.borrower_name or (borrower["name"] if borrower else ""),
        "spouse_id": str(loan.spouse_id) if loan.spouse_id else None, "principal_fen": fen(loan.principal),
        "months": loan.months, "method": loan.method,
        "annual_rate": str(terms["annual_rate"]) if "annual_rate" in terms else None, "state": loan.state,
        "applied_on": loan.applied_on, "disbursed_on": loan.disbursed_on, "closed_on": loan.closed_on,
        "defaulted_on": loan.defaulted_on, "outstanding_principal_fen": fen(outstanding), "version": meta.version,
    }


def loan_event(batch: Batch, event: Any, meta: EventMeta) -> None:
    loan = replayed(batch, event, meta)
    batch.context.setdefault("loans_last_meta", {})[meta.aggregate_id] = meta  # its row: once, by the finalizer
    batch.context.setdefault("loans_page_events", {}).setdefault(meta.aggregate_id, set()).add(meta.event_name)
    if meta.event_name in PAYMENT_EVENTS:
        _payment_row(batch, event, meta, loan)


def _payment_row(batch: Batch, event: Any, meta: EventMeta, loan: Loan) -> None:
    reversal = meta.event_name == "PaymentReversed"
    figures = getattr(event, "figures", {}) or {}
    if reversal:
        amount, allocation = -event.amount, event.allocation
    elif meta.event_name == "PaymentReceived":
        amount, allocation = event.op["amount"], figures.get("number")
    else:
        amount, allocation = figures.get("paid") or figures.get("total") or ZERO, None
    batch.append(loan_payments, {
        "position": meta.position, "loan_no": loan.loan_no, "event": meta.event_name,
        "value_date": event.value_date, "recorded_at_utc": meta.recorded_at_utc, "source": event.source,
        "amount_fen": fen(amount), "allocation": allocation,
        "reference": str(getattr(event, "reference", "") or getattr(event, "reason", ""))[:200],
        "is_reversal": reversal,
    })


for _name in loan_event_names():
    REGISTRY.handles(Loan, _name, prefetch=(("@id", "loans"), ("borrower_id", "members")))(loan_event)


# -- once per page: the touched loans' instalments and parts ---------------------------------------
def _sources(loan: Loan, payoff_source: str | None) -> dict[int, str]:
    """Allocation number → who paid it (LN-5 payer), from the loan's payments and its payoff."""
    sources = {int(p["allocation"]): p["source"] for p in loan.payments if p.get("allocation") is not None}
    payoff = loan.book.payoff if loan.terms else None
    if payoff is not None and payoff.allocation is not None and payoff_source:
        sources.setdefault(payoff.allocation.number, payoff_source)
    return sources


def _part_rows(loan: Loan, sources: dict[int, str]) -> list[dict[str, Any]]:
    book = loan.book
    reversed_numbers = {r.allocation_number for r in book.reversals}
    penalty_at: dict[tuple[int, int], Money] = {}
    for allocation in book.allocations:
        if allocation.number in reversed_numbers or allocation.penalty.is_zero:
            continue
        target = allocation.parts[0].number if allocation.parts else _instalment_due_by(book, allocation.on)
        if target > book.pruned.count:  # a folded instalment's rows are final (ADR 0015)
            penalty_at[(target, allocation.number)] = allocation.penalty
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    for account in book.head:  # only the instalments built so far can have been paid (ledger.loan_book)
        for part in account.paid:
            key = (account.number, part.allocation_number)
            row = rows.setdefault(key, _part(loan, key, part.on, sources.get(part.allocation_number, "card")))
            row["interest_fen"] += fen(part.interest)
            row["principal_fen"] += fen(part.principal)
    for (number, allocation_number), penalty in penalty_at.items():
        paid_on = next((a.on for a in book.allocations if a.number == allocation_number), book.last_on)
        row = rows.setdefault((number, allocation_number), _part(loan, (number, allocation_number), paid_on,
                                                                 sources.get(allocation_number, "card")))
        row["penalty_fen"] += fen(penalty)
    return [rows[key] for key in sorted(rows)]


def _part(loan: Loan, key: tuple[int, int], paid_on: date, source: str) -> dict[str, Any]:
    return {"loan_no": loan.loan_no, "number": key[0], "allocation": key[1], "paid_on": paid_on, "source": source,
            "interest_fen": 0, "principal_fen": 0, "penalty_fen": 0}


def _instalment_due_by(book: Any, day: date) -> int:
    due = book.accounts_through(day)
    return due[-1].number if due else book.first_after(date.min).number


def schedule_mark(loan: Loan | None) -> tuple[Any, ...] | None:
    """What a loan's instalment rows follow from beyond its terms: it changes whenever the schedule is
    recomputed (prepayment, repricing, payoff; the instalment count for any other change of length)."""
    if loan is None or not loan.terms:
        return None
    book = loan.book
    return (book.pruned.prepayments + len(book.prepayments), tuple(book.rate_steps), book.payoff is not None,
            book.instalment_count)


@REGISTRY.finalizer
def write_touched_loans(batch: Batch) -> None:
    """Each loan the page touched: its row (once, after its last event: the outstanding principal sums the
    whole book), its instalments and its paid parts."""
    touched = sorted(batch.context.pop("loans_touched", set()))
    last_meta: dict[str, EventMeta] = batch.context.pop("loans_last_meta", {})
    before: dict[str, Any] = batch.context.pop("loans_schedule_before", {})
    page_events: dict[str, set[str]] = batch.context.pop("loans_page_events", {})
    cache: dict[str, Loan] = batch.context.get("loans", {})
    for loan_id in touched:
        batch.put("loans", _loan_row(batch, cache[loan_id], last_meta[loan_id]))
    written = [loan_id for loan_id in touched if cache[loan_id].terms]
    if written:
        rescheduled = {loan_id for loan_id in written if not SKIP_UNCHANGED_SCHEDULES
                       or page_events.get(loan_id, set()) & SCHEDULE_EVENTS
                       or before.get(loan_id) != schedule_mark(cache[loan_id])}
        loans_written = [cache[loan_id] for loan_id in written]
        numbers = [loan.loan_no for loan in loans_written]
        instalments, parts = batch.table(loan_instalments), batch.table(loan_parts)
        # a compact loan rewrites its open instalments only: the folded ones (ADR 0015) are final
        for folded, loan_numbers in _by_folded([cache[i] for i in written if i in rescheduled]).items():
            for chunk in chunks(loan_numbers):
                batch.connection.execute(instalments.delete().where(instalments.c.loan_no.in_(chunk),
                                                                    instalments.c.number > folded))
        for folded, loan_numbers in _by_folded(loans_written).items():
            for chunk in chunks(loan_numbers):
                batch.connection.execute(parts.delete().where(parts.c.loan_no.in_(chunk), parts.c.number > folded))
        payoff_sources = _payoff_sources(batch, numbers)
        for loan_id, loan in zip(written, loans_written):
            _write_loan(batch, loan, payoff_sources.get(loan.loan_no), instalments=loan_id in rescheduled)
    if len(cache) > LOAN_CACHE_MAX:
        cache.clear()


def _by_folded(loans_written: list[Loan]) -> dict[int, list[str]]:
    """Loan numbers grouped by how many instalments their books have folded."""
    groups: dict[int, list[str]] = {}
    for loan in loans_written:
        groups.setdefault(loan.book.pruned.count, []).append(loan.loan_no)
    return groups


def _payoff_sources(batch: Batch, numbers: list[str]) -> dict[str, str]:
    """Who paid each loan off: this page's rows first, then the table."""
    found = {row["loan_no"]: row["source"] for row in batch.new_rows.get(loan_payments, [])
             if row["event"] == "PaidOff"}
    missing = [n for n in numbers if n not in found]
    payments = batch.table(loan_payments)
    for chunk in chunks(missing):
        statement = select(payments.c.loan_no, payments.c.source).where(
            payments.c.loan_no.in_(chunk), payments.c.event == "PaidOff")
        found.update({loan_no: source for loan_no, source in batch.connection.execute(statement)})
    return found


def _write_loan(batch: Batch, loan: Loan, payoff_source: str | None, instalments: bool = True) -> None:
    for account in loan.book.accounts if instalments else ():
        batch.append(loan_instalments, {
            "loan_no": loan.loan_no, "number": account.number, "due_on": account.due_on,
            "on_time_until": account.on_time_until, "annual_rate": str(account.annual_rate),
            "principal_fen": fen(account.instalment.principal), "interest_fen": fen(account.instalment.interest),
        })
    for row in _part_rows(loan, _sources(loan, payoff_source)):
        batch.append(loan_parts, row)


# -- reading ---------------------------------------------------------------------------------------
def loan_row(engine: Engine, loan_no: str) -> dict[str, Any]:
    with engine.connect() as connection:
        row = connection.execute(select(loans).where(loans.c.loan_no == loan_no)).mappings().first()
    if row is None:
        raise NotFoundError(f"no loan {loan_no} in the read models (run projections catch-up?)", "loan")
    return dict(row)


def repayment_rows(engine: Engine, loan_no: str, as_of: date) -> list[dict[str, Any]]:
    """Each instalment with what was paid of it by ``as_of``, split by payer, and its days overdue."""
    with engine.connect() as connection:
        schedule = connection.execute(select(loan_instalments).where(loan_instalments.c.loan_no == loan_no)
                                      .order_by(loan_instalments.c.number)).mappings().all()
        parts = connection.execute(select(loan_parts).where(loan_parts.c.loan_no == loan_no,
                                                            loan_parts.c.paid_on <= as_of)).mappings().all()
    by_number: dict[int, list[Any]] = {}
    for part in parts:
        by_number.setdefault(part["number"], []).append(part)
    return [_instalment_row(dict(row), by_number.get(row["number"], []), as_of) for row in schedule]


def _instalment_row(row: dict[str, Any], parts: list[Any], as_of: date) -> dict[str, Any]:
    paid = {"interest_fen": 0, "principal_fen": 0, "penalty_fen": 0, "from_borrower_fund_fen": 0,
            "from_spouse_fund_fen": 0, "from_card_fen": 0}
    for part in parts:
        for name in ("interest_fen", "principal_fen", "penalty_fen"):
            paid[name] += part[name]
        column = SOURCE_COLUMNS.get(part["source"], BANK_COLUMN)
        paid[column] += part["interest_fen"] + part["principal_fen"] + part["penalty_fen"]
    paid_on = max((part["paid_on"] for part in parts), default=None)
    cleared = (paid["interest_fen"], paid["principal_fen"]) == (row["interest_fen"], row["principal_fen"])
    settled_on = paid_on if cleared else as_of
    late = settled_on is not None and settled_on > row["on_time_until"]
    days_overdue = (settled_on - row["due_on"]).days if late and row["due_on"] <= as_of else 0
    return {**row, **{f"paid_{k}": v for k, v in paid.items() if k in ("interest_fen", "principal_fen",
                                                                       "penalty_fen")},
            **{k: v for k, v in paid.items() if k.startswith("from_")}, "paid_on": paid_on, "cleared": cleared,
            "days_overdue": max(days_overdue, 0)}
