"""A safe, explicit codec for the loan book in snapshots (no pickle: a snapshot row must never run code).

A snapshot is a cache of an aggregate's state; the events stay the record.
The ``Loan`` aggregate holds a :class:`~ledger.loan_book.LoanBook`, a tree of
plain dataclasses; this codec turns it into JSON-friendly dicts and back,
accepting only the classes registered here (anything else raises).
"""

from __future__ import annotations

import dataclasses
from datetime import date
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
        values = [encode(getattr(value, f.name), depth + 1) for f in dataclasses.fields(value) if f.init]
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
        return Money(data["$m"])
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
        if len(names) != len(data["v"]):
            raise SnapshotCodecError(f"{cls.__name__}: {len(data['v'])} values for {len(names)} fields")
        return cls(**{name: decode(v, depth + 1) for name, v in zip(names, data["v"])})
    raise SnapshotCodecError(f"unexpected snapshot keys {sorted(data)}")


class LoanBookAsData(Transcoding):
    """eventsourcing transcoding for ``LoanBook`` in Loan snapshots."""

    type = loan_book.LoanBook
    name = "loan_book"

    def encode(self, obj: loan_book.LoanBook) -> Any:
        return encode(obj)

    def decode(self, data: Any) -> loan_book.LoanBook:
        book = decode(data)
        if not isinstance(book, loan_book.LoanBook):
            raise SnapshotCodecError("a loan_book snapshot value is not a LoanBook")
        book.check_invariants()
        return book
