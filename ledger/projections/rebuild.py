"""A full rebuild of the read tables: into shadow tables, swapped in at once (ADR 0008).

Readers never see a partial rebuild, and a crash leaves the live tables and their tracked
position as they were:

- **SQLite**: the tables are built as ``rm_x__rebuild_<token>`` beside the live ones, in
  transactions of at most ``SQLITE_COMMIT_EVENTS`` events (the event store's writers get the
  database between them); the last one drops the live tables, renames the shadow ones,
  creates the secondary indexes and moves the tracked position — one transaction. Shadow
  tables a crashed rebuild left behind are dropped by the next one.
- **PostgreSQL**: one transaction builds the tables (indexes last) in a scratch schema
  ``<schema>_rb_<token>`` and then moves them into the store's schema (``DROP TABLE``,
  ``ALTER TABLE … SET SCHEMA``) with the tracked position. A crash rolls it all back.

The tracked position becomes the last notification read (on PostgreSQL the audit store's
stable stop), whatever a concurrent ``catch_up`` did to the old tables meanwhile; the next
``catch_up`` goes on from there.

Speed (target ≥ 50,000 events/s): the log is read with the driver's own cursor straight from
the events table, in pages of ``REBUILD_PAGE_SIZE`` (binary results on PostgreSQL: the state
arrives as bytes, not hex text); a topic with no handler is skipped before decoding (unless its
bytes may hold journal lines); the state is decoded with orjson and the application's own
transcodings (memoised for the immutable types: money, dates, times, UUIDs, decimals); a topic
with a registered *fast path* (``Registry.fast_path``: contributions, interest, account
openings, bases, member registrations) writes its rows straight from that dict, if the event
class needs no upcasting; every other event is made into the same domain event object the
mapper makes and goes through the ordinary handlers, in log order, on the same cached rows.
The shadow tables hold only what this rebuild wrote, and the projector keeps every entity row
it changed in its cache until that grows past ``ENTITY_CACHE_ROWS_MAX``: until then a page is one
pass in log order that never reads an entity row back (a key not cached has no row), and each
changed entity row is written once, at the end of the load (or just before the cache is dropped)
rather than after every page; after a drop, pages prefetch the rows they need in a few ``IN``
queries first and write their entity rows as ``catch_up`` does.
With a second core, a forked process (``Preparser``) decodes and checks the
contributions (the fast path's ``parse``) while this one applies the pages and writes rows; it
hands back its results in order, and anything it cannot give is parsed here (same rows).
Rows are written with multi-row ``INSERT`` statements (SQLite, on a connection tuned for the
load: ``SQLITE_LOAD_PRAGMAS``, restored afterwards) or binary ``COPY`` (PostgreSQL), into
tables that get their secondary indexes after the load.
"""

from __future__ import annotations

import gc
import multiprocessing
import os
import pickle
import re
import sqlite3
import threading
import time
import uuid
from itertools import chain
from urllib.parse import quote
from typing import TYPE_CHECKING, Any, Callable, Iterable, Sequence

import orjson
from eventsourcing.persistence import Notification, find_id_convertor
from eventsourcing.utils import resolve_topic
from sqlalchemy import Connection, MetaData, Table
from sqlalchemy.schema import CreateIndex, CreateTable

from ledger.projections import tables
from ledger.projections.batch import Batch, fen
from ledger.projections.journal import JOURNAL_MARKERS
from ledger.projections.projector import CatchUp, utc_naive
from ledger.transcoding import FastJSONTranscoder

if TYPE_CHECKING:
    from ledger.projections.projector import Projector

REBUILD_PAGE_SIZE = 20_000
SQLITE_COMMIT_EVENTS = 250_000
SHADOW_SUFFIX = "__rebuild_"
# The rebuild's own SQLite connection while it loads the shadow tables (restored afterwards; the pool reuses
# it): a page cache that holds the tables being built (no spilling mid-transaction), sorts for the indexes in
# memory, the events read through a memory map rather than read() calls, and freed pages (the old tables
# dropped by the swap) not overwritten with zeros on disk — the read tables hold nothing the events table
# beside them does not (a distribution may build SQLite with SECURE_DELETE on by default).
SQLITE_LOAD_PRAGMAS = {"cache_size": -262_144, "temp_store": 2, "secure_delete": "FAST", "mmap_size": 1 << 30}
MEMO_MAX = 100_000  # distinct values kept per memo (dates, amounts, ids repeat; free text does not)
JOURNAL_COLUMNS = ("position", "entry_no", "line_no", "value_date", "recorded_at_utc", "account", "side",
                   "amount_fen", "source_type", "source_id", "source_version", "event")
assert tuple(tables.journal_lines.c.keys()) == JOURNAL_COLUMNS, "update Fast.journal_rows with rm_journal_lines"

Row = tuple[int, Any, int, str, bytes]  # position, stored originator id, version, topic, state
Plan = tuple[list[Any], Callable[..., bool] | None, tuple[str, ...], bool]


def owned_tables() -> list[Table]:
    """Every read table a rebuild replaces (all but the tracking table), parents first."""
    return [table for table in tables.metadata.sorted_tables if table is not tables.tracking]


class Decoder:
    """Stored JSON state to what the application's mapper would give: the ledger's orjson transcoder
    (ledger/transcoding.py, equal to ``JSONTranscoder.decode`` by test), its memo of immutable values
    shared with the fast paths' ``typed``."""

    def __init__(self, app: Any):
        self.mapper = app.mapper
        transcoder = app.mapper.transcoder
        if not isinstance(transcoder, FastJSONTranscoder):  # an application built without the ledger's own
            fast = FastJSONTranscoder()
            for transcoding in getattr(transcoder, "names", {}).values():
                fast.register(transcoding)
            transcoder = fast
        self.transcoder = transcoder
        self.names: dict[str, Any] = dict(transcoder.names)
        self.plain = self.mapper.cipher is None and self.mapper.compressor is None and bool(self.names)
        self.classes: dict[str, type] = {}
        self.ids: dict[Any, tuple[Any, str]] = {}

    def state(self, raw: bytes) -> dict[str, Any]:
        return self.transcoder.decode(raw)

    @staticmethod
    def raw(raw: bytes) -> dict[str, Any] | None:
        """The stored JSON as plain data, typed values left as ``{"_type_", "_data_"}`` (a fast path's input)."""
        try:
            loaded = orjson.loads(raw)
        except orjson.JSONDecodeError:
            return None
        return loaded if type(loaded) is dict else None

    def typed(self, name: Any, data: Any) -> Any:
        return self.transcoder.typed(name, data)

    def event(self, topic: str, stored_id: Any, version: int, raw: bytes) -> Any:
        """The domain event, built as ``Mapper.to_domain_event`` builds it."""
        if not self.plain:
            return self.mapper.to_domain_event(Notification(id=0, originator_id=stored_id,
                                                            originator_version=version, topic=topic, state=raw))
        cls = self.classes.get(topic)
        if cls is None:
            cls = self.classes[topic] = resolve_topic(topic)
        state = self.state(raw)
        state["originator_id"] = find_id_convertor(cls, type(stored_id))(stored_id)
        state["originator_version"] = version
        class_version = getattr(cls, "class_version", 1)
        from_version = state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(state)
            from_version += 1
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", state)
        return event

    def aggregate_id(self, stored_id: Any, convert: Callable[[Any], Any]) -> str:
        found = self.ids.get(stored_id)
        if found is None:
            if len(self.ids) > MEMO_MAX:
                self.ids.clear()
            found = self.ids[stored_id] = (stored_id, str(convert(stored_id)))
        return found[1]


class Fast:
    """What a fast path needs: stored values to driver values (memoised), journal rows."""

    def __init__(self, decoder: Decoder, dialect: Any):
        self.decoder = decoder
        lines = tables.account_lines.c
        self._date_proc = lines.value_date.type._cached_bind_processor(dialect)
        self._time_proc = lines.recorded_at_utc.type._cached_bind_processor(dialect)
        flag = lines.is_reversal.type._cached_bind_processor(dialect)
        self._flags = {value: (flag(value) if flag else value) for value in (False, True)}
        journal = tables.journal_lines.c
        assert type(journal.value_date.type) is type(lines.value_date.type)
        assert type(journal.recorded_at_utc.type) is type(lines.recorded_at_utc.type)
        self._dates: dict[str, Any] = {}
        self._times: dict[str, Any] = {}
        self._fens: dict[str, int] = {}

    def date(self, value: Any) -> Any:
        """A ``date_iso`` value as the driver gets it for a Date column (None: not one)."""
        if type(value) is dict and len(value) == 2 and value.get("_type_") == "date_iso":
            data = value.get("_data_")
            found = self._dates.get(data)
            return found if found is not None else self._slow(self._dates, data, self._date)
        return None

    def recorded(self, value: Any) -> Any:
        """A ``datetime_iso`` recorded time as naive UTC, as the driver gets it (MNY-4)."""
        if type(value) is dict and len(value) == 2 and value.get("_type_") == "datetime_iso":
            data = value.get("_data_")
            found = self._times.get(data)
            return found if found is not None else self._slow(self._times, data, self._recorded)
        return None

    def fen(self, value: Any) -> int | None:
        """A ``money`` value in whole fen (``batch.fen`` of the decoded Money)."""
        if type(value) is dict and len(value) == 2 and value.get("_type_") == "money":
            data = value.get("_data_")
            found = self._fens.get(data)
            return found if found is not None else self._slow(self._fens, data, self._fen)
        return None

    def _slow(self, memo: dict[str, Any], data: Any, convert: Callable[[str], Any]) -> Any:
        if type(data) is not str:
            return None
        try:
            found = convert(data)
        except Exception:  # the event's own handlers will say what is wrong with it
            return None
        if len(memo) > MEMO_MAX:
            memo.clear()
        memo[data] = found
        return found

    def _date(self, data: str) -> Any:
        decoded = self.decoder.typed("date_iso", data)
        return self._date_proc(decoded) if self._date_proc else decoded

    def _recorded(self, data: str) -> Any:
        decoded = utc_naive(self.decoder.typed("datetime_iso", data))
        return self._time_proc(decoded) if self._time_proc else decoded

    def _fen(self, data: str) -> int:
        return fen(self.decoder.typed("money", data))

    def flag(self, value: bool) -> Any:
        return self._flags[value]

    def value(self, value: Any, name: str) -> Any:
        """A stored ``{"_type_": name, "_data_": text}`` as the mapper decodes it (None: not one)."""
        if type(value) is dict and len(value) == 2 and value.get("_type_") == name:
            data = value.get("_data_")
            if type(data) is str:
                try:
                    return self.decoder.typed(name, data)
                except Exception:  # the event's own handlers will say what is wrong with it
                    return None
        return None

    def journal_lines(self, value: Any) -> tuple[tuple[str, str, int], ...] | None:
        """An event's ``journal`` as (account, side, fen) per line (None: not a list of lines with a text
        account and side and a money amount) — what ``journal_rows`` checks, without the row's other columns."""
        if type(value) is not list:
            return None
        lines = []
        fens = self._fens
        for line in value:
            if type(line) is not dict or "_type_" in line:
                return None
            account, side, amount = line.get("account"), line.get("side"), line.get("amount")
            if type(account) is not str or type(side) is not str or type(amount) is not dict:
                return None
            amount_fen = fens.get(amount.get("_data_")) if amount.get("_type_") == "money" and len(amount) == 2 \
                else None
            if amount_fen is None:
                amount_fen = self.fen(amount)
                if amount_fen is None:
                    return None
            lines.append((account, side, amount_fen))
        return tuple(lines)

    def journal_rows(self, value: Any, position: int, entry_no: int, value_date: Any, recorded: Any,
                     source_type: str, source_id: str, version: int, event_name: str) -> list[tuple[Any, ...]] | None:
        """The ``rm_journal_lines`` rows ``project_journal`` writes for an event's ``journal``
        (None: what ``journal_lines`` refuses)."""
        lines = self.journal_lines(value)
        if lines is None:
            return None
        return [(position, entry_no, line_no, value_date, recorded, account, side, amount_fen, source_type, source_id,
                 version, event_name) for line_no, (account, side, amount_fen) in enumerate(lines, start=1)]


# -- writing ----------------------------------------------------------------------------------------
def _qualified(connection: Connection, table: Table) -> str:
    preparer = connection.dialect.identifier_preparer
    schema = (connection.get_execution_options().get("schema_translate_map") or {}).get(None)
    name = preparer.quote(table.name)
    return f"{preparer.quote_schema(schema)}.{name}" if schema else name


COPY_TYPES = {"BigInteger": "int8", "Integer": "int4", "String": "varchar", "Text": "text", "Date": "date",
              "DateTime": "timestamp", "Boolean": "bool"}  # SQLAlchemy type -> PostgreSQL type (binary COPY)


def _copy_types(table: Table) -> list[str] | None:
    """PostgreSQL type names for a binary COPY into ``table`` (None: a column type not mapped here)."""
    names = []
    for column in table.columns:
        name = COPY_TYPES.get(type(column.type).__name__)
        if name is None or getattr(column.type, "timezone", False):
            return None
        names.append(name)
    return names


def copy_rows(connection: Connection, table: Table, rows: list[tuple[Any, ...]]) -> None:
    """PostgreSQL: ``COPY … FROM STDIN`` (binary, with the column types; rows in column order)."""
    if not rows:
        return
    preparer = connection.dialect.identifier_preparer
    columns = ", ".join(preparer.quote(column.name) for column in table.columns)
    types = _copy_types(table)
    statement = f"COPY {_qualified(connection, table)} ({columns}) FROM STDIN"
    cursor = connection.connection.driver_connection.cursor()
    try:
        with cursor.copy(statement + (" (FORMAT BINARY)" if types else "")) as copy:
            if types:
                copy.set_types(types)
            write = copy.write_row
            for row in rows:
                write(row)
    finally:
        cursor.close()


SQLITE_ROWS_PER_INSERT = 200  # rows per multi-row INSERT on SQLite (within its limit on bound variables)


def insert_rows_sqlite(connection: Connection, table: Table, rows: list[tuple[Any, ...]]) -> None:
    """SQLite: multi-row ``INSERT … VALUES (…), (…)`` statements, many rows each (rows in column order).

    ``executemany`` of one row per statement pays the statement's round trip through the VM per
    row; 200 rows a statement load the same values about a third faster (measured on the benchmark).
    """
    if not rows:
        return
    width = len(table.columns)
    cursor = connection.connection.driver_connection.cursor()
    try:
        limit = cursor.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        per = max(1, min(SQLITE_ROWS_PER_INSERT, limit // width))
        preparer = connection.dialect.identifier_preparer
        head = f"INSERT INTO {_qualified(connection, table)} " \
               f"({', '.join(preparer.quote(column.name) for column in table.columns)}) VALUES "
        one = "(" + ", ".join("?" * width) + ")"
        whole = len(rows) - len(rows) % per
        if whole:
            flat = list(chain.from_iterable(rows[:whole]))
            step = per * width
            cursor.executemany(head + ", ".join([one] * per), [flat[start:start + step]
                                                                for start in range(0, len(flat), step)])
        if whole < len(rows):
            rest = rows[whole:]
            cursor.execute(head + ", ".join([one] * len(rest)), list(chain.from_iterable(rest)))
    finally:
        cursor.close()


# -- parsing in a second process ------------------------------------------------------------------------
PREPARSE_CHUNK = 1_024  # events per message from the parsing process
PREPARSE_WAIT_SECONDS = 30.0  # a parsing process silent this long is given up (the rebuild parses itself)
MISSING = object()  # ``Preparser.take``: no result from the other process (parse here)


class Preparser:
    """With a core to spare: a forked process reads the events of the topics whose fast path names a
    ``parse`` (``Registry.fast_path``) and runs it on them — the JSON decode and every check — while
    this process applies the pages; ``take(position)`` gives that event's result (None: a shape the
    fast path does not know) for the fast path's ``write``.

    The process gets the same ``Fast`` (fork), reads the committed log up to the rebuild's stop
    position through a connection of its own (SQLite: read-only, and WAL, so the rebuild's open write
    transaction does not hold it up; PostgreSQL: a new session, every event up to the stable stop
    already committed), and sends its results in order, ``PREPARSE_CHUNK`` events a message
    (``pickle`` over a private pipe from the forked child: trusted). If it fails, dies or goes silent
    for ``PREPARSE_WAIT_SECONDS``, ``take`` gives ``MISSING`` and the page loop parses the event
    itself: the rows are the same either way (digest tests).
    """

    def __init__(self, source: tuple[str, str], statement: str, parameters: tuple[Any, ...],
                 parsers: dict[str, Callable[[Any, dict[str, Any]], Any]], writes: dict[str, Callable[..., bool]],
                 fast: "Fast"):
        self.writes = writes  # topic -> its fast path's write, for the results ``take`` gives
        context = multiprocessing.get_context("fork")
        self.receiver, sender = context.Pipe(duplex=False)
        _widen(sender.fileno())
        self.process = context.Process(target=_preparse, args=(sender, source, statement, parameters, parsers, fast),
                                       name="gjj-rebuild-parse", daemon=True)
        self.process.start()
        sender.close()
        self.results: dict[int, Any] = {}
        self.covered = 0  # every event up to this position has its result in ``results`` (or was taken)
        self.error: str | None = None

    @classmethod
    def start(cls, rebuild: "Rebuild", connection: Connection, stop: int) -> "Preparser | None":
        """A preparser for this rebuild, or None where one cannot help or is not safe: one core, no fork,
        other threads running (a fork copies locks they may hold: the command line and the benchmarks
        run a rebuild alone with at most the PostgreSQL pool's threads, a server would not get one), a
        SQLite database that is not a WAL-mode file, no fast path with a ``parse``."""
        if not rebuild.decoder.plain or (os.cpu_count() or 1) < 2 \
                or "fork" not in multiprocessing.get_all_start_methods() or _other_threads():
            return None
        source = cls._source(rebuild, connection)
        if source is None:
            return None
        parsers, writes = {}, {}
        for topic in rebuild.registry.fast_paths:
            fast = rebuild.registry.fast_path_for(topic)
            if fast is not None and fast.parse is not None and fast.write is not None \
                    and getattr(resolve_topic(topic), "class_version", 1) == 1:
                parsers[topic] = fast.parse
                writes[topic] = fast.write
        if not parsers:
            return None
        recorder = rebuild.app.recorder
        if rebuild.postgres:
            schema = recorder.datastore.schema
            table = f'"{schema}"."{recorder.events_table_name}"' if schema else f'"{recorder.events_table_name}"'
            statement = (f"SELECT notification_id, topic, state FROM {table} WHERE notification_id <= %s "
                         "AND topic = ANY(%s) ORDER BY notification_id")
            parameters: tuple[Any, ...] = (stop, list(parsers))
        else:
            marks = ", ".join("?" for _ in parsers)
            statement = (f'SELECT rowid, topic, state FROM "{recorder.events_table_name}" '
                         f"WHERE rowid <= ? AND topic IN ({marks}) ORDER BY rowid")
            parameters = (stop, *parsers)
        try:
            return cls(source, statement, parameters, parsers, writes, rebuild.fast)
        except OSError:  # no process to be had (fork refused, no file descriptors): parse here
            return None

    @staticmethod
    def _source(rebuild: "Rebuild", connection: Connection) -> tuple[str, str] | None:
        """("sqlite", absolute path) or ("postgresql", libpq connection string) for the child's own connection."""
        url = rebuild.engine.url
        if rebuild.postgres:
            from psycopg.conninfo import make_conninfo

            options = {key: value for key, value in url.query.items() if isinstance(value, str) and key != "schema"}
            return "postgresql", make_conninfo(host=url.host or "", port=str(url.port or ""), dbname=url.database or "",
                                               user=url.username or "", password=url.password or "", **options)
        path = url.database
        if not path or path == ":memory:" or path.startswith("file:") or not os.path.isfile(path):
            return None
        if str(connection.exec_driver_sql("PRAGMA journal_mode").scalar()).lower() != "wal":
            return None
        return "sqlite", os.path.abspath(path)

    def take(self, position: int) -> Any:
        """The other process's result for the event at ``position`` (``MISSING``: none, parse it here)."""
        while self.covered < position:
            if self.error is not None or not self._receive():
                return MISSING
        return self.results.pop(position, MISSING)

    def _receive(self) -> bool:
        try:
            if not self.receiver.poll(PREPARSE_WAIT_SECONDS):
                self.error = f"no result from the parsing process within {PREPARSE_WAIT_SECONDS:.0f} s"
                self.process.terminate()
                return False
            covered, results = pickle.loads(self.receiver.recv_bytes())
        except (EOFError, OSError, pickle.UnpicklingError, ValueError, TypeError) as error:
            self.error = repr(error)
            return False
        if covered == "error":
            self.error = str(results)
            return False
        self.results.update(results)
        self.covered = covered
        return True

    def close(self) -> None:
        self.receiver.close()  # a process still sending stops at its next message
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join()


POOL_THREAD = re.compile(r"pool-\d+-(scheduler|worker-\d+)")  # psycopg_pool's, idle between its own tasks


def _other_threads() -> bool:
    """Threads besides this one, other than the PostgreSQL store's connection pool's (a child that hung on a
    lock one of them held at the fork would be given up after ``PREPARSE_WAIT_SECONDS``, nothing worse)."""
    current = threading.current_thread()
    return threading.active_count() > 1 and any(
        thread is not current and not POOL_THREAD.fullmatch(thread.name) for thread in threading.enumerate())


def _widen(pipe: int) -> None:
    """Let the parsing process run ahead while the rebuild writes a page: the largest pipe buffer the
    system allows (Linux; 64 KiB otherwise)."""
    try:
        import fcntl

        with open("/proc/sys/fs/pipe-max-size") as limit:
            fcntl.fcntl(pipe, fcntl.F_SETPIPE_SZ, int(limit.read()))
    except (ImportError, AttributeError, OSError, ValueError):
        pass


def _preparse(sender: Any, source: tuple[str, str], statement: str, parameters: tuple[Any, ...],
              parsers: dict[str, Callable[[Any, dict[str, Any]], Any]], fast: "Fast") -> None:
    """The forked process: parse each event of the topics and send (last position, results) in order."""
    database: Any = None
    try:
        engine, where = source
        if engine == "postgresql":
            import psycopg

            database = psycopg.connect(where)
            cursor = database.cursor(name="gjj_rebuild_parse")  # server-side: rows arrive as they are fetched
            cursor.execute(statement, parameters, binary=True)  # the state as its bytes
        else:
            database = sqlite3.connect(f"file:{quote(where)}?mode=ro", uri=True)
            cursor = database.execute(statement, parameters)
        loads, decode_error = orjson.loads, orjson.JSONDecodeError
        while rows := cursor.fetchmany(PREPARSE_CHUNK):
            results = []
            for position, topic, raw in rows:
                try:
                    state = loads(raw)
                except decode_error:
                    state = None
                results.append((position, parsers[topic](fast, state) if type(state) is dict else None))
            sender.send_bytes(pickle.dumps((rows[-1][0], results), protocol=pickle.HIGHEST_PROTOCOL))
        sender.send_bytes(pickle.dumps((parameters[0], [])))  # everything up to the stop position is sent
    except BaseException as error:  # the rebuild parses in its own process instead
        try:
            sender.send_bytes(pickle.dumps(("error", repr(error))))
        except BaseException:
            pass
    finally:
        sender.close()
        if database is not None:
            database.close()


# -- the rebuild ------------------------------------------------------------------------------------
class Rebuild:
    """One full rebuild for a projector (``Projector.rebuild``)."""

    def __init__(self, projector: "Projector", page_size: int = REBUILD_PAGE_SIZE,
                 progress: Callable[[int, int], None] | None = None):
        self.projector = projector
        self.progress = progress
        self.app = projector.app
        self.registry = projector.registry
        self.page_size = page_size
        self.engine = projector.engine
        self.postgres = self.engine.dialect.name == "postgresql"
        self.token = uuid.uuid4().hex[:8]
        self.decoder = Decoder(self.app)
        self.fast = Fast(self.decoder, self.engine.dialect)
        self.plans: dict[str, Plan] = {}
        self.physical: dict[Table, Table] = {}
        self.live_schema: str | None = None
        self.shadow_schema: str | None = None
        self.convert_id: Callable[[Any], Any] = getattr(self.app.recorder, "convert_originator_id",
                                                        lambda stored: stored)
        self.cache_complete = True  # every entity row written so far is in the projector's cache
        self.preparser: Preparser | None = None
        self.unwritten: dict[str, set[str]] = {}  # entity rows changed in the cache, not yet in the tables

    # -- orchestration -------------------------------------------------------------------------
    def run(self) -> CatchUp:
        started = time.perf_counter()
        projector = self.projector
        projector.create_tables()  # the tracking row, and the live tables if there were none yet
        projector._forget()
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            with self.engine.connect() as connection:
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
                saved = None if self.postgres else self._tune_sqlite(connection)
                try:
                    read, decoded, pages, stop = self._build_and_swap(connection)
                except BaseException:
                    self._rollback(connection)
                    raise
                finally:
                    if saved:
                        self._restore_sqlite(connection, saved)
        finally:
            projector._forget()
            if was_enabled:
                gc.enable()
        return CatchUp(0, stop, read, decoded, pages, time.perf_counter() - started)

    @staticmethod
    def _tune_sqlite(connection: Connection) -> dict[str, Any]:
        saved = {name: connection.exec_driver_sql(f"PRAGMA {name}").scalar() for name in SQLITE_LOAD_PRAGMAS}
        for name, value in SQLITE_LOAD_PRAGMAS.items():
            connection.exec_driver_sql(f"PRAGMA {name} = {value}")
        return saved

    @staticmethod
    def _restore_sqlite(connection: Connection, saved: dict[str, Any]) -> None:
        try:
            for name, value in saved.items():
                connection.exec_driver_sql(f"PRAGMA {name} = {int(value)}")
        except Exception:  # the connection is broken: the pool must not hand it out again as it is
            connection.invalidate()

    def _rollback(self, connection: Connection) -> None:
        try:
            connection.exec_driver_sql("ROLLBACK")
        except Exception:  # no transaction open, or the connection is gone: nothing was swapped
            pass

    def _build_and_swap(self, connection: Connection) -> tuple[int, int, int, int]:
        if self.postgres:
            self.live_schema = self._translated_schema() or \
                connection.exec_driver_sql("SELECT current_schema()").scalar()
            connection.exec_driver_sql("BEGIN")
            self._create_shadow_postgres(connection)
            stop = self._stop(connection)
        else:
            self._drop_stale_sqlite(connection)
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            self._create_shadow_sqlite(connection)
            stop = self._stop(connection)
        read, decoded, pages = self._load(connection, stop)
        if self.postgres:
            self._swap_postgres(connection, stop)
        else:
            self._swap_sqlite(connection, stop)
        connection.exec_driver_sql("COMMIT")
        return read, decoded, pages, stop

    def _translated_schema(self) -> str | None:
        return (self.engine.get_execution_options().get("schema_translate_map") or {}).get(None)

    def _stop(self, connection: Connection) -> int:
        stable = self.projector._stable_stop()
        if stable is not None:
            return int(stable)
        return int(self.app.recorder.max_notification_id() or 0)

    # -- shadow tables -------------------------------------------------------------------------
    def _create_shadow_sqlite(self, connection: Connection) -> None:
        shadow = MetaData()
        for table in owned_tables():
            copy = table.to_metadata(shadow, name=f"{table.name}{SHADOW_SUFFIX}{self.token}")
            connection.execute(CreateTable(copy))
            self.physical[table] = copy

    def _drop_stale_sqlite(self, connection: Connection) -> None:
        """Shadow tables of a rebuild that crashed (or of one running now, which then fails)."""
        names = [name for (name,) in connection.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'rm\\_%' ESCAPE '\\'")
            if SHADOW_SUFFIX in name]
        if names:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            for name in names:
                connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{name}"')
            connection.exec_driver_sql("COMMIT")

    def _create_shadow_postgres(self, connection: Connection) -> None:
        live = self.live_schema or "public"
        self.shadow_schema = f"{live[:40]}_rb_{self.token}"
        connection.exec_driver_sql(f'CREATE SCHEMA "{self.shadow_schema}"')
        connection.execution_options(schema_translate_map={None: self.shadow_schema})
        for table in owned_tables():
            connection.execute(CreateTable(table))

    # -- swapping ------------------------------------------------------------------------------
    def _move_tracking(self, connection: Connection, stop: int) -> None:
        name = self.projector.name
        tracking = tables.tracking
        updated = connection.execute(tracking.update().where(tracking.c.name == name).values(position=stop))
        if updated.rowcount != 1:
            connection.execute(tracking.insert().values(name=name, position=stop))

    def _swap_sqlite(self, connection: Connection, stop: int) -> None:
        for table in reversed(owned_tables()):
            connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{table.name}"')
        for table in owned_tables():
            connection.exec_driver_sql(f'ALTER TABLE "{self.physical[table].name}" RENAME TO "{table.name}"')
        for table in owned_tables():
            for index in table.indexes:
                connection.execute(CreateIndex(index))
        self._move_tracking(connection, stop)

    def _swap_postgres(self, connection: Connection, stop: int) -> None:
        for table in owned_tables():  # indexes last, in the scratch schema where their names are free
            for index in table.indexes:
                connection.execute(CreateIndex(index))
        live, shadow = self.live_schema, self.shadow_schema
        for table in reversed(owned_tables()):
            connection.exec_driver_sql(f'DROP TABLE IF EXISTS "{live}"."{table.name}"')
        for table in owned_tables():
            connection.exec_driver_sql(f'ALTER TABLE "{shadow}"."{table.name}" SET SCHEMA "{live}"')
        connection.exec_driver_sql(f'DROP SCHEMA "{shadow}"')
        connection.execution_options(schema_translate_map={None: live} if self._translated_schema() else None)
        self._move_tracking(connection, stop)

    # -- loading ---------------------------------------------------------------------------------
    def _events_statement(self) -> str:
        recorder = self.app.recorder
        table = recorder.events_table_name
        if self.postgres:
            schema = recorder.datastore.schema
            qualified = f'"{schema}"."{table}"' if schema else f'"{table}"'
            return (f"SELECT notification_id, originator_id, originator_version, topic, state FROM {qualified} "
                    "WHERE notification_id > %s AND notification_id <= %s ORDER BY notification_id LIMIT %s")
        return (f'SELECT rowid, originator_id, originator_version, topic, state FROM "{table}" '
                "WHERE rowid > ? AND rowid <= ? ORDER BY rowid LIMIT ?")

    def _load(self, connection: Connection, stop: int) -> tuple[int, int, int]:
        self.preparser = Preparser.start(self, connection, stop)
        try:
            return self._load_pages(connection, stop)
        finally:
            self._stop_preparser()

    def _stop_preparser(self) -> None:
        if self.preparser is not None:
            self.preparser.close()
            self.preparser = None

    def _load_pages(self, connection: Connection, stop: int) -> tuple[int, int, int]:
        statement = self._events_statement()
        driver = connection.connection.driver_connection
        writer = copy_rows if self.postgres else insert_rows_sqlite
        position = read = decoded = pages = since_commit = 0
        while position < stop:
            cursor = driver.cursor()
            try:
                if self.postgres:  # binary results: the state arrives as its bytes, not as hex text to parse
                    cursor.execute(statement, (position, stop, self.page_size), binary=True)
                else:
                    cursor.execute(statement, (position, stop, self.page_size))
                page: Sequence[Row] = cursor.fetchall()
            finally:
                cursor.close()
            if not page:
                break
            decoded += self._apply_page(connection, page, writer)
            read, pages, position = read + len(page), pages + 1, page[-1][0]
            since_commit += len(page)
            self._bound_cache(connection, writer)
            if self.progress is not None:
                self.progress(position, stop)
            if not self.postgres and since_commit >= SQLITE_COMMIT_EVENTS and position < stop:
                connection.exec_driver_sql("COMMIT")  # let the event store's writers in
                connection.exec_driver_sql("BEGIN IMMEDIATE")
                since_commit = 0
        self._write_entities(connection, writer)
        return read, decoded, pages

    def _bound_cache(self, connection: Connection, writer: Any) -> None:
        """Between pages: the projector's bound on its cached rows. While it never had to drop them, every
        row this rebuild wrote is still cached, so a key missing there has no row (``_Batch``)."""
        cached = self.projector._rows
        if self.projector._cache_full():
            self._write_entities(connection, writer)  # before the cache that holds them goes
        self.projector._bound_cache()
        if self.projector._rows is not cached:  # dropped: from now on, rows are looked for in the tables
            self.cache_complete = False
            self._stop_preparser()  # the two-pass pages parse for themselves

    def _plan(self, topic: str) -> Plan:
        """(handlers, fast path builder, entities keyed by the event's own id, skip unless journal markers)."""
        registrations = self.registry.handlers_for(topic)
        fast = self.registry.fast_path_for(topic) if self.decoder.plain else None
        if fast is not None and getattr(resolve_topic(topic), "class_version", 1) != 1:
            fast = None  # a stored state may need upcasting: the mapper's way
        own = tuple(dict.fromkeys(entity_name for registration in registrations
                                  for attribute, entity_name in registration.prefetch if attribute == "@id"))
        plan = self.plans[topic] = (registrations, fast.builder if fast is not None else None, own,
                                    not registrations and self.decoder.plain)
        return plan

    def _apply_page_cached(self, connection: Connection, page: Sequence[Row], writer: Any) -> int:
        """``_apply_page`` while the cache is complete: one pass in log order, no prefetch (``_Batch``)."""
        projector, decoder, plans, fast = self.projector, self.decoder, self.plans, self.fast
        convert_id, ids, loads, apply = self.convert_id, decoder.ids, orjson.loads, projector._apply
        preparser = self.preparser
        writes = preparser.writes if preparser is not None else {}
        batch = _Batch(connection, self.registry, projector._rows, app=self.app, context=projector._context,
                       physical=self.physical, writer=writer)
        applied = 0
        try:
            for position, stored_id, version, topic, raw in page:
                registrations, builder, _own, skip = plans.get(topic) or self._plan(topic)
                if skip and not any(marker in raw for marker in JOURNAL_MARKERS):
                    continue
                applied += 1
                found = ids.get(stored_id)
                aggregate_id = found[1] if found is not None else decoder.aggregate_id(stored_id, convert_id)
                if builder is not None:
                    parsed = preparser.take(position) if topic in writes else MISSING
                    if parsed is MISSING:
                        try:
                            state = loads(raw)
                        except orjson.JSONDecodeError:
                            state = None
                        if type(state) is dict and builder(batch, fast, position, aggregate_id, version, state):
                            continue
                    elif parsed is not None and writes[topic](batch, fast, position, aggregate_id, version, parsed):
                        continue  # parsed by the other process (``Preparser``)
                event = decoder.event(topic, convert_id(stored_id), version, raw)
                apply(batch, _Stored(position, stored_id, version, topic), event, aggregate_id=aggregate_id)
            for finalizer in self.registry.finalizers:
                finalizer(batch)
            for entity_name, keys in batch.changed.items():  # written once, at the end (``_write_entities``)
                self.unwritten.setdefault(entity_name, set()).update(keys)
                keys.clear()
            batch.flush(None, 0, page[-1][0])
        except BaseException:
            projector._forget()
            raise
        return applied

    def _write_entities(self, connection: Connection, writer: Any) -> None:
        """The entity rows the one-pass pages changed, each written once from the cache."""
        if any(self.unwritten.values()):
            batch = Batch(connection, self.registry, self.projector._rows, app=self.app,
                          context=self.projector._context, physical=self.physical, writer=writer)
            for entity_name, keys in self.unwritten.items():
                batch.changed[entity_name] = keys
            batch.flush(None, 0, 0)
        self.unwritten = {}

    def _apply_page(self, connection: Connection, page: Sequence[Row], writer: Any) -> int:
        if self.cache_complete:
            return self._apply_page_cached(connection, page, writer)
        projector, decoder, plans = self.projector, self.decoder, self.plans
        convert_id, ids, loads = self.convert_id, decoder.ids, orjson.loads
        work: list[tuple[Any, ...]] = []
        keys: dict[str, set[str]] = {}
        for position, stored_id, version, topic, raw in page:
            plan = plans.get(topic) or self._plan(topic)
            registrations, builder, own, skip = plan
            if skip and not any(marker in raw for marker in JOURNAL_MARKERS):
                continue
            found = ids.get(stored_id)
            aggregate_id = found[1] if found is not None else decoder.aggregate_id(stored_id, convert_id)
            for entity_name in own:
                wanted = keys.get(entity_name)
                if wanted is None:
                    wanted = keys[entity_name] = set()
                wanted.add(aggregate_id)
            if builder is not None:
                try:
                    state = loads(raw)
                except orjson.JSONDecodeError:
                    state = None
                work.append((position, topic, aggregate_id, version, builder,
                             state if type(state) is dict else None, stored_id, raw))
                continue  # a fast path's own row; the others load on a miss
            event = decoder.event(topic, convert_id(stored_id), version, raw)
            work.append((position, topic, aggregate_id, version, None, event, stored_id, raw))
            for registration in registrations:
                for attribute, entity_name in registration.prefetch:
                    if attribute != "@id":
                        value = getattr(event, attribute, None)
                        if value is not None:
                            keys.setdefault(entity_name, set()).add(str(value))
        batch = Batch(connection, self.registry, projector._rows, app=self.app, context=projector._context,
                      physical=self.physical, writer=writer)
        fast = self.fast
        try:
            for entity_name, wanted in keys.items():
                batch.prefetch(entity_name, wanted)
            for position, topic, aggregate_id, version, builder, payload, stored_id, raw in work:
                if builder is not None:
                    if payload is not None and builder(batch, fast, position, aggregate_id, version, payload):
                        continue
                    payload = decoder.event(topic, convert_id(stored_id), version, raw)  # another shape
                projector._apply(batch, _Stored(position, stored_id, version, topic), payload,
                                 aggregate_id=aggregate_id)
            for finalizer in self.registry.finalizers:
                finalizer(batch)
            batch.flush(None, 0, page[-1][0])
        except BaseException:
            projector._forget()
            raise
        return len(work)


class _Batch(Batch):
    """A rebuild's batch while the cache holds every row the rebuild wrote (``Rebuild.cache_complete``):
    the shadow tables hold nothing else, so a key not cached has no row and nothing is queried."""

    def prefetch(self, entity_name: str, keys: Iterable[str]) -> None:
        return None


class _Stored:
    """The notification fields ``Projector._apply`` reads."""

    __slots__ = ("id", "originator_id", "originator_version", "topic")

    def __init__(self, position: int, originator_id: Any, version: int, topic: str):
        self.id, self.originator_id, self.originator_version, self.topic = position, originator_id, version, topic

