"""Shared ground of every aggregate: recorded time, value dates, journal lines, ids.

MNY-2: aggregates never read the clock. The application opens a
:func:`recording` context with the time the ledger accepts a command, and every
event created inside it carries that instant as its ``timestamp`` (the MNY-4
*recorded time*). An event created outside such a context is a programming
error and fails loudly.

GL-1: an event that moves money carries its journal entry as ``journal``, a
list of lines ``{"account", "side", "amount"}`` whose debits equal credits;
the trial balance is the sum of those lines (ADR 0002).
"""

from __future__ import annotations

import contextlib
import contextvars
import functools
import uuid
from datetime import date, datetime
from typing import Any, Iterator

from eventsourcing.domain import Aggregate

from ledger.money import ZERO, Money
from ledger.rules import HistoryRequired, LedgerRuleError  # noqa: F401  (re-exported: every layer raises it)

NAMESPACE = uuid.UUID("6f1d8f0a-93c4-4a53-9a4e-2b1b5c0f9a11")

_recorded_at: contextvars.ContextVar[datetime | None] = contextvars.ContextVar(
    "gjj_recorded_at", default=None
)


class NoRecordingTimeError(RuntimeError):
    """An event was created outside ``recording()``: the entry point forgot the time."""


@contextlib.contextmanager
def recording(at: datetime) -> Iterator[datetime]:
    """Give every event created inside the block the recorded time ``at``."""
    if not isinstance(at, datetime) or at.tzinfo is None:
        raise ValueError("recorded time must be a timezone-aware datetime")
    token = _recorded_at.set(at)
    try:
        yield at
    finally:
        _recorded_at.reset(token)


def current_recorded_time() -> datetime:
    at = _recorded_at.get()
    if at is None:
        raise NoRecordingTimeError("events may only be created inside ledger.aggregates.base.recording()")
    return at


def derive_id(kind: str, *parts: Any) -> uuid.UUID:
    """A deterministic aggregate id from a natural key (exactly-once by construction)."""
    return _derived(f"{kind}:{'|'.join(str(p) for p in parts)}")


@functools.lru_cache(maxsize=1 << 16)
def _derived(name: str) -> uuid.UUID:
    """uuid5 of a name (remembered: a batch derives each account's, loan's and deduction's id several times)."""
    return uuid.uuid5(NAMESPACE, name)


class LedgerAggregate(Aggregate):
    """Aggregate whose events take their timestamp from ``recording()``."""

    class Event(Aggregate.Event):
        @staticmethod
        def create_timestamp() -> datetime:
            return current_recorded_time()

    class Created(Event, Aggregate.Created):
        pass


def journal_line(account: str, side: str, amount: Money) -> dict[str, Any]:
    assert side in ("Dr", "Cr"), side
    return {"account": account, "side": side, "amount": amount}


def balanced(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Assert debits = credits (GL-1) and drop zero lines."""
    kept = [line for line in lines if not line["amount"].is_zero]
    debits = Money.sum(line["amount"] for line in kept if line["side"] == "Dr")
    credits = Money.sum(line["amount"] for line in kept if line["side"] == "Cr")
    if debits != credits:
        raise AssertionError(f"unbalanced journal entry: Dr {debits} != Cr {credits}: {kept}")
    for line in kept:
        if line["amount"] < ZERO:
            raise AssertionError(f"negative journal line {line}")
    return kept


def mirror(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """COR-1: a reversal's journal is the original's with sides swapped."""
    return [
        {"account": line["account"], "side": "Cr" if line["side"] == "Dr" else "Dr", "amount": line["amount"]}
        for line in lines
    ]


def check_value_date(value_date: date, field: str = "value_date") -> date:
    if not isinstance(value_date, date) or isinstance(value_date, datetime):
        raise LedgerRuleError("a value date must be a calendar date", field=field, rule="MNY-4")
    return value_date
