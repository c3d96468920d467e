"""The write side: an eventsourcing ``Application`` with the ledger's plumbing.

It maps ``GJJ_DATABASE_URL`` onto the event store, transcodes ``Money`` and
``date`` exactly, supplies recorded time from an injected clock (MNY-2: only
entry points read the wall clock), runs every command as one atomic save with
conflict retry, and makes every money-moving command idempotent by its key.
The use cases themselves live in the command mixins (``ledger.services``).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import threading
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterable, Iterator, Sequence
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application, ProcessingEvent
from eventsourcing.domain import BaseAggregate
from eventsourcing.persistence import EventStore, IntegrityError, JSONTranscoder, Mapper, Transcoding

from ledger.aggregates.base import HistoryRequired, LedgerAggregate, recording
from ledger.aggregates.documents import DailySequence, IdempotencyRecord
from ledger.aggregates.errors import IdempotencyConflictError, ValueDateError
from ledger.money import Money
from ledger.policy import Policy, load_policy
from ledger.storage import StorageConfig, config_from_env, prepare

logger = logging.getLogger("gjj.ledger")
CHINA_TZ = timezone(timedelta(hours=8), "CST")
CONFLICT_RETRY_MAX = 8
HISTORY_RELOADS_MAX = 32  # aggregates one command may need in history mode (ADR 0015)
NOTIFICATION_PAGE_SIZE = 1000


class ConcurrencyConflictError(RuntimeError):
    """A command kept conflicting with concurrent writers; nothing was saved."""


class NotFoundError(LookupError):
    """An aggregate named by the user does not exist; ``field`` names the input."""

    def __init__(self, message: str, field: str):
        self.field = field
        self.rule = "NOT-FOUND"
        super().__init__(f"{field}: {message}")


class MoneyAsStr(Transcoding):
    type = Money
    name = "money"

    def encode(self, obj: Money) -> str:
        return str(obj)

    def decode(self, data: str) -> Money:
        return Money.stored(data)


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class Clock:
    """The wall clock, read only here (entry points)."""

    def now(self) -> datetime:
        return datetime.now(CHINA_TZ)


@dataclass
class FixedClock(Clock):
    """A clock that says what it is told: tests, the demo, replays."""

    at: datetime

    def now(self) -> datetime:
        return self.at

    def set_day(self, day: date, hour: int = 18) -> None:
        self.at = datetime(day.year, day.month, day.day, hour, 0, tzinfo=CHINA_TZ)


def content_hash(payload: Any) -> str:
    text = json.dumps(payload, sort_keys=True, default=str, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class LedgerBase(Application):
    """Event store, clock, policy, atomic commands with retry and idempotency."""

    name = "ledger"
    snapshotting_intervals: dict[type, int] = {}

    def __init__(self, url: str | None = None, *, policy: Policy | None = None, clock: Clock | None = None,
                 env: dict[str, str] | None = None):
        self.storage: StorageConfig = config_from_env(url)
        prepare(self.storage)
        merged = {**self.storage.eventsourcing_env(), **(env or {})}
        from ledger.snapshot_seal import load_key

        self.snapshot_key = load_key(self.storage)
        super().__init__(env=merged)
        self._index_topics()
        self.policy = policy or load_policy()
        self.clock = clock or Clock()
        self._local = threading.local()  # per thread: the API answers reads while its batcher writes
        self.snapshots_rejected = 0  # snapshots whose seal did not verify: replayed instead (reported)

    def save(self, *objs: Any, **kwargs: Any) -> Any:
        """``Application.save``, collecting an aggregate's events without eventsourcing's runtime-Protocol
        ``isinstance`` checks, which walk every attribute of the protocol for each object (~5 % of a batch
        save of a thousand loans). Anything that is not an aggregate goes through the library's own path."""
        processing_event: ProcessingEvent[Any] = ProcessingEvent()
        events, aggregates = processing_event.events, processing_event.aggregates
        for obj in objs:
            if isinstance(obj, BaseAggregate):
                events.extend(obj.collect_events())
                aggregates[obj.id] = obj
            elif obj is not None:
                processing_event.collect_events(obj)
        processing_event.saved_kwargs.update(kwargs)
        recordings = self._record(processing_event)
        self._take_snapshots(processing_event)
        self._notify(recordings)
        self.notify(processing_event.events)  # deprecated hook, kept for subclasses
        return recordings

    def _index_topics(self) -> None:
        """An index of the events by topic: the ids of every account or loan, the mandates of a deduction day
        and the failed debits are read by topic, and without it each such read scans the whole log."""
        from ledger.bulk import engine_of

        engine = engine_of(self.recorder)
        table = self.recorder.events_table_name
        if engine == "sqlite":
            with self.recorder.datastore.transaction(commit=True) as cursor:
                cursor.execute(f'CREATE INDEX IF NOT EXISTS "{table}_topic_idx" ON {table} (topic)')
        elif engine == "postgres":
            schema, name = self.recorder.datastore.schema, table.split(".")[-1]
            with self.recorder.datastore.transaction(commit=True) as cursor:
                cursor.execute("SELECT to_regclass(%s) AS found", [f'"{schema}"."{name}_topic_idx"'])
                if cursor.fetchone()["found"] is None:
                    cursor.execute(f'CREATE INDEX IF NOT EXISTS "{name}_topic_idx" ON "{schema}"."{name}" '
                                   "(topic, notification_id)")

    def construct_snapshot_store(self) -> EventStore:
        """Snapshots read through a mapper that believes only sealed ones (``ledger.snapshot_seal``)."""
        recorder = self.factory.aggregate_recorder(purpose="snapshots")
        return EventStore(mapper=SealCheckingMapper(self.mapper, self.snapshot_key), recorder=recorder)

    # -- snapshots at the current version, in the save's transaction ---------------------------------
    def _take_snapshots(self, processing_event: Any) -> None:
        """Replaced: snapshots are taken from the aggregates in memory and written with their events."""

    def snapshots_due(self, processing_event: Any) -> list[Any]:
        """A snapshot of each saved aggregate whose version moved ``snapshotting_intervals`` past its last."""
        if self.snapshots is None or not self.snapshotting_intervals:
            return []
        due = []
        saved = {event.originator_id for event in processing_event.events}  # only these have chain links here
        with recording(self.clock.now()):
            for aggregate in processing_event.aggregates.values():
                if aggregate.id not in saved:
                    continue
                interval = self.snapshotting_intervals.get(type(aggregate))
                last = aggregate.__dict__.get("_snapshot_version", 0)
                if interval is not None and aggregate.version - last >= interval:
                    due.append(type(aggregate).Snapshot.take(aggregate))
        return due

    def take_snapshot(self, aggregate_id: UUID, version: int | None = None, projector_func: Any = None) -> None:
        """A sealed snapshot of the aggregate as stored (at ``version``, or its latest)."""
        aggregate = self.replay_whole(aggregate_id, version) if version is not None else self.get(aggregate_id)
        self.write_snapshots([aggregate])

    def write_snapshots(self, aggregates: Sequence[Any], replace_older: bool = False) -> None:
        """Sealed snapshots of chained aggregates outside a save (seeding, ``take_snapshot``, repairs)."""
        appender = getattr(self, "_audit_appender", None)
        if appender is None or not aggregates:
            return
        with recording(self.clock.now()):
            snapshots = [type(a).Snapshot.take(a) for a in aggregates]
        links = appender.chain.aggregate_hashes_at([(str(s.originator_id), s.originator_version) for s in snapshots])
        chained = [s for s in snapshots if str(s.originator_id) in links]  # an unchained version gets none
        if not chained:
            return
        with appender.store.write_transaction() as cursor:
            appender.store_snapshots(cursor, chained, links, replace_older=replace_older)
        versions = {s.originator_id: s.originator_version for s in chained}
        for aggregate in aggregates:
            if aggregate.id in versions:
                aggregate.__dict__["_snapshot_version"] = versions[aggregate.id]

    def reseal_snapshots(self, progress: Callable[[int], None] | None = None) -> dict[str, Any]:
        """``gjj audit reseal``: every aggregate whose snapshot is not believed (written before seals, or
        tampered with) is replayed from its events and given a sealed snapshot in place of the old ones.
        Run after upgrading a store, or after ``audit verify`` named a snapshot and staff looked at it."""
        from ledger.audit import SNAPSHOT

        problems = [p for p in self.audit.verify().problems if p.kind == SNAPSHOT]
        ids = sorted({UUID(p.aggregate_id) for p in problems if p.aggregate_id})
        for start in range(0, len(ids), NOTIFICATION_PAGE_SIZE):
            chunk = ids[start:start + NOTIFICATION_PAGE_SIZE]
            self.write_snapshots([self.replay_whole(i) for i in chunk], replace_older=True)
            if progress:
                progress(len(chunk))
        return {"snapshots_not_believed": len(problems), "aggregates_resealed": len(ids)}

    def construct_transcoder(self) -> JSONTranscoder:
        """eventsourcing's JSON transcoder with the orjson decoder (ledger/transcoding.py)."""
        from ledger.transcoding import FastJSONTranscoder

        transcoder = FastJSONTranscoder()
        self.register_transcodings(transcoder)
        return transcoder

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(MoneyAsStr())
        transcoder.register(DateAsISO())
        from ledger.snapshot_codec import LoanBookAsData

        transcoder.register(LoanBookAsData())

    # -- time --------------------------------------------------------------
    def today(self) -> date:
        return self.clock.now().astimezone(CHINA_TZ).date()

    def check_value_date(self, value_date: date, field: str = "value_date") -> date:
        """MNY-4: never after its recording, at most k days before it."""
        today = self.today()
        if value_date > today:
            raise ValueDateError(f"value date {value_date} is after the recording date {today}", field=field)
        limit = self.policy.at(today).time.value_date_backdate_days_max
        if (today - value_date).days > limit:
            raise ValueDateError(f"value date {value_date} is more than {limit} days before {today}", field=field)
        return value_date

    @property
    def history_ids(self) -> set[UUID]:
        """Aggregates loaded from all their events for the command in progress (this thread's)."""
        found = getattr(self._local, "history_ids", None)
        if found is None:
            found = self._local.history_ids = set()
        return found

    @property
    def identity(self) -> dict[UUID, Any] | None:
        """While a batch of commands runs (``ledger.command_batch``), the aggregates its bodies share."""
        return getattr(self._local, "identity", None)

    @identity.setter
    def identity(self, value: dict[UUID, Any] | None) -> None:
        self._local.identity = value

    # -- loading -------------------------------------------------------------
    def get(self, aggregate_id: UUID) -> Any:
        """``repository.get``, or a replay of every event (history mode) for an aggregate the command in
        progress needs whole, whose compact snapshot cannot take one of its later events, or whose
        snapshot is not believed (``ledger.snapshot_seal``)."""
        identity = self.identity
        if identity is not None and aggregate_id in identity:
            from ledger.bulk import ABSENT

            found = identity[aggregate_id]
            if found is ABSENT:
                raise AggregateNotFoundError(aggregate_id)
            return found
        if aggregate_id in self.history_ids:
            found = self.replay_whole(aggregate_id)
        else:
            try:
                found = self.repository.get(aggregate_id)
            except HistoryRequired as need:
                self.note_rejected(need)
                found = self.replay_whole(aggregate_id)
        if identity is not None:
            identity[aggregate_id] = found
        return found

    def note_rejected(self, need: HistoryRequired) -> None:
        """Report a snapshot that was not believed (the aggregate is replayed from its events)."""
        from ledger.snapshot_seal import SnapshotRejected

        if isinstance(need, SnapshotRejected):
            self.snapshots_rejected += 1
            logger.warning("AUD-1: %s", need)

    def replay_whole(self, aggregate_id: UUID, version: int | None = None) -> Any:
        """The aggregate from all its events, no snapshot: its whole history (ADR 0015)."""
        aggregate = None
        for domain_event in self.events.get(aggregate_id, lte=version):
            aggregate = domain_event.mutate(aggregate)
        if aggregate is None:
            raise AggregateNotFoundError(aggregate_id)
        return aggregate

    def as_of(self, aggregate: Any, query: Callable[[Any], Any]) -> Any:
        """``query(aggregate)``, or on the aggregate's whole history when it reaches past the snapshot."""
        try:
            return query(aggregate)
        except HistoryRequired:
            return query(self.replay_whole(aggregate.id))

    def with_history(self, query: Callable[[], Any]) -> Any:
        """Run a query, reloading in history mode whatever aggregate it finds too compact."""
        for _attempt in range(HISTORY_RELOADS_MAX):
            try:
                return query()
            except HistoryRequired as need:
                self._need_history(need)
            finally:
                pass
        raise ConcurrencyConflictError(f"more than {HISTORY_RELOADS_MAX} aggregates needed their history")

    def _need_history(self, need: HistoryRequired) -> None:
        if need.aggregate_id in self.history_ids:
            raise AssertionError(f"history mode still lacks history: {need}") from need
        self.history_ids.add(need.aggregate_id)

    def load(self, cls: type, aggregate_id: UUID, field: str, label: str = "") -> Any:
        try:
            aggregate = self.get(aggregate_id)
        except AggregateNotFoundError:
            raise NotFoundError(f"no {cls.__name__} {label}".rstrip(), field) from None
        if not isinstance(aggregate, cls):
            raise NotFoundError(f"{label} is not a {cls.__name__}", field)
        return aggregate

    def load_many(self, ids: Iterable[UUID]) -> dict[UUID, Any]:
        """Many aggregates in a few statements (ledger.bulk); absent ids are left out."""
        from ledger.bulk import load_many

        return load_many(self, ids)

    def find(self, aggregate_id: UUID) -> Any | None:
        try:
            return self.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    # -- commands --------------------------------------------------------------
    def execute(self, command: str, key: str | None, content: dict[str, Any],
                body: Callable[[], tuple[dict[str, Any], Sequence[LedgerAggregate]]]) -> dict[str, Any]:
        """Run ``body`` and save what it returns in one transaction, idempotent by ``key``.

        A repeat of the key with the same content returns the first result and
        changes nothing; with other content it is refused. A version conflict
        reloads and reruns the body (the failed aggregates lost their events).
        """
        digest = content_hash({"command": command, **content})
        attempts = 0
        try:
            while attempts < CONFLICT_RETRY_MAX:
                if key:
                    first = self._idempotent_result(key, digest)
                    if first is not None:
                        return first
                try:
                    with recording(self.clock.now()):
                        result, aggregates = body()
                        self.before_save(aggregates)
                        extra = [IdempotencyRecord(key=key, command=command, content_hash=digest, result=result)] \
                            if key else []
                except HistoryRequired as need:  # nothing was saved: load it whole and run again (ADR 0015)
                    self._need_history(need)
                    continue
                attempts += 1
                try:
                    self.save(*aggregates, *extra)
                except IntegrityError:
                    continue
                except Exception as error:
                    if type(error).__name__ != "AuditChainLagError":
                        raise
                    # The events committed; the audit chain catches up at the next extend (AUD-1).
                    logger.warning("%s committed but the audit chain lags: %s", command, error.__cause__)
                return result
        finally:
            self.history_ids.clear()
        raise ConcurrencyConflictError(f"{command}: gave up after {CONFLICT_RETRY_MAX} conflicting attempts")

    def before_save(self, aggregates: Sequence[LedgerAggregate]) -> None:
        """Called with a command's aggregates before they are saved (the ledger adds what every command
        owes, such as interest adjustments for postings dated into a settled year)."""

    def _idempotent_result(self, key: str, digest: str) -> dict[str, Any] | None:
        record = self.find(IdempotencyRecord.create_id(key))
        if record is None:
            return None
        if record.content_hash != digest:
            raise IdempotencyConflictError(
                f"idempotency key {key!r} was used before for other content ({record.command})",
                field="idempotency_key")
        return {**record.result, "repeat": True}

    def take_serials(self, scope: str, day: date, count: int = 1) -> tuple[DailySequence, list[str]]:
        """BNK-2: YYYYMMDD + 7-digit daily sequence; the sequence aggregate joins the caller's save."""
        sequence = self.find(DailySequence.create_id(scope, day))
        if sequence is None:
            sequence = DailySequence(scope=scope, day=day)
        return sequence, sequence.take(count)

    def reserve_serials(self, scope: str, day: date, count: int) -> list[str]:
        """A block of serials taken from the day's sequence in a transaction of its own: a batch (or a worker)
        then hands them out without touching the shared counter again; unused ones are left as gaps."""
        for _attempt in range(CONFLICT_RETRY_MAX):
            with recording(self.clock.now()):
                sequence, serials = self.take_serials(scope, day, count)
            try:
                self.save(sequence)
            except IntegrityError:
                continue
            return serials
        raise ConcurrencyConflictError(f"serials: gave up after {CONFLICT_RETRY_MAX} conflicting attempts")

    # -- reading the log ---------------------------------------------------------
    def iter_notifications(self, topics: Sequence[str] = (), start: int = 1) -> Iterator[Any]:
        position = start
        while True:
            page = self.recorder.select_notifications(position, NOTIFICATION_PAGE_SIZE, topics=topics)
            if not page:
                return
            yield from page
            position = page[-1].id + 1

    def iter_events(self, topics: Sequence[str] = ()) -> Iterator[Any]:
        for notification in self.iter_notifications(topics):
            yield self.mapper.to_domain_event(notification)

    def ids_of(self, created_topic: str) -> list[UUID]:
        """Ids of every aggregate created with this topic; creation events are append-only, so the
        list is kept per process and extended from the last position seen."""
        cache = self.__dict__.setdefault("_ids_cache", {})
        position, ids = cache.get(created_topic, (0, []))
        for notification in self.iter_notifications(topics=[created_topic], start=position + 1):
            ids.append(notification.originator_id)
            position = notification.id
        cache[created_topic] = (position, ids)
        return list(ids)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """A batch's many short-lived objects without the cyclic collector walking them every few thousand
    allocations (STYLE: measured, docs/performance.md); the young generation is collected after it."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
            gc.collect(0)


def topic_of(cls: type, event_name: str) -> str:
    return f"{cls.__module__}:{cls.__qualname__}.{event_name}"


def as_str(value: Any) -> Any:
    """JSON-friendly form: money with two decimals, dates ISO, UUIDs as text."""
    if isinstance(value, Money):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict):
        return {str(k): as_str(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_str(v) for v in value]
    return value


def chunked(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for index in range(0, len(items), size):
        yield items[index:index + size]


class SealCheckingMapper(Mapper):
    """The application's mapper for snapshot rows: a snapshot whose seal does not verify raises
    ``SnapshotRejected`` instead of becoming an aggregate (its loader replays the events)."""

    def __init__(self, mapper: Mapper, key: bytes):
        super().__init__(transcoder=mapper.transcoder, compressor=mapper.compressor, cipher=mapper.cipher)
        self.key = key

    def to_domain_event(self, stored_event: Any) -> Any:
        from ledger.snapshot_seal import SnapshotRejected, check

        try:
            event = super().to_domain_event(stored_event)
        except Exception as error:  # an unreadable row is not believed either
            raise SnapshotRejected(stored_event.originator_id, stored_event.originator_version,
                                   f"unreadable: {error}") from error
        check(self.key, str(stored_event.originator_id), stored_event.originator_version, getattr(event, "state", None))
        if not getattr(type(event), "compact", False):  # a generic snapshot: its state is the aggregate's vars
            object.__setattr__(event, "state", self.transcoder.decode(event.state["z"].encode("utf-8")))
        return event
