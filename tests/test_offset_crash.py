"""OFF-4 under crashes and concurrency: the monthly run killed at random, and two runs at once.

A store is seeded with a few hundred loans with signed mandates (benchmarks/offset_run.seed writes
them through the aggregates). Then the offset for one date is started in a subprocess
(tests/offset_crash_worker.py) and SIGKILLed after a random delay, again and again, and finally run
to completion. Whatever the kills interrupted, afterwards — counted from the event log, not from
the aggregates — every loan with a mandate has exactly one Deduction for the date (ids derived by
``Deduction.create_id``), the fund accounts were debited exactly once (Σ offset movements = Σ fund
parts of the deductions, one movement per posting id), no loan payment or card debit exists twice,
the books balance (GL-2, GL-3) and the audit chain verifies (AUD-1). The same holds when two
processes run the same date at once on PostgreSQL.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import date, datetime
from pathlib import Path
from typing import Any, Iterator

import pytest

from benchmarks.offset_run import RUN_DAY, seed
from ledger.aggregates.fund_account import FundAccount
from ledger.aggregates.loan import Loan
from ledger.aggregates.offset import BankDebit, Deduction
from ledger.app import Ledger
from ledger.application import CHINA_TZ, FixedClock, topic_of
from ledger.money import Money

pytestmark = [pytest.mark.storage, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
WORKER = ROOT / "tests" / "offset_crash_worker.py"
SQLITE_LOANS = 200
POSTGRES_LOANS = 150
KILLS = 20
WORKER_BATCH_SIZE = 20  # more commit points than production's 250: more places for a kill to land
WORKER_TIMEOUT_SECONDS = 120
KILL_AT_START_UP_SHARE = 0.15
KILL_AFTER_BATCH_SECONDS_MAX = 0.05  # after the chosen batch: before, between or during the next commits
SEED_OPTIONS = {"history_years": 1, "months_back": (2, 5), "terms_months": (120, 60)}  # small: fast to seed


def clock() -> FixedClock:
    return FixedClock(datetime(RUN_DAY.year, RUN_DAY.month, RUN_DAY.day, 18, tzinfo=CHINA_TZ))


def seeded(url: str, loans: int) -> None:
    ledger = Ledger(url, clock=clock())
    try:
        seed(ledger, loans, **SEED_OPTIONS)
    finally:
        ledger.close()


def worker(url: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(WORKER), url, RUN_DAY.isoformat(),
                             "--batch-size", str(WORKER_BATCH_SIZE), *extra],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    out, err = process.communicate(timeout=WORKER_TIMEOUT_SECONDS)
    assert process.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


def deductions_so_far(ledger: Ledger) -> int:
    return sum(1 for _ in ledger.iter_notifications(topics=[topic_of(Deduction, "Recorded")]))


def check_exactly_once(url: str, loans: int) -> dict[str, Any]:
    """The OFF-4 guarantees for RUN_DAY, counted from the event log."""
    ledger = Ledger(url, clock=clock())
    try:
        mandated = {row["loan_no"] for row in ledger.mandate_index()}
        assert len(mandated) == loans
        recorded = [e for e in ledger.iter_events(topics=[topic_of(Deduction, "Recorded")])
                    if e.deduction_on == RUN_DAY]
        per_loan = Counter(e.loan_no for e in recorded)
        assert set(per_loan) == mandated, "a loan with a mandate has no outcome"
        assert max(per_loan.values()) == 1, [n for n, c in per_loan.items() if c > 1]
        assert {e.originator_id for e in recorded} == {Deduction.create_id(n, RUN_DAY) for n in mandated}

        fund_parts = Money.sum(p["amount"] for e in recorded for p in e.parts)
        prefix, day = "offset:", f":{RUN_DAY.isoformat()}:"
        movements = [e for e in ledger.iter_events(topics=[topic_of(FundAccount, "DebitedForLoan")])
                     if e.posting_id.startswith(prefix) and day in e.posting_id]
        assert Money.sum(e.amount for e in movements) == fund_parts, "fund accounts debited other than once"
        assert max(Counter(e.posting_id for e in movements).values()) == 1
        payments = [e for e in ledger.iter_events(topics=[topic_of(Loan, "PaymentReceived")])
                    if e.reference.startswith(prefix) and day in e.reference]
        assert sorted(e.reference for e in payments) == sorted(e.posting_id for e in movements)
        assert Money.sum(e.op["amount"] for e in payments) == fund_parts

        debits = [e for e in ledger.iter_events(topics=[topic_of(BankDebit, "Created")])
                  if e.deduction_on == RUN_DAY]
        assert max(Counter(e.loan_no for e in debits).values(), default=0) <= 1, "a card charged twice"
        assert Money.sum(e.amount for e in debits) == Money.sum(e.card_amount for e in recorded if e.debit_id)
        assert {e.originator_id for e in debits} == {e.debit_id for e in recorded if e.debit_id}

        checks = ledger.check_books()
        assert checks["ok"], checks
        ledger.audit.extend()
        report = ledger.audit.verify()
        assert not report.problems, report.problems[:3]
        return {"deducted": sum(e.outcome == "DEDUCTED" for e in recorded), "fund": fund_parts,
                "cards": len(debits)}
    finally:
        ledger.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/crash.sqlite3"
    seeded(url, SQLITE_LOANS)
    return url


def test_a_run_killed_twenty_times_then_completed_deducts_each_loan_exactly_once(sqlite_store: str) -> None:
    rng = random.Random(int(os.environ.get("GJJ_CRASH_SEED", "20250616")))
    reader = Ledger(sqlite_store, clock=clock())
    # a kill lands during start-up now and then, mostly inside the run: before, between or during commits
    partial_counts = []
    try:
        for _ in range(KILLS):
            process = worker(sqlite_store)
            if rng.random() < KILL_AT_START_UP_SHARE:
                time.sleep(rng.uniform(0.0, 0.5))
            else:
                assert process.stdout is not None and process.stdout.readline().strip() == "ready"
                for _batch in range(rng.randint(0, SQLITE_LOANS // WORKER_BATCH_SIZE - 2)):
                    if process.stdout.readline().strip() != "batch":
                        break  # the run ended (the day was complete already)
                time.sleep(rng.uniform(0.0, KILL_AFTER_BATCH_SECONDS_MAX))
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=WORKER_TIMEOUT_SECONDS)
            partial_counts.append(deductions_so_far(reader))
    finally:
        reader.close()
    # the kills interrupted runs part-way at least once (else this test proves nothing)
    assert any(0 < count < SQLITE_LOANS for count in partial_counts), partial_counts
    assert partial_counts == sorted(partial_counts)  # progress is only ever kept, never undone
    final = finish(worker(sqlite_store))["dates"]  # [] when a killed run had already completed the day
    assert sum(d["deducted"] for d in final) == SQLITE_LOANS - partial_counts[-1]
    outcome = check_exactly_once(sqlite_store, SQLITE_LOANS)
    assert outcome["deducted"] == SQLITE_LOANS
    again = finish(worker(sqlite_store))  # the day is complete: a further run does nothing
    assert again["dates"] == []
    assert check_exactly_once(sqlite_store, SQLITE_LOANS) == outcome


@pytest.fixture
def postgres_store(postgres_scratch_url: Any) -> Iterator[str]:
    from tests.conftest import drop_scratch

    url = postgres_scratch_url()
    try:
        seeded(url, POSTGRES_LOANS)
        yield url
    finally:
        drop_scratch(url)


def test_two_runs_of_the_same_day_at_once_on_postgresql(postgres_store: str, tmp_path: Path) -> None:
    go = tmp_path / "go"
    processes = [worker(postgres_store, "--go-file", str(go)) for _ in range(2)]
    for process in processes:  # both open and waiting: then both start at once
        assert process.stdout is not None and process.stdout.readline().strip() == "ready"
    go.touch()
    reports = [finish(process) for process in processes]
    per_day = [r["dates"][0] if r["dates"] else {"deducted": 0, "already_done": 0} for r in reports]
    # between them the two runs deducted every loan once; what one did the other found done
    assert sum(d["deducted"] for d in per_day) == POSTGRES_LOANS, reports
    outcome = check_exactly_once(postgres_store, POSTGRES_LOANS)
    assert outcome["deducted"] == POSTGRES_LOANS
