"""The projector: pages the notification log into the read tables, a page per transaction.

``Projector.for_ledger(ledger)`` opens a SQLAlchemy engine on the event store's own database
(``StorageConfig.sqlalchemy_url()``; on PostgreSQL the URL's ``?schema=`` is applied with a
``schema_translate_map``). ``catch_up()`` reads the log after the tracked position in pages of
``page_size`` notifications, decodes only the events some handler wants (or that may carry
journal lines), applies them to a :class:`~ledger.projections.batch.Batch` and commits the
rows together with the new tracked position: a crash or a kill between pages loses nothing
and repeats nothing. ``rebuild()`` projects the whole log again into shadow tables and swaps
them in at once (``ledger.projections.rebuild``: readers never see a partial rebuild);
``digest()`` hashes every read table in key order, so a rebuild of the same events can be
shown to give the same content (AUD-1).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import time
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, Callable, Sequence

from eventsourcing.persistence import Notification
from sqlalchemy import Engine, create_engine, select

from ledger.projections import tables
from ledger.projections.batch import Batch
from ledger.projections.journal import may_carry_journal, project_journal
from ledger.projections.registry import REGISTRY, EventMeta, ProjectionError, Registry
from ledger.storage import SQLITE_LOCK_TIMEOUT_SECONDS, StorageConfig

TRACKING_NAME = "ledger-read-models"
PAGE_SIZE_DEFAULT = 5_000
PAGE_SIZE_MAX = 20_000
REBUILD_PAGE_SIZE_DEFAULT = 20_000
REBUILD_PAGE_SIZE_MAX = 100_000
ENTITY_CACHE_ROWS_MAX = 200_000
POSTGRES_POOL_SIZE = 2


@dataclass(frozen=True)
class CatchUp:
    """What one ``catch_up()`` (or ``rebuild()``) did."""

    position_from: int
    position_to: int
    events_read: int
    events_decoded: int
    pages: int
    seconds: float

    @property
    def events_per_second(self) -> float:
        return self.events_read / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"position_from": self.position_from, "position_to": self.position_to,
                "events_read": self.events_read, "events_decoded": self.events_decoded, "pages": self.pages,
                "seconds": round(self.seconds, 3), "events_per_second": round(self.events_per_second)}


def make_engine(storage: StorageConfig) -> Engine:
    """An engine on the event store's database; PostgreSQL tables go in the store's schema."""
    url = storage.sqlalchemy_url()
    if storage.engine == "sqlite":
        if storage.sqlite_path in (None, "", ":memory:") or "mode=memory" in (storage.sqlite_path or ""):
            raise ProjectionError("read models need a SQLite file shared with the event store, not :memory:")
        return create_engine(url, connect_args={"timeout": SQLITE_LOCK_TIMEOUT_SECONDS})
    engine = create_engine(url, pool_size=POSTGRES_POOL_SIZE, max_overflow=POSTGRES_POOL_SIZE)
    if storage.schema:
        return engine.execution_options(schema_translate_map={None: storage.schema})
    return engine


def utc_naive(moment: datetime) -> datetime:
    """Recorded times are compared as naive UTC on every backend (MNY-4)."""
    if moment.tzinfo is None:
        raise ProjectionError(f"recorded time {moment} has no time zone")
    return moment.astimezone(timezone.utc).replace(tzinfo=None)


@contextlib.contextmanager
def _collector_paused() -> Any:
    """A page makes many short-lived dicts; the cyclic collector rescanning them halves the rate.

    Paused while a page is built; ``_bound_cache`` collects the young generations between pages.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _drop_obsolete_indexes(connection: Any) -> None:
    """Indexes older versions created that the read tables no longer have (``tables.OBSOLETE_INDEXES``)."""
    schema = (connection.get_execution_options().get("schema_translate_map") or {}).get(None)
    preparer = connection.dialect.identifier_preparer
    for name in tables.OBSOLETE_INDEXES:
        qualified = f"{preparer.quote_schema(schema)}.{preparer.quote(name)}" if schema else preparer.quote(name)
        connection.exec_driver_sql(f"DROP INDEX IF EXISTS {qualified}")


def _create_indexes(connection: Any) -> None:
    for table in tables.metadata.sorted_tables:
        for index in table.indexes:
            index.create(connection, checkfirst=True)


def _plain(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return value


class Projector:
    """Keeps the read tables of one event store up to date with its notification log."""

    def __init__(self, app: Any, engine: Engine, *, registry: Registry = REGISTRY,
                 page_size: int = PAGE_SIZE_DEFAULT, name: str = TRACKING_NAME,
                 rebuild_page_size: int = REBUILD_PAGE_SIZE_DEFAULT):
        if not 0 < page_size <= PAGE_SIZE_MAX:
            raise ValueError(f"page_size: between 1 and {PAGE_SIZE_MAX} (got {page_size})")
        if not 0 < rebuild_page_size <= REBUILD_PAGE_SIZE_MAX:
            raise ValueError(f"rebuild_page_size: between 1 and {REBUILD_PAGE_SIZE_MAX} (got {rebuild_page_size})")
        self.rebuild_page_size = rebuild_page_size
        self.app = app
        self.engine = engine
        self.registry = registry
        self.page_size = page_size
        self.name = name
        self._topics: dict[str, tuple[str, str]] = {}
        self._rows: dict[str, dict[str, dict[str, Any]]] = {}
        self._context: dict[str, Any] = {}
        self._utc: dict[datetime, datetime] = {}  # recorded times repeat across a page: convert each once
        self.create_tables()

    @classmethod
    def for_ledger(cls, ledger: Any, **options: Any) -> "Projector":
        return cls(ledger, make_engine(ledger.storage), **options)

    def close(self) -> None:
        self.engine.dispose()

    # -- tables and position --------------------------------------------------------------
    def create_tables(self) -> None:
        """Create what is missing, secondary indexes included (a rebuild drops them while it loads)."""
        with self.engine.begin() as connection:
            tables.metadata.create_all(connection)
            _create_indexes(connection)
            _drop_obsolete_indexes(connection)
            self._ensure_tracking(connection)

    def _ensure_tracking(self, connection: Any) -> None:
        tracking = tables.tracking.c
        found = connection.execute(select(tracking.position).where(tracking.name == self.name)).first()
        if found is None:
            connection.execute(tables.tracking.insert().values(name=self.name, position=0))

    def position(self) -> int:
        with self.engine.connect() as connection:
            found = connection.execute(select(tables.tracking.c.position)
                                       .where(tables.tracking.c.name == self.name)).scalar()
        return int(found or 0)

    def lag(self) -> int:
        """Notifications stored after the tracked position (0 when caught up)."""
        return max(0, (self.app.recorder.max_notification_id() or 0) - self.position())

    # -- projecting ----------------------------------------------------------------------------
    def catch_up(self, pages_max: int | None = None,
                 progress: Callable[[int, int], None] | None = None) -> CatchUp:
        """Apply every notification after the tracked position, a page per transaction;
        ``progress(position, last position to read)`` after each page."""
        started = time.perf_counter()
        stop = self._stable_stop()
        first = position = self.position()
        last = stop if stop is not None else int(self.app.recorder.max_notification_id() or 0)
        read = decoded = pages = 0
        self._forget()
        try:
            with _collector_paused():
                while pages_max is None or pages < pages_max:
                    page = self.app.recorder.select_notifications(position, self.page_size, stop,
                                                                  inclusive_of_start=False)
                    if not page:
                        break
                    if pages:  # another page follows: collect the last one's cyclic garbage first (not after
                        gc.collect(1)  # the last page: a one-page catch-up of the day's events pays nothing)
                    decoded += self._apply_page(position, page)
                    read, pages, position = read + len(page), pages + 1, page[-1].id
                    self._bound_cache(collect=False)
                    if progress is not None:
                        progress(position, max(last, position))
        finally:
            self._forget()  # what is held between pages is only good inside one run
        return CatchUp(first, position, read, decoded, pages, time.perf_counter() - started)

    def _bound_cache(self, collect: bool = True) -> None:
        """Between pages: drop the caches past their limit, and collect the page's cyclic garbage (if any)."""
        if self._cache_full():
            self._forget()
        if collect:
            gc.collect(1)

    def _cache_full(self) -> bool:
        """The cached rows are past their limit: ``_bound_cache`` drops them."""
        return sum(len(rows) for rows in self._rows.values()) > ENTITY_CACHE_ROWS_MAX

    def _forget(self) -> None:
        self._rows, self._context, self._utc = {}, {}, {}

    def rebuild(self, progress: Callable[[int, int], None] | None = None) -> CatchUp:
        """Project the whole log again into shadow tables and swap them in at once.

        Readers see the old tables, complete, until the swap commits; a crash before it
        leaves them and their tracked position untouched (``ledger.projections.rebuild``).
        The rows are those ``catch_up`` writes (digest tests), produced on a faster path.
        ``progress(position, stop)`` is called after each page.
        """
        from ledger.projections.rebuild import Rebuild

        return Rebuild(self, self.rebuild_page_size, progress).run()

    def _stable_stop(self) -> int | None:
        """PostgreSQL: the last position no in-flight insert can still fill below (ledger.audit)."""
        audit = getattr(self.app, "audit", None)
        store = getattr(audit, "store", None)
        return store.stable_stop() if store is not None else None

    def _apply_page(self, position_before: int, page: Sequence[Notification]) -> int:
        wanted = [n for n in page if self.registry.by_topic.get(n.topic) or may_carry_journal(self.app.mapper, n)]
        events = [(n, self.app.mapper.to_domain_event(n)) for n in wanted]
        try:
            with self.engine.begin() as connection:
                batch = Batch(connection, self.registry, self._rows, app=self.app, context=self._context)
                self._prefetch(batch, events)
                for notification, event in events:
                    self._apply(batch, notification, event)
                for finalizer in self.registry.finalizers:
                    finalizer(batch)
                batch.flush(self.name, position_before, page[-1].id)
        except BaseException:
            self._forget()  # handlers may have changed cached rows that never committed
            raise
        return len(events)

    def _apply(self, batch: Batch, notification: Notification, event: Any, aggregate_id: str | None = None) -> None:
        meta = self._meta(notification, event, aggregate_id)
        try:
            for registration in self.registry.handlers_for(notification.topic):
                registration.handler(batch, event, meta)
            project_journal(batch, event, meta)
        except ProjectionError:
            raise
        except Exception as error:  # a ledger that is wrong must stop (STYLE): say where
            raise ProjectionError(f"{notification.topic} v{notification.originator_version}: {error!r}",
                                  notification.id) from error

    def _meta(self, notification: Notification, event: Any, aggregate_id: str | None = None) -> EventMeta:
        names = self._topics.get(notification.topic)
        if names is None:
            qualname = notification.topic.partition(":")[2]
            aggregate_type, _, event_name = qualname.rpartition(".")
            names = self._topics.setdefault(notification.topic, (aggregate_type.rpartition(".")[2], event_name))
        recorded = self._utc.get(event.timestamp)
        if recorded is None:
            recorded = self._utc[event.timestamp] = utc_naive(event.timestamp)
        return EventMeta(position=notification.id, recorded_at_utc=recorded,
                         aggregate_id=aggregate_id if aggregate_id is not None else str(notification.originator_id),
                         version=notification.originator_version,
                         aggregate_type=names[0], event_name=names[1])

    def _prefetch(self, batch: Batch, events: list[tuple[Notification, Any]]) -> None:
        keys: dict[str, set[str]] = {}
        for notification, event in events:
            for registration in self.registry.handlers_for(notification.topic):
                for attribute, entity_name in registration.prefetch:
                    value = notification.originator_id if attribute == "@id" else getattr(event, attribute, None)
                    if value is not None:
                        keys.setdefault(entity_name, set()).add(str(value))
        for entity_name, wanted in keys.items():
            batch.prefetch(entity_name, wanted)

    # -- digest -----------------------------------------------------------------------------------
    def digest(self) -> str:
        """SHA-256 over every read table, rows in primary-key order, values in column order."""
        digest = hashlib.sha256()
        with self.engine.connect() as connection:
            for table in sorted(tables.metadata.sorted_tables, key=lambda t: t.name):
                digest.update(f"\n#{table.name}\n".encode())
                statement = select(table).order_by(*table.primary_key.columns)
                for row in connection.execute(statement):
                    digest.update(json.dumps([_plain(v) for v in row], ensure_ascii=False).encode())
                    digest.update(b"\n")
        return digest.hexdigest()

    def table_counts(self) -> dict[str, int]:
        from sqlalchemy import func

        with self.engine.connect() as connection:
            return {table.name: int(connection.execute(select(func.count()).select_from(table)).scalar() or 0)
                    for table in sorted(tables.metadata.sorted_tables, key=lambda t: t.name)}
