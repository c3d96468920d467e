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

FORMAT = 4  # 4: the loan's fields as one positional row, payments as integer rows, the book without its terms
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


SOURCE_CODES = ("borrower-fund", "spouse-fund", "card", "api", "counter", "penalty-refund", "suspense")
SIDES = ("Dr", "Cr")


def _fen(money: Money) -> int:
    return int(money.amount.scaleb(2))


def _encode_payment(payment: dict[str, Any]) -> list[Any]:
    """[allocation, on, source, reference, amount, reversed, penalty, interest, principal, excess,
    [part number, interest, principal ...], [journal account, side, amount ...]] in fen and ordinals."""
    figures = payment["figures"]
    parts = [value for number, interest, principal in figures["parts"]
             for value in (number, _fen(interest), _fen(principal))]
    journal = [value for line in payment["journal"]
               for value in (line["account"], SIDES.index(line["side"]), _fen(line["amount"]))]
    source = payment["source"]
    return [payment["allocation"], payment["on"].toordinal(),
            SOURCE_CODES.index(source) if source in SOURCE_CODES else source, payment["reference"],
            _fen(payment["amount"]), payment["reversed"], _fen(figures["penalty"]), _fen(figures["interest"]),
            _fen(figures["principal"]), _fen(figures["excess"]), parts, journal]


def _decode_payment(row: list[Any]) -> dict[str, Any]:
    allocation, on, source, reference, amount, reversed_, penalty, interest, principal, excess, parts, journal = row
    fen = Money.from_fen
    return {"allocation": allocation, "on": date.fromordinal(on),
            "source": SOURCE_CODES[source] if isinstance(source, int) else source, "reference": reference,
            "amount": fen(amount), "figures": {
                "number": allocation, "penalty": fen(penalty), "interest": fen(interest),
                "principal": fen(principal), "excess": fen(excess),
                "parts": [[parts[i], fen(parts[i + 1]), fen(parts[i + 2])] for i in range(0, len(parts), 3)]},
            "journal": [{"account": journal[i], "side": SIDES[journal[i + 1]], "amount": fen(journal[i + 2])}
                        for i in range(0, len(journal), 3)],
            "reversed": reversed_}


def _day(value: date | None) -> int | None:
    return value.toordinal() if value is not None else None


def _from_day(value: int | None) -> date | None:
    return date.fromordinal(value) if value is not None else None


def _hex(value: UUID | None) -> str | None:
    return value.hex if value is not None else None


def _from_hex(value: str | None) -> UUID | None:
    return UUID(hex=value) if value is not None else None


def encode(loan: Any) -> dict[str, Any]:
    """The compact snapshot state of ``loan`` (folded first: the live aggregate keeps deciding the same)."""
    from ledger.snapshot_codec import encode_book

    loan.compact()
    fen = _fen
    return {
        "f": FORMAT, "created": loan._created_on.isoformat(), "modified": loan._modified_on.isoformat(),
        "loan": [loan.loan_no, loan.borrower_name, _hex(loan.borrower_id), _hex(loan.spouse_id), fen(loan.principal),
                 loan.months, loan.method, loan.second_home, fen(loan.price), fen(loan.monthly_income), loan.bank,
                 loan.card, _day(loan.applied_on), loan.state, _day(loan.disbursed_on), _day(loan.closed_on),
                 _day(loan.defaulted_on), _hex(loan.mandate_id), loan.op_count, loan.history_complete,
                 fen(loan.suspense_carried), _day(loan.regular_since)],
        "terms": plain(loan.terms), "eligibility": plain(loan.eligibility), "ops": plain(loan.ops),
        "accrued": [value for number, amount in loan.accrued.items() for value in (int(number), fen(amount))],
        "payments": [_encode_payment(p) for p in loan.payments],
        "refunds": plain(loan.__dict__.get("refunds", [])),
        "book": encode_book(loan._book, with_terms=False) if loan._book is not None else None,
    }


def decode(state: dict[str, Any], originator_id: UUID, version: int) -> Any:
    from ledger.aggregates.loan import Loan, _calendar_from, _terms_from
    from ledger.snapshot_codec import decode_book

    if not isinstance(state, dict) or state.get("f") != FORMAT:
        raise LoanSnapshotError(f"not a format-{FORMAT} loan snapshot")
    (loan_no, borrower_name, borrower_id, spouse_id, principal, months, method, second_home, price, income, bank,
     card, applied_on, status, disbursed_on, closed_on, defaulted_on, mandate_id, op_count, complete, suspense,
     regular_since) = state["loan"]
    fen, accrued = Money.from_fen, state["accrued"]
    terms = unplain(state["terms"])
    loan = object.__new__(Loan)
    loan.__dict__.update(
        _id=originator_id, _version=version, _pending_events=[], _live_op=None,
        _created_on=datetime.fromisoformat(state["created"]), _modified_on=datetime.fromisoformat(state["modified"]),
        loan_no=loan_no, borrower_name=borrower_name, borrower_id=_from_hex(borrower_id),
        spouse_id=_from_hex(spouse_id), principal=fen(principal), months=months, method=method,
        second_home=second_home, price=fen(price), monthly_income=fen(income), bank=bank, card=card,
        applied_on=_from_day(applied_on), eligibility=unplain(state["eligibility"]), state=status, terms=terms,
        disbursed_on=_from_day(disbursed_on), closed_on=_from_day(closed_on), defaulted_on=_from_day(defaulted_on),
        mandate_id=_from_hex(mandate_id), op_count=op_count, history_complete=complete,
        suspense_carried=fen(suspense), regular_since=_from_day(regular_since), ops=unplain(state["ops"]),
        accrued={str(accrued[i]): fen(accrued[i + 1]) for i in range(0, len(accrued), 2)},
        payments=[_decode_payment(row) for row in state["payments"]], _book=None)
    if state["book"] is not None:
        book = decode_book(state["book"], _terms_from(terms), _calendar_from(terms))
        book.check_invariants()
        book.owner = originator_id
        loan.__dict__["_book"] = book
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
