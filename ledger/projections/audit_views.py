"""Audit answers that set the events against the read side: the ``audit check`` and ``audit replay`` views.

:func:`check_read_models` recomputes every fund account's balance from the events alone
(the aggregates, replayed), and compares it with ``rm_accounts``, with the sum of the
account's ``rm_account_lines`` and, in total, with account 2001 of the journal — both the
journal the events carry and the projected ``rm_journal_lines`` (GL-2). It also compares the
two trial balances line by line. :func:`replay_view` shows any aggregate replayed to a
version, or as known at a recorded time, and for a fund account its balance as of a value
date (AUD-1, MNY-4).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from ledger.aggregates.fund_account import GL_FUND, FundAccount
from ledger.aggregates.parties import Member
from ledger.application import NotFoundError, as_str, chunked
from ledger.money import ZERO, Money
from ledger.projections.projector import Projector
from ledger.projections.queries import ReadModel

LOAD_BATCH_SIZE = 500
MISMATCHES_SHOWN_MAX = 100


def event_balances(ledger: Any) -> dict[str, Money]:
    """Every fund account's balance replayed from its events (snapshots included), in batches."""
    balances: dict[str, Money] = {}
    for batch in chunked(ledger.account_ids(), LOAD_BATCH_SIZE):
        for account in ledger.load_many(batch).values():
            balances[account.account_no] = account.balance
    return balances


def _account_mismatches(events: dict[str, Money], rows: dict[str, Money],
                        sums: dict[str, Money]) -> list[dict[str, str]]:
    found = []
    for account_no in sorted(set(events) | set(rows) | set(sums)):
        replayed, stored, summed = events.get(account_no), rows.get(account_no), sums.get(account_no, ZERO)
        if replayed is None or stored is None or not replayed == stored == summed:
            found.append({"account_no": account_no, "events": str(replayed), "read_model": str(stored),
                          "read_model_lines": str(summed)})
    return found


def check_read_models(ledger: Any, projector: Projector) -> dict[str, Any]:
    """GL-2 across the two sides: events vs read models vs the journal's 2001. Catches up first."""
    caught_up = projector.catch_up()
    read = ReadModel(projector.engine)
    events = event_balances(ledger)
    mismatches = _account_mismatches(events, read.account_balances(), read.line_sums())
    total = Money.sum(events.values())
    trial_events, trial_read = ledger.trial_balance(), read.trial_balance()
    journal_events, journal_read = trial_events.balance(GL_FUND), trial_read.balance(GL_FUND)
    trial_equal = trial_events.rows() == trial_read.rows()
    ok = not mismatches and total == journal_events == journal_read and trial_equal
    return {
        "ok": ok, "position": caught_up.position_to, "accounts": len(events),
        "sum_of_balances_from_events": str(total), "journal_2001_from_events": str(journal_events),
        "journal_2001_from_read_model": str(journal_read), "trial_balances_equal": trial_equal,
        "trial_balanced": trial_read.difference.is_zero, "mismatch_count": len(mismatches),
        "mismatches": mismatches[:MISMATCHES_SHOWN_MAX],
    }


# -- replay ------------------------------------------------------------------------------------
def resolve_aggregate_id(ledger: Any, reference: str) -> UUID:
    """A UUID, or a fund account number, a member's resident id, or a loan number."""
    text = reference.strip()
    try:
        return UUID(text)
    except ValueError:
        pass
    candidates = [FundAccount.create_id(text), Member.create_id(text.upper())]
    try:
        from ledger.aggregates.loan import Loan

        candidates.append(Loan.create_id(text))
    except ImportError:  # the loan aggregate is optional for this view
        pass
    for candidate in candidates:
        if ledger.find(candidate) is not None:
            return candidate
    raise NotFoundError(f"{reference!r} is neither an aggregate id nor a known account, member or loan",
                        "aggregate_id")


def _state_of(aggregate: Any) -> dict[str, Any]:
    state = {key: value for key, value in vars(aggregate).items() if not key.startswith("_")}
    return as_str(state)


def replay_view(ledger: Any, reference: str, version: int | None = None, as_of: date | None = None,
                known_at: datetime | None = None) -> dict[str, Any]:
    """The aggregate at ``version`` / as known at ``known_at``; a fund account also as of a value date."""
    aggregate_id = resolve_aggregate_id(ledger, reference)
    try:
        aggregate = ledger.audit.replay(aggregate_id, version, known_at=known_at)
    except AggregateNotFoundError as error:
        raise NotFoundError(str(error), "known_at" if known_at else "version") from None
    result: dict[str, Any] = {
        "aggregate_id": str(aggregate_id), "type": type(aggregate).__name__, "version": aggregate.version,
        "created_on": aggregate.created_on.isoformat(), "modified_on": aggregate.modified_on.isoformat(),
        "known_at": known_at.isoformat() if known_at else None, "state": _state_of(aggregate),
    }
    if as_of is not None and hasattr(aggregate, "balance_as_of"):
        result["as_of"] = as_of.isoformat()
        result["balance_as_of"] = str(aggregate.balance_as_of(as_of))
        result["movements_as_of"] = as_str([m for m in aggregate.movements if m[0] <= as_of])
    elif as_of is not None and hasattr(aggregate, "subledger_as_of"):
        result["as_of"] = as_of.isoformat()
        result["subledger_as_of"] = as_str(aggregate.subledger_as_of(as_of))
    elif as_of is not None:
        raise NotFoundError(f"a {type(aggregate).__name__} has no value-dated balance", "as_of")
    return result
