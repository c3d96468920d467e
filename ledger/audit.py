"""The audit hash chain over the event store (AUD-1), for any eventsourcing ``Application``.

Every stored event is linked into two SHA-256 chains: one per aggregate and one global
chain in notification (position) order. A link is ``SHA-256(previous hash hex ‖ canonical
JSON)`` where the canonical JSON is ``{"aggregate_id", "version", "topic", "recorded_time",
"state"}`` with keys sorted, no spaces, ``Decimal`` as its exact string, dates and datetimes
ISO 8601 and UUIDs as strings; a chain starts from ``GENESIS_HASH``. The recorded time is
the event's ``timestamp``; ``state`` is the rest of the stored state, decoded with the
application's own mapper (cipher, compressor, transcoder) but never upcast, so a hash does
not change when code changes. Chain rows live in ``<prefix>audit_chain`` in the same
database as the events; after every committed page of chain rows the global head
(position, hash, count) is appended to an append-only anchor outside the events table:
``<prefix>audit_anchor`` (guarded by triggers) or a JSON-lines file (``anchor_path`` or the
``AUDIT_ANCHOR_PATH`` setting). ``<prefix>`` is the events table name without ``events``:
``stored_`` on SQLite, ``<app name>_`` on PostgreSQL.

Database access: events are read only through
``app.recorder.select_notifications`` in pages; the chain and anchor tables are reached
through the *recorder's own datastore* (``SQLiteDatastore.transaction`` /
``PostgresDatastore.transaction``), so they share the event store's database, schema,
credentials and connection pool, and no second connection setting can drift from the
first. No connection is ever held while another is requested, so a pool of one suffices.
On PostgreSQL the readable end of the log is fixed under a brief ``SHARE`` lock of the
events table, so an insert whose sequence value is lower but commits later is never
skipped; gaps in positions (failed inserts consume sequence values) are never treated as
removals: only the chain rows say which positions existed.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
import enum
import hashlib
import hmac
import json
import os
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    IntegrityError,
    Mapper,
    Notification,
    OperationalError,
)
from eventsourcing.utils import strtobool

PAGE_SIZE = 1000
EXTEND_ATTEMPTS_MAX = 5
PROBLEMS_MAX = 1000
CODE_HEX_LENGTH = 16
ANCHOR_TAIL_BYTES = 4096
IDENTIFIER_LENGTH_MAX = 63
GENESIS_HASH = "0" * 64
POSITION_FLOOR = -(2**63)
ANCHOR_PATH_SETTING = "AUDIT_ANCHOR_PATH"

EDITED = "edited"
REMOVED = "removed"
INSERTED = "inserted"
REORDERED = "reordered"
TRUNCATED = "truncated"
UNCHAINED = "unchained"
CHAIN_BROKEN = "chain_broken"
ANCHOR_MISMATCH = "anchor_mismatch"
SNAPSHOT = "snapshot"  # a snapshot whose seal or chain hash does not hold (ledger.snapshot_seal)
# At one position, say what happened to the event before what it did to the anchor.
KIND_ORDER = (EDITED, REORDERED, REMOVED, INSERTED, CHAIN_BROKEN, UNCHAINED, TRUNCATED, ANCHOR_MISMATCH, SNAPSHOT)

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CHAIN_COLUMNS = (
    "position", "previous_position", "chain_count", "originator_id", "originator_version",
    "topic", "state_hash", "aggregate_hash", "global_hash",
)
_CHAIN_TYPES = ("bigint", "bigint", "bigint", "text", "bigint", "text", "text", "text", "text")


class AuditChainError(Exception):
    """Base of every AUD-1 failure."""

    rule = "AUD-1"


class AuditConfigurationError(AuditChainError):
    """The application's store or the given names cannot carry an audit chain."""


class AuditDecodeError(AuditChainError):
    """A stored event's state cannot be decoded or put in canonical form."""


class AuditAnchorError(AuditChainError):
    """The anchor file holds a line that is not an anchor."""


class AuditTamperedError(AuditChainError):
    """The chain no longer agrees with its last anchor: extending it would hide tampering."""


class AuditExtendConflictError(AuditChainError):
    """The database stayed locked or conflicting for ``EXTEND_ATTEMPTS_MAX`` attempts."""


class AuditChainEmptyError(AuditChainError):
    """A verification code needs at least one chained event."""


class AuditChainLagError(AuditChainError):
    """The save COMMITTED but the chain was not extended; do not rerun the command.

    The next ``extend()`` (or the next save) catches the chain up. ``recordings`` are
    the committed recordings of the save.
    """

    def __init__(self, recordings: Sequence[Any]):
        self.recordings = recordings
        super().__init__("events committed; audit chain not extended (AUD-1): call extend()")


@dataclass(frozen=True)
class Head:
    """The global chain at a position: its hash and how many events it holds."""

    position: int
    hash: str
    count: int


EMPTY_HEAD = Head(position=0, hash=GENESIS_HASH, count=0)


class Problem(NamedTuple):
    """One finding of ``verify()``; ``kind`` is one of the module's kind constants."""

    position: int
    aggregate_id: str | None
    version: int | None
    kind: str
    message: str


@dataclass
class VerifyReport:
    """``ok`` only when every stored event is chained, linked and anchored as recorded."""

    ok: bool
    problems: list[Problem]
    checked: int
    dropped: int = 0

    @property
    def first(self) -> Problem | None:
        return self.problems[0] if self.problems else None


@dataclass(frozen=True)
class ChainRow:
    """One row of ``<prefix>audit_chain``; ``previous_position`` is None for the first."""

    position: int
    previous_position: int | None
    chain_count: int
    originator_id: str
    originator_version: int
    topic: str
    state_hash: str
    aggregate_hash: str
    global_hash: str


@dataclass(frozen=True)
class EventRecord:
    """What the chain hashes of one stored event."""

    canonical: bytes
    state_hash: str


# -- canonical JSON and links ------------------------------------------------------------


def _canonical(value: Any, transcoder: Any) -> Any:
    if value is None or isinstance(value, (str, bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(k): _canonical(v, transcoder) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_canonical(v, transcoder) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [_canonical(v, transcoder) for v in value]
        return sorted(items, key=lambda item: json.dumps(item, sort_keys=True))
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (datetime, date, time)):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return _canonical(value.value, transcoder)
    return _canonical_registered(value, transcoder)


def _canonical_registered(value: Any, transcoder: Any) -> Any:
    """A type the application registered with its JSONTranscoder (e.g. a money type)."""
    transcoding = getattr(transcoder, "types", {}).get(type(value))
    if transcoding is None:
        raise AuditDecodeError(f"no canonical form for {type(value).__qualname__} (AUD-1)")
    return {"_type_": transcoding.name, "_data_": _canonical(transcoding.encode(value), transcoder)}


def canonical_json(value: Any, transcoder: Any = None) -> bytes:
    """Sorted keys, no spaces, UTF-8; Decimal as string, dates ISO 8601, UUID as str."""
    try:
        text = json.dumps(
            _canonical(value, transcoder), sort_keys=True, separators=(",", ":"),
            ensure_ascii=False, allow_nan=False,
        )
    except (TypeError, ValueError) as error:
        raise AuditDecodeError(f"no canonical JSON: {error} (AUD-1)") from error
    return text.encode("utf-8")


def link(previous_hash: str, canonical: bytes) -> str:
    """One chain link: SHA-256(previous hash as 64 hex characters ‖ canonical JSON)."""
    return hashlib.sha256(previous_hash.encode("ascii") + canonical).hexdigest()


def decode_state(mapper: Mapper[Any], stored_state: bytes) -> dict[str, Any]:
    """The stored state as the application's mapper decodes it, without upcasting."""
    try:
        data = stored_state
        if mapper.cipher:
            data = mapper.cipher.decrypt(data)
        if mapper.compressor:
            data = mapper.compressor.decompress(data)
        state = mapper.transcoder.decode(data)
    except Exception as error:  # any decode failure is the same finding: unreadable state
        raise AuditDecodeError(f"stored state cannot be decoded: {error} (AUD-1)") from error
    if not isinstance(state, dict):
        raise AuditDecodeError("stored state is not an object (AUD-1)")
    return state


def event_record(mapper: Mapper[Any], notification: Notification) -> EventRecord:
    """The canonical JSON of a stored event and the hash of its state alone."""
    state = decode_state(mapper, notification.state)
    transcoder = mapper.transcoder
    body = dict(state)
    recorded_time = body.pop("timestamp", None)
    document = {
        "aggregate_id": str(notification.originator_id),
        "version": notification.originator_version,
        "topic": notification.topic,
        "recorded_time": recorded_time,
        "state": body,
    }
    state_hash = hashlib.sha256(canonical_json(state, transcoder)).hexdigest()
    return EventRecord(canonical=canonical_json(document, transcoder), state_hash=state_hash)


def code_for(head_hash: str, payload: bytes | str) -> str:
    """First ``CODE_HEX_LENGTH`` hex of SHA-256(head hash ‖ payload)."""
    data = payload.encode("utf-8") if isinstance(payload, str) else bytes(payload)
    return hashlib.sha256(head_hash.encode("ascii") + data).hexdigest()[:CODE_HEX_LENGTH]


def _row_to_chain(row: Any) -> ChainRow:
    return ChainRow(**{name: row[name] for name in _CHAIN_COLUMNS})


def _checked_identifier(name: str) -> str:
    if not _IDENTIFIER.match(name) or len(name) > IDENTIFIER_LENGTH_MAX:
        raise AuditConfigurationError(f"unusable SQL identifier {name!r} (AUD-1)")
    return name


# -- the two databases ---------------------------------------------------------------------


class _Store(abc.ABC):
    """SQL over the recorder's own datastore; statements are written with ``?`` markers."""

    integer = "INTEGER"
    marker = "?"

    def __init__(self, datastore: Any, prefix: str, events_table: str):
        self.datastore = datastore
        self.chain = self.qualify(_checked_identifier(prefix + "audit_chain"))
        self.anchor = self.qualify(_checked_identifier(prefix + "audit_anchor"))
        self.events = self.qualify(_checked_identifier(events_table))
        self.prefix = prefix

    def qualify(self, name: str) -> str:
        return f'"{name}"'

    def sql(self, statement: str) -> str:
        return statement.replace("?", self.marker)

    @contextlib.contextmanager
    def transaction(self, *, commit: bool) -> Iterator[Any]:
        with self.datastore.transaction(commit=commit) as cursor:
            yield cursor

    @contextlib.contextmanager
    def write_transaction(self) -> Iterator[Any]:
        """A transaction that holds the write lock from its first statement."""
        with self.transaction(commit=True) as cursor:
            yield cursor

    def fetchall(self, statement: str, params: Sequence[Any] = ()) -> list[Any]:
        with self.transaction(commit=False) as cursor:
            cursor.execute(self.sql(statement), list(params))
            return list(cursor.fetchall())

    def chain_ddl(self) -> list[str]:
        n = self.integer
        return [
            f"CREATE TABLE IF NOT EXISTS {self.chain} (position {n} PRIMARY KEY, "
            f"previous_position {n}, chain_count {n} NOT NULL, originator_id TEXT NOT NULL, "
            f"originator_version {n} NOT NULL, topic TEXT NOT NULL, state_hash TEXT NOT NULL, "
            "aggregate_hash TEXT NOT NULL, global_hash TEXT NOT NULL)",
            f'CREATE INDEX IF NOT EXISTS "{self.prefix}audit_chain_aggregate_idx" '
            f"ON {self.chain} (originator_id, position)",
        ]

    @abc.abstractmethod
    def create_tables(self, *, with_anchor_table: bool) -> None:
        """Create the chain (and anchor) tables in this engine's dialect."""

    def lock_chain(self, cursor: Any) -> None:
        """Serialise extenders inside the write transaction (a no-op where writes are)."""

    def insert_rows(self, cursor: Any, table: str, columns: Sequence[str], types: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> None:
        """Many rows in one go (``types``: each column's SQL type, for engines that send arrays)."""
        if rows:
            cursor.executemany(self.sql(f"INSERT INTO {table} ({','.join(columns)}) "
                                        f"VALUES ({','.join('?' * len(columns))})"), rows)

    def last_links(self, cursor: Any, aggregate_ids: Sequence[str]) -> list[Any]:
        """Each aggregate's last chain row (``originator_id``, ``originator_version``, ``aggregate_hash``): one
        index probe an aggregate (the chain's index is (originator_id, position)), not a scan of its rows."""
        values = ",".join("(?)" for _ in aggregate_ids)
        cursor.execute(f"WITH wanted(id) AS (VALUES {values}) SELECT c.originator_id AS originator_id, "
                       "c.originator_version AS originator_version, c.aggregate_hash AS aggregate_hash "
                       f"FROM wanted JOIN {self.chain} c ON c.position = "
                       f"(SELECT MAX(position) FROM {self.chain} WHERE originator_id = wanted.id)", aggregate_ids)
        return cursor.fetchall()

    def delete_versions(self, cursor: Any, table: str, keys: Sequence[tuple[Any, int]], comparison: str) -> None:
        """Delete each (originator_id, version) key's rows whose version compares so (``<=`` or ``=``)."""
        if keys:
            cursor.executemany(self.sql(f"DELETE FROM {table} WHERE originator_id = ? "
                                        f"AND originator_version {comparison} ?"), keys)

    def stable_stop(self) -> int | None:
        """The last position no in-flight insert can still fill below; None: no limit."""
        return None


class _SQLiteStore(_Store):
    """SQLite: one writer at a time, rowids are positions and committed in order."""

    @contextlib.contextmanager
    def write_transaction(self) -> Iterator[Any]:
        # The datastore's plain BEGIN is deferred: a read followed by a write fails at
        # once ("database is locked") when another writer committed in between.
        # BEGIN IMMEDIATE takes the write lock first, waiting out the busy timeout.
        with self.datastore.get_connection(commit=True) as connection:
            cursor = connection.cursor()
            try:
                cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                connection.commit()
            except sqlite3.OperationalError as error:
                connection.rollback()
                raise OperationalError(str(error)) from error
            except sqlite3.IntegrityError as error:
                connection.rollback()
                raise IntegrityError(str(error)) from error
            except BaseException:
                connection.rollback()
                raise
            finally:
                cursor.sqlite_cursor.close()

    def create_tables(self, *, with_anchor_table: bool) -> None:
        statements = self.chain_ddl()
        if with_anchor_table:
            statements += self._anchor_ddl()
        with self.write_transaction() as cursor:
            for statement in statements:
                cursor.execute(statement)

    def _anchor_ddl(self) -> list[str]:
        statements = [
            f"CREATE TABLE IF NOT EXISTS {self.anchor} (anchor_id INTEGER PRIMARY KEY "
            "AUTOINCREMENT, position INTEGER NOT NULL, global_hash TEXT NOT NULL, "
            "chain_count INTEGER NOT NULL)"
        ]
        for action in ("UPDATE", "DELETE"):
            statements.append(
                f'CREATE TRIGGER IF NOT EXISTS "{self.prefix}audit_anchor_no_{action.lower()}" '
                f"BEFORE {action} ON {self.anchor} BEGIN "
                "SELECT RAISE(ABORT, 'AUD-1: the audit anchor is append-only'); END"
            )
        return statements


class _PostgresStore(_Store):
    """PostgreSQL: tables in the datastore's schema; extenders serialise on a table lock."""

    integer = "BIGINT"
    marker = "%s"

    def __init__(self, datastore: Any, prefix: str, events_table: str):
        self.schema = _checked_identifier(datastore.schema)
        super().__init__(datastore, prefix, events_table)

    def qualify(self, name: str) -> str:
        return f'"{self.schema}"."{name}"'

    def create_tables(self, *, with_anchor_table: bool) -> None:
        # Several processes running DDL at once fail ("tuple concurrently updated"):
        # look first, create only what is missing.
        wanted = [self.chain] + ([self.anchor] if with_anchor_table else [])
        missing = [t for t in wanted if self.fetchall("SELECT to_regclass(?) AS t", [t])[0]["t"] is None]
        if not missing:
            return
        statements = self.chain_ddl() + (self._anchor_ddl() if with_anchor_table else [])
        with self.transaction(commit=True) as cursor:
            for statement in statements:
                cursor.execute(statement)

    def _anchor_ddl(self) -> list[str]:
        refuse = self.qualify(f"{self.prefix}audit_anchor_refuse")
        return [
            f"CREATE TABLE IF NOT EXISTS {self.anchor} (anchor_id BIGINT GENERATED ALWAYS AS "
            "IDENTITY PRIMARY KEY, position BIGINT NOT NULL, global_hash TEXT NOT NULL, "
            "chain_count BIGINT NOT NULL)",
            f"CREATE OR REPLACE FUNCTION {refuse}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            "BEGIN RAISE EXCEPTION 'AUD-1: the audit anchor is append-only'; END $$",
            f'CREATE OR REPLACE TRIGGER "{self.prefix}audit_anchor_no_change" BEFORE UPDATE '
            f"OR DELETE ON {self.anchor} FOR EACH ROW EXECUTE FUNCTION {refuse}()",
            f'CREATE OR REPLACE TRIGGER "{self.prefix}audit_anchor_no_truncate" BEFORE '
            f"TRUNCATE ON {self.anchor} FOR EACH STATEMENT EXECUTE FUNCTION {refuse}()",
        ]

    def lock_chain(self, cursor: Any) -> None:
        cursor.execute(f"LOCK TABLE {self.chain} IN EXCLUSIVE MODE")

    def insert_rows(self, cursor: Any, table: str, columns: Sequence[str], types: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> None:
        """One statement over arrays (``unnest``): psycopg's ``executemany`` sends a statement per row, which
        made the chained append six times slower than the plain one on a large store."""
        if rows:
            arrays = [list(column) for column in zip(*rows)]
            cursor.execute(f"INSERT INTO {table} ({','.join(columns)}) SELECT * FROM "
                           f"unnest({','.join(f'%b::{kind}[]' for kind in types)})", arrays)  # binary: no text escaping

    def last_links(self, cursor: Any, aggregate_ids: Sequence[str]) -> list[Any]:
        cursor.execute(f"SELECT c.originator_id, c.originator_version, c.aggregate_hash FROM unnest(%b::text[]) "
                       f"AS wanted(id) CROSS JOIN LATERAL (SELECT originator_id, originator_version, aggregate_hash "
                       f"FROM {self.chain} WHERE originator_id = wanted.id ORDER BY position DESC LIMIT 1) c",
                       [list(aggregate_ids)])
        return cursor.fetchall()

    def delete_versions(self, cursor: Any, table: str, keys: Sequence[tuple[Any, int]], comparison: str) -> None:
        if keys:
            ids, versions = [list(column) for column in zip(*keys)]
            cursor.execute(f"DELETE FROM {table} AS t USING unnest(%b::uuid[], %b::bigint[]) AS d(id, version) "
                           f"WHERE t.originator_id = d.id AND t.originator_version {comparison} d.version",
                           [ids, versions])

    def stable_stop(self) -> int | None:
        # SHARE conflicts with the inserters' locks: once granted, every position
        # handed out so far belongs to a committed (or rolled back) transaction.
        with self.transaction(commit=False) as cursor:
            cursor.execute(f"LOCK TABLE {self.events} IN SHARE MODE")
            cursor.execute(f"SELECT MAX(notification_id) AS stop FROM {self.events}")
            return cursor.fetchone()["stop"]


def _store_for(app: Application[Any], prefix: str | None) -> _Store:
    recorder = app.recorder
    datastore = getattr(recorder, "datastore", None)
    events_table = getattr(recorder, "events_table_name", None)
    if datastore is None or not events_table:
        raise AuditConfigurationError(
            f"{type(recorder).__qualname__} has no SQL datastore: AUD-1 needs "
            "eventsourcing.sqlite or eventsourcing.postgres"
        )
    if prefix is None:
        prefix = events_table[: -len("events")] if events_table.endswith("events") else events_table + "_"
    from eventsourcing.sqlite import SQLiteDatastore

    if isinstance(datastore, SQLiteDatastore):
        return _SQLiteStore(datastore, prefix, events_table)
    from eventsourcing.postgres import PostgresDatastore

    if isinstance(datastore, PostgresDatastore):
        return _PostgresStore(datastore, prefix, events_table)
    raise AuditConfigurationError(f"unsupported datastore {type(datastore).__qualname__} (AUD-1)")


# -- anchors --------------------------------------------------------------------------------


class _TableAnchors:
    """``<prefix>audit_anchor``: written in the same transaction as the chain rows."""

    in_transaction = True

    def __init__(self, store: _Store):
        self.store = store

    def append(self, head: Head, cursor: Any = None) -> None:
        statement = self.store.sql(
            f"INSERT INTO {self.store.anchor} (position, global_hash, chain_count) VALUES (?,?,?)"
        )
        if cursor is not None:
            cursor.execute(statement, [head.position, head.hash, head.count])
            return
        with self.store.transaction(commit=True) as own_cursor:
            own_cursor.execute(statement, [head.position, head.hash, head.count])

    def last(self) -> Head | None:
        rows = self.store.fetchall(
            f"SELECT position, global_hash, chain_count FROM {self.store.anchor} "
            "ORDER BY anchor_id DESC LIMIT 1"
        )
        return Head(rows[0]["position"], rows[0]["global_hash"], rows[0]["chain_count"]) if rows else None

    def pages(self, page_size: int) -> Iterator[list[Head]]:
        after = POSITION_FLOOR
        while True:
            rows = self.store.fetchall(
                f"SELECT anchor_id, position, global_hash, chain_count FROM {self.store.anchor} "
                "WHERE anchor_id > ? ORDER BY anchor_id LIMIT ?",
                [after, page_size],
            )
            if not rows:
                return
            yield [Head(r["position"], r["global_hash"], r["chain_count"]) for r in rows]
            after = rows[-1]["anchor_id"]


class _FileAnchors:
    """An append-only JSON-lines file, one ``{"count","hash","position"}`` per line.

    Written after the chain rows commit; a crash in between leaves the file behind the
    chain, which the next ``extend()`` repairs. A torn last line (no newline, from a crash
    mid-write) is ignored by readers and cut off by the next append; any other unreadable
    line stops the reader (``AuditAnchorError``).
    """

    in_transaction = False

    def __init__(self, path: Path):
        self.path = path

    def append(self, head: Head, cursor: Any = None) -> None:
        line = json.dumps(
            {"count": head.count, "hash": head.hash, "position": head.position}, sort_keys=True
        ).encode("ascii")
        with open(self.path, "a+b") as file:
            self._cut_torn_tail(file)
            file.write(line + b"\n")
            file.flush()
            os.fsync(file.fileno())

    @staticmethod
    def _cut_torn_tail(file: Any) -> None:
        """A crash mid-write leaves a last line without its newline; it anchors nothing."""
        end = file.seek(0, os.SEEK_END)
        keep = end
        while keep > 0:
            step = min(ANCHOR_TAIL_BYTES, keep)
            file.seek(keep - step)
            newline = file.read(step).rfind(b"\n")
            if newline >= 0:
                keep = keep - step + newline + 1
                break
            keep -= step
        if keep < end:
            file.truncate(keep)

    @staticmethod
    def _parse(line: bytes) -> Head:
        try:
            data = json.loads(line)
            return Head(int(data["position"]), str(data["hash"]), int(data["count"]))
        except (ValueError, KeyError, TypeError) as error:
            raise AuditAnchorError(f"unreadable anchor line {line[:80]!r} (AUD-1)") from error

    def last(self) -> Head | None:
        if not self.path.exists():
            return None
        with open(self.path, "rb") as file:
            end = file.seek(0, os.SEEK_END)
            block = ANCHOR_TAIL_BYTES
            while True:
                start = max(0, end - block)
                file.seek(start)
                complete = file.read(end - start).split(b"\n")[:-1]
                if start > 0:
                    complete = complete[1:]  # may begin mid-line
                lines = [line for line in complete if line.strip()]
                if lines:
                    return self._parse(lines[-1])
                if start == 0:
                    return None
                block *= 2

    def pages(self, page_size: int) -> Iterator[list[Head]]:
        if not self.path.exists():
            return
        page: list[Head] = []
        with open(self.path, "rb") as file:
            for line in file:
                if not line.endswith(b"\n") or not line.strip():
                    continue
                page.append(self._parse(line))
                if len(page) >= page_size:
                    yield page
                    page = []
        if page:
            yield page


# -- the chain ------------------------------------------------------------------------------


class AuditChain:
    """The AUD-1 chain of one application's event store.

    ``anchor_path`` (or the application setting ``AUDIT_ANCHOR_PATH``) selects the
    JSON-lines anchor file instead of the anchor table. ``table_prefix`` overrides the
    prefix derived from the events table. Tables are created when missing unless the
    application's ``CREATE_TABLE`` setting is false.
    """

    def __init__(
        self,
        app: Application[Any],
        *,
        anchor_path: str | os.PathLike[str] | None = None,
        table_prefix: str | None = None,
        page_size: int = PAGE_SIZE,
    ):
        assert 0 < page_size <= PAGE_SIZE, page_size
        self.app = app
        self.page_size = page_size
        self.store = _store_for(app, table_prefix)
        path = anchor_path or app.env.get(ANCHOR_PATH_SETTING) or None
        self.anchors: _TableAnchors | _FileAnchors = (
            _FileAnchors(Path(path)) if path else _TableAnchors(self.store)
        )
        if strtobool(app.env.get("CREATE_TABLE", "y") or "y"):
            self.store.create_tables(with_anchor_table=path is None)

    # -- reading the chain ----------------------------------------------------------------

    def head(self) -> Head:
        """The last chain row as a Head; ``EMPTY_HEAD`` before anything is chained."""
        rows = self.store.fetchall(
            f"SELECT position, global_hash, chain_count FROM {self.store.chain} "
            "ORDER BY position DESC LIMIT 1"
        )
        return Head(rows[0]["position"], rows[0]["global_hash"], rows[0]["chain_count"]) if rows else EMPTY_HEAD

    def chain_rows_at(self, positions: Iterable[int]) -> dict[int, ChainRow]:
        wanted = sorted(set(positions))
        found: dict[int, ChainRow] = {}
        for start in range(0, len(wanted), self.page_size):
            chunk = wanted[start : start + self.page_size]
            rows = self.store.fetchall(
                f"SELECT * FROM {self.store.chain} WHERE position IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            found.update((row["position"], _row_to_chain(row)) for row in rows)
        return found

    def previous_aggregate_hashes(self, aggregate_ids: Iterable[str], before: int) -> dict[str, str]:
        """Each aggregate's last aggregate hash among chain rows at positions < ``before``."""
        ids = sorted(set(aggregate_ids))
        found: dict[str, str] = {}
        for start in range(0, len(ids), self.page_size):
            chunk = ids[start : start + self.page_size]
            rows = self.store.fetchall(
                f"SELECT c.originator_id AS originator_id, c.aggregate_hash AS aggregate_hash "
                f"FROM {self.store.chain} c JOIN (SELECT MAX(position) AS position FROM "
                f"{self.store.chain} WHERE position < ? AND originator_id IN "
                f"({','.join('?' * len(chunk))}) GROUP BY originator_id) m "
                "ON c.position = m.position",
                [before, *chunk],
            )
            found.update((row["originator_id"], row["aggregate_hash"]) for row in rows)
        return found

    def aggregate_hashes_at(self, wanted: Sequence[tuple[str, int]]) -> dict[str, str]:
        """The aggregate hash of each (aggregate id, version) that is chained (a snapshot's ``c``)."""
        found: dict[str, str] = {}
        for aggregate_id, version in wanted:
            rows = self.store.fetchall(
                f"SELECT aggregate_hash FROM {self.store.chain} WHERE originator_id = ? AND originator_version = ?",
                [aggregate_id, version])
            if rows:
                found[aggregate_id] = rows[0]["aggregate_hash"]
        return found

    def chain_pages(self) -> Iterator[list[ChainRow]]:
        after = POSITION_FLOOR
        while True:
            rows = self.store.fetchall(
                f"SELECT * FROM {self.store.chain} WHERE position > ? ORDER BY position LIMIT ?",
                [after, self.page_size],
            )
            if not rows:
                return
            yield [_row_to_chain(row) for row in rows]
            after = rows[-1]["position"]

    def stored_events(self) -> Iterator[Notification]:
        """Every stored event in position order, a page at a time."""
        start: int | None = None
        while True:
            page = self.app.recorder.select_notifications(
                start, self.page_size, inclusive_of_start=start is None
            )
            yield from page
            if len(page) < self.page_size:
                return
            start = page[-1].id

    def record_of(self, notification: Notification) -> EventRecord:
        return event_record(self.app.mapper, notification)

    # -- extending ------------------------------------------------------------------------

    def extend(self) -> Head:
        """Chain every event after the chain head, a page per transaction, and anchor it.

        Idempotent, and safe alongside other extenders: one that commits first has done
        this call's work. Refuses (``AuditTamperedError``) when the chain disagrees with
        its last anchor, since extending then would bury a truncation.
        """
        last_error: Exception | None = None
        for _attempt in range(EXTEND_ATTEMPTS_MAX):
            try:
                return self._extend_once()
            except (IntegrityError, OperationalError) as error:
                last_error = error
        raise AuditExtendConflictError(f"could not extend: {last_error} (AUD-1)") from last_error

    def _extend_once(self) -> Head:
        # Anchor first: an anchor is visible only after its chain rows committed, so a
        # head read afterwards is never behind it unless the chain was cut.
        anchor = self.anchors.last()
        head = self.head()
        self._check_against_anchor(head, anchor)
        stop = self.store.stable_stop()
        while True:
            page = self.app.recorder.select_notifications(
                head.position, self.page_size, stop, inclusive_of_start=False
            )
            if not page:
                break
            stored, written = self._store_page(head, self._chain_page(head, page))
            if stored.position <= head.position:
                raise AuditTamperedError(
                    f"chain head went from {head} to {stored} while extending (AUD-1)"
                )
            head = stored
            anchor = stored if written else None
        if head.count and anchor != head:
            last = self.anchors.last()  # first anchor, a racing extender's, or a crash's gap
            if last is None or last.position < head.position:
                self.anchors.append(head)
        return head

    def _check_against_anchor(self, head: Head, anchor: Head | None) -> None:
        if anchor is None:
            return
        if anchor.position > head.position:
            raise AuditTamperedError(
                f"chain ends at position {head.position} but the last anchor is at "
                f"{anchor.position}: the tail was truncated (AUD-1)"
            )
        if anchor.position == head.position:  # the usual case after a per-save extend
            found: Head | None = head
        else:
            row = self.chain_rows_at([anchor.position]).get(anchor.position)
            found = Head(row.position, row.global_hash, row.chain_count) if row else None
        if found != anchor:
            raise AuditTamperedError(
                f"chain row at anchored position {anchor.position} differs from the anchor (AUD-1)"
            )

    def _chain_page(self, head: Head, page: Sequence[Notification]) -> list[ChainRow]:
        aggregate_hashes = self.previous_aggregate_hashes(
            (str(n.originator_id) for n in page), before=head.position + 1
        )
        rows: list[ChainRow] = []
        global_hash, position, count = head.hash, head.position, head.count
        for notification in page:
            record = self.record_of(notification)
            aggregate_id = str(notification.originator_id)
            aggregate_hash = link(aggregate_hashes.get(aggregate_id, GENESIS_HASH), record.canonical)
            global_hash = link(global_hash, record.canonical)
            count += 1
            rows.append(ChainRow(
                position=notification.id,
                previous_position=position if count > 1 else None,
                chain_count=count,
                originator_id=aggregate_id,
                originator_version=notification.originator_version,
                topic=notification.topic,
                state_hash=record.state_hash,
                aggregate_hash=aggregate_hash,
                global_hash=global_hash,
            ))
            aggregate_hashes[aggregate_id] = aggregate_hash
            position = notification.id
        return rows

    def _store_page(self, head: Head, rows: list[ChainRow]) -> tuple[Head, bool]:
        """Insert ``rows`` if the chain still ends at ``head``; return the head and whether
        this call wrote it (False: another extender got there first)."""
        new_head = Head(rows[-1].position, rows[-1].global_hash, rows[-1].chain_count)
        with self.store.write_transaction() as cursor:
            self.store.lock_chain(cursor)
            cursor.execute(
                f"SELECT position, global_hash, chain_count FROM {self.store.chain} "
                "ORDER BY position DESC LIMIT 1"
            )
            row = cursor.fetchone()
            current = Head(row["position"], row["global_hash"], row["chain_count"]) if row else EMPTY_HEAD
            if current != head:
                return current, False
            self.store.insert_rows(cursor, self.store.chain, _CHAIN_COLUMNS, _CHAIN_TYPES,
                                   [dataclasses.astuple(row) for row in rows])
            if self.anchors.in_transaction:
                self.anchors.append(new_head, cursor)
        if not self.anchors.in_transaction:
            self.anchors.append(new_head)
        return new_head, True

    # -- verifying ------------------------------------------------------------------------

    def verify(self, *, unchained_ok: bool = False) -> VerifyReport:
        """Recompute both chains from the stored events alone; compare rows and anchors.

        Events stored after the chain head are reported as ``unchained`` (a forged row
        appended behind the chain's back looks the same) unless ``unchained_ok``, for a
        live store whose last save is not chained yet.
        """
        tail = self.head()
        run = _Verification(tail, unchained_ok=unchained_ok)
        run.merge(self.stored_events(), self._chain_with_previous(), self.record_of)
        run.classify_reorders()
        self._check_anchors(run)
        self._check_snapshots(run)
        problems = sorted(run.problems, key=lambda p: (p.position, KIND_ORDER.index(p.kind)))
        return VerifyReport(ok=not problems and not run.dropped, problems=problems,
                            checked=run.checked, dropped=run.dropped)

    def _check_snapshots(self, run: _Verification) -> None:
        """Every snapshot row: its seal verifies under the centre's key, and its chain hash is the
        aggregate hash of the chained event at its version (issue 14: snapshots are evidence too)."""
        key = getattr(self.app, "snapshot_key", None)
        store = getattr(self.app, "snapshots", None)
        if key is None or store is None:
            return
        from ledger.snapshot_seal import SnapshotRejected, check

        after: Any = None
        while True:
            page = self._snapshot_page(store.recorder, after)
            if not page:
                return
            rows = self._chain_rows_of({str(s.originator_id) for s in page})
            for stored in page:
                aggregate_id, version = str(stored.originator_id), stored.originator_version
                row = rows.get((aggregate_id, version))
                try:
                    chain_hash = check(key, aggregate_id, version,
                                       decode_state(self.app.mapper, stored.state).get("state"))
                except (SnapshotRejected, AuditDecodeError) as error:
                    run.add(row.position if row else 0, aggregate_id, version, SNAPSHOT, str(error))
                    continue
                if row is None or row.aggregate_hash != chain_hash:
                    run.add(row.position if row else 0, aggregate_id, version, SNAPSHOT,
                            "the snapshot's chain hash is not the chain's hash of its event")
            after = (page[-1].originator_id, page[-1].originator_version)

    def _snapshot_page(self, recorder: Any, after: Any) -> list[Any]:
        table = self.store.qualify(recorder.events_table_name.split(".")[-1])
        where, params = "", []
        if after is not None:
            key = after[0].hex if self.store.marker == "?" else after[0]
            where, params = "WHERE (originator_id > ? OR (originator_id = ? AND originator_version > ?)) ", \
                [key, key, after[1]]
        rows = self.store.fetchall(f"SELECT originator_id, originator_version, topic, state FROM {table} {where}"
                                   "ORDER BY originator_id, originator_version LIMIT ?", [*params, self.page_size])
        from eventsourcing.persistence import StoredEvent

        convert = getattr(recorder, "convert_originator_id", lambda value: value)
        return [StoredEvent(originator_id=convert(r["originator_id"]), originator_version=r["originator_version"],
                            topic=r["topic"], state=bytes(r["state"])) for r in rows]

    def _chain_rows_of(self, aggregate_ids: set[str]) -> dict[tuple[str, int], ChainRow]:
        found: dict[tuple[str, int], ChainRow] = {}
        ids = sorted(aggregate_ids)
        for start in range(0, len(ids), self.page_size):
            chunk = ids[start:start + self.page_size]
            rows = self.store.fetchall(f"SELECT * FROM {self.store.chain} WHERE originator_id IN "
                                       f"({','.join('?' * len(chunk))})", chunk)
            for row in rows:
                chain_row = _row_to_chain(row)
                found[(chain_row.originator_id, chain_row.originator_version)] = chain_row
        return found

    def _chain_with_previous(self) -> Iterator[tuple[ChainRow, str]]:
        """Chain rows in order, each with the stored hash of its aggregate's previous row."""
        for page in self.chain_pages():
            previous = self.previous_aggregate_hashes(
                (row.originator_id for row in page), before=page[0].position
            )
            for row in page:
                yield row, previous.get(row.originator_id, GENESIS_HASH)
                previous[row.originator_id] = row.aggregate_hash

    def _check_anchors(self, run: _Verification) -> None:
        """Every anchor must match its chain row; anchors past the chain's end mean truncation.

        An anchor past the tail seen at the start whose row exists *now* was written by a
        concurrent extend and is checked like any other.
        """
        beyond: list[Head] = []
        seen_any = mismatch_reported = False
        for page in self.anchors.pages(self.page_size):
            seen_any = True
            rows = self.chain_rows_at(anchor.position for anchor in page)
            for anchor in page:
                row = rows.get(anchor.position)
                if row is None and anchor.position > run.tail.position:
                    if len(beyond) < PROBLEMS_MAX:
                        beyond.append(anchor)
                    continue
                if mismatch_reported or (
                    row is not None and (row.global_hash, row.chain_count) == (anchor.hash, anchor.count)
                ):
                    continue
                mismatch_reported = True
                found = "is missing" if row is None else f"has {row.global_hash[:12]}… count {row.chain_count}"
                run.add(anchor.position, None, None, ANCHOR_MISMATCH,
                        f"anchor says hash {anchor.hash[:12]}… count {anchor.count}; the chain row {found}")
        if beyond:
            run.report_truncation(beyond)
        elif not seen_any and run.tail.count:
            run.add(run.tail.position, None, None, ANCHOR_MISMATCH, "the chain has rows but no anchor")

    # -- certificates and replay ----------------------------------------------------------

    def certificate_code(self, payload: bytes | str, head: Head | None = None) -> str:
        """A short code tying ``payload`` to the global head (keep ``head.position`` with it)."""
        head = head or self.head()
        if not head.count:
            raise AuditChainEmptyError("nothing is chained yet (AUD-1)")
        return code_for(head.hash, payload)

    def check_certificate_code(self, payload: bytes | str, code: str, position: int) -> bool:
        """True when ``code`` was made for ``payload`` at chain ``position``."""
        row = self.chain_rows_at([position]).get(position)
        if row is None or not code.isascii():
            return False
        return hmac.compare_digest(code_for(row.global_hash, payload), code.strip().lower())

    def replay(self, aggregate_id: Any, version: int | None = None, *, known_at: datetime | None = None) -> Any:
        """The aggregate at ``version``, or as known at recorded time ``known_at`` (MNY-4)."""
        if known_at is not None:
            version = self._version_known_at(aggregate_id, known_at, version)
        return self.app.repository.get(aggregate_id, version=version)

    def _version_known_at(self, aggregate_id: Any, known_at: datetime, version_max: int | None) -> int:
        found: int | None = None
        for domain_event in self.app.events.get(aggregate_id, lte=version_max):
            if domain_event.timestamp > known_at:
                break
            found = domain_event.originator_version
        if found is None:
            raise AggregateNotFoundError(f"{aggregate_id} was not recorded by {known_at.isoformat()}")
        return found


@dataclass
class _Verification:
    """The merge of stored events with chain rows, in position order, and its findings."""

    tail: Head
    unchained_ok: bool = False
    problems: list[Problem] = field(default_factory=list)
    dropped: int = 0
    checked: int = 0
    previous_position: int | None = None
    previous_count: int = 0
    previous_global: str = GENESIS_HASH
    orphan_position: int | None = None
    suspects: dict[int, tuple[str, str]] = field(default_factory=dict)

    def add(self, position: int, aggregate_id: str | None, version: int | None, kind: str, message: str) -> bool:
        if len(self.problems) >= PROBLEMS_MAX:
            self.dropped += 1
            return False
        self.problems.append(Problem(position, aggregate_id, version, kind, message))
        return True

    def merge(self, events: Iterator[Notification], rows: Iterator[tuple[ChainRow, str]], record_of: Any) -> None:
        event = next(events, None)
        item = next(rows, None)
        while event is not None or item is not None:
            if item is None or (event is not None and event.id < item[0].position):
                assert event is not None
                self.on_unchained(event, item[0] if item else None)
                event = next(events, None)
            elif event is None or item[0].position < event.id:
                self.on_missing_event(item[0])
                item = next(rows, None)
            else:
                self.on_matched(event, item[0], item[1], record_of)
                event, item = next(events, None), next(rows, None)

    def on_unchained(self, event: Notification, next_row: ChainRow | None) -> None:
        self.checked += 1
        aggregate_id, version = str(event.originator_id), event.originator_version
        if next_row is None:
            if self.unchained_ok:
                return
            self.add(event.id, aggregate_id, version, UNCHAINED,
                     "stored after the chain head: not chained yet (run extend) or appended behind its back")
        elif next_row.previous_position == event.id:
            self.orphan_position = event.id
            self.add(event.id, aggregate_id, version, CHAIN_BROKEN, "the chain row of this event was deleted")
        else:
            self.add(event.id, aggregate_id, version, INSERTED,
                     f"not in the chain, which links position {next_row.previous_position} "
                     f"to {next_row.position}")

    def on_missing_event(self, row: ChainRow) -> None:
        self.add(row.position, row.originator_id, row.originator_version, REMOVED,
                 "chained here but no longer in the events table")
        self.check_link(row)
        self.advance(row)

    def on_matched(self, event: Notification, row: ChainRow, previous_aggregate: str, record_of: Any) -> None:
        self.checked += 1
        self.check_link(row)
        self.compare(event, row, previous_aggregate, record_of)
        self.advance(row)

    def check_link(self, row: ChainRow) -> None:
        linked = row.previous_position
        if linked == self.previous_position:
            if row.chain_count != self.previous_count + 1:
                self.add(row.position, row.originator_id, row.originator_version, CHAIN_BROKEN,
                         f"chain count {row.chain_count} does not follow {self.previous_count}")
        elif linked is not None and linked == self.orphan_position:
            pass  # already reported as a deleted chain row
        elif linked is not None and (self.previous_position is None or linked > self.previous_position):
            self.add(linked, None, None, REMOVED,
                     f"event and its chain row removed (the chain row at {row.position} links to it)")
        else:
            self.add(row.position, row.originator_id, row.originator_version, CHAIN_BROKEN,
                     f"links to position {linked} but the previous chain row is {self.previous_position}")

    def advance(self, row: ChainRow) -> None:
        self.previous_position = row.position
        self.previous_count = row.chain_count
        self.previous_global = row.global_hash

    def compare(self, event: Notification, row: ChainRow, previous_aggregate: str, record_of: Any) -> None:
        try:
            record = record_of(event)
        except AuditDecodeError as error:
            self.add(row.position, row.originator_id, row.originator_version, EDITED, str(error))
            return
        differences = []
        if (str(event.originator_id), event.originator_version) != (row.originator_id, row.originator_version):
            differences.append(f"identity is {event.originator_id} v{event.originator_version}")
        if event.topic != row.topic:
            differences.append(f"topic is {event.topic}")
        if link(self.previous_global, record.canonical) != row.global_hash:
            differences.append("global hash differs")
        if link(previous_aggregate, record.canonical) != row.aggregate_hash:
            differences.append("aggregate hash differs")
        if differences and self.add(row.position, row.originator_id, row.originator_version, EDITED,
                                    "stored event differs from its chain row: " + "; ".join(differences)):
            self.suspects[row.position] = (record.state_hash, row.state_hash)

    def classify_reorders(self) -> None:
        """An edited position holding the state chained at another edited one was swapped."""
        chained_at = {row_state: position for position, (_, row_state) in self.suspects.items()}
        for index, problem in enumerate(self.problems):
            if problem.kind != EDITED or problem.position not in self.suspects:
                continue
            source = chained_at.get(self.suspects[problem.position][0])
            if source is not None and source != problem.position:
                self.problems[index] = problem._replace(
                    kind=REORDERED, message=f"holds the content chained at position {source}"
                )

    def report_truncation(self, beyond: list[Head]) -> None:
        """Anchors past the chain's end: the tail went with its chain rows."""
        last = max(beyond, key=lambda a: (a.count, a.position))
        exact = [a.position for a in beyond if a.count == self.tail.count + 1]
        first = min(exact) if exact else self.tail.position + 1
        self.add(first, None, None, TRUNCATED,
                 f"an anchor says the chain reached position {last.position} with {last.count} events; "
                 f"it now ends at position {self.tail.position} with {self.tail.count}")


# -- the application side ---------------------------------------------------------------------


class AnchoredApplicationMixin:
    """Mix in before ``Application``: every ``save()`` chains its events in its own transaction (AUD-1).

    The events of a save are hashed in memory and their chain rows and one anchor row are written
    by the recorder before the commit (``ledger.audit_append``): a save is chained or not stored.
    ``with app.audit_bulk_load():`` (or ``audit_extend_on_save = False``) stores without chaining,
    for seeding a store; the chain is extended once at the block's end. Class attribute
    ``audit_anchor_path`` selects the anchor file (appended after the commit).
    """

    audit_extend_on_save: bool = True
    audit_anchor_path: str | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        app: Any = self
        self.audit = AuditChain(app, anchor_path=self.audit_anchor_path)
        from ledger.audit_append import ChainAppender

        self._audit_appender = ChainAppender(self.audit)
        if hasattr(type(app.recorder), "audit_appender"):
            app.recorder.audit_appender = self._audit_appender
        self._audit_selfcheck = strtobool(os.environ.get("GJJ_AUDIT_SELFCHECK", "n") or "n")

    def construct_env(self, name: str, env: Any = None) -> Any:
        from eventsourcing.utils import get_topic

        from ledger.audit_append import ChainedPostgresApplicationRecorder, ChainedSQLiteApplicationRecorder

        environment = super().construct_env(name, env)  # type: ignore[misc]
        chained = {"eventsourcing.sqlite": ChainedSQLiteApplicationRecorder,
                   "eventsourcing.postgres": ChainedPostgresApplicationRecorder,
                   "ledger.pg_factory:LedgerPostgresFactory": ChainedPostgresApplicationRecorder}.get(
            environment.get("PERSISTENCE_MODULE") or "")
        if chained is not None and not environment.get("APPLICATION_RECORDER_TOPIC"):
            environment["APPLICATION_RECORDER_TOPIC"] = get_topic(chained)
        return environment

    @property
    def _chains_in_transaction(self) -> bool:
        app: Any = self
        return self.audit_extend_on_save and getattr(app.recorder, "audit_appender", None) is not None

    def _record(self, processing_event: Any) -> Any:
        if not self._chains_in_transaction or not processing_event.events:
            return super()._record(processing_event)  # type: ignore[misc]
        from ledger.audit_append import check_records, records_of

        app: Any = self
        records = records_of(processing_event.events, app.mapper.transcoder)
        if self._audit_selfcheck:
            check_records(app.mapper, [app.mapper.to_stored_event(e) for e in processing_event.events], records)
        heads: list[Head] = []
        snapshots = app.snapshots_due(processing_event) if hasattr(app, "snapshots_due") else []
        recordings = app.events.put(processing_event.events, tracking=processing_event.tracking,
                                    audit_records=records, audit_head=heads, audit_snapshots=snapshots,
                                    **processing_event.saved_kwargs)
        for snapshot in snapshots:
            processing_event.aggregates[snapshot.originator_id].__dict__["_snapshot_version"] = \
                snapshot.originator_version
        if heads and not self.audit.anchors.in_transaction:
            self.audit.anchors.append(heads[-1])  # the anchor file, after the commit
        if app.repository.cache and not app.repository.fastforward:
            for aggregate_id, aggregate in processing_event.aggregates.items():
                app.repository.cache.put(aggregate_id, aggregate)
        return recordings

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        recordings = super().save(*objs, **kwargs)  # type: ignore[misc]
        if recordings and self.audit_extend_on_save and not self._chains_in_transaction:
            try:
                self.audit.extend()  # a store without a chained recorder: extend after the commit
            except Exception as error:  # the save committed; report it apart (STACK-NOTES)
                raise AuditChainLagError(recordings) from error
        return recordings

    @contextlib.contextmanager
    def audit_bulk_load(self) -> Iterator[AuditChain]:
        """Save many batches without chaining each; extend once at the end."""
        previous = self.audit_extend_on_save
        self.audit_extend_on_save = False
        try:
            yield self.audit
        finally:
            self.audit_extend_on_save = previous
            self.audit.extend()  # also after an error: what committed must be chained
