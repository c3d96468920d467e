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


def test_compact_form_is_small_and_older_generic_snapshots_still_load():
    book = worked_book()
    compact = LoanBookAsData().encode(book)
    assert compact["$book"] == 3 and len(compact["rows"]) == 7 * len(book.head)
    assert len(json.dumps(compact)) * 3 < len(json.dumps(encode(book))), "the compact form is much smaller"
    generic = json.loads(json.dumps(encode(book)))  # what snapshots held before the compact form
    assert len(generic["v"]) == 14, "the generic form never holds the unbuilt tail"
    assert LoanBookAsData().decode(generic) == book
    assert LoanBookAsData().decode(json.loads(json.dumps(compact))) == book


def older_format(book: LoanBook) -> dict:
    """Format 2 as it was written before the folded prefix: the tail as explicit fen rows."""
    data = json.loads(json.dumps(LoanBookAsData().encode(book)))
    assert data.pop("pruned")[0] == 0 and data.pop("allocation_count") == len(book.allocations)
    if book.tail is not None:
        rows = book.tail.copy().rows()
        data["tail"] = [book.tail.next_number, str(book.tail.annual_rate), *(v for row in rows for v in row)]
    data["$book"] = 2
    return data


def test_format_2_compact_snapshots_with_their_tail_rows_still_load():
    for book in (worked_book(), young_book()):
        copy = LoanBookAsData().decode(json.loads(json.dumps(older_format(book))))
        assert copy == book and copy.instalment_count == book.instalment_count == 360
        assert copy.account(360).instalment == book.account(360).instalment


def test_format_1_compact_snapshots_with_allocations_in_the_history_still_load():
    book = worked_book()
    data = older_format(book)
    history = data["history"]
    data["history"] = history[:1] + [encode(book.allocations)] + history[1:]  # format 1's order
    del data["allocations"]
    data["$book"] = 1
    assert LoanBookAsData().decode(json.loads(json.dumps(data))) == book


def young_book() -> LoanBook:
    terms = LoanTerms(Money("500000.00"), 360, Decimal("2.85"), "equal-instalment", date(2025, 1, 15))
    book = LoanBook.open(terms, WorkingCalendar())
    book.allocate(book.amount_due(date(2025, 2, 17)), date(2025, 2, 17))
    return book


def test_a_young_book_keeps_its_schedule_as_integer_rows_until_reached():
    book = young_book()
    assert len(book.head) < 5 and book.tail is not None
    data = json.loads(json.dumps(LoanBookAsData().encode(book)))
    assert len(data["tail"]) == 6  # the recurrence's state, not 2 × (360 - built) integers
    copy = LoanBookAsData().decode(data)
    assert copy == book and copy.outstanding_principal == book.outstanding_principal
    assert copy.account(360).instalment == book.account(360).instalment
    assert copy.status(date(2026, 1, 1)) == book.status(date(2026, 1, 1))


@pytest.mark.parametrize("spoil", [
    lambda data: data["rows"].__setitem__(1, 1.5),  # a float where fen are expected
    lambda data: data["rows"].__setitem__(1, True),
    lambda data: data["rows"].pop(),  # a short row
    lambda data: data["paid"].append("x"),
    lambda data: data.__setitem__("extra", 1),
    lambda data: data.__setitem__("terms", {"$dc": "os.system", "v": []}),
    lambda data: data["rows"].__setitem__(1, data["rows"][1] + 1),  # principal no longer conserved
    lambda data: data["tail"].__setitem__(1, data["tail"][1] + 1) if data["tail"] else data.pop("tail"),
    lambda data: data["tail"].__setitem__(0, 1) if data["tail"] else data.pop("tail"),  # numbering gap
    lambda data: data["allocations"].pop(),                                # a truncated allocation
    lambda data: data["allocations"].__setitem__(2, 0.5) if data["allocations"] else data.pop("allocations"),
])
@pytest.mark.parametrize("make", ["worked", "young"])
def test_a_spoilt_compact_book_is_refused(spoil, make):
    data = json.loads(json.dumps(LoanBookAsData().encode(worked_book() if make == "worked" else young_book())))
    spoil(data)
    with pytest.raises((SnapshotCodecError, AssertionError)):
        LoanBookAsData().decode(data)
