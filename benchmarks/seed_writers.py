"""Writing seeded rows straight into the event store, chained (AUD-1) in the same transaction.

The bulk seeder hands a batch of filled rows (``benchmarks.seed_templates``: stored state, canonical
document, state hash and per-aggregate link of each event) and snapshot rows to a writer. The writer
gives the events the next positions, extends the global chain over them in position order, and in one
transaction inserts the events at those positions (SQLite ``rowid``, PostgreSQL ``notification_id``),
their chain rows, the snapshots and one anchor — as ``ledger.audit_append`` does for a save, so
``gjj audit verify`` sees what any save writes. It first checks, under the write lock, that the store
still ends where the last batch left it (no other writer: positions are handed out here) and that the
chain covers every stored event. SQLite takes the rows with ``executemany``; PostgreSQL with binary
``COPY`` (and the notification sequence is moved past the last position).
"""

from __future__ import annotations

import sqlite3
from hashlib import sha256
from typing import Any, Sequence

import orjson

from ledger.audit import EMPTY_HEAD, AuditTamperedError, Head
from ledger.snapshot_seal import sealed_state

from benchmarks.seed_templates import FilledRow

CHAIN_COLUMNS = ("position", "previous_position", "chain_count", "originator_id", "originator_version", "topic",
                 "state_hash", "aggregate_hash", "global_hash")
SQLITE_CACHE_KIB = 262_144  # the events' key index takes random inserts: keep its pages in memory
SQLITE_BUSY_MS = 30_000


class StoreWriter:
    """Positions, chain rows and anchors for batches of rows; subclasses do the SQL."""

    def __init__(self, ledger: Any):
        self.ledger = ledger
        self.chain = ledger.audit
        self.head: Head | None = None

    def start(self) -> Head:
        """Chain whatever the store holds unchained (the employers' saves), then take the head."""
        self.head = self.chain.extend()
        stored = self.last_position_stored()
        if stored != self.head.position:
            raise AuditTamperedError(f"the store ends at {stored} but the chain at {self.head.position} (AUD-1)")
        return self.head

    def chain_rows(self, rows: Sequence[FilledRow]) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """The events at the next positions — (position, id hex, version, topic, state) — and their chain
        rows (ledger.audit's layout), in one pass."""
        assert self.head is not None, "start() first"
        position, count, global_hash = self.head.position, self.head.count, self.head.hash.encode("ascii")
        events, chained = [], []
        for id_hex, id_text, version, topic, state, canonical, state_hash, aggregate_hash in rows:
            global_hex = sha256(global_hash + canonical).hexdigest()  # ledger.audit.link
            global_hash = global_hex.encode("ascii")
            position += 1
            events.append((position, id_hex, version, topic, state))
            chained.append((position, position - 1 if count else None, count + 1, id_text, version, topic,
                            state_hash, aggregate_hash, global_hex))
            count += 1
        return events, chained

    def write(self, rows: Sequence[FilledRow], snapshots: Sequence[tuple[str, int, str, bytes]]) -> Head:
        """One transaction: the events at the next positions, their chain rows, snapshots, an anchor."""
        assert self.head is not None, "start() first"
        if not rows:
            return self.head
        before = self.head
        events, chained = self.chain_rows(rows)
        snapshots = self.sealed(rows, snapshots)
        head = Head(chained[-1][0], chained[-1][8], chained[-1][2])
        self.transaction(before, events, chained, snapshots, head)
        if not self.chain.anchors.in_transaction:
            self.chain.anchors.append(head)  # the anchor file, after the commit
        self.head = head
        return head

    def sealed(self, rows: Sequence[FilledRow], snapshots: Sequence[tuple[str, int, str, bytes]]
               ) -> list[tuple[str, int, str, bytes]]:
        """Each snapshot with the chain hash of its event and its seal (``ledger.snapshot_seal``), as a save
        writes it: the filled rows carry every event's aggregate hash."""
        links = {(id_hex, version): (id_text, aggregate_hash)
                 for id_hex, id_text, version, _topic, _state, _canonical, _hash, aggregate_hash in rows}
        out = []
        for id_hex, version, topic, state in snapshots:
            id_text, chain_hash = links[(id_hex, version)]
            document = orjson.loads(state)
            document["state"] = sealed_state(self.ledger.snapshot_key, id_text, version, chain_hash, document["state"])
            out.append((id_hex, version, topic, orjson.dumps(document)))
        return out

    @staticmethod
    def check_head(before: Head, stored_position: int | None, chain_row: Any) -> None:
        """Under the write lock: nobody wrote since this writer's last batch."""
        found = Head(chain_row[0], chain_row[1], chain_row[2]) if chain_row else EMPTY_HEAD
        if (stored_position or 0) != before.position or found != before:
            raise AuditTamperedError(f"the store moved while seeding (events end at {stored_position}, chain at "
                                     f"{found}; expected {before}): another writer? (AUD-1)")

    def last_position_stored(self) -> int:
        raise NotImplementedError

    def bulk(self) -> None:
        """Set the store up for the bulk of the writes (after anything that reads the chain by aggregate)."""

    def transaction(self, before: Head, events: list[tuple[Any, ...]], chained: list[tuple[Any, ...]],
                    snapshots: Sequence[tuple[str, int, str, bytes]], head: Head) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Release the writer's own connection."""


class SQLiteWriter(StoreWriter):
    """Its own connection to the store's file; ``BEGIN IMMEDIATE`` takes the write lock first."""

    def __init__(self, ledger: Any):
        super().__init__(ledger)
        self.connection = sqlite3.connect(ledger.storage.sqlite_path, isolation_level=None,
                                          timeout=SQLITE_BUSY_MS / 1000, check_same_thread=False)  # one at a time
        self.connection.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
        self.connection.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
        self.connection.execute("PRAGMA synchronous=NORMAL")  # WAL: durable at each checkpoint
        self.events = ledger.recorder.events_table_name
        self.snapshots = ledger.snapshots.recorder.events_table_name
        self.index_ddl: str | None = None

    def last_position_stored(self) -> int:
        return self.connection.execute(f"SELECT MAX(rowid) FROM {self.events}").fetchone()[0] or 0

    def bulk(self) -> None:
        """The chain's per-aggregate index is dropped: built once at the end, sorted, it costs a fraction of
        millions of random inserts (``close`` builds it, also after an error)."""
        self.index_ddl = self.chain.store.chain_ddl()[1]
        assert self.index_ddl.startswith("CREATE INDEX IF NOT EXISTS "), self.index_ddl
        self.index_name = self.index_ddl.split()[5]
        self.connection.execute(f"DROP INDEX IF EXISTS {self.index_name}")

    def transaction(self, before: Head, events: list[tuple[Any, ...]], chained: list[tuple[Any, ...]],
                    snapshots: Sequence[tuple[str, int, str, bytes]], head: Head) -> None:
        cursor = self.connection.cursor()
        cursor.execute("BEGIN IMMEDIATE")
        try:
            stored = cursor.execute(f"SELECT MAX(rowid) FROM {self.events}").fetchone()[0]
            chain_row = cursor.execute(f"SELECT position, global_hash, chain_count FROM {self.chain.store.chain} "
                                       "ORDER BY position DESC LIMIT 1").fetchone()
            self.check_head(before, stored, chain_row)
            cursor.executemany(f"INSERT INTO {self.events} (rowid, originator_id, originator_version, topic, state) "
                               "VALUES (?,?,?,?,?)", events)
            cursor.executemany(f"INSERT INTO {self.chain.store.chain} ({','.join(CHAIN_COLUMNS)}) "
                               f"VALUES ({','.join('?' * len(CHAIN_COLUMNS))})", chained)
            cursor.executemany(f"INSERT INTO {self.snapshots} VALUES (?,?,?,?)", snapshots)
            if self.chain.anchors.in_transaction:
                self.chain.anchors.append(head, cursor)
            cursor.execute("COMMIT")
        except BaseException:
            cursor.execute("ROLLBACK")
            raise
        finally:
            cursor.close()

    def close(self) -> None:
        if self.index_ddl:
            self.connection.execute(self.index_ddl)
        self.connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # leave the file whole, the WAL empty
        self.connection.close()


class PostgresWriter(StoreWriter):
    """Its own connection; the chain table and the events table locked (EXCLUSIVE) for each batch."""

    def __init__(self, ledger: Any):
        import psycopg

        super().__init__(ledger)
        self.connection = psycopg.connect(ledger.storage.psycopg_conninfo())
        schema = ledger.recorder.datastore.schema
        self.events = f'"{schema}"."{ledger.recorder.events_table_name}"'
        self.snapshots = f'"{schema}"."{ledger.snapshots.recorder.events_table_name}"'

    def last_position_stored(self) -> int:
        with self.connection.transaction(), self.connection.cursor() as cursor:
            cursor.execute(f"SELECT MAX(notification_id) FROM {self.events}")
            return cursor.fetchone()[0] or 0

    def transaction(self, before: Head, events: list[tuple[Any, ...]], chained: list[tuple[Any, ...]],
                    snapshots: Sequence[tuple[str, int, str, bytes]], head: Head) -> None:
        from uuid import UUID

        with self.connection.transaction(), self.connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {self.chain.store.chain} IN EXCLUSIVE MODE")
            cursor.execute(f"LOCK TABLE {self.events} IN EXCLUSIVE MODE")
            cursor.execute(f"SELECT MAX(notification_id) FROM {self.events}")
            stored = cursor.fetchone()[0]
            cursor.execute(f"SELECT position, global_hash, chain_count FROM {self.chain.store.chain} "
                           "ORDER BY position DESC LIMIT 1")
            self.check_head(before, stored, cursor.fetchone())
            ids: dict[str, UUID] = {}
            with cursor.copy(f"COPY {self.events} (originator_id, originator_version, topic, state, notification_id) "
                             "FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["uuid", "int8", "text", "bytea", "int8"])
                for position, id_hex, version, topic, state in events:
                    key = ids.get(id_hex) or ids.setdefault(id_hex, UUID(hex=id_hex))
                    copy.write_row((key, version, topic, state, position))
            with cursor.copy(f"COPY {self.chain.store.chain} ({','.join(CHAIN_COLUMNS)}) FROM STDIN (FORMAT BINARY)") \
                    as copy:
                copy.set_types(["int8", "int8", "int8", "text", "int8", "text", "text", "text", "text"])
                for chain_row in chained:
                    copy.write_row(chain_row)
            with cursor.copy(f"COPY {self.snapshots} (originator_id, originator_version, topic, state) "
                             "FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["uuid", "int8", "text", "bytea"])
                for id_hex, version, topic, state in snapshots:
                    copy.write_row((UUID(hex=id_hex), version, topic, state))
            cursor.execute(f"SELECT setval(pg_get_serial_sequence('{self.events}', 'notification_id'), %s)",
                           [head.position])
            if self.chain.anchors.in_transaction:
                self.chain.anchors.append(head, cursor)

    def close(self) -> None:
        self.connection.close()


def writer_for(ledger: Any) -> StoreWriter:
    if ledger.storage.engine == "sqlite":
        return SQLiteWriter(ledger)
    return PostgresWriter(ledger)
