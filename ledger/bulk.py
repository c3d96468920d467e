"""Load many aggregates in a few SQL statements (the hot paths: imports, interest, offset runs).

``repository.get`` costs a few round trips per aggregate; a batch of a
thousand accounts loaded together costs a few statements in all (STACK-NOTES:
this is what lifts the monthly run from hundreds to thousands of loans a
second). Rows are decoded through the application's own mapper, so the
result is exactly what ``repository.get`` would give: the latest snapshot,
then the events after it, applied in version order — and only those rows are
read (an account with ten years of contributions has a snapshot and a few
events after it, not 130 events and every older snapshot to skip).
"""

from __future__ import annotations

from typing import Any, Iterable
from uuid import UUID

from eventsourcing.persistence import StoredEvent

IN_LIST_MAX = 500
ABSENT = object()  # in a batch's identity map: an id read and found to have no events
REPAIR_EVENTS_MIN = 20  # an aggregate replayed from this many events (no usable snapshot) gets one written


def engine_of(recorder: Any) -> str | None:
    """"sqlite", "postgres" or None (a store this module has no SQL for), by the recorder's class."""
    from eventsourcing.postgres import PostgresAggregateRecorder
    from eventsourcing.sqlite import SQLiteAggregateRecorder

    if isinstance(recorder, SQLiteAggregateRecorder):
        return "sqlite"
    if isinstance(recorder, PostgresAggregateRecorder):
        return "postgres"
    return None


def _sqlite_rows(recorder: Any, table: str, ids: list[UUID], after: dict[UUID, int] | None = None,
                 latest: bool = False) -> list[StoredEvent]:
    """The rows of ``ids``: all of them, only the latest of each (a snapshot), or only those after a version."""
    rows: list[StoredEvent] = []
    for start in range(0, len(ids), IN_LIST_MAX):
        chunk = ids[start:start + IN_LIST_MAX]
        marks = ",".join("?" * len(chunk))
        parameters: list[Any] = [i.hex for i in chunk]
        if latest:
            statement = (f"SELECT originator_id, originator_version, topic, state FROM {table} AS s "
                         f"WHERE originator_id IN ({marks}) AND originator_version = "
                         f"(SELECT MAX(originator_version) FROM {table} WHERE originator_id = s.originator_id)")
        elif after:
            values = ",".join("(?, ?)" for _ in chunk)
            statement = (f"WITH wanted(id, version) AS (VALUES {values}) "
                         f"SELECT e.originator_id, e.originator_version, e.topic, e.state FROM wanted "
                         f"JOIN {table} AS e ON e.originator_id = wanted.id AND e.originator_version > wanted.version "
                         "ORDER BY e.originator_id, e.originator_version")
            parameters = [value for i in chunk for value in (i.hex, after.get(i, 0))]
        else:
            statement = (f"SELECT originator_id, originator_version, topic, state FROM {table} "
                         f"WHERE originator_id IN ({marks}) ORDER BY originator_id, originator_version")
        uuids = {i.hex: i for i in chunk} if recorder.datastore.originator_id_type == "uuid" else None
        with recorder.datastore.transaction(commit=False) as cursor:
            raw = getattr(cursor, "sqlite_cursor", None)
            if raw is None or uuids is None:  # not the cursor this was written for: the general way
                cursor.execute(statement, parameters)
                rows.extend(StoredEvent(originator_id=recorder.convert_originator_id(r["originator_id"]),
                                        originator_version=r["originator_version"], topic=r["topic"],
                                        state=r["state"]) for r in cursor.fetchall())
                continue
            raw.row_factory = None  # plain tuples; the ids read are the ids asked for (no UUID parsed per row)
            raw.execute(statement, parameters)
            rows.extend(StoredEvent(originator_id=uuids[i], originator_version=v, topic=t, state=s)
                        for i, v, t, s in raw.fetchall())
    return rows


def _postgres_rows(recorder: Any, table: str, ids: list[UUID], after: dict[UUID, int] | None = None,
                   latest: bool = False) -> list[StoredEvent]:
    from psycopg.sql import SQL, Identifier

    names = {"schema": Identifier(recorder.datastore.schema), "table": Identifier(table)}
    parameters: list[Any] = [ids]
    if latest:
        statement = SQL("SELECT DISTINCT ON (originator_id) originator_id, originator_version, topic, state "
                        "FROM {schema}.{table} WHERE originator_id = ANY(%s) "
                        "ORDER BY originator_id, originator_version DESC").format(**names)
    elif after:
        # LATERAL: an index probe per aggregate whatever the planner believes of the table (a bulk-loaded
        # store not yet analysed had it hash-join the whole log: half a second a batch)
        statement = SQL("SELECT e.originator_id, e.originator_version, e.topic, e.state "
                        "FROM unnest(%b::uuid[], %b::bigint[]) AS wanted(id, version) CROSS JOIN LATERAL "
                        "(SELECT * FROM {schema}.{table} AS x WHERE x.originator_id = wanted.id "
                        "AND x.originator_version > wanted.version OFFSET 0) AS e "
                        "ORDER BY e.originator_id, e.originator_version").format(**names)
        parameters = [ids, [after.get(i, 0) for i in ids]]
    else:
        statement = SQL("SELECT originator_id, originator_version, topic, state FROM {schema}.{table} "
                        "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version").format(**names)
    with recorder.datastore.get_connection() as connection, connection.cursor() as cursor:
        cursor.execute(statement, parameters)
        return [StoredEvent(originator_id=r["originator_id"], originator_version=r["originator_version"],
                            topic=r["topic"], state=bytes(r["state"])) for r in cursor.fetchall()]


def existing_ids(app: Any, ids: Iterable[UUID]) -> set[UUID]:
    """Which of ``ids`` have events (their first version), without decoding anything: the cheap
    "already done?" check of a re-run (STACK-NOTES: check first, keep the derived id as the safety net)."""
    wanted = list(dict.fromkeys(ids))
    recorder, found = app.recorder, set()
    engine = engine_of(recorder)
    if engine == "sqlite":
        for start in range(0, len(wanted), IN_LIST_MAX):
            chunk = wanted[start:start + IN_LIST_MAX]
            statement = (f"SELECT originator_id FROM {recorder.events_table_name} WHERE originator_version = 1 "
                         f"AND originator_id IN ({','.join('?' * len(chunk))})")
            with recorder.datastore.transaction(commit=False) as cursor:
                cursor.execute(statement, [i.hex for i in chunk])
                found.update(recorder.convert_originator_id(r["originator_id"]) for r in cursor.fetchall())
        return found
    if engine == "postgres":
        from psycopg.sql import SQL, Identifier

        statement = SQL("SELECT originator_id FROM {schema}.{table} WHERE originator_version = 1 "
                        "AND originator_id = ANY(%s)").format(
            schema=Identifier(recorder.datastore.schema),
            table=Identifier(recorder.events_table_name.split(".")[-1]))
        with recorder.datastore.get_connection() as connection, connection.cursor() as cursor:
            cursor.execute(statement, [wanted])
            return {r["originator_id"] for r in cursor.fetchall()}
    return set(_one_by_one(app, wanted))


def _select(recorder: Any, ids: list[UUID], after: dict[UUID, int] | None = None,
            latest: bool = False) -> list[StoredEvent]:
    table = recorder.events_table_name
    engine = engine_of(recorder)
    if engine == "sqlite":
        return _sqlite_rows(recorder, table, ids, after, latest)
    if engine == "postgres":
        return _postgres_rows(recorder, table.split(".")[-1], ids, after, latest)
    return []  # another store (e.g. in-memory): load_many falls back to the repository


def load_many(app: Any, ids: Iterable[UUID]) -> dict[UUID, Any]:
    """Aggregates by id (ids with no events are absent), as ``repository.get`` would return them.

    An aggregate the command in progress needs whole (``app.history_ids``), or whose compact snapshot
    cannot take one of its later events (``HistoryRequired``), is replayed from all its events."""
    from ledger.aggregates.base import HistoryRequired
    from ledger.snapshot_seal import SnapshotRejected

    wanted = list(dict.fromkeys(ids))
    if not wanted:
        return {}
    identity = getattr(app, "identity", None)
    if identity is not None:  # a batch of commands shares its aggregates (ledger.command_batch)
        shared = {i: identity[i] for i in wanted if i in identity}
        missing = [i for i in wanted if i not in shared]
        loaded = load_many(_WithoutIdentity(app), missing)
        identity.update(loaded)
        identity.update((i, ABSENT) for i in missing if i not in loaded)  # known to have no events
        return {i: a for i, a in {**shared, **loaded}.items() if a is not ABSENT}
    if engine_of(app.recorder) is None:
        return _one_by_one(app, wanted)
    history = getattr(app, "history_ids", ())  # read once: a property of the thread's command
    whole = [i for i in wanted if i in history]
    whole_set = set(whole)  # membership of ``whole`` (a list: replayed in the order found)
    asked_whole = set(whole)  # the ids the command wants whole (not ``compact``)
    compact = [i for i in wanted if i not in whole_set] if whole else wanted
    snapshots: dict[UUID, StoredEvent] = {}
    if app.snapshots is not None and compact:
        for stored in _select(app.snapshots.recorder, compact, latest=True):  # each aggregate's latest only
            snapshots[stored.originator_id] = stored
    aggregates: dict[UUID, Any] = {}
    repair: set[UUID] = set()
    mapper = app.snapshots.mapper if app.snapshots is not None else app.mapper
    for originator_id, stored in snapshots.items():
        try:
            aggregates[originator_id] = mapper.to_domain_event(stored).mutate(None)
        except HistoryRequired as need:  # a snapshot not believed, or one it cannot use: the events
            app.note_rejected(need)
            whole.append(originator_id)
            whole_set.add(originator_id)
            if not isinstance(need, SnapshotRejected):
                repair.add(originator_id)  # another snapshot format: write today's
    after = {originator_id: aggregate.version for originator_id, aggregate in aggregates.items()}
    to_domain_event = app.mapper.to_domain_event
    for stored in _select(app.recorder, [i for i in compact if i not in whole_set], after=after):
        originator_id = stored.originator_id
        if originator_id in whole_set:
            continue
        current = aggregates.get(originator_id)
        if current is not None and stored.originator_version <= current.version:
            continue
        try:
            aggregates[originator_id] = to_domain_event(stored).mutate(current)
        except HistoryRequired:
            whole.append(originator_id)
            whole_set.add(originator_id)
            aggregates.pop(originator_id, None)
    for aggregate_id in whole:
        try:
            aggregates[aggregate_id] = app.replay_whole(aggregate_id)
        except Exception as error:  # no events at all: absent, as for the others
            if type(error).__name__ != "AggregateNotFoundError":
                raise
    intervals = getattr(app, "snapshotting_intervals", {}) or {}
    if intervals:
        repair.update(i for i, aggregate in aggregates.items() if aggregate.version >= REPAIR_EVENTS_MIN
                      and i not in snapshots and i not in asked_whole and type(aggregate) in intervals)
    if repair and hasattr(app, "write_snapshots"):
        app.write_snapshots([aggregates[i] for i in repair if i in aggregates and not aggregates[i].pending_events],
                            replace_older=True)
    return aggregates


class _WithoutIdentity:
    """The application seen without its batch identity map (so ``load_many`` loads from the store)."""

    identity = None

    def __init__(self, app: Any):
        self._app = app

    def __getattr__(self, name: str) -> Any:
        return getattr(self._app, name)


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
