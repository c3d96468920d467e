"""A safe, explicit codec for the loan book in snapshots (no pickle: a snapshot row must never run code).

A snapshot is a cache of an aggregate's state; the events stay the record.
The ``Loan`` aggregate holds a :class:`~ledger.loan_book.LoanBook`, a tree of
plain dataclasses; this codec turns it into JSON-friendly dicts and back,
accepting only the classes registered here (anything else raises).
"""

from __future__ import annotations

import dataclasses
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from eventsourcing.persistence import Transcoding

from ledger import loan_book, loan_math
from ledger.calendar import WorkingCalendar
from ledger.money import Money

DATACLASSES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        loan_book.LoanBook, loan_book.LoanTerms, loan_book.PaidPart, loan_book.InstalmentAccount,
        loan_book.InstalmentPart, loan_book.Allocation, loan_book.Crystallisation, loan_book.Waiver,
        loan_book.WaiverEffect, loan_book.Reversal, loan_book.PrepaymentQuote, loan_book.Prepayment,
        loan_book.PayoffQuote, loan_book.Payoff, loan_book.RateChange, loan_math.Instalment, loan_math.DateRange,
        loan_math.PaidOn,
    )
}
DEPTH_MAX = 40
GENERIC_BOOK_SKIPPED = ("tail", "pruned", "allocation_count")  # not in the generic (oldest) form


class SnapshotCodecError(TypeError):
    """A value of a type the codec does not know: never guessed, never executed."""


def encode(value: Any, depth: int = 0) -> Any:
    if depth > DEPTH_MAX:
        raise SnapshotCodecError("structure too deep")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Money):
        return {"$m": str(value)}
    if isinstance(value, Decimal):
        return {"$d": str(value)}
    if isinstance(value, date):
        return {"$date": value.isoformat()}
    if isinstance(value, WorkingCalendar):
        return {"$cal": [[d.isoformat() for d in sorted(value.extra_holidays)],
                         [d.isoformat() for d in sorted(value.extra_workdays)]]}
    if isinstance(value, (list, tuple)):
        return {"$t" if isinstance(value, tuple) else "$l": [encode(v, depth + 1) for v in value]}
    if dataclasses.is_dataclass(value) and type(value).__name__ in DATACLASSES:
        names = [f.name for f in dataclasses.fields(value) if f.init]
        if isinstance(value, loan_book.LoanBook):
            value.accounts  # noqa: B018 - the generic form holds the whole schedule, built
            names = [name for name in names if name not in GENERIC_BOOK_SKIPPED]
        values = [encode(getattr(value, name), depth + 1) for name in names]
        return {"$dc": type(value).__name__, "v": values}  # positional: field names once, in the class
    raise SnapshotCodecError(f"cannot encode {type(value).__name__}")


def decode(data: Any, depth: int = 0) -> Any:
    if depth > DEPTH_MAX:
        raise SnapshotCodecError("structure too deep")
    if data is None or isinstance(data, (bool, int, str)):
        return data
    if not isinstance(data, dict) or len(data) not in (1, 2):
        raise SnapshotCodecError(f"unexpected snapshot value {type(data).__name__}")
    if "$m" in data:
        return Money.stored(data["$m"])
    if "$d" in data:
        return Decimal(data["$d"])
    if "$date" in data:
        return date.fromisoformat(data["$date"])
    if "$cal" in data:
        holidays, workdays = data["$cal"]
        return WorkingCalendar([date.fromisoformat(d) for d in holidays], [date.fromisoformat(d) for d in workdays])
    if "$t" in data:
        return tuple(decode(v, depth + 1) for v in data["$t"])
    if "$l" in data:
        return [decode(v, depth + 1) for v in data["$l"]]
    if "$dc" in data:
        cls = DATACLASSES.get(data["$dc"])
        if cls is None:
            raise SnapshotCodecError(f"unknown class {data['$dc']!r} in a snapshot")
        names = [f.name for f in dataclasses.fields(cls) if f.init]
        if cls is loan_book.LoanBook:  # generic snapshots (before the compact form) hold the whole schedule
            names = [name for name in names if name not in GENERIC_BOOK_SKIPPED]
        if len(names) != len(data["v"]):
            raise SnapshotCodecError(f"{cls.__name__}: {len(data['v'])} values for {len(names)} fields")
        made = cls(**{name: decode(v, depth + 1) for name, v in zip(names, data["v"])})
        if isinstance(made, loan_book.LoanBook):
            made.allocation_count = len(made.allocations)
        return made
    raise SnapshotCodecError(f"unexpected snapshot keys {sorted(data)}")


# -- the compact book ------------------------------------------------------------------------
# A 360-month book is ~360 instalment accounts; the generic form above spends ~25 ms decoding one
# (a dict per Money, per date, per dataclass). The compact form keeps the instalments as one flat
# list of integers (dates as ordinals, amounts in fen) and the paid parts as another, so a loan
# loads from its snapshot in about the time it takes to open a new book. The rest of the book
# (terms, waivers, allocations, ...) is small and keeps the generic form.

BOOK_FORMAT = 3  # 3: the folded prefix and the tail as the LN-3 recurrence's state (ADR 0015); 2: allocations
# as flat integers too; 1 kept them in the history (1 and 2 are read still)
ROW_WIDTH = 7  # due date, principal, interest, payment, outstanding (fen), rate index, on-time days after due
PAID_WIDTH = 5  # row index, value date, allocation number, interest, principal (fen)
ALLOCATION_WIDTH = 9  # number, date, amount, penalty crystallised, penalty, interest, principal, excess, parts
PART_WIDTH = 3  # instalment number, interest, principal (fen)
HISTORY_V1 = ("waivers", "allocations", "reversals", "crystallisations", "prepayments", "rate_changes", "payoff",
              "penalty_paid")
HISTORY = tuple(name for name in HISTORY_V1 if name != "allocations")


def _fen(money: Money) -> int:
    return int(money.amount.scaleb(2))


def encode_book(book: loan_book.LoanBook, with_terms: bool = True) -> dict[str, Any]:
    """The compact form; ``with_terms=False`` leaves out the terms and calendar, which a loan snapshot
    derives from the loan's own terms (they are the same values)."""
    rates: list[str] = []
    rows: list[int] = []
    paid: list[int] = []
    for index, account in enumerate(book.head):
        instalment, rate = account.instalment, str(account.annual_rate)
        if rate not in rates:
            rates.append(rate)
        due = instalment.due_on.toordinal()
        rows += (due, _fen(instalment.principal), _fen(instalment.interest), _fen(instalment.payment),
                 _fen(instalment.outstanding), rates.index(rate), account.on_time_until.toordinal() - due)
        for part in account.paid:
            paid += (index, part.on.toordinal(), part.allocation_number, _fen(part.interest), _fen(part.principal))
    return {
        "$book": BOOK_FORMAT,
        "terms": encode(book.terms) if with_terms else None,
        "calendar": encode(book.calendar) if with_terms else None,
        "dates": [book.last_on.toordinal(), book.crystallised_through.toordinal()],
        "rate_steps": [[day.toordinal(), str(rate)] for day, rate in book.rate_steps],
        "rates": rates,
        "rows": rows,
        "paid": paid,
        "history": [encode(getattr(book, name)) for name in HISTORY],
        "allocations": _encode_allocations(book.allocations),
        "tail": _encode_tail(book.tail),
        "pruned": _encode_pruned(book.pruned),
        "allocation_count": book.allocation_count,
    }


def _encode_pruned(pruned: loan_book.PrunedPrefix) -> list[Any]:
    return [pruned.count, _fen(pruned.principal), str(pruned.product), pruned.missed_run, pruned.missed_longest,
            pruned.missed_total, _day(pruned.last_due_on), _day(pruned.through), str(pruned.watermark),
            _fen(pruned.penalty_charged), _fen(pruned.prepaid), pruned.prepayments, pruned.last_allocation]


def _decode_pruned(data: Any) -> loan_book.PrunedPrefix:
    if not isinstance(data, list) or len(data) != 13:
        raise SnapshotCodecError("book pruned prefix: 13 values expected")
    (count, principal, product, run, longest, total, last_due, through, watermark, charged, prepaid, prepayments,
     last_allocation) = data
    _ints([count, principal, run, longest, total, charged, prepaid, prepayments, last_allocation], 1, "pruned")
    from_fen = Money.from_fen
    return loan_book.PrunedPrefix(count, from_fen(principal), Decimal(product), run, longest, total,
                                  _from_day(last_due), _from_day(through), Decimal(watermark), from_fen(charged),
                                  from_fen(prepaid), prepayments, last_allocation)


def _day(value: date | None) -> int | None:
    return value.toordinal() if value is not None else None


def _from_day(value: Any) -> date | None:
    if value is None:
        return None
    return date.fromordinal(_ints([value], 1, "date")[0])


def _encode_allocations(allocations: list[loan_book.Allocation]) -> list[int]:
    flat: list[int] = []
    for a in allocations:
        flat += (a.number, a.on.toordinal(), _fen(a.amount), _fen(a.penalty_crystallised), _fen(a.penalty),
                 _fen(a.interest), _fen(a.principal), _fen(a.excess), len(a.parts))
        for part in a.parts:
            flat += (part.number, _fen(part.interest), _fen(part.principal))
    return flat


def _decode_allocations(data: Any) -> list[loan_book.Allocation]:
    flat = _ints(data, 1, "allocations")
    from_fen, allocations, at = Money.from_fen, [], 0
    try:
        while at < len(flat):
            number, on, amount, crystallised, penalty, interest, principal, excess, count = \
                flat[at:at + ALLOCATION_WIDTH]
            at += ALLOCATION_WIDTH
            parts = []
            for _ in range(count):
                part_number, part_interest, part_principal = flat[at:at + PART_WIDTH]
                parts.append(loan_book.InstalmentPart(part_number, from_fen(part_interest), from_fen(part_principal)))
                at += PART_WIDTH
            allocations.append(loan_book.Allocation(
                number, date.fromordinal(on), from_fen(amount), from_fen(crystallised), from_fen(penalty),
                from_fen(interest), from_fen(principal), from_fen(excess), tuple(parts)))
    except ValueError:  # a short group does not unpack
        raise SnapshotCodecError("book allocations: truncated") from None
    return allocations


def _encode_tail(tail: loan_book.ScheduleTail | None) -> list[Any] | None:
    """The unbuilt instalments as the recurrence's state: [next number, outstanding, months left, payment,
    part, rate] (format 3)."""
    if tail is None:
        return None
    return [tail.next_number, tail.outstanding, tail.months_left, tail.payment, tail.part, str(tail.annual_rate)]


def _decode_tail(data: Any, version: int) -> loan_book.ScheduleTail | None:
    if data is None:
        return None
    if version >= 3:
        if not isinstance(data, list) or len(data) != 6 or not isinstance(data[5], str):
            raise SnapshotCodecError("book tail: [number, outstanding, months, payment, part, rate] expected")
        number, outstanding, months = _ints(data[:3], 1, "tail")
        payment, part = (None if value is None else _ints([value], 1, "tail")[0] for value in data[3:5])
        return loan_book.ScheduleTail(number, outstanding, months, payment, part, Decimal(data[5]))
    # formats 1 and 2: [next number, rate, principal, interest, ...] rows, turned into the recurrence's state
    if not isinstance(data, list) or len(data) < 4 or not isinstance(data[1], str):
        raise SnapshotCodecError("book tail: [number, rate, fen pairs...] expected")
    first_number, rows = _ints(data[:1], 1, "tail")[0], _ints(data[2:], 2, "tail")
    try:
        return loan_book.ScheduleTail.from_rows(first_number, list(zip(rows[0::2], rows[1::2])), Decimal(data[1]))
    except loan_book.TailError as exc:
        raise SnapshotCodecError(f"book tail: {exc}") from None


def _ints(data: Any, width: int, name: str) -> list[int]:
    if not isinstance(data, list) or len(data) % width or any(type(value) is not int for value in data):
        raise SnapshotCodecError(f"book {name}: a flat list of integers in groups of {width} expected")
    return data


def decode_book(data: dict[str, Any], terms: Any = None, calendar: Any = None) -> loan_book.LoanBook:
    keys = {"$book", "terms", "calendar", "dates", "rate_steps", "rates", "rows", "paid", "history", "tail"}
    version = data.get("$book")
    if not ((version == 1 and set(data) == keys) or (version == 2 and set(data) == keys | {"allocations"})
            or (version == BOOK_FORMAT and set(data) == keys | {"allocations", "pruned", "allocation_count"})):
        raise SnapshotCodecError(f"unexpected book snapshot keys {sorted(data)}")
    if data["terms"] is not None:
        terms, calendar = decode(data["terms"]), decode(data["calendar"])
    if not isinstance(terms, loan_book.LoanTerms) or not (calendar is None or isinstance(calendar, WorkingCalendar)):
        raise SnapshotCodecError("book snapshot: terms or calendar of the wrong type")
    last_on, crystallised_through = (date.fromordinal(day) for day in _ints(data["dates"], 2, "dates"))
    rates = [Decimal(rate) for rate in data["rates"] if isinstance(rate, str)]
    if len(rates) != len(data["rates"]):
        raise SnapshotCodecError("book rates: strings expected")
    rows, paid = _ints(data["rows"], ROW_WIDTH, "rows"), _ints(data["paid"], PAID_WIDTH, "paid")
    pruned = _decode_pruned(data["pruned"]) if version >= 3 else loan_book.PrunedPrefix()
    from_fen, fromordinal = Money.from_fen, date.fromordinal
    Instalment, InstalmentAccount = loan_math.Instalment, loan_book.InstalmentAccount
    accounts = []
    payments: dict[int, Money] = {}
    for start in range(0, len(rows), ROW_WIDTH):
        due, principal, interest, payment, outstanding, rate, on_time_days = rows[start:start + ROW_WIDTH]
        paying = payments.get(payment)
        if paying is None:
            paying = payments[payment] = from_fen(payment)
        due_on = fromordinal(due)
        instalment = Instalment(pruned.count + start // ROW_WIDTH + 1, due_on, from_fen(principal), from_fen(interest), paying,
                                from_fen(outstanding))
        accounts.append(InstalmentAccount(instalment, rates[rate], due_on + timedelta(days=on_time_days)))
    for start in range(0, len(paid), PAID_WIDTH):
        index, on, allocation, interest, principal = paid[start:start + PAID_WIDTH]
        accounts[index].add(loan_book.PaidPart(fromordinal(on), allocation, from_fen(interest), from_fen(principal)))
    history, names = data["history"], HISTORY_V1 if version == 1 else HISTORY
    if not isinstance(history, list) or len(history) != len(names):
        raise SnapshotCodecError("book history: one value per field expected")
    steps = data["rate_steps"]
    if not isinstance(steps, list) or any(not isinstance(step, list) or len(step) != 2 for step in steps):
        raise SnapshotCodecError("book rate steps: [ordinal, rate] pairs expected")
    rate_steps = [(fromordinal(_ints([day], 1, "rate_steps")[0]), Decimal(str(rate))) for day, rate in steps]
    values = {name: decode(value) for name, value in zip(names, history)}
    if version != 1:
        values["allocations"] = _decode_allocations(data["allocations"])
    count = data["allocation_count"] if version >= 3 else len(values["allocations"])
    return loan_book.LoanBook(terms, accounts, rate_steps, last_on, crystallised_through, calendar, **values,
                              tail=_decode_tail(data["tail"], version), pruned=pruned,
                              allocation_count=_ints([count], 1, "allocation_count")[0])


class LoanBookAsData(Transcoding):
    """eventsourcing transcoding for ``LoanBook`` in Loan snapshots."""

    type = loan_book.LoanBook
    name = "loan_book"

    def encode(self, obj: loan_book.LoanBook) -> Any:
        return encode_book(obj)

    def decode(self, data: Any) -> loan_book.LoanBook:
        # snapshots written before the compact form keep the generic one: both are read
        book = decode_book(data) if isinstance(data, dict) and "$book" in data else decode(data)
        if not isinstance(book, loan_book.LoanBook):
            raise SnapshotCodecError("a loan_book snapshot value is not a LoanBook")
        book.check_invariants()
        return book
