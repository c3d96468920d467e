"""The bulk seeder writes what the commands write (issue 14, item 5), on both stores.

A sample of households is seeded twice: by ``benchmarks.seed_store`` (templates filled in, rows and
chain written straight into the store) and by ``benchmarks.seed_commands`` (day by day, the jobs run by
the ledger's own commands — ``settle_interest``, ``daily_loan_update``, ``reprice_loans`` — and every
save chained by the ledger). The sample has two households of each of its shapes, so filling a template
in for another identity is exercised, and shapes with and without a spouse, a low balance and both
repayment methods. Both stores must hold the same events, byte for byte, and the same snapshot states;
every account and loan must load (``load_many``) to the same decision state in both, equal to a full
replay of its events; balances, journal and trial balance must agree, the books check (GL-2) and the
audit chain verifies (AUD-1) in both.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import orjson
import pytest

from benchmarks.seed_commands import seed_by_commands
from benchmarks.seed_household import RUN_DAY, SeedPlan
from benchmarks.seed_store import seed_store
from ledger.aggregates import fund_compact, loan_compact
from ledger.aggregates.offset import OffsetRunLog
from ledger.aggregates.documents import IdempotencyRecord
from ledger.aggregates.fund_account import FundAccount
from ledger.aggregates.loan import Loan
from ledger.app import Ledger
from ledger.application import CHINA_TZ, FixedClock, topic_of
from ledger.storage import drop_postgres_schema, parse_database_url

pytestmark = [pytest.mark.storage]

PLAN = SeedPlan(history_years=4, months_back=(24, 40), terms_months=(360, 240), shapes=10)
# shapes 0 (low balance, spouse), 1 (spouse), 7 (no spouse), 9 (no spouse, equal principal); each twice
HOUSEHOLDS = [0, 1, 7, 9, 10, 11, 17, 19]
# the jobs' own records, not a household's: reprice_loans' batch keys, the daily loan job's run log
JOB_RECORDS = (topic_of(IdempotencyRecord, "Recorded"), topic_of(OffsetRunLog, "Started"),
               topic_of(OffsetRunLog, "Completed"))


def open_at_run_day(url: str) -> Ledger:
    return Ledger(url, clock=FixedClock(datetime(RUN_DAY.year, RUN_DAY.month, RUN_DAY.day, 18, tzinfo=CHINA_TZ)))


def stored_events(ledger: Ledger) -> dict[tuple[Any, int], tuple[str, bytes]]:
    return {(n.originator_id, n.originator_version): (n.topic, n.state) for n in ledger.iter_notifications()
            if n.topic not in JOB_RECORDS}


def snapshot_states(ledger: Ledger, ids: list[Any]) -> dict[Any, Any]:
    """Each aggregate's latest snapshot: version, topic and state (its own timestamp is the wall clock's)."""
    found = {}
    for aggregate_id in ids:
        (snapshot,) = ledger.snapshots.recorder.select_events(aggregate_id, desc=True, limit=1)
        state = orjson.loads(snapshot.state)["state"]
        # the seal ("m") is under each store's own key; audit verify checks it below
        found[aggregate_id] = (snapshot.originator_version, snapshot.topic, state["z"], state["c"])
    return found


def decision_states(ledger: Ledger, ids: list[Any]) -> dict[Any, Any]:
    loaded = ledger.load_many(ids)
    return {i: (type(a).__name__, decision_state(a), str(a.balance) if isinstance(a, FundAccount) else None)
            for i, a in loaded.items()}


def decision_state(aggregate: Any) -> Any:
    module = fund_compact if isinstance(aggregate, FundAccount) else loan_compact
    return module.decision_state(aggregate)


def journal(ledger: Ledger) -> list[Any]:
    return sorted((str(e.originator_id), e.originator_version, d.isoformat(), repr(lines))
                  for e, d, lines in ledger.journal())


def test_seeder_writes_what_the_commands_write(store_url: str) -> None:
    seeded_url, commands_url = store_url, store_url.replace("ledger.sqlite3", "commands.sqlite3")
    if store_url.startswith("postgresql"):
        seeded_url, commands_url = store_url, store_url + "_c"
    seeded, by_commands = open_at_run_day(seeded_url), open_at_run_day(commands_url)
    try:
        report = seed_store(seeded, PLAN, HOUSEHOLDS, check_every=1)
        seed_by_commands(by_commands, PLAN, HOUSEHOLDS)
        assert report.households == len(HOUSEHOLDS) and report.templates == 4 and report.checked == 4

        events = stored_events(seeded)
        assert events == stored_events(by_commands)
        assert report.events == len(events) - len(events_of_employers(events))

        ids = seeded.account_ids() + seeded.loan_ids()
        accounts = sum(2 if PLAN.shape(index).spouse else 1 for index in HOUSEHOLDS)
        assert len(ids) == len(set(ids)) == accounts + len(HOUSEHOLDS)
        assert snapshot_states(seeded, ids) == snapshot_states(by_commands, ids)
        states = decision_states(seeded, ids)
        assert states == decision_states(by_commands, ids)
        assert {i: decision_state(seeded.replay_whole(i)) for i in ids} == {i: s[1] for i, s in states.items()}
        assert sum(1 for a in seeded.load_many(ids).values() if isinstance(a, Loan) and a.accrued) == len(HOUSEHOLDS)

        assert journal(seeded) == journal(by_commands)
        assert seeded.trial_balance().as_dict() == by_commands.trial_balance().as_dict()
        for ledger in (seeded, by_commands):
            assert ledger.trial_balance().difference.is_zero
            assert ledger.check_books()["ok"], ledger.check_books()
            report_ok = ledger.audit.verify()
            assert report_ok.ok, report_ok.problems[:3]
    finally:
        seeded.close()
        by_commands.close()
        if commands_url.startswith("postgresql"):
            drop_postgres_schema(parse_database_url(commands_url))


def events_of_employers(events: dict[tuple[Any, int], tuple[str, bytes]]) -> list[Any]:
    return [key for key, (topic, _state) in events.items() if topic.startswith("ledger.aggregates.parties:Employer")]


def test_a_second_run_continues_the_chain_and_the_days_serials(store_url: str) -> None:
    """Households seeded in two runs: the second extends the chain and each day's serial sequence."""
    from benchmarks.seed_household import CENTRE_SERIAL_SCOPE
    from ledger.aggregates.documents import DailySequence, Payout

    ledger = open_at_run_day(store_url)
    try:
        seed_store(ledger, PLAN, [0, 1, 7], check_every=0)
        seed_store(ledger, PLAN, [10, 11, 17], check_every=0)  # the same shapes: the same disbursement days
        report = ledger.audit.verify()
        assert report.ok, report.problems[:3]
        assert ledger.check_books()["ok"]
        payouts = [e for e in ledger.iter_events([topic_of(Payout, "Instructed")])]
        serials = [e.serial for e in payouts]
        assert len(serials) == len(set(serials))
        for day in {e.value_date for e in payouts}:
            sequence = ledger.repository.get(DailySequence.create_id(CENTRE_SERIAL_SCOPE, day))
            assert sequence.last == sum(1 for e in payouts if e.value_date == day)
    finally:
        ledger.close()
