"""The journal read table (GL-1): one row per journal line of every event that carries one.

Events carry their own journal entries (ADR 0002); ``ledger.services.books.journal_entries``
says which (value date, lines) an event holds, for every aggregate, the loan included. This
module turns them into ``rm_journal_lines`` rows, and tells the projector cheaply, from the
stored bytes, whether an event it has no topic handler for may carry journal lines at all.
"""

from __future__ import annotations

from typing import Any

from eventsourcing.persistence import Mapper, Notification

from ledger.projections import tables
from ledger.projections.batch import Batch, fen
from ledger.projections.registry import EventMeta
from ledger.services.books import journal_entries

JOURNAL_MARKERS = (b'"journal"', b'"entries"', b'"interest_adjustment"')


def may_carry_journal(mapper: Mapper[Any], notification: Notification) -> bool:
    """False only when the stored JSON names none of the journal attributes (no decode needed)."""
    if mapper.cipher is not None or mapper.compressor is not None:
        return True
    state = notification.state
    return any(marker in state for marker in JOURNAL_MARKERS)


def project_journal(batch: Batch, event: Any, meta: EventMeta) -> int:
    """Append the event's journal lines; returns how many entries it carried."""
    entries = 0
    for entry_no, (value_date, lines) in enumerate(journal_entries(event), start=1):
        entries += 1
        for line_no, line in enumerate(lines, start=1):
            batch.append(tables.journal_lines, {
                "position": meta.position, "entry_no": entry_no, "line_no": line_no, "value_date": value_date,
                "recorded_at_utc": meta.recorded_at_utc, "account": line["account"], "side": line["side"],
                "amount_fen": fen(line["amount"]), "source_type": meta.aggregate_type,
                "source_id": meta.aggregate_id, "source_version": meta.version, "event": meta.event_name,
            })
    return entries
