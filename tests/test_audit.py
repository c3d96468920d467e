"""AUD-1 audit chain: extend, verify and tamper detection on SQLite and PostgreSQL.

A toy bank (an account with Opened/Credited/Debited events carrying Decimal amounts and
value dates) stands in for the ledger's application: ``ledger.audit`` must work over any
eventsourcing ``Application``. Tamper tests edit the stored rows directly with SQL, as an
attacker with database access would, then check that ``verify()`` names the first bad
position and its kind.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import uuid
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import IntegrityError, JSONTranscoder, Transcoding

from ledger.audit import (
    ANCHOR_MISMATCH,
    CHAIN_BROKEN,
    EDITED,
    GENESIS_HASH,
    INSERTED,
    REMOVED,
    REORDERED,
    TRUNCATED,
    UNCHAINED,
    AnchoredApplicationMixin,
    AuditChain,
    AuditChainEmptyError,
    AuditChainLagError,
    AuditConfigurationError,
    AuditTamperedError,
    Head,
    canonical_json,
)

pytestmark = pytest.mark.storage

POSTGRES = {
    "POSTGRES_DBNAME": "test",
    "POSTGRES_HOST": "127.0.0.1",
    "POSTGRES_PORT": "5432",
    "POSTGRES_USER": "postgres",
    "POSTGRES_PASSWORD": "",
}
OPENED_ON = date(2024, 1, 1)


# -- the toy domain ---------------------------------------------------------------------------


class DateAsISO(Transcoding):
    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class Account(Aggregate):
    @event("Opened")
    def __init__(self, holder: str, opened_on: date):
        self.holder = holder
        self.opened_on = opened_on
        self.balance = Decimal("0.00")

    @event("Credited")
    def credit(self, amount: Decimal, value_date: date) -> None:
        self.balance += amount

    @event("Debited")
    def debit(self, amount: Decimal, value_date: date) -> None:
        self.balance -= amount


class Bank(Application):
    name = "ToyBank"

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    def open(self, holder: str) -> uuid.UUID:
        account = Account(holder, OPENED_ON)
        self.save(account)
        return account.id

    def credit(self, account_id: uuid.UUID, amount: str, day: int = 1) -> None:
        account: Account = self.repository.get(account_id)
        account.credit(Decimal(amount), date(2024, 2, day))
        self.save(account)


class AnchoredBank(AnchoredApplicationMixin, Bank):
    name = "ToyBank"


# -- the two stores and raw SQL on them -----------------------------------------------------------


@dataclass
class Store:
    """One event store under test, with raw SQL access for tampering."""

    kind: str
    env: dict[str, str]
    events_table: str
    chain_table: str
    anchor_table: str
    position_column: str

    @property
    def marker(self) -> str:
        return "?" if self.kind == "sqlite" else "%s"

    def execute(self, statement: str, params: tuple[Any, ...] = ()) -> list[Any]:
        statement = statement.replace("?", self.marker)
        if self.kind == "sqlite":
            with sqlite3.connect(self.env["SQLITE_DBNAME"]) as connection:
                return connection.execute(statement, params).fetchall()
        with psycopg.connect(**_pg_connect_args(), autocommit=True) as connection:
            cursor = connection.execute(statement, params)
            return cursor.fetchall() if cursor.description else []

    def positions(self) -> list[int]:
        rows = self.execute(f"SELECT {self.position_column} FROM {self.events_table} ORDER BY 1")
        return [row[0] for row in rows]

    def row(self, position: int) -> tuple[Any, int, str, bytes]:
        (row,) = self.execute(
            f"SELECT originator_id, originator_version, topic, state FROM {self.events_table} "
            f"WHERE {self.position_column} = ?", (position,),
        )
        return row[0], row[1], row[2], bytes(row[3])

    def update(self, position: int, column: str, value: Any) -> None:
        self.execute(f"UPDATE {self.events_table} SET {column} = ? WHERE {self.position_column} = ?",
                     (value, position))

    def delete_events_from(self, position: int, *, chain_too: bool = False, only: bool = False) -> None:
        where = "= ?" if only else ">= ?"
        self.execute(f"DELETE FROM {self.events_table} WHERE {self.position_column} {where}", (position,))
        if chain_too:
            self.execute(f"DELETE FROM {self.chain_table} WHERE position {where}", (position,))

    def insert(self, position: int, originator_id: Any, version: int, topic: str, state: bytes) -> None:
        self.execute(
            f"INSERT INTO {self.events_table} ({self.position_column}, originator_id, "
            "originator_version, topic, state) VALUES (?,?,?,?,?)",
            (position, originator_id, version, topic, state),
        )

    def count(self, table: str) -> int:
        return self.execute(f"SELECT COUNT(*) FROM {table}")[0][0]


def _pg_connect_args() -> dict[str, Any]:
    return {"dbname": POSTGRES["POSTGRES_DBNAME"], "host": POSTGRES["POSTGRES_HOST"],
            "port": POSTGRES["POSTGRES_PORT"], "user": POSTGRES["POSTGRES_USER"]}


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        yield Store(
            kind="sqlite",
            env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(tmp_path / "events.db")},
            events_table="stored_events", chain_table="stored_audit_chain",
            anchor_table="stored_audit_anchor", position_column="rowid",
        )
        return
    schema = "audit_test_" + uuid.uuid4().hex[:12]
    with psycopg.connect(**_pg_connect_args(), autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    prefix = f'"{schema}".toybank_'
    try:
        yield Store(
            kind="postgres",
            # A pool of one connection proves the chain never holds one while asking for another.
            env={"PERSISTENCE_MODULE": "eventsourcing.postgres", **POSTGRES, "POSTGRES_SCHEMA": schema,
                 "POSTGRES_POOL_SIZE": "1", "POSTGRES_MAX_OVERFLOW": "0"},
            events_table=prefix + "events", chain_table=prefix + "audit_chain",
            anchor_table=prefix + "audit_anchor", position_column="notification_id",
        )
    finally:
        with psycopg.connect(**_pg_connect_args(), autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture
def apps(store: Store) -> Iterator[Any]:
    """``apps(cls)`` makes an application on the store under test; all closed at the end."""
    made: list[Application] = []

    def make(cls: type[Application] = AnchoredBank, **env: str) -> Any:
        app = cls(env={**store.env, **env})
        made.append(app)
        return app

    yield make
    for app in made:
        app.close()


def seed(bank: Bank, accounts: int = 2, credits: int = 3) -> list[uuid.UUID]:
    """Interleaved saves, one event each: positions follow in save order."""
    ids = [bank.open(f"holder {n}") for n in range(accounts)]
    for round_number in range(credits):
        for n, account_id in enumerate(ids):
            bank.credit(account_id, f"{100 + 10 * round_number + n}.00", day=1 + round_number)
    return ids


def only_problem(report: Any) -> Any:
    assert not report.ok
    return report.first


# -- an independent reading of AUD-1 ---------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def reference_hashes(bank: Application) -> tuple[str, dict[str, str]]:
    """Global and per-aggregate heads computed straight from the spec text."""
    global_hash, aggregate_hashes = GENESIS_HASH, {}
    for note in bank.recorder.select_notifications(None, 10_000):
        state = bank.mapper.transcoder.decode(note.state)
        recorded = state.pop("timestamp")
        document = {"aggregate_id": str(note.originator_id), "version": note.originator_version,
                    "topic": note.topic, "recorded_time": recorded, "state": state}
        text = json.dumps(_plain(document), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        aggregate_id = str(note.originator_id)
        previous = aggregate_hashes.get(aggregate_id, GENESIS_HASH)
        aggregate_hashes[aggregate_id] = hashlib.sha256((previous + text).encode()).hexdigest()
        global_hash = hashlib.sha256((global_hash + text).encode()).hexdigest()
    return global_hash, aggregate_hashes


# -- clean store ---------------------------------------------------------------------------------


def test_clean_store_verifies_and_extend_is_idempotent(store: Store, apps: Any) -> None:
    bank = apps()
    seed(bank)
    events = len(store.positions())
    report = bank.audit.verify()
    assert report.ok, report.problems
    assert report.checked == events
    head = bank.audit.head()
    assert head.count == events and head.position == store.positions()[-1]
    anchors = store.count(store.anchor_table)
    assert anchors == events  # one anchor per committed save
    assert bank.audit.extend() == head
    assert store.count(store.anchor_table) == anchors


def test_hashes_match_an_independent_reading_of_the_rule(store: Store, apps: Any) -> None:
    bank = apps()
    ids = seed(bank)
    global_hash, aggregate_hashes = reference_hashes(bank)
    assert bank.audit.head().hash == global_hash
    rows = bank.audit.chain_rows_at(store.positions())
    for account_id in ids:
        last = max((r for r in rows.values() if r.originator_id == str(account_id)),
                   key=lambda r: r.originator_version)
        assert last.aggregate_hash == aggregate_hashes[str(account_id)]


def test_small_pages_give_the_same_chain(store: Store, apps: Any) -> None:
    bank = apps(Bank)
    seed(bank, accounts=3, credits=4)
    chain = AuditChain(bank, page_size=4)
    head = chain.extend()
    assert head.hash == reference_hashes(bank)[0]
    assert head.count == 15
    assert store.count(store.anchor_table) == 4  # one anchor per committed page
    report = chain.verify()
    assert report.ok, report.problems
    assert report.checked == 15


# -- tampering -------------------------------------------------------------------------------------


def test_edited_state_is_named(store: Store, apps: Any) -> None:
    bank = apps()
    ids = seed(bank)
    position = store.positions()[5]
    _, version, _, state = store.row(position)
    assert b'"111.00"' in state
    store.update(position, "state", state.replace(b'"111.00"', b'"911.00"'))
    problem = only_problem(bank.audit.verify())
    assert (problem.position, problem.kind) == (position, EDITED)
    assert (problem.aggregate_id, problem.version) == (str(ids[1]), version)


def test_unreadable_state_is_an_edit(store: Store, apps: Any) -> None:
    bank = apps()
    seed(bank)
    position = store.positions()[2]
    store.update(position, "state", b"{not json")
    problem = only_problem(bank.audit.verify())
    assert (problem.position, problem.kind) == (position, EDITED)


def test_edited_topic_is_named(store: Store, apps: Any) -> None:
    bank = apps()
    seed(bank)
    position = store.positions()[3]
    _, _, topic, _ = store.row(position)
    store.update(position, "topic", topic.replace("Credited", "Debited"))
    problem = only_problem(bank.audit.verify())
    assert (problem.position, problem.kind) == (position, EDITED)
    assert "topic" in problem.message


def test_edited_version_is_named(store: Store, apps: Any) -> None:
    bank = apps()
    seed(bank)
    position = store.positions()[5]
    store.update(position, "originator_version", 77)
    problem = only_problem(bank.audit.verify())
    assert (problem.position, problem.kind) == (position, EDITED)


def test_removed_event_is_named(store: Store, apps: Any) -> None:
    bank = apps()
    seed(bank)
    position = store.positions()[3]
    store.delete_events_from(position, only=True)
    report = bank.audit.verify()
    problem = only_problem(report)
    assert (problem.position, problem.kind) == (position, REMOVED)
    assert len(report.problems) == 1


def test_event_removed_with_its_chain_row_is_named(store: Store, apps: Any) -> None:
    bank = apps()
    seed(bank)
    position = store.positions()[3]
    store.delete_events_from(position, chain_too=True, only=True)
    problem = only_problem(bank.audit.verify())
    assert (problem.position, problem.kind) == (position, REMOVED)


def test_deleted_chain_row_is_named(store: Store, apps: Any) -> None:
    bank = apps()
    seed(bank)
    position = store.positions()[3]
    store.execute(f"DELETE FROM {store.chain_table} WHERE position = ?", (position,))
    problem = only_problem(bank.audit.verify())
    assert (problem.position, problem.kind) == (position, CHAIN_BROKEN)


def test_inserted_event_before_the_first_is_named(store: Store, apps: Any) -> None:
    bank = apps()
    ids = seed(bank)
    originator_id, _, topic, state = store.row(store.positions()[2])
    store.insert(0, originator_id, 99, topic, state)
    problem = only_problem(bank.audit.verify())
    assert (problem.position, problem.kind, problem.version) == (0, INSERTED, 99)
    assert problem.aggregate_id == str(ids[0])


def test_sequence_gap_is_not_a_removal_and_a_row_forged_into_it_is(store: Store, apps: Any) -> None:
    bank = apps()
    (account_id,) = seed(bank, accounts=1, credits=1)
    stale = bank.repository.get(account_id)
    bank.credit(account_id, "5.00")
    stale.credit(Decimal("6.00"), date(2024, 3, 1))
    with pytest.raises(IntegrityError):
        bank.save(stale)  # a failed insert: PostgreSQL burns a sequence value here
    bank.credit(account_id, "7.00")
    positions = store.positions()
    report = bank.audit.verify()
    assert report.ok, report.problems
    gaps = sorted(set(range(positions[0], positions[-1] + 1)) - set(positions))
    # SQLite reuses the rowid of a rolled-back insert; PostgreSQL leaves a gap.
    assert bool(gaps) == (store.kind == "postgres")
    forged_at = gaps[0] if gaps else 0
    originator_id, _, topic, state = store.row(positions[1])
    store.insert(forged_at, originator_id, 50, topic, state)
    problem = only_problem(bank.audit.verify())
    assert (problem.position, problem.kind) == (forged_at, INSERTED)


def test_swapped_states_are_named_as_reordered(store: Store, apps: Any) -> None:
    bank = apps()
    seed(bank)
    positions = store.positions()
    first, second = positions[3], positions[6]
    state_first, state_second = store.row(first)[3], store.row(second)[3]
    store.update(first, "state", state_second)
    store.update(second, "state", state_first)
    report = bank.audit.verify()
    assert [(p.position, p.kind) for p in report.problems] == [(first, REORDERED), (second, REORDERED)]


def test_truncated_tail_is_named_against_the_anchor(store: Store, apps: Any) -> None:
    bank = apps()
    seed(bank)
    positions = store.positions()
    first_removed = positions[-3]
    store.delete_events_from(first_removed, chain_too=True)
    report = bank.audit.verify()
    assert [(p.position, p.kind) for p in report.problems] == [(first_removed, TRUNCATED)]
    with pytest.raises(AuditTamperedError):
        bank.audit.extend()


def test_truncated_tail_after_one_bulk_anchor(store: Store, apps: Any) -> None:
    bank = apps(Bank)
    seed(bank)
    chain = AuditChain(bank)
    chain.extend()
    assert store.count(store.anchor_table) == 1
    first_removed = store.positions()[-2]
    store.delete_events_from(first_removed, chain_too=True)
    problem = only_problem(chain.verify())
    assert (problem.position, problem.kind) == (first_removed, TRUNCATED)


def test_truncated_tail_against_an_anchor_file(store: Store, apps: Any, tmp_path: Path) -> None:
    anchor_file = tmp_path / "anchors.jsonl"
    bank = apps(AUDIT_ANCHOR_PATH=str(anchor_file))
    seed(bank)
    lines = anchor_file.read_text().splitlines()
    assert len(lines) == len(store.positions())
    assert json.loads(lines[-1])["hash"] == bank.audit.head().hash
    assert bank.audit.verify().ok
    first_removed = store.positions()[-2]
    store.delete_events_from(first_removed, chain_too=True)
    problem = only_problem(bank.audit.verify())
    assert (problem.position, problem.kind) == (first_removed, TRUNCATED)


def test_consistently_rewritten_chain_is_caught_by_the_anchor(store: Store, apps: Any, tmp_path: Path) -> None:
    bank = apps()
    seed(bank)
    position = store.positions()[5]
    state = store.row(position)[3]
    store.update(position, "state", state.replace(b'"111.00"', b'"911.00"'))
    # The attacker rebuilds the chain rows from the edit on, with their own anchor file.
    store.execute(f"DELETE FROM {store.chain_table} WHERE position >= ?", (position,))
    AuditChain(bank, anchor_path=tmp_path / "attacker.jsonl").extend()
    problem = only_problem(bank.audit.verify())
    assert (problem.position, problem.kind) == (position, ANCHOR_MISMATCH)


def test_edited_chain_row_is_named(store: Store, apps: Any) -> None:
    bank = apps()
    seed(bank)
    position = store.positions()[2]
    store.execute(f"UPDATE {store.chain_table} SET global_hash = ? WHERE position = ?", ("f" * 64, position))
    problem = only_problem(bank.audit.verify())
    assert (problem.position, problem.kind) == (position, EDITED)


def test_torn_anchor_line_is_skipped_and_repaired(store: Store, apps: Any, tmp_path: Path) -> None:
    anchor_file = tmp_path / "anchors.jsonl"
    bank = apps(AUDIT_ANCHOR_PATH=str(anchor_file))
    (account_id,) = seed(bank, accounts=1, credits=1)
    with open(anchor_file, "ab") as file:
        file.write(b'{"count": 9, "ha')  # the process died mid-write
    assert bank.audit.verify().ok
    bank.credit(account_id, "1.00")
    assert anchor_file.read_bytes().endswith(b"\n")
    assert json.loads(anchor_file.read_text().splitlines()[-1])["count"] == bank.audit.head().count
    assert bank.audit.verify().ok


def test_anchor_table_is_append_only(store: Store, apps: Any) -> None:
    bank = apps()
    seed(bank, accounts=1, credits=1)
    for statement in (f"UPDATE {store.anchor_table} SET chain_count = 0",
                      f"DELETE FROM {store.anchor_table}"):
        with pytest.raises((sqlite3.DatabaseError, psycopg.Error), match="append-only"):
            store.execute(statement)
    assert bank.audit.verify().ok


# -- catch-up, bulk loads, concurrency -------------------------------------------------------------


def test_a_failure_while_chaining_rolls_the_save_back(
    store: Store, apps: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The chain rows are written in the save's own transaction: no event is ever stored unchained."""
    from ledger.audit_append import ChainAppender

    bank = apps()
    (account_id,) = seed(bank, accounts=1, credits=1)
    chained, positions = bank.audit.head(), store.positions()

    def crash(self: ChainAppender, *args: Any) -> Head:
        raise OSError("process died")

    monkeypatch.setattr(ChainAppender, "append", crash)
    with pytest.raises(OSError):
        bank.credit(account_id, "42.00")
    monkeypatch.undo()
    assert store.positions() == positions  # nothing stored
    assert apps().repository.get(account_id).balance == Decimal("100.00")
    assert bank.audit.head() == chained and bank.audit.verify().ok
    bank.credit(account_id, "42.00")
    assert bank.audit.head().count == chained.count + 1 and bank.audit.verify().ok


def test_each_save_is_chained_before_it_commits(store: Store, apps: Any) -> None:
    bank = apps()
    (account_id,) = seed(bank, accounts=1, credits=1)
    anchors = store.count(store.anchor_table)
    for day in range(2, 5):
        bank.credit(account_id, "1.00", day=day)
        assert bank.audit.head().position == store.positions()[-1]  # no extend() call in between
    assert store.count(store.anchor_table) == anchors + 3
    assert bank.audit.verify().ok


def test_a_forged_row_stops_the_next_save_instead_of_being_chained(store: Store, apps: Any) -> None:
    """Issue 16: an event appended behind the chain's back was buried by the next ordinary save."""
    bank = apps()
    (account_id,) = seed(bank, accounts=1, credits=2)
    originator_id, version, topic, state = store.row(store.positions()[-1])
    forged_at = store.positions()[-1] + 5  # ahead of PostgreSQL's sequence, as a careful forger would
    store.insert(forged_at, originator_id, version + 1, topic, state)  # a duplicate credit
    problem = only_problem(bank.audit.verify())
    assert (problem.position, problem.kind) == (forged_at, UNCHAINED)
    positions = store.positions()
    with pytest.raises(AuditTamperedError, match="not chained"):
        bank.open("holder x")  # an ordinary save of another aggregate
    assert store.positions() == positions  # refused whole: nothing stored
    problem = only_problem(bank.audit.verify())
    assert (problem.position, problem.kind) == (forged_at, UNCHAINED)  # still named, not buried


def test_after_a_crashed_bulk_load_the_next_save_waits_for_staff(store: Store, apps: Any) -> None:
    """Rows a crashed bulk load left unchained stop chained saves until staff extend the chain."""
    bank = apps()
    (account_id,) = seed(bank, accounts=1, credits=1)
    bank.audit_extend_on_save = False  # a bulk load that died before its extend
    bank.credit(account_id, "42.00")
    bank.audit_extend_on_save = True
    unchained_at = store.positions()[-1]
    with pytest.raises(AuditTamperedError):
        bank.credit(account_id, "1.00", day=2)
    problem = only_problem(bank.audit.verify())
    assert (problem.position, problem.kind) == (unchained_at, UNCHAINED)
    assert bank.audit.verify(unchained_ok=True).ok
    restarted = apps()  # staff judged the rows: a new process extends the chain
    head = restarted.audit.extend()
    assert head.position == unchained_at and restarted.audit.verify().ok
    restarted.credit(account_id, "1.00", day=2)
    assert restarted.repository.get(account_id).balance == Decimal("143.00")
    assert restarted.audit.verify().ok


def test_bulk_load_extends_once_at_the_end(store: Store, apps: Any) -> None:
    bank = apps()
    (account_id,) = seed(bank, accounts=1, credits=1)
    before = bank.audit.head()
    anchors = store.count(store.anchor_table)
    with bank.audit_bulk_load():
        for day in range(1, 6):
            bank.credit(account_id, "1.00", day=day)
        assert bank.audit.head() == before
    assert bank.audit.head().count == before.count + 5
    assert store.count(store.anchor_table) == anchors + 1
    assert bank.audit.verify().ok


def test_concurrent_extenders_keep_one_chain(store: Store, apps: Any) -> None:
    writer = apps()
    chains = [AuditChain(apps(Bank)) for _ in range(2)]  # other processes, own pools
    (account_id,) = seed(writer, accounts=1, credits=1)
    errors: list[BaseException] = []

    def keep_extending(chain: AuditChain) -> None:
        try:
            for _ in range(15):
                chain.extend()
        except BaseException as error:  # reported by the main thread
            errors.append(error)

    threads = [threading.Thread(target=keep_extending, args=(chain,)) for chain in chains]
    for thread in threads:
        thread.start()
    for day in range(1, 16):
        writer.credit(account_id, "3.00", day=day)
    for thread in threads:
        thread.join()
    assert not errors
    report = writer.audit.verify()
    assert report.ok, report.problems
    assert writer.audit.head().count == len(store.positions())


# -- certificates and replay ---------------------------------------------------------------------


def test_certificate_code_is_tied_to_the_chain(store: Store, apps: Any) -> None:
    bank = apps()
    with pytest.raises(AuditChainEmptyError):
        bank.audit.certificate_code("{}")
    (account_id,) = seed(bank, accounts=1, credits=1)
    payload = json.dumps({"certificate": "GJJ-2024-0001", "balance": "100.00"}, ensure_ascii=False)
    head = bank.audit.head()
    code = bank.audit.certificate_code(payload, head)
    assert len(code) == 16 and int(code, 16) >= 0
    bank.credit(account_id, "1.00")
    assert bank.audit.check_certificate_code(payload, code, head.position)
    assert bank.audit.check_certificate_code(payload.encode(), code.upper(), head.position)
    assert not bank.audit.check_certificate_code(payload.replace("100.00", "900.00"), code, head.position)
    assert not bank.audit.check_certificate_code(payload, code, bank.audit.head().position)
    assert not bank.audit.check_certificate_code(payload, code, 10_000)


def test_replay_to_a_version_and_to_a_recorded_time(store: Store, apps: Any) -> None:
    bank = apps()
    (account_id,) = seed(bank, accounts=1, credits=3)
    assert bank.audit.replay(account_id, 2).balance == Decimal("100.00")
    assert bank.audit.replay(account_id).balance == Decimal("330.00")
    recorded = [e.timestamp for e in bank.events.get(account_id)]
    assert bank.audit.replay(account_id, known_at=recorded[2]).balance == Decimal("210.00")


def test_a_store_without_sql_is_refused() -> None:
    with Bank(env={"PERSISTENCE_MODULE": "eventsourcing.popo"}) as bank:
        with pytest.raises(AuditConfigurationError):
            AuditChain(bank)


# -- canonical JSON (no store) ---------------------------------------------------------------------


def test_canonical_json_follows_the_rule() -> None:
    value = {"b": Decimal("1.50"), "a": [date(2024, 2, 29), uuid.UUID(int=1)], "c": None}
    assert canonical_json(value) == (
        b'{"a":["2024-02-29","00000000-0000-0000-0000-000000000001"],"b":"1.50","c":null}'
    )
    assert canonical_json({"名": "住房公积金"}) == '{"名":"住房公积金"}'.encode()
