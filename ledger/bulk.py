"""Load many aggregates in a few SQL statements (the hot paths: imports, interest, offset runs).

``repository.get`` costs a few round trips per aggregate; a batch of a
thousand accounts loaded together costs a few statements in all (STACK-NOTES:
this is what lifts the monthly run from hundreds to thousands of loans a
second). Rows are decoded through the application's own mapper, so the
result is exactly what ``repository.get`` would give: the latest snapshot,
then the events after it, applied in version order.
"""

from __future__ import annotations

from typing import Any, Iterable
from uuid import UUID

from eventsourcing.persistence import StoredEvent

IN_LIST_MAX = 500


def _sqlite_rows(recorder: Any, table: str, ids: list[UUID]) -> list[StoredEvent]:
    rows: list[StoredEvent] = []
    for start in range(0, len(ids), IN_LIST_MAX):
        chunk = ids[start:start + IN_LIST_MAX]
        marks = ",".join("?" * len(chunk))
        statement = (f"SELECT originator_id, originator_version, topic, state FROM {table} "
                     f"WHERE originator_id IN ({marks}) ORDER BY originator_id, originator_version")
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, [i.hex for i in chunk])
            rows.extend(StoredEvent(originator_id=recorder.convert_originator_id(r["originator_id"]),
                                    originator_version=r["originator_version"], topic=r["topic"], state=r["state"])
                        for r in cursor.fetchall())
    return rows


def _postgres_rows(recorder: Any, table: str, ids: list[UUID]) -> list[StoredEvent]:
    from psycopg.sql import SQL, Identifier

    statement = SQL("SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
                    "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version").format(
        schema=Identifier(recorder.datastore.schema), table=Identifier(table))
    with recorder.datastore.get_connection() as connection, connection.cursor() as cursor:
        cursor.execute(statement, [ids])
        return [StoredEvent(originator_id=r["originator_id"], originator_version=r["originator_version"],
                            topic=r["topic"], state=bytes(r["state"])) for r in cursor.fetchall()]


def existing_ids(app: Any, ids: Iterable[UUID]) -> set[UUID]:
    """Which of ``ids`` have events (their first version), without decoding anything: the cheap
    "already done?" check of a re-run (STACK-NOTES: check first, keep the derived id as the safety net)."""
    wanted = list(dict.fromkeys(ids))
    recorder, found = app.recorder, set()
    module = type(recorder).__module__
    if module.startswith("eventsourcing.sqlite"):
        for start in range(0, len(wanted), IN_LIST_MAX):
            chunk = wanted[start:start + IN_LIST_MAX]
            statement = (f"SELECT originator_id FROM {recorder.events_table_name} WHERE originator_version = 1 "
                         f"AND originator_id IN ({','.join('?' * len(chunk))})")
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(statement, [i.hex for i in chunk])
                found.update(recorder.convert_originator_id(r["originator_id"]) for r in cursor.fetchall())
        return found
    if module.startswith("eventsourcing.postgres"):
        from psycopg.sql import SQL, Identifier

        statement = SQL("SELECT originator_id FROM {schema}.{table} WHERE originator_version = 1 "
                        "AND originator_id = ANY(%s)").format(
            schema=Identifier(recorder.datastore.schema),
            table=Identifier(recorder.events_table_name.split(".")[-1]))
        with recorder.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(statement, [wanted])
            return {r["originator_id"] for r in cursor.fetchall()}
    return set(_one_by_one(app, wanted))


def _select(recorder: Any, ids: list[UUID]) -> list[StoredEvent]:
    table = recorder.events_table_name
    if type(recorder).__module__.startswith("eventsourcing.sqlite"):
        return _sqlite_rows(recorder, table, ids)
    if type(recorder).__module__.startswith("eventsourcing.postgres"):
        return _postgres_rows(recorder, table.split(".")[-1], ids)
    return []  # another store (e.g. in-memory): load_many falls back to the repository


def load_many(app: Any, ids: Iterable[UUID]) -> dict[UUID, Any]:
    """Aggregates by id (ids with no events are absent), as ``repository.get`` would return them."""
    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    if not type(app.recorder).__module__.startswith(("eventsourcing.sqlite", "eventsourcing.postgres")):
        return _one_by_one(app, wanted)
    snapshots: dict[UUID, StoredEvent] = {}
    if app.snapshots is not None:
        for stored in _select(app.snapshots.recorder, wanted):
            snapshots[stored.originator_id] = stored  # ordered by version: the last one wins
    aggregates: dict[UUID, Any] = {}
    for originator_id, stored in snapshots.items():
        aggregates[originator_id] = app.mapper.to_domain_event(stored).mutate(None)
    for stored in _select(app.recorder, wanted):
        current = aggregates.get(stored.originator_id)
        if current is not None and stored.originator_version <= current.version:
            continue
        aggregates[stored.originator_id] = app.mapper.to_domain_event(stored).mutate(current)
    return aggregates


def _one_by_one(app: Any, ids: list[UUID]) -> dict[UUID, Any]:
    """The plain path for stores this module has no SQL for: the repository, one aggregate at a time."""
    from eventsourcing.application import AggregateNotFoundError

    found = {}
    for aggregate_id in ids:
        try:
            found[aggregate_id] = app.repository.get(aggregate_id)
        except AggregateNotFoundError:
            continue
    return found
