"""The loan's snapshot: its decision state, folded and written compactly (issue 14, ADR 0015).

``encode`` folds the loan first (``Loan.compact``: cleared, decided instalments and what only they
concern, the payments that can no longer be reversed, the operations log) and writes the rest:
the book through ``ledger.snapshot_codec.encode_book`` (integers, the schedule's tail as the LN-3
recurrence's state), the other fields as plain JSON with tagged amounts and dates. ``decode`` gives
the aggregate back. A loan ten years into repayment snapshots in about the size of a new one.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from ledger.money import Money

FORMAT = 2
FIELDS = ("loan_no", "borrower_name", "borrower_id", "spouse_id", "principal", "months", "method", "second_home",
          "price", "monthly_income", "bank", "card", "applied_on", "eligibility", "state", "terms", "disbursed_on",
          "closed_on", "ops", "payments", "accrued", "defaulted_on", "mandate_id", "op_count", "history_complete",
          "suspense_carried", "regular_since")
DEPTH_MAX = 12


class LoanSnapshotError(ValueError):
    """A compact loan snapshot that does not have the shape this module writes."""


def plain(value: Any, depth: int = 0) -> Any:
    """JSON with tags: {"m": money}, {"d": decimal}, {"t": date ordinal}, {"u": uuid}, {"o": dict}."""
    if depth > DEPTH_MAX:
        raise LoanSnapshotError("structure too deep")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, Money):
        return {"m": str(value)}
    if isinstance(value, Decimal):
        return {"d": str(value)}
    if isinstance(value, date) and not isinstance(value, datetime):
        return {"t": value.toordinal()}
    if isinstance(value, UUID):
        return {"u": str(value)}
    if isinstance(value, dict):
        return {"o": {str(k): plain(v, depth + 1) for k, v in value.items()}}
    if isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in value]
    raise LoanSnapshotError(f"cannot write {type(value).__name__} in a loan snapshot")


def unplain(data: Any, depth: int = 0) -> Any:
    if depth > DEPTH_MAX:
        raise LoanSnapshotError("structure too deep")
    if data is None or isinstance(data, (bool, int, str)):
        return data
    if isinstance(data, list):
        return [unplain(v, depth + 1) for v in data]
    if not isinstance(data, dict) or len(data) != 1:
        raise LoanSnapshotError(f"unexpected loan snapshot value {type(data).__name__}")
    (tag, inner), = data.items()
    if tag == "m":
        return Money.stored(inner)
    if tag == "d":
        return Decimal(inner)
    if tag == "t":
        return date.fromordinal(inner)
    if tag == "u":
        return UUID(inner)
    if tag == "o":
        return {k: unplain(v, depth + 1) for k, v in inner.items()}
    raise LoanSnapshotError(f"unknown tag {tag!r} in a loan snapshot")


def encode(loan: Any) -> dict[str, Any]:
    """The compact snapshot state of ``loan`` (folded first: the live aggregate keeps deciding the same)."""
    from ledger.snapshot_codec import encode_book

    loan.compact()
    state = {name: plain(getattr(loan, name)) for name in FIELDS}
    state["refunds"] = plain(loan.__dict__.get("refunds", []))
    state["book"] = encode_book(loan._book) if loan._book is not None else None
    state["f"] = FORMAT
    state["created"] = loan._created_on.isoformat()
    state["modified"] = loan._modified_on.isoformat()
    return state


def decode(state: dict[str, Any], originator_id: UUID, version: int) -> Any:
    from ledger.aggregates.loan import Loan
    from ledger.snapshot_codec import LoanBookAsData

    if not isinstance(state, dict) or state.get("f") != FORMAT:
        raise LoanSnapshotError(f"not a format-{FORMAT} loan snapshot")
    loan = object.__new__(Loan)
    values = {name: unplain(state[name]) for name in FIELDS}
    book = LoanBookAsData().decode(state["book"]) if state["book"] is not None else None
    if book is not None:
        book.owner = originator_id
    loan.__dict__.update(values, _id=originator_id, _version=version, _pending_events=[], _book=book,
                         _live_op=None, _created_on=datetime.fromisoformat(state["created"]),
                         _modified_on=datetime.fromisoformat(state["modified"]))
    refunds = unplain(state["refunds"])
    if refunds:
        loan.__dict__["refunds"] = refunds
    return loan


def decision_state(loan: Any) -> dict[str, Any]:
    """What two copies of a loan must agree on: the compact state without its timestamps."""
    import copy

    state = encode(copy.deepcopy(loan))
    state.pop("created")
    state.pop("modified")
    return state
