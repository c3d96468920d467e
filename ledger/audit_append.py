"""Extending the audit chain (AUD-1) in the same transaction as the events it covers.

A save's events are hashed from the domain events in memory (never by decoding what was
just stored): :func:`records_of` gives each event's canonical JSON with orjson, which writes
exactly what :func:`ledger.audit.canonical_json` writes for the values events hold (sorted
keys, no spaces, UTF-8, Decimal as its string, dates ISO 8601, UUIDs as text, registered
types as ``{"_type_", "_data_"}``); anything orjson cannot write the same way falls back to
the slow walk. The recorder subclasses below insert the events, then, with the same cursor
and before the commit, the chain rows of exactly those events and one anchor row:

- the chain head is read under the write lock (SQLite's, or an EXCLUSIVE lock of the chain
  table on PostgreSQL, taken before the events are inserted so that positions are handed
  out in commit order);
- any stored event between the chain head and this save's first position — a row appended
  behind the chain's back, or one a crashed older process left unchained — stops the save
  (``AuditTamperedError``): extending the chain over it would bury it. ``gjj audit verify``
  names it; ``gjj audit extend`` chains it once staff have judged it;
- each aggregate's previous link is read from the chain and must be the version just before
  this save's first event of that aggregate.

A failure anywhere rolls the whole save back: events are never stored unchained.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Sequence

import orjson
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder
from eventsourcing.utils import get_topic, retry
from eventsourcing.persistence import InterfaceError, OperationalError

from ledger.audit import (
    _CHAIN_COLUMNS as CHAIN_COLUMNS,
    _CHAIN_TYPES as CHAIN_TYPES,
    GENESIS_HASH,
    AuditDecodeError,
    AuditTamperedError,
    EventRecord,
    Head,
    canonical_json,
    link,
)

ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
# MNY-1: no event holds a float (the money type refuses them and every entry point parses text); the self-check
# (GJJ_AUDIT_SELFCHECK, on in the tests) compares every record with the decoded stored event all the same.
FLOATS_POSSIBLE = False
IN_LIST_MAX = 500
SNAPSHOT_COLUMNS = ("originator_id", "originator_version", "topic", "state")
SNAPSHOT_TYPES = ("uuid", "bigint", "text", "bytea")


class _SlowPath(Exception):
    """A value orjson would not write as the canonical walk does."""


def _default(transcoder: Any) -> Any:
    types = getattr(transcoder, "types", {})

    def default(value: Any) -> Any:
        transcoding = types.get(type(value))
        if transcoding is not None and transcoding.name == "money":
            return {"_type_": "money", "_data_": str(value)}
        if isinstance(value, Decimal):
            return str(value)
        if transcoding is not None:
            return {"_type_": transcoding.name, "_data_": transcoding.encode(value)}
        raise _SlowPath(type(value).__name__)

    return default


def canonical_fast(value: Any, transcoder: Any, default: Any = None) -> bytes:
    """``canonical_json(value, transcoder)``, written by orjson where it writes the same."""
    try:
        return orjson.dumps(value, default=default or _default(transcoder), option=ORJSON_OPTIONS)
    except (orjson.JSONEncodeError, _SlowPath, TypeError):
        return canonical_json(value, transcoder)


def _has_float(value: Any) -> bool:
    kind = type(value)
    if kind is float:
        return True
    if kind is dict:
        return any(_has_float(v) for v in value.values())
    if kind is list or kind is tuple:
        return any(_has_float(v) for v in value)
    return False


def records_of(events: Sequence[Any], transcoder: Any) -> list[EventRecord]:
    """The canonical JSON and state hash of each domain event, as ``ledger.audit.event_record``
    gives them for the stored event (the mapper's ``to_stored_event`` state, never upcast)."""
    default = _default(transcoder)
    records = []
    for event in events:
        document_json, state_json = canonical_pair(event, transcoder, default)
        records.append(EventRecord(canonical=document_json, state_hash=hashlib.sha256(state_json).hexdigest()))
    return records


def canonical_pair(event: Any, transcoder: Any, default: Any = None) -> tuple[bytes, bytes]:
    """One domain event's canonical document and canonical state (what the chain hashes); the bulk seeder
    fills its templates from the same function."""
    state = dict(vars(event))
    aggregate_id = state.pop("originator_id")
    version = state.pop("originator_version")
    class_version = getattr(type(event), "class_version", 1)
    if class_version > 1:
        state["class_version"] = class_version
    if FLOATS_POSSIBLE and _has_float(state):  # orjson writes some floats differently
        state_json, document_json = _slow_record(event, state, aggregate_id, version, transcoder)
        return document_json, state_json
    recorded_time = state.pop("timestamp", None)
    document = {"aggregate_id": str(aggregate_id), "version": version, "topic": get_topic(type(event)),
                "recorded_time": recorded_time, "state": state}
    document_json = canonical_fast(document, transcoder, default)
    state["timestamp"] = recorded_time
    return document_json, canonical_fast(state, transcoder, default)


def _slow_record(event: Any, state: dict[str, Any], aggregate_id: Any, version: int,
                 transcoder: Any) -> tuple[bytes, bytes]:
    body = dict(state)
    recorded_time = body.pop("timestamp", None)
    document = {"aggregate_id": str(aggregate_id), "version": version, "topic": get_topic(type(event)),
                "recorded_time": recorded_time, "state": body}
    return canonical_json(state, transcoder), canonical_json(document, transcoder)


# -- the appender ----------------------------------------------------------------------------------


@dataclass
class ChainAppender:
    """Writes chain rows and the anchor with the cursor of the transaction storing the events.

    ``chain`` is the application's :class:`ledger.audit.AuditChain` (table names, dialect).
    """

    chain: Any

    @property
    def store(self) -> Any:
        return self.chain.store

    def lock(self, cursor: Any) -> None:
        self.store.lock_chain(cursor)

    def head(self, cursor: Any) -> Head:
        cursor.execute(f"SELECT position, global_hash, chain_count FROM {self.store.chain} "
                       "ORDER BY position DESC LIMIT 1")
        row = cursor.fetchone()
        return Head(row["position"], row["global_hash"], row["chain_count"]) if row else Head(0, GENESIS_HASH, 0)

    def check_nothing_unchained(self, cursor: Any, head: Head, positions: Sequence[int]) -> None:
        """Under the write lock, every stored event after the chain head is one of this save's."""
        column = "rowid" if self.store.marker == "?" else "notification_id"
        # Bounded and in index order, so that no planner (PostgreSQL's, with a bulk-loaded table not yet
        # analysed) reads the whole log to count what lies past the head.
        cursor.execute(self.store.sql(f"SELECT COUNT(*) AS n FROM (SELECT {column} FROM {self.store.events} "
                                      f"WHERE {column} > ? ORDER BY {column} LIMIT ?) AS after_head"),
                       [head.position, len(positions) + 1])
        row = cursor.fetchone()
        if (row["n"] if row is not None else 0) == len(positions):
            return
        ours = set(positions)
        cursor.execute(self.store.sql(f"SELECT {column} AS p FROM {self.store.events} WHERE {column} > ? "
                                      f"ORDER BY {column}"), [head.position])
        found = next((r["p"] for r in cursor.fetchall() if r["p"] not in ours), None)
        raise AuditTamperedError(
            f"event at position {found} is stored after the chain head ({head.position}) but not chained: "
            "refusing to extend the chain over it; run `gjj audit verify` (AUD-1)")

    def previous_links(self, cursor: Any, stored: Sequence[StoredEvent]) -> dict[str, str]:
        """Each aggregate's last aggregate hash, checked to be the version before its first new event."""
        first_versions: dict[str, int] = {}
        for event in stored:
            key = str(event.originator_id)
            if key not in first_versions:
                first_versions[key] = event.originator_version
        wanted = [key for key, version in first_versions.items() if version > 1]
        found: dict[str, tuple[int, str]] = {}
        for start in range(0, len(wanted), IN_LIST_MAX):
            for row in self.store.last_links(cursor, wanted[start:start + IN_LIST_MAX]):
                found[row["originator_id"]] = (row["originator_version"], row["aggregate_hash"])
        links = {}
        for key, version in first_versions.items():
            if version == 1:
                links[key] = GENESIS_HASH
                continue
            previous = found.get(key)
            if previous is None or previous[0] != version - 1:
                chained = "nothing" if previous is None else f"version {previous[0]}"
                raise AuditTamperedError(f"aggregate {key}: the chain holds {chained}, the save starts at version "
                                         f"{version}: an earlier event of it is unchained (AUD-1)")
            links[key] = previous[1]
        return links

    def append(self, cursor: Any, positions: Sequence[int], stored: Sequence[StoredEvent],
               records: Sequence[EventRecord], snapshots: Sequence[Any] = ()) -> Head:
        """Chain ``stored`` (just inserted at ``positions``) and anchor the new head."""
        assert len(positions) == len(stored) == len(records), (len(positions), len(stored), len(records))
        head = self.head(cursor)
        self.check_nothing_unchained(cursor, head, positions)
        links = self.previous_links(cursor, stored)
        rows, global_hash, previous, count = [], head.hash, head.position, head.count
        for position, event, record in zip(positions, stored, records):
            key = str(event.originator_id)
            aggregate_hash = link(links[key], record.canonical)
            global_hash = link(global_hash, record.canonical)
            count += 1
            rows.append((position, previous if count > 1 else None, count, key, event.originator_version,
                         event.topic, record.state_hash, aggregate_hash, global_hash))
            links[key] = aggregate_hash
            previous = position
        self.store.insert_rows(cursor, self.store.chain, CHAIN_COLUMNS, CHAIN_TYPES, rows)
        new_head = Head(previous, global_hash, count)
        if self.chain.anchors.in_transaction:
            self.chain.anchors.append(new_head, cursor)
        if snapshots:
            self.store_snapshots(cursor, snapshots, links)
        return new_head

    def store_snapshots(self, cursor: Any, snapshots: Sequence[Any], links: dict[str, str],
                        replace_older: bool = True) -> None:
        """Sealed snapshots at the versions this save reached (``ledger.snapshot_seal``), each replacing
        the aggregate's older ones, in the events' transaction."""
        from ledger.snapshot_seal import sealed_state

        app = self.chain.app
        table = self.snapshot_table()
        rows, older = [], []
        for snapshot in snapshots:
            key = str(snapshot.originator_id)
            text = snapshot.state if "z" in snapshot.state else {"z": generic_text(app, snapshot.state)}
            state = sealed_state(app.snapshot_key, key, snapshot.originator_version, links[key], text)
            stored = app.mapper.to_stored_event(type(snapshot)(
                originator_id=snapshot.originator_id, originator_version=snapshot.originator_version,
                timestamp=snapshot.timestamp, topic=snapshot.topic, state=state))
            originator = stored.originator_id.hex if self.store.marker == "?" else stored.originator_id
            rows.append((originator, stored.originator_version, stored.topic, stored.state))
            older.append((originator, stored.originator_version))
        self.store.delete_versions(cursor, table, older, "<=" if replace_older else "=")
        self.store.insert_rows(cursor, table, SNAPSHOT_COLUMNS, SNAPSHOT_TYPES, rows)

    def snapshot_table(self) -> str:
        recorder = self.chain.app.snapshots.recorder
        name = recorder.events_table_name.split(".")[-1]
        return self.store.qualify(name)


# -- recorders ------------------------------------------------------------------------------------


class ChainedSQLiteApplicationRecorder(SQLiteApplicationRecorder):
    """SQLite: events and their chain rows in one transaction (the database's write lock serialises)."""

    audit_appender: ChainAppender | None = None

    def _insert_events(self, c: Any, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        records = kwargs.get("audit_records")
        positions = self._insert_many(c, stored_events) if records is not None and stored_events \
            else super()._insert_events(c, stored_events, **kwargs)
        if records is not None and self.audit_appender is not None and stored_events:
            assert positions is not None
            kwargs["audit_head"].append(self.audit_appender.append(c, positions, stored_events, records,
                                                                   kwargs.get("audit_snapshots", ())))
        return positions


    def _insert_many(self, c: Any, stored_events: Sequence[StoredEvent]) -> list[int]:
        """One statement for the batch; inside the write transaction rowids follow on from the largest, so the
        positions are the last rowid and the ones before it (checked on the first row)."""
        rows = [(e.originator_id.hex if hasattr(e.originator_id, "hex") else e.originator_id, e.originator_version,
                 e.topic, e.state) for e in stored_events]
        c.executemany(self.insert_events_statement, rows)
        c.execute("SELECT last_insert_rowid() AS last")
        last = c.fetchone()["last"]
        positions = list(range(last - len(rows) + 1, last + 1))
        c.execute(f"SELECT rowid AS position FROM {self.events_table_name} WHERE originator_id = ? "
                  "AND originator_version = ?", rows[0][:2])
        found = c.fetchone()
        if found is None or found["position"] != positions[0]:
            raise AuditTamperedError("the batch's rowids are not consecutive: refusing to chain by position (AUD-1)")
        return positions


class ChainedPostgresApplicationRecorder(PostgresApplicationRecorder):
    """PostgreSQL: the chain table is locked before the events are inserted, so positions follow the
    order in which saves commit, and the chain rows are written before the commit."""

    audit_appender: ChainAppender | None = None

    @retry((InterfaceError, OperationalError), max_attempts=10, wait=0.2)
    def insert_events(self, stored_events: Sequence[StoredEvent], **kwargs: Any) -> Sequence[int] | None:
        records = kwargs.get("audit_records")
        appender = self.audit_appender
        if records is None or appender is None or not stored_events:
            return super().insert_events(stored_events, **kwargs)
        with self.datastore.transaction(commit=True) as cursor:
            cursor.execute(f"SET LOCAL lock_timeout = '{self.datastore.lock_timeout}s'")
            appender.lock(cursor)
            positions = self._insert_returning(cursor, stored_events)
            kwargs["audit_head"].append(appender.append(cursor, positions, stored_events, records,
                                                        kwargs.get("audit_snapshots", ())))
        return positions

    def _insert_returning(self, cursor: Any, stored_events: Sequence[StoredEvent]) -> list[int]:
        """The events in one statement over four typed arrays, sent binary (the library's insert, with or
        without its database function, sends an array of a composite type, dumped as text field by field
        in Python: a third of a chained batch's time on PostgreSQL)."""
        from psycopg.sql import SQL, Identifier

        statement = SQL("INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
                        "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
                        "RETURNING notification_id").format(schema=Identifier(self.datastore.schema),
                                                            table=Identifier(self.events_table_name))
        cursor.execute(statement, [[e.originator_id for e in stored_events],
                                   [e.originator_version for e in stored_events],
                                   [e.topic for e in stored_events], [e.state for e in stored_events]])
        positions = [row["notification_id"] for row in cursor.fetchall()]
        if positions != sorted(positions):  # RETURNING gives the insertion order: positions must follow it
            raise AuditTamperedError("the batch's positions are not in insertion order: refusing to chain (AUD-1)")
        return positions


def generic_text(app: Any, state: dict[str, Any]) -> str:
    """A generic snapshot's state (``vars`` of the aggregate) as JSON text, through the application's
    transcoder (typed values tagged): what ``SealCheckingMapper`` decodes back after checking the seal."""
    return app.mapper.transcoder.encode(state).decode("utf-8")


def check_records(mapper: Any, stored: Sequence[StoredEvent], records: Sequence[EventRecord]) -> None:
    """Self-check (tests set ``GJJ_AUDIT_SELFCHECK``): the in-memory record equals the stored one."""
    from ledger.audit import event_record
    from eventsourcing.persistence import Notification

    for event, record in zip(stored, records):
        note = Notification(id=0, originator_id=event.originator_id, originator_version=event.originator_version,
                            topic=event.topic, state=event.state)
        expected = event_record(mapper, note)
        if expected != record:
            raise AuditDecodeError(f"in-memory canonical JSON differs from the stored event's: "
                                   f"{record.canonical[:200]!r} vs {expected.canonical[:200]!r} (AUD-1)")

