"""Group commit: several commands in one transaction, each still exactly-once and all-or-nothing.

A bank's real-time postings arrive many at a time; one transaction (one fsync, one chain extension, one
anchor) each costs more than the posting itself. ``execute_batch`` runs the bodies of a batch of commands
one after another on shared aggregates (the application's identity map: a second posting on the same
loan sees the first one's payment, as if they had come one after another), then saves what they all
produced, with every command's idempotency record, in one ``save``.

Each command keeps its guarantees:
- a repeat of a key returns the first result (checked before the batch runs); the same key twice in one
  batch runs the second after the first has committed;
- a refusal must leave everything as it was, and a body that fails part-way may already have changed a
  shared aggregate: so the first refusal (or a version conflict, or an aggregate needing its history)
  abandons the batch unsaved and every command of it runs on its own (``execute``), the refused one
  refused alone. Refusals are rare on the hot path; correctness never depends on the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from ledger.aggregates.documents import IdempotencyRecord
from ledger.aggregates.base import recording

BATCH_COMMANDS_MAX = 256


@dataclass
class Command:
    """One command: what ``LedgerBase.execute`` takes, and the ids its body will load (read together)."""

    name: str
    key: str | None
    content: dict[str, Any]
    body: Callable[[], tuple[dict[str, Any], Sequence[Any]]]
    prefetch: tuple[UUID, ...] = field(default_factory=tuple)


@dataclass
class Outcome:
    result: dict[str, Any] | None = None
    error: BaseException | None = None


def execute_batch(app: Any, commands: Sequence[Command]) -> list[Outcome]:
    """Run ``commands`` in as few transactions as their guarantees allow (module docstring)."""
    from ledger.application import content_hash

    assert len(commands) <= BATCH_COMMANDS_MAX, len(commands)
    assert all(command.key for command in commands), "a batched command carries its idempotency key"
    outcomes = [Outcome() for _ in commands]
    together, later, keys = [], [], set()
    app.identity = {}
    try:  # every command's prefetch (its aggregates, its idempotency record) in a few statements
        app.load_many(i for command in commands for i in command.prefetch)
        seen = dict(app.identity)  # aggregates read, and ids read and found absent (ledger.bulk.ABSENT)
    finally:
        app.identity = None
    for index, command in enumerate(commands):
        if command.key and command.key in keys:
            later.append(index)
            continue
        keys.add(command.key)
        try:
            first = _idempotent_result(app, seen, command)
        except Exception as error:  # the key was used for other content: refused, alone
            outcomes[index].error = error
            continue
        if first is not None:
            outcomes[index].result = first
        else:
            together.append(index)
    if together and not _run_together(app, commands, together, outcomes, seen):
        later = sorted(together + later)
    for index in later:
        outcomes[index] = _run_alone(app, commands[index])
    return outcomes


def _idempotent_result(app: Any, seen: dict[UUID, Any], command: Command) -> dict[str, Any] | None:
    """The first result of the command's key (a repeat), from the batch's prefetch when it was read there."""
    from ledger.application import content_hash

    digest = content_hash({"command": command.name, **command.content})
    record_id = IdempotencyRecord.create_id(command.key)
    from ledger.bulk import ABSENT

    if seen.get(record_id) is ABSENT:
        return None  # read with the prefetch: no record, the key is new
    return app._idempotent_result(command.key, digest)


def _run_alone(app: Any, command: Command) -> Outcome:
    try:
        return Outcome(result=app.execute(command.name, command.key, command.content, command.body))
    except Exception as error:  # returned to its caller; the others are not disturbed
        return Outcome(error=error)


def _run_together(app: Any, commands: Sequence[Command], indexes: list[int], outcomes: list[Outcome],
                  seen: dict[UUID, Any]) -> bool:
    """One transaction for ``indexes``; False (nothing saved) at the first refusal or conflict."""
    from ledger.application import content_hash

    app.identity = dict(seen)
    try:
        touched: dict[UUID, Any] = {}
        records, results = [], {}
        with recording(app.clock.now()):
            for index in indexes:
                command = commands[index]
                result, aggregates = command.body()
                for aggregate in aggregates:
                    touched[aggregate.id] = aggregate
                results[index] = result
                if command.key:
                    digest = content_hash({"command": command.name, **command.content})
                    records.append(IdempotencyRecord(key=command.key, command=command.name, content_hash=digest,
                                                     result=result))
            app.before_save(list(touched.values()))
        app.save(*[a for a in touched.values() if a.pending_events], *records)
    except (IntegrityError, Exception):  # noqa: B014 - any failure: each command runs on its own
        return False
    finally:
        app.identity = None
        app.history_ids.clear()
    for index, result in results.items():
        outcomes[index].result = result
    return True
