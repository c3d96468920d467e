"""The fast, atomic rebuild (``ledger.projections.rebuild``), on SQLite and PostgreSQL.

- The rebuild's fast path (raw log read, orjson, topic fast paths, COPY) gives read tables
  with the same digest as the incremental ``catch_up`` (mapper, handlers), whatever the page
  sizes, and with the fast paths switched off.
- Its decoder gives the same domain events as the application's mapper.
- Readers see the old tables, complete, until the swap commits; a rebuild that fails
  midway (or just before the swap) leaves the old tables and their tracked position as
  they were, and the next rebuild succeeds.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
from datetime import date
from typing import Any, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, inspect, select

from ledger.projections import Projector, ReadModel, tables
from ledger.projections import projector as projector_module
from ledger.projections import rebuild as rebuild_module
from ledger.projections.fund import contributed_fast
from ledger.projections.rebuild import Decoder, Fast, Rebuild
from ledger.projections.registry import REGISTRY, FastPath
from tests.test_projections import build_history, loan_history

pytestmark = pytest.mark.storage


@pytest.fixture
def projector(fund: Any) -> Iterator[Projector]:
    made = Projector.for_ledger(fund.ledger, page_size=7)
    yield made
    made.close()


def more_months(fund: Any, history: dict[str, Any]) -> None:
    """Events after a first projection: the rebuild must then differ from the old tables."""
    fund.on(date(2024, 10, 8))
    fund.remit(history["employer"], "2024-10", [history["a"]])


def shadow_leftovers(projector: Projector) -> list[str]:
    with projector.engine.connect() as connection:
        if projector.engine.dialect.name == "sqlite":
            names = connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'table'").scalars()
            return [name for name in names if rebuild_module.SHADOW_SUFFIX in name]
        schemas = inspect(connection).get_schema_names()
    return [schema for schema in schemas if "_rb_" in schema]


# -- the fast path gives what the incremental path gives --------------------------------------------
@pytest.mark.parametrize("rebuild_page_size", [3, 20_000])
def test_rebuild_digest_equals_catch_up_digest(fund, projector, rebuild_page_size):
    history = build_history(fund)
    loan_history(fund)
    more_months(fund, history)
    projector.catch_up()
    incremental = projector.digest()
    used: dict[str, int] = {}
    real = REGISTRY.fast_paths[contributed_fast_topic()]
    REGISTRY.fast_paths[real.topic] = counted(real, used)
    rebuilder = Projector.for_ledger(fund.ledger, rebuild_page_size=rebuild_page_size)
    try:
        result = rebuilder.rebuild()
        assert result.position_to == fund.ledger.recorder.max_notification_id()
        assert result.events_read == fund.ledger.recorder.max_notification_id()
        assert used[real.topic] > 10  # the contributions went through the fast path
        assert rebuilder.digest() == incremental
        assert rebuilder.position() == result.position_to
        assert rebuilder.catch_up().events_read == 0
    finally:
        REGISTRY.fast_paths[real.topic] = real
        rebuilder.close()
    assert shadow_leftovers(projector) == []


def counted(fast: FastPath, used: dict[str, int]) -> FastPath:
    """The fast path, counting in ``used[topic]`` the events it projected (with the parse done here by
    ``builder``, or in the parsing process and then ``write`` here, ``rebuild.Preparser``)."""
    def counting(function: Any) -> Any:
        def wrapper(*args: Any) -> bool:
            done = function(*args)
            used[fast.topic] = used.get(fast.topic, 0) + done
            return done
        return wrapper
    return dataclasses.replace(fast, builder=counting(fast.builder),
                               write=counting(fast.write) if fast.write is not None else None)


def contributed_fast_topic() -> str:
    return next(topic for topic, fast in REGISTRY.fast_paths.items() if fast.builder is contributed_fast)


def test_rebuild_without_fast_paths_gives_the_same_digest(fund, projector, monkeypatch):
    history = build_history(fund)
    more_months(fund, history)
    projector.catch_up()
    incremental = projector.digest()
    monkeypatch.setattr(REGISTRY, "fast_paths", {})
    projector.rebuild()
    assert projector.digest() == incremental


@pytest.mark.parametrize("cache_rows_max", [3, 200_000])
def test_a_rebuild_queries_entity_rows_only_once_its_cache_was_dropped(fund, projector, monkeypatch,
                                                                     cache_rows_max):
    """While the rebuild's cache holds every row it wrote it reads none back (one pass, no prefetch);
    once the cache is dropped it goes back to prefetching — the same tables either way."""
    history = build_history(fund)
    loan_history(fund)
    more_months(fund, history)
    projector.catch_up()
    incremental = projector.digest()
    monkeypatch.setattr(projector_module, "ENTITY_CACHE_ROWS_MAX", cache_rows_max)
    entity_reads: list[str] = []
    entities = tuple(entity.table.name for entity in REGISTRY.entities.values())

    def spy(_connection: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        shadow = rebuild_module.SHADOW_SUFFIX in statement or "_rb_" in statement  # SQLite / PostgreSQL
        if statement.lstrip().upper().startswith("SELECT") and shadow and any(name in statement for name in entities):
            entity_reads.append(statement)

    rebuilder = Projector.for_ledger(fund.ledger, rebuild_page_size=4)
    event.listen(rebuilder.engine, "before_cursor_execute", spy)
    try:
        rebuilder.rebuild()
        assert rebuilder.digest() == incremental
    finally:
        event.remove(rebuilder.engine, "before_cursor_execute", spy)
        rebuilder.close()
    assert (entity_reads == []) is (cache_rows_max == 200_000)


# -- the parsing process (SQLite) -------------------------------------------------------------------
def _parse_failing(real: Any, how: str) -> Any:
    calls = {"n": 0}

    def parse(fast: Any, state: dict[str, Any]) -> Any:
        calls["n"] += 1
        if how == "refuses" and calls["n"] % 2:
            return None  # every other contribution: "a shape I do not know", for the handler
        if how == "raises" and calls["n"] > 3:
            raise RuntimeError("parser broke")
        if how == "exits" and calls["n"] > 3:
            os._exit(3)  # the process dies without a word
        if how == "hangs" and calls["n"] > 3:
            time.sleep(60)  # the process stops answering: the rebuild gives it up and goes on
        return real(fast, state)
    return parse


@pytest.mark.parametrize("how", ["works", "refuses", "raises", "exits", "hangs"])
def test_contributions_parsed_in_a_second_process_give_the_same_tables(fund, projector, monkeypatch, how):
    """A forked process parses the contributions while the rebuild applies pages; whatever it does —
    parse, refuse a shape, raise, die, hang — the tables are those of ``catch_up``."""
    history = build_history(fund)
    loan_history(fund)
    more_months(fund, history)
    projector.catch_up()
    incremental = projector.digest()
    monkeypatch.setattr(rebuild_module.os, "cpu_count", lambda: 2)
    if how == "hangs":
        monkeypatch.setattr(rebuild_module, "PREPARSE_WAIT_SECONDS", 0.5)
    monkeypatch.setattr(rebuild_module, "_other_threads", lambda: False)  # other tests' threads: see below
    real = REGISTRY.fast_paths[contributed_fast_topic()]
    monkeypatch.setitem(REGISTRY.fast_paths, real.topic, dataclasses.replace(real, parse=_parse_failing(real.parse, how)))
    taken: list[Any] = []
    errors: list[str | None] = []
    original_take, original_close = rebuild_module.Preparser.take, rebuild_module.Preparser.close

    def take(self: Any, position: int) -> Any:
        result = original_take(self, position)
        taken.append(result)
        return result

    def close(self: Any) -> None:
        errors.append(self.error)
        original_close(self)

    monkeypatch.setattr(rebuild_module.Preparser, "take", take)
    monkeypatch.setattr(rebuild_module.Preparser, "close", close)
    rebuilder = Projector.for_ledger(fund.ledger, rebuild_page_size=5)
    try:
        rebuilder.rebuild()
        assert rebuilder.digest() == incremental
    finally:
        rebuilder.close()
    parsed = [result for result in taken if result is not rebuild_module.MISSING and result is not None]
    assert len(errors) == 1
    if how == "works":
        assert errors == [None] and len(parsed) == len(taken) > 10
    elif how == "refuses":
        assert errors == [None] and 0 < len(parsed) < len(taken) and None in taken
    else:  # the first three were parsed there, the rest here
        assert errors[0] is not None and len(parsed) <= 3 and rebuild_module.MISSING in taken


def test_no_parsing_process_while_other_threads_run(fund, projector, monkeypatch):
    """A fork copies the locks other threads may hold: with any thread besides this one, or one core, or
    no WAL, the rebuild parses in its own process."""
    build_history(fund)
    monkeypatch.setattr(rebuild_module.os, "cpu_count", lambda: 2)
    monkeypatch.setattr(rebuild_module, "_other_threads", lambda: False)
    rebuild = Rebuild(projector)
    with projector.engine.connect() as connection:
        alone = rebuild_module.Preparser.start(rebuild, connection, 10)
        if alone is not None:
            alone.close()
        assert alone is not None
        monkeypatch.setattr(rebuild_module, "_other_threads", lambda: True)
        assert rebuild_module.Preparser.start(rebuild, connection, 10) is None
        monkeypatch.setattr(rebuild_module, "_other_threads", lambda: False)
        monkeypatch.setattr(rebuild_module.os, "cpu_count", lambda: 1)
        assert rebuild_module.Preparser.start(rebuild, connection, 10) is None


def test_a_thread_of_ours_counts_as_another_thread_and_the_pools_do_not():
    stop = threading.Event()
    ours = threading.Thread(target=stop.wait, name="statement-printer", daemon=True)
    ours.start()
    try:
        assert rebuild_module._other_threads()
    finally:
        stop.set()
        ours.join()
    assert rebuild_module.POOL_THREAD.fullmatch("pool-1-worker-2") and rebuild_module.POOL_THREAD.fullmatch(
        "pool-3-scheduler") and not rebuild_module.POOL_THREAD.fullmatch("pool-1-worker-2x")


def test_rebuild_and_catch_up_report_their_progress_by_log_position(fund, projector):
    build_history(fund)
    last = fund.ledger.recorder.max_notification_id()
    caught: list[tuple[int, int]] = []
    projector.catch_up(progress=lambda position, stop: caught.append((position, stop)))  # pages of 7
    rebuilder = Projector.for_ledger(fund.ledger, rebuild_page_size=5)
    rebuilt: list[tuple[int, int]] = []
    try:
        rebuilder.rebuild(progress=lambda position, stop: rebuilt.append((position, stop)))
    finally:
        rebuilder.close()
    for seen in (caught, rebuilt):
        positions = [position for position, _stop in seen]
        assert len(seen) > 3 and positions == sorted(set(positions)) and seen[-1] == (last, last)
        assert all(stop == last for _position, stop in seen)


def test_the_fast_path_refuses_shapes_it_does_not_know(fund, projector):
    build_history(fund)
    topic = contributed_fast_topic()
    decoder = Decoder(fund.ledger)
    fast = Fast(decoder, projector.engine.dialect)
    stored = next(n for n in fund.ledger.iter_notifications() if n.topic == topic)
    state = Decoder.raw(stored.state)
    assert state is not None
    batch_never_touched = None
    for changed in ({**state, "extra": 1}, {**state, "employer_amount": 1.5},
                    {**state, "value_date": "2024-07-08"}, {**state, "period": None},
                    {**state, "journal": [{"account": "2001", "side": "Cr", "amount": "1.00"}]},
                    {**state, "journal": {"lines": []}}):
        assert contributed_fast(batch_never_touched, fast, stored.id, str(stored.originator_id),
                                stored.originator_version, changed) is False


# -- the decoder is the mapper, faster --------------------------------------------------------------
def test_decoder_gives_the_mappers_events(fund):
    history = build_history(fund)
    loan_history(fund)
    more_months(fund, history)
    ledger = fund.ledger
    decoder = Decoder(ledger)
    assert decoder.plain
    for notification in ledger.iter_notifications():
        expected = ledger.mapper.to_domain_event(notification)
        got = decoder.event(notification.topic, notification.originator_id, notification.originator_version,
                            notification.state)
        assert type(got) is type(expected)
        assert got.__dict__ == expected.__dict__, notification.topic
    assert decoder.state(b'{"a": NaN, "b": {"_type_": "money", "_data_": "1.50"}}')["b"] == \
        ledger.mapper.transcoder.decode(b'{"a": NaN, "b": {"_type_": "money", "_data_": "1.50"}}')["b"]
    huge = b'{"n": 123456789012345678901234567890, "f": [0.1, {"_type_": "money", "_data_": "2.00"}]}'
    assert decoder.state(huge) == ledger.mapper.transcoder.decode(huge)


# -- atomic: readers see the old tables until the swap; a failure changes nothing ------------------------
def test_readers_see_the_old_complete_tables_while_a_rebuild_runs(fund, projector, monkeypatch):
    history = build_history(fund)
    projector.catch_up()
    old_digest, old_counts, old_position = projector.digest(), projector.table_counts(), projector.position()
    old_balance = ReadModel(projector.engine).balance(history["a"])
    more_months(fund, history)
    reader = Projector.for_ledger(fund.ledger)  # another engine: its own connections
    seen: list[tuple[str, dict[str, int], int]] = []
    swap_name = "_swap_postgres" if projector.engine.dialect.name == "postgresql" else "_swap_sqlite"
    real_swap = getattr(Rebuild, swap_name)
    real_apply = Rebuild._apply_page

    def look(self: Rebuild, *args: Any) -> Any:
        seen.append((reader.digest(), reader.table_counts(), reader.position()))
        return real_apply(self, *args)

    def look_then_swap(self: Rebuild, *args: Any) -> Any:
        seen.append((reader.digest(), reader.table_counts(), reader.position()))
        assert ReadModel(reader.engine).balance(history["a"]) == old_balance
        return real_swap(self, *args)

    monkeypatch.setattr(Rebuild, "_apply_page", look)
    monkeypatch.setattr(Rebuild, swap_name, look_then_swap)
    monkeypatch.setattr(rebuild_module, "SQLITE_COMMIT_EVENTS", 10)  # SQLite: several build transactions
    try:
        rebuilder = Projector.for_ledger(fund.ledger, rebuild_page_size=5)
        try:
            rebuilder.rebuild()
        finally:
            rebuilder.close()
        assert len(seen) > 3
        assert all(view == (old_digest, old_counts, old_position) for view in seen)
        rebuilt = reader.digest()
        assert rebuilt != old_digest
        assert reader.position() == fund.ledger.recorder.max_notification_id()
    finally:
        reader.close()
    assert rebuilt == digest_of_catch_up_from_scratch(projector)


def digest_of_catch_up_from_scratch(projector: Projector) -> str:
    """Empty the read tables, put the position back to 0 and catch up: the incremental path's digest."""
    with projector.engine.begin() as connection:
        for table in tables.metadata.sorted_tables:
            if table is not tables.tracking:
                connection.execute(table.delete())
        connection.execute(tables.tracking.update().where(tables.tracking.c.name == projector.name)
                           .values(position=0))
    projector.catch_up()
    return projector.digest()


@pytest.mark.parametrize("where", ["page", "swap"])
def test_a_rebuild_failing_midway_leaves_the_old_tables_and_position(fund, projector, monkeypatch, where):
    history = build_history(fund)
    projector.catch_up()
    old_digest, old_position = projector.digest(), projector.position()
    more_months(fund, history)
    pages = {"count": 0}
    swap_name = "_swap_postgres" if projector.engine.dialect.name == "postgresql" else "_swap_sqlite"
    real_apply, real_swap = Rebuild._apply_page, getattr(Rebuild, swap_name)

    def fail_on_third_page(self: Rebuild, *args: Any) -> Any:
        pages["count"] += 1
        if pages["count"] == 3:
            raise KeyboardInterrupt("killed in the middle of a rebuild")
        return real_apply(self, *args)

    def fail_in_the_swap(self: Rebuild, connection: Any, stop: int) -> Any:
        real_swap(self, connection, stop)  # tables dropped and moved, position moved: then the process dies
        raise KeyboardInterrupt("killed before the swap committed")

    if where == "page":
        monkeypatch.setattr(Rebuild, "_apply_page", fail_on_third_page)
        monkeypatch.setattr(rebuild_module, "SQLITE_COMMIT_EVENTS", 4)  # SQLite: shadow pages committed
    else:
        monkeypatch.setattr(Rebuild, swap_name, fail_in_the_swap)
    rebuilder = Projector.for_ledger(fund.ledger, rebuild_page_size=4)
    try:
        with pytest.raises(KeyboardInterrupt):
            rebuilder.rebuild()
    finally:
        rebuilder.close()
    assert projector.digest() == old_digest
    assert projector.position() == old_position
    if projector.engine.dialect.name == "postgresql":
        assert shadow_leftovers(projector) == []  # one transaction: nothing left behind
    elif where == "page":
        assert shadow_leftovers(projector)  # committed shadow pages, never read, dropped by the next rebuild
    monkeypatch.undo()
    projector.catch_up()  # the old tables go on from their position
    caught_up = projector.digest()
    projector.rebuild()  # and a later rebuild clears what the failed one left
    assert projector.digest() == caught_up
    assert shadow_leftovers(projector) == []
    with projector.engine.connect() as connection:
        lines = connection.execute(select(func.count()).select_from(tables.account_lines)).scalar()
    assert lines == projector.table_counts()["rm_account_lines"] > 0


def test_rebuild_keeps_the_indexes_and_other_tracking_rows(fund, projector):
    build_history(fund)
    projector.catch_up()
    with projector.engine.begin() as connection:
        connection.execute(tables.tracking.insert().values(name="another-projection", position=3))
    projector.rebuild()
    with projector.engine.connect() as connection:
        inspector = inspect(connection)
        schema = (projector.engine.get_execution_options().get("schema_translate_map") or {}).get(None)
        for table in tables.metadata.sorted_tables:
            names = {index["name"] for index in inspector.get_indexes(table.name, schema=schema)}
            assert {index.name for index in table.indexes} <= names, table.name
        other = connection.execute(select(tables.tracking.c.position)
                                   .where(tables.tracking.c.name == "another-projection")).scalar()
    assert other == 3
    assert projector.catch_up().events_read == 0


def test_an_obsolete_index_of_an_older_store_is_dropped(fund, projector):
    build_history(fund)
    projector.catch_up()
    schema = (projector.engine.get_execution_options().get("schema_translate_map") or {}).get(None)
    with projector.engine.begin() as connection:
        prefix = f'"{schema}".' if schema else ""
        connection.exec_driver_sql(f'CREATE INDEX "rm_journal_lines_account_idx" ON {prefix}"rm_journal_lines" '
                                   "(account, value_date)")

    def names() -> set[str]:
        with projector.engine.connect() as connection:
            return {index["name"] for index in inspect(connection).get_indexes("rm_journal_lines", schema=schema)}

    assert "rm_journal_lines_account_idx" in names()
    projector.create_tables()
    assert tables.OBSOLETE_INDEXES[0] not in names() and "rm_journal_lines_date_idx" in names()


# -- every topic fast path: the handlers' rows, or a refusal ---------------------------------------------
def with_interest(fund: Any) -> dict[str, Any]:
    history = build_history(fund)
    fund.on(date(2025, 7, 1))
    fund.ledger.settle_interest(date(2025, 6, 30))
    return history


@pytest.mark.parametrize("rebuild_page_size", [5, 20_000])
def test_each_fast_path_gives_the_digest_of_its_handlers(fund, projector, monkeypatch, rebuild_page_size):
    with_interest(fund)
    projector.catch_up()
    incremental = projector.digest()
    used: dict[str, int] = {}
    monkeypatch.setattr(REGISTRY, "fast_paths", {topic: counted(fast, used) for topic, fast in REGISTRY.fast_paths.items()})
    rebuilder = Projector.for_ledger(fund.ledger, rebuild_page_size=rebuild_page_size)
    try:
        rebuilder.rebuild()
        assert rebuilder.digest() == incremental
    finally:
        rebuilder.close()
    names = {topic.rpartition(".")[2]: count for topic, count in used.items()}
    assert set(names) >= {"Contributed", "Registered", "Opened", "BaseSet", "InterestSettled"}
    assert all(names[name] > 0 for name in ("Contributed", "Registered", "Opened", "BaseSet", "InterestSettled"))


def test_each_fast_path_refuses_a_shape_it_does_not_know(fund, projector):
    with_interest(fund)
    fast = Fast(Decoder(fund.ledger), projector.engine.dialect)
    stored = {n.topic: n for n in fund.ledger.iter_notifications()}
    for topic, path in REGISTRY.fast_paths.items():
        notification = stored[topic]
        state = Decoder.raw(notification.state)
        assert state is not None
        for changed in ({**state, "extra": 1}, {key: value for key, value in list(state.items())[1:]},
                        {**state, "timestamp": "2024-07-08T18:00:00+08:00"}):
            assert path.builder(None, fast, notification.id, str(notification.originator_id),
                                notification.originator_version, changed) is False, topic


# -- any page size, any cache limit, with or without the parsing process: the same tables -------------------
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(page_size=st.integers(1, 40), cache_rows_max=st.sampled_from([2, 5, 9, 200_000]), parser=st.booleans())
def test_any_rebuild_gives_the_tables_of_catch_up(fund, projector, monkeypatch, page_size, cache_rows_max, parser):
    """Rebuild with pages of 1..40 events, a cache dropped early, often or never (the one-pass and the two-pass
    page, entity rows written at the end or before each drop) and the contributions parsed in a second
    process or here: every combination gives the digest of the incremental catch-up."""
    if not hasattr(fund, "_digest_of_catch_up"):
        history = with_interest(fund)
        loan_history(fund)
        more_months(fund, history)
        projector.catch_up()
        fund._digest_of_catch_up = projector.digest()
    monkeypatch.setattr(projector_module, "ENTITY_CACHE_ROWS_MAX", cache_rows_max)
    monkeypatch.setattr(rebuild_module, "_other_threads", lambda: not parser)
    monkeypatch.setattr(rebuild_module.os, "cpu_count", lambda: 2)
    rebuilder = Projector.for_ledger(fund.ledger, rebuild_page_size=page_size)
    try:
        result = rebuilder.rebuild()
        assert rebuilder.digest() == fund._digest_of_catch_up
        assert result.position_to == rebuilder.position() == fund.ledger.recorder.max_notification_id()
    finally:
        rebuilder.close()
    assert shadow_leftovers(projector) == []
