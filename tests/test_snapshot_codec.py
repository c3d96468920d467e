"""Loan snapshots: the loan book round-trips exactly through the safe codec; unknown types are refused."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from ledger.calendar import WorkingCalendar
from ledger.loan_book import LoanBook, LoanTerms
from ledger.money import Money
from ledger.snapshot_codec import LoanBookAsData, SnapshotCodecError, decode, encode


def worked_book() -> LoanBook:
    terms = LoanTerms(Money("500000.00"), 360, Decimal("2.85"), "equal-instalment", date(2025, 1, 15))
    book = LoanBook.open(terms, WorkingCalendar())
    book.allocate(Money("1200.00"), date(2025, 2, 17))
    book.allocate(Money("867.79"), date(2025, 2, 25))
    book.allocate(book.amount_due(date(2025, 3, 17)), date(2025, 3, 17))
    book.add_waiver(date(2025, 4, 16), date(2025, 4, 30), date(2025, 4, 1))
    book.prepay(Money("10000.00"), date(2025, 4, 1), "reduce-payment")
    return book


def test_book_round_trips_through_json_and_keeps_its_answers():
    book = worked_book()
    copy = LoanBookAsData().decode(json.loads(json.dumps(LoanBookAsData().encode(book))))
    assert copy == book
    for day in (date(2025, 4, 20), date(2025, 6, 30)):
        assert copy.status(day) == book.status(day)
    assert copy.allocate(Money("100.00"), date(2025, 5, 1)) == book.allocate(Money("100.00"), date(2025, 5, 1))


def test_unknown_classes_are_refused_never_executed():
    with pytest.raises(SnapshotCodecError):
        decode({"$dc": "os.system", "v": ["echo no"]})
    with pytest.raises(SnapshotCodecError):
        encode(object())
    with pytest.raises(SnapshotCodecError):
        decode({"$dc": "Instalment", "v": [1]})  # wrong field count
