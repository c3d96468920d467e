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

A refusal no longer sends the whole batch one at a time: the refused command is set aside (it runs alone
after the others), the others are read again from the store and run together again, at most
``SPLITS_MAX`` times; a conflict at the save (a writer outside the batch) still runs each alone.

``AggregateCache`` keeps what a batch saved for the next batch of the same committing thread (the API's),
so a loan posted to twice a minute is not decoded from its snapshot twice a minute. A cached aggregate is
used only when the store's latest version of it is still the cached one (one statement for the whole
batch); anything else — another process wrote it, a batch was abandoned with it half changed — drops it
and it is read from the store as before. A stale aggregate could not be saved anyway (its next version
exists: the save conflicts); the version check also keeps decisions that only read it exact.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Sequence
from uuid import UUID

from eventsourcing.persistence import IntegrityError

from ledger.aggregates.documents import IdempotencyRecord
from ledger.aggregates.base import recording

BATCH_COMMANDS_MAX = 256
SPLITS_MAX = 4  # refused commands set aside before the rest of a batch runs one at a time
CACHE_AGGREGATES_MAX = 4096
VERSION_IN_LIST_MAX = 500

logger = logging.getLogger(__name__)


class AggregateCache:
    """Aggregates saved by earlier batches, used again only while the store has no later version of them.

    Owned by one thread (the API's committing thread): not thread-safe, and never shared between
    ledgers. Bounded (least recently used out)."""

    def __init__(self, size: int = CACHE_AGGREGATES_MAX):
        self.size = size
        self._items: OrderedDict[UUID, Any] = OrderedDict()
        self.hits = self.misses = self.stale = 0

    def __len__(self) -> int:
        return len(self._items)

    def fresh(self, app: Any, ids: Iterable[UUID]) -> dict[UUID, Any]:
        """The cached aggregates among ``ids`` whose version is the store's latest; the others dropped."""
        wanted = list(dict.fromkeys(i for i in ids if i in self._items))
        if not wanted:
            return {}
        versions = stored_versions(app, wanted)
        found = {}
        for aggregate_id in wanted:
            aggregate = self._items[aggregate_id]
            if versions is not None and versions.get(aggregate_id) == aggregate.version \
                    and not aggregate.pending_events:
                found[aggregate_id] = aggregate
                self._items.move_to_end(aggregate_id)
            else:
                del self._items[aggregate_id]
                self.stale += 1
        self.hits += len(found)
        return found

    def keep(self, aggregates: Iterable[Any]) -> None:
        """Aggregates just saved (no pending events): as the store now has them."""
        for aggregate in aggregates:
            if aggregate.pending_events:
                self._items.pop(aggregate.id, None)
                continue
            self._items[aggregate.id] = aggregate
            self._items.move_to_end(aggregate.id)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def forget(self, ids: Iterable[UUID]) -> None:
        for aggregate_id in ids:
            self._items.pop(aggregate_id, None)

    def clear(self) -> None:
        self._items.clear()


def stored_versions(app: Any, ids: list[UUID]) -> dict[UUID, int] | None:
    """The latest stored version of each of ``ids`` (absent ids left out) in a statement or two; None for
    a store without SQL here (then nothing is taken from the cache)."""
    from ledger.bulk import engine_of

    recorder = app.recorder
    engine = engine_of(recorder)
    found: dict[UUID, int] = {}
    if engine == "sqlite":
        table = recorder.events_table_name
        for start in range(0, len(ids), VERSION_IN_LIST_MAX):
            chunk = ids[start:start + VERSION_IN_LIST_MAX]
            statement = (f"SELECT originator_id, MAX(originator_version) AS version FROM {table} "
                         f"WHERE originator_id IN ({','.join('?' * len(chunk))}) GROUP BY originator_id")
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(statement, [i.hex for i in chunk])
                found.update((recorder.convert_originator_id(r["originator_id"]), r["version"])
                             for r in cursor.fetchall())
        return found
    if engine == "postgres":
        from psycopg.sql import SQL, Identifier

        statement = SQL("SELECT originator_id, MAX(originator_version) AS version FROM {schema}.{table} "
                        "WHERE originator_id = ANY(%s) GROUP BY originator_id").format(
            schema=Identifier(recorder.datastore.schema), table=Identifier(recorder.events_table_name.split(".")[-1]))
        with recorder.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(statement, [ids])
            return {r["originator_id"]: r["version"] for r in cursor.fetchall()}
    return None


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


def execute_batch(app: Any, commands: Sequence[Command], cache: AggregateCache | None = None) -> list[Outcome]:
    """Run ``commands`` in as few transactions as their guarantees allow (module docstring); ``cache``: the
    aggregates earlier batches of the same thread saved (``AggregateCache``)."""
    assert len(commands) <= BATCH_COMMANDS_MAX, len(commands)
    assert all(command.key for command in commands), "a batched command carries its idempotency key"
    outcomes = [Outcome() for _ in commands]
    together: list[int] = []
    later: list[int] = []
    keys: set[str | None] = set()
    seen = _prefetch(app, commands, range(len(commands)), cache)
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
    for split in range(SPLITS_MAX + 1):
        if not together:
            break
        if split:
            seen = _prefetch(app, commands, together, cache)
        failed = _run_together(app, commands, together, outcomes, seen, cache)
        if failed is None:
            together = []
        elif failed < 0 or split == SPLITS_MAX:  # a conflict at the save, or refusal after refusal
            later.extend(together)
            together = []
        else:  # set the refused one aside: it runs alone, after the others (and is refused there, alone)
            later.append(failed)
            together = [index for index in together if index != failed]
    for index in sorted(later):
        outcomes[index] = _run_alone(app, commands[index])
    return outcomes


def _prefetch(app: Any, commands: Sequence[Command], indexes: Iterable[int],
              cache: AggregateCache | None) -> dict[UUID, Any]:
    """The commands' aggregates and idempotency records in a few statements; aggregates still current in
    ``cache`` are taken from it (the version check is one statement)."""
    wanted = list(dict.fromkeys(i for index in indexes for i in commands[index].prefetch))
    app.identity = dict(cache.fresh(app, wanted)) if cache is not None else {}
    try:
        app.load_many(wanted)
        return dict(app.identity)  # aggregates read, and ids read and found absent (ledger.bulk.ABSENT)
    finally:
        app.identity = None


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
                  seen: dict[UUID, Any], cache: AggregateCache | None = None) -> int | None:
    """One transaction for ``indexes``: None when it committed; else nothing was saved and the answer is
    the index of the command whose body raised, or -1 (the save itself failed: a conflict)."""
    from ledger.application import content_hash

    app.identity = dict(seen)
    running = -1
    saved = False
    try:
        touched: dict[UUID, Any] = {}
        records, results = [], {}
        with recording(app.clock.now()):
            for index in indexes:
                running = index
                command = commands[index]
                result, aggregates = command.body()
                for aggregate in aggregates:
                    touched[aggregate.id] = aggregate
                results[index] = result
                if command.key:
                    digest = content_hash({"command": command.name, **command.content})
                    records.append(IdempotencyRecord(key=command.key, command=command.name, content_hash=digest,
                                                     result=result))
            running = -1
            app.before_save(list(touched.values()))
        try:
            app.save(*[a for a in touched.values() if a.pending_events], *records)
        except Exception as error:
            if type(error).__name__ != "AuditChainLagError":
                raise
            # The events committed; the audit chain catches up at the next extend (AUD-1), as in ``execute``.
            logger.warning("a batch committed but the audit chain lags: %s", error.__cause__)
        saved = True
    except (IntegrityError, Exception):  # noqa: B014 - any failure: nothing saved, the caller splits
        return running
    finally:
        if cache is not None:
            if saved:
                cache.keep(touched.values())
            else:  # what this batch read may be half changed in memory
                cache.forget(app.identity or ())
        app.identity = None
        app.history_ids.clear()
    for index, result in results.items():
        outcomes[index].result = result
    return None
